#!/usr/bin/env python3
"""Branch deploy job (seed 002): a build of a branch deploys to that branch's environment.

The environment whose spec says ``branch: <branch>`` (uro: sandbox -> sandbox, main ->
staging) gets the new image digest as a commit to the env-state repo, then is applied.
A blue/green app whose spec says ``await_promotion`` stops with the new colour ready
(exit 5, so CI pauses for a person). The manual A/B swap of staging and live that follows
is the release managers' swap job, `pipeline swap --env staging --app uro` (one entry).
Composes two steps no single command runs together (find the branch's environment, then
promote into it and apply); the env-state options use the CLI's names and environment
variables (PIPELINE_ENV_REPO, PIPELINE_ENV_BRANCH; global options as `pipeline`).

    python jobs/branch_deploy.py --app uro --branch sandbox --image REPO@sha256:... --repo URL
"""

from __future__ import annotations

import argparse
import os
import sys

from pipelinelib import Context, Job
from pipelinelib.cli import add_global_options
from pipelinelib.errors import BadInput
from pipelinelib.log import configure


def environment_for_branch(root: str, branch: str) -> str:
    """The environment that deploys ``branch`` automatically."""
    from pipelinelib.envspec.load import environment_path, list_environments, load_environment

    for name in list_environments(root):
        if load_environment(environment_path(root, name), root=root).branch == branch:
            return name
    raise BadInput(f"no environment deploys branch {branch!r}", field="--branch",
                   expected="an environment spec with `branch: <name>`")


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(prog="jobs/branch_deploy.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--app", default=env.get("APP"), required=not env.get("APP"))
    parser.add_argument("--branch", default=env.get("GO_MATERIAL_BRANCH") or env.get(
        "BRANCH_NAME") or env.get("GIT_BRANCH", "").removeprefix("origin/"),
                        help="the built branch (default: the CI server's branch variable)")
    parser.add_argument("--image", help="the pushed build: REPOSITORY@sha256:DIGEST")
    parser.add_argument("--repo", default=env.get("PIPELINE_ENV_REPO"),
                        help="env-state repository (default $PIPELINE_ENV_REPO)")
    parser.add_argument("--state-branch", default=env.get("PIPELINE_ENV_BRANCH", "main"),
                        help="env-state branch (default $PIPELINE_ENV_BRANCH or main)")
    add_global_options(parser)
    args = parser.parse_args(argv)

    ctx = Context(dry_run=args.dry_run, secrets=configure(args.log_format, args.log_level),
                  app=args.app)
    with Job("branch-deploy", ctx, report_dir=args.report_dir) as job:
        if not (args.branch and args.image and args.repo):
            raise BadInput("missing parameters", field="--branch/--image/--repo",
                           expected="the built branch, the pushed image and the env-state repo")
        import tempfile

        from pipelinelib.commands.promote import _origin, promote_pipeline
        from pipelinelib.envspec.staterepo import EnvStateRepo

        with tempfile.TemporaryDirectory(prefix="pipelinelib-branch-") as scratch:
            probe = EnvStateRepo.checkout(_origin(args.repo), args.state_branch,
                                          f"{scratch}/repo")
            target = environment_for_branch(str(probe.root), args.branch)
        ctx.environment = target
        promote_pipeline(job, ctx, repo=args.repo, branch=args.state_branch, apps=[args.app],
                         target=target, image=args.image)
    from pipelinelib.steps.apply import exit_code

    return exit_code(job)


if __name__ == "__main__":
    sys.exit(main())
