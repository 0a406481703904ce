#!/usr/bin/env python3
"""Promote job: the parameterized job release managers trigger (Jenkins / GoCD).

Parameters come from the command line or, as CI servers pass them, from the environment
(APP, FROM_ENV, TO_ENV, APPROVE, HOTFIX, IMAGE, REASON, ENV_STATE_REPO, ENV_STATE_BRANCH).
The identity is the CI server's (Jenkins BUILD_USER_ID, GoCD GO_TRIGGER_USER), never a
parameter. Exit 0 done, 1 failed, 2 refused/bad input, 3 unreachable.

    python jobs/promote.py --app records-api --from preprod --to prod --repo URL
"""

from __future__ import annotations

import argparse
import os
import sys

from pipelinelib import Context, Job
from pipelinelib.commands.promote import promote_pipeline
from pipelinelib.errors import BadInput, PipelineError
from pipelinelib.log import configure


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", action="append", default=None,
                        help="app to promote (repeatable; default $APP, comma-separated)")
    parser.add_argument("--all", action="store_true", default=_flag("ALL_APPS"))
    parser.add_argument("--from", dest="source", default=env.get("FROM_ENV") or None)
    parser.add_argument("--to", dest="target", default=env.get("TO_ENV"))
    parser.add_argument("--repo", default=env.get("ENV_STATE_REPO") or
                        env.get("PIPELINE_ENV_REPO"))
    parser.add_argument("--branch", default=env.get("ENV_STATE_BRANCH", "main"))
    parser.add_argument("--approve", action="store_true", default=_flag("APPROVE"))
    parser.add_argument("--hotfix", action="store_true", default=_flag("HOTFIX"))
    parser.add_argument("--image", default=env.get("IMAGE") or None)
    parser.add_argument("--reason", default=env.get("REASON", ""))
    parser.add_argument("--source-repo", default=env.get("SOURCE_REPO") or None)
    parser.add_argument("--main-branch", default=env.get("MAIN_BRANCH", "main"))
    parser.add_argument("--no-apply", action="store_true")
    parser.add_argument("--report-dir", default=env.get("PIPELINE_REPORT_DIR"))
    parser.add_argument("--log-format", default="auto", choices=("auto", "console", "json"))
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    apps = args.app or [a for a in env.get("APP", "").split(",") if a.strip()]

    ctx = Context(dry_run=args.dry_run, secrets=configure(args.log_format),
                  environment=args.target or "")
    try:
        if not args.target or not args.repo or not (apps or args.all):
            raise BadInput("missing parameters", field="APP/TO_ENV/ENV_STATE_REPO",
                           expected="--app (or --all), --to and --repo")
    except PipelineError as exc:
        print(f"promote: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    with Job("promote", ctx, report_dir=args.report_dir) as job:
        promote_pipeline(job, ctx, repo=args.repo, branch=args.branch, apps=apps,
                         all_apps=args.all, source=args.source, target=args.target,
                         approve=args.approve, hotfix=args.hotfix, image=args.image,
                         reason=args.reason, source_repo=args.source_repo,
                         main_branch=args.main_branch, apply=not args.no_apply)
    from pipelinelib.steps.apply import exit_code

    return exit_code(job)


if __name__ == "__main__":
    sys.exit(main())
