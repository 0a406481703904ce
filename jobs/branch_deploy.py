#!/usr/bin/env python3
"""Branch deploy job (seed 002): a build of a branch deploys to that branch's environment.

Thin: `pipeline branch-deploy`'s own parser (same options, same environment defaults: APP,
PIPELINE_ENV_REPO, PIPELINE_ENV_BRANCH, the CI server's branch variable), the pipeline
pipelinelib.pipelines.branch_deploy, its exit code (5 when a blue/green app whose spec says
await_promotion stops with the new colour ready; `pipeline swap --env staging --app uro`
switches).

    python jobs/branch_deploy.py --app uro --branch sandbox --image REPO@sha256:... --repo URL
"""

from __future__ import annotations

import sys

from pipelinelib.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("branch-deploy", prog="jobs/branch_deploy.py"))
