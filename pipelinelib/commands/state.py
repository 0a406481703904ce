"""``pipeline state get|set``: a commit's refspec state, kept as a git note."""

from __future__ import annotations

import argparse
import json
import sys

from pipelinelib.context import Context

DESCRIPTION = """\
Read or set a commit's state, kept as a git note in refs/notes/pipelinelib-state
(first line `state: <state>`), fetched from and pushed to origin explicitly.

States: development (default, no note) | staged | deployable | deployed | broken.
Allowed transitions:
  development, staged, deployable -> any state
  deployed -> deployed (another environment), broken       (never back)
  broken   -> development, staged, deployable, deployed
An illegal transition is refused (exit 2) and audited; --force --reason bypasses the
check and is audited as an override. Concurrent writers never lose a write.
"""

STATES = ("development", "staged", "deployable", "deployed", "broken")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    get = sub.add_parser("get", help="show a commit's state")
    get.add_argument("revision", nargs="?", default="HEAD")
    get.add_argument("--repo", default=".", help="the git clone (default: .)")
    get.add_argument("--output", choices=("text", "json"), default="text")
    put = sub.add_parser("set", help="set a commit's state")
    put.add_argument("state", choices=STATES)
    put.add_argument("revision", nargs="?", default="HEAD")
    put.add_argument("--repo", default=".", help="the git clone (default: .)")
    put.add_argument("--env", default="", help="the environment the state is about")
    put.add_argument("--digest", default="", help="the image digest (sha256:...)")
    put.add_argument("--reason", default="", help="why (required with --force)")
    put.add_argument("--force", action="store_true", help="bypass the transition check")
    put.add_argument("--output", choices=("text", "json"), default="text")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.job import Job
    from pipelinelib.steps import state as steps

    with Job(f"state-{args.action}", ctx, args.report_dir) as job:
        if args.action == "get":
            result = job.run(steps.get_state, ctx, repo=args.repo, revision=args.revision)
        else:
            ctx.environment = args.env
            result = job.run(steps.set_state, ctx, state=args.state, repo=args.repo,
                             revision=args.revision, reason=args.reason, digest=args.digest,
                             force=args.force)
        if args.output == "json":
            json.dump(ctx.secrets.redact(result.outputs), sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
        elif args.action == "get":
            print(result.outputs["state"])
        else:
            print(result.summary)
    return job.exit_code
