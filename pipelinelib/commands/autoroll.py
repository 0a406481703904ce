"""``pipeline autoroll`` (also jobs/autoroll.py): apply what a commit to the env-state
repository touched."""

from __future__ import annotations

import argparse
import os

from pipelinelib.context import Context

DESCRIPTION = """\
Seed 004: given a commit to the env-state repository, apply every environment it touched:
those whose file changed, and those whose apps use a chart or manifests directory that
changed. An environment rolled out through a branch (promotion.via_branch, e.g. preprod
via prod) is applied only for commits on that branch; the others only for commits on
--default-branch. Works in a scratch clone at that commit.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.add_argument("--repo", default=env.get("PIPELINE_ENV_REPO"),
                        required=not env.get("PIPELINE_ENV_REPO"),
                        help="env-state repository: a clone or its origin URL (default "
                        "$PIPELINE_ENV_REPO)")
    parser.add_argument("--branch", default=env.get("PIPELINE_ENV_BRANCH", "main"),
                        help="the env-state branch the commit is on (default "
                        "$PIPELINE_ENV_BRANCH or main)")
    parser.add_argument("--default-branch", default="main",
                        help="branch the environments without via_branch roll out from")
    parser.add_argument("--commit", default=env.get("GIT_COMMIT") or env.get(
        "GO_REVISION_ENV_STATE") or "HEAD", help="the commit (default: the CI server's "
                        "revision variable, GIT_COMMIT or GO_REVISION_ENV_STATE, else HEAD)")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.job import Job
    from pipelinelib.pipelines.autoroll import AutorollOptions, autoroll

    options = AutorollOptions(repo=args.repo, branch=args.branch,
                              default_branch=args.default_branch, commit=args.commit)
    with Job("autoroll", ctx, args.report_dir) as job:
        autoroll(job, ctx, options)
    return job.exit_code
