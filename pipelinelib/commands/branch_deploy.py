"""``pipeline branch-deploy`` (also jobs/branch_deploy.py): a built branch deploys to its
environment."""

from __future__ import annotations

import argparse
import os

from pipelinelib.context import Context

DESCRIPTION = """\
Seed 002: a build of a branch deploys to that branch's environment. The environment whose
spec says `branch: BRANCH` (uro: sandbox -> sandbox, main -> staging) gets the pushed
image's digest as a commit to the env-state repository (the promote job's checks and
commit), then is applied. A blue/green app whose spec says await_promotion stops with the
new colour ready: exit 5, so CI pauses for a person; `pipeline swap --env ENV --app APP`
(the release managers' swap job) switches.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.add_argument("--app", default=env.get("APP"), required=not env.get("APP"),
                        help="the app built (default $APP)")
    parser.add_argument("--branch", default=env.get("GO_MATERIAL_BRANCH") or env.get(
        "BRANCH_NAME") or env.get("GIT_BRANCH", "").removeprefix("origin/"),
                        help="the built branch (default: the CI server's branch variable)")
    parser.add_argument("--image", help="the pushed build: REPOSITORY@sha256:DIGEST")
    parser.add_argument("--repo", default=env.get("PIPELINE_ENV_REPO"),
                        help="env-state repository: a clone or its origin URL (default "
                        "$PIPELINE_ENV_REPO)")
    parser.add_argument("--state-branch", default=env.get("PIPELINE_ENV_BRANCH", "main"),
                        help="env-state branch (default $PIPELINE_ENV_BRANCH or main)")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.job import Job
    from pipelinelib.pipelines.branch_deploy import BranchDeployOptions, branch_deploy

    ctx.app = args.app
    options = BranchDeployOptions(app=args.app, branch=args.branch, image=args.image,
                                  repo=args.repo, state_branch=args.state_branch)
    with Job("branch-deploy", ctx, args.report_dir) as job:
        branch_deploy(job, ctx, options)
    return job.exit_code
