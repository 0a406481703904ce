#!/usr/bin/env python3
"""Build job: what a CI stage runs to build, test and publish one app's image.

A job is thin: parse parameters, compose steps, exit with the job's code.
This is the same composition `pipeline build` runs; copy it to compose your own.

    python jobs/build.py --app-dir examples/hello --report-dir reports
"""

from __future__ import annotations

import argparse
import sys

from pipelinelib import Context, Job
from pipelinelib.commands.build import build_pipeline
from pipelinelib.log import configure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", default=".")
    parser.add_argument("--registry")
    parser.add_argument("--report-dir")
    parser.add_argument("--log-format", default="auto", choices=("auto", "console", "json"))
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)

    ctx = Context(dry_run=args.dry_run, secrets=configure(args.log_format))
    with Job("build", ctx, report_dir=args.report_dir) as job:
        build_pipeline(job, ctx, app_dir=args.app_dir, registry=args.registry)
    return job.exit_code


if __name__ == "__main__":
    sys.exit(main())
