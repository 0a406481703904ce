#!/usr/bin/env python3
"""Build job: what a CI stage runs to build, test and publish one app's image.

A job is thin: parse parameters, run the pipeline, exit with the job's code. It parses with
`pipeline build`'s own parser (same options, same environment defaults) and runs the same
pipeline (pipelinelib.pipelines.build); copy it to compose your own.

    python jobs/build.py --app-dir examples/hello --report-dir reports
"""

from __future__ import annotations

import sys

from pipelinelib.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("build", prog="jobs/build.py"))
