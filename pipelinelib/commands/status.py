"""``pipeline status``: what is deployed where."""

from __future__ import annotations

import argparse
import os

from pipelinelib.context import Context

DESCRIPTION = """\
Environments x apps, environments in promotion order (int-test -> qa -> preprod -> prod;
sandbox -> staging -> live): image digest, git revision, version, when and by whom it was
deployed (from the env-state repository's commits), health (ready replicas), drift, and
hot-fixes not yet merged back. As a table, --output json, and --html FILE writes a
self-contained static page a CI server can publish: apps x environments, each cell the
version and digest coloured for health with a sync badge, a marker where an environment
differs from the previous one, hot-fixes not merged back flagged.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("envs", metavar="ENV", nargs="*", help="environments (default: all)")
    parser.add_argument("--repo", default=os.environ.get("PIPELINE_ENV_REPO", "."),
                        help="env-state repository checkout (default $PIPELINE_ENV_REPO or .)")
    parser.add_argument("--output", choices=("text", "json"), default="text")
    parser.add_argument("--html", metavar="FILE", help="also write a static HTML page here")


def run(args: argparse.Namespace, ctx: Context) -> int:
    import datetime as dt
    import json
    import sys
    from pathlib import Path

    from pipelinelib.envspec.load import environment_path, list_environments, load_environment
    from pipelinelib.envspec.order import promotion_lines
    from pipelinelib.envspec.show import format_status
    from pipelinelib.envspec.staterepo import EnvStateRepo
    from pipelinelib.job import Job
    from pipelinelib.report.status_page import status_page
    from pipelinelib.steps.status import status

    with Job("status", ctx, args.report_dir) as job:
        names = args.envs or list_environments(args.repo)
        loaded = {n: load_environment(environment_path(args.repo, n), root=args.repo)
                  for n in names}
        lines = promotion_lines({n: e.promote_from for n, e in loaded.items()},
                                {n: list(e.apps) for n, e in loaded.items()})
        envs = [loaded[n] for line in lines for n in line]
        try:
            state = EnvStateRepo.open(args.repo)
        except Exception:
            state = None
        result = job.run(status, ctx, envs, state)
    if job.error is not None:
        return job.exit_code
    rows = ctx.secrets.redact(result.outputs["rows"])
    if args.output == "json":
        json.dump({"apps": rows}, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(format_status(rows))
    if args.html:
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        Path(args.html).write_text(status_page(rows, lines, now), encoding="utf-8")
    return job.exit_code
