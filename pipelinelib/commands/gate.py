"""``pipeline gate``: the release checklist (seed 000/001) as automated checks."""

from __future__ import annotations

import argparse

from pipelinelib.context import Context

DESCRIPTION = """\
Check the release checklist before a rollout and print it with evidence:

  1. built and tested (JUnit XML without failures; --build-result SUCCESS)
  2. migrations occur before deployment (nothing pending in --database-dsn)
  3. old and new versions co-exist (migration lint: squawk, expand/contract phase rules)
  4. breaking interface changes only in a major release (oasdiff on the OpenAPI/JSON
     Schema against the deployed version; ERR breaks, WARN is reported; --environment ENV
     reads the deployed version from our deployment records (tags and git notes of the
     app's repository; none yet = first deployment), or --deployed-rev REV /
     --deployed-dir DIR)
  5. the audit index mapping changed for every call that broke

Which marks and files apply comes from APP_DIR/gate.yaml. A failed mark can be
overridden by a user listed under `overriders` with --override MARKS --reason TEXT;
the override is audited. With --image and --digest the checklist is recorded in the
registry as REGISTRY/REPO:sha256-<hex>.gate.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app-dir", default=".", help="the app's directory (default: .)")
    parser.add_argument("--config", help="gate config (default: APP_DIR/gate.yaml)")
    parser.add_argument("--environment", "--env", dest="environment",
                        help="target environment: the deployed version comes from our records")
    parser.add_argument("--deployed-rev", help="git revision deployed in the target env")
    parser.add_argument("--deployed-dir", help="a checkout of the deployed release")
    parser.add_argument("--database-dsn", help="target database (default "
                        "$PIPELINE_DB_DSN); a secret")
    parser.add_argument("--build-result", help="the CI build result (SUCCESS, UNSTABLE...)")
    parser.add_argument("--marks", metavar="MARKS",
                        help="check only these configured marks, e.g. 2 right before the rollout")
    parser.add_argument("--migrate-next", action="store_true",
                        help="this gate runs before `pipeline migrate`: pending migrations "
                             "pass mark 2 if they apply cleanly (check --marks 2 again later)")
    parser.add_argument("--override", metavar="MARKS", help="override failed marks, e.g. 4,5")
    parser.add_argument("--reason", help="why (mandatory with --override; audited)")
    parser.add_argument("--image", metavar="REGISTRY/REPO", help="record the result here")
    parser.add_argument("--digest", metavar="sha256:...", help="the image digest")


def run(args: argparse.Namespace, ctx: Context) -> int:
    import os
    from pathlib import Path

    from pipelinelib.envfile import EnvFile
    from pipelinelib.gate.config import load_config
    from pipelinelib.job import Job
    from pipelinelib.report import checklist
    from pipelinelib.steps import gate

    dsn = args.database_dsn or os.environ.get("PIPELINE_DB_DSN")
    if dsn:
        ctx.secrets.add(dsn)
    checked: list = []
    with Job("gate", ctx, args.report_dir) as job:
        env_file = Path(args.app_dir) / "release.env"
        if env_file.is_file():  # its secrets may show up in reports the gate reads
            EnvFile.load(env_file).register_secrets(ctx.secrets)
        override, reason = gate.parse_override(args.override, args.reason)
        only = gate.parse_marks(args.marks, "--marks") if args.marks else None
        cfg = load_config(Path(args.app_dir), args.config)
        checked = gate.check_marks(ctx, cfg, deployed_dir=args.deployed_dir,
                                   deployed_rev=args.deployed_rev, dsn=dsn,
                                   build_result=args.build_result,
                                   environment=args.environment, only=only,
                                   migrate_next=args.migrate_next)
        job.run(gate.release_gate, ctx, cfg, checked, override=override, reason=reason,
                image=args.image or "", digest=args.digest or "")
    checklist.show(ctx, "release checklist:", [line for m in checked for line in m.lines()])
    return job.exit_code
