"""``pipeline status``: what is deployed where."""

from __future__ import annotations

import argparse
import os

from pipelinelib.context import Context

DESCRIPTION = """\
Environments x apps: image digest, git revision, version, when and by whom it was
deployed (from the env-state repository's commits), health (ready replicas), drift, and
hot-fixes not yet merged back. As a table, --output json, and --html FILE writes a
self-contained static page a CI server can publish.
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
    from pipelinelib.envspec.show import format_status, status_html
    from pipelinelib.envspec.staterepo import EnvStateRepo
    from pipelinelib.job import Job
    from pipelinelib.steps.status import status

    with Job("status", ctx, args.report_dir) as job:
        names = args.envs or list_environments(args.repo)
        envs = [load_environment(environment_path(args.repo, n), root=args.repo) for n in names]
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
        Path(args.html).write_text(status_html(rows, now), encoding="utf-8")
    return job.exit_code
