#!/usr/bin/env python3
"""Build job: what a CI stage runs to build, test and publish one app's image.

A job is thin: parse parameters, compose steps, exit with the job's code. It parses with
`pipeline build`'s own parser (same options, same environment defaults) and runs the same
composition; copy it to compose your own.

    python jobs/build.py --app-dir examples/hello --report-dir reports
"""

from __future__ import annotations

import sys

from pipelinelib import Context, Job
from pipelinelib.cli import command_parser
from pipelinelib.commands.build import build_options, build_pipeline
from pipelinelib.log import configure


def main(argv: list[str] | None = None) -> int:
    args = command_parser("build", prog="jobs/build.py").parse_args(argv)
    ctx = Context(dry_run=args.dry_run, secrets=configure(args.log_format, args.log_level))
    with Job("build", ctx, report_dir=args.report_dir) as job:
        build_pipeline(job, ctx, **build_options(args))
    return job.exit_code


if __name__ == "__main__":
    sys.exit(main())
