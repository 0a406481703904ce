#!/usr/bin/env python3
"""Auto-roll job (seed 004): given a commit to the env-state repo, apply what it touched.

Thin: `pipeline autoroll`'s own parser (same options, same environment defaults:
PIPELINE_ENV_REPO, PIPELINE_ENV_BRANCH, the CI server's GIT_COMMIT / GO_REVISION_ENV_STATE),
the pipeline pipelinelib.pipelines.autoroll, its exit code (5 when a blue/green app awaits
promotion).

    python jobs/autoroll.py --repo URL --branch main --commit SHA
"""

from __future__ import annotations

import sys

from pipelinelib.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("autoroll", prog="jobs/autoroll.py"))
