#!/usr/bin/env python3
"""Branch deploy job (seed 002): a build of a branch deploys to that branch's environment.

The environment whose spec says ``branch: <branch>`` (uro: sandbox -> sandbox, main ->
staging) gets the new image digest as a commit to the env-state repo, then is applied.
A blue/green app whose spec says ``await_promotion`` stops with the new colour ready
(exit 5, so CI pauses for a person). ``--swap`` is the manual A/B swap of staging and live:
with ``--env`` (and ``--repo``) the namespace and cluster come from the environment spec
and the CI user must hold the swap role in policy.yaml (refusals exit 2 and are audited);
``--namespace`` alone swaps on the current cluster without a policy check.

    python jobs/branch_deploy.py --app uro --branch sandbox --image REPO@sha256:... --repo URL
    python jobs/branch_deploy.py --swap --app uro --env staging --repo URL
"""

from __future__ import annotations

import argparse
import os
import sys

from pipelinelib import Context, Job
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", default=env.get("APP"), required=not env.get("APP"))
    parser.add_argument("--branch", default=env.get("GO_MATERIAL_BRANCH") or env.get(
        "BRANCH_NAME") or env.get("GIT_BRANCH", "").removeprefix("origin/"))
    parser.add_argument("--image", default=env.get("IMAGE"), help="REPOSITORY@sha256:DIGEST")
    parser.add_argument("--repo", default=env.get("ENV_STATE_REPO") or env.get(
        "PIPELINE_ENV_REPO"))
    parser.add_argument("--state-branch", default=env.get("ENV_STATE_BRANCH", "main"))
    parser.add_argument("--swap", action="store_true", help="swap staging and live (A/B)")
    parser.add_argument("--env", dest="environment", default=env.get("SWAP_ENV"),
                        help="--swap: the environment whose spec names namespace and cluster")
    parser.add_argument("--namespace", help="--swap without --env: the namespace holding "
                        "both colours")
    parser.add_argument("--to", choices=("blue", "green"), help="--swap: target colour")
    parser.add_argument("--report-dir", default=env.get("PIPELINE_REPORT_DIR"))
    parser.add_argument("--log-format", default="auto", choices=("auto", "console", "json"))
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)

    ctx = Context(dry_run=args.dry_run, secrets=configure(args.log_format), app=args.app)
    with Job("swap" if args.swap else "branch-deploy", ctx, report_dir=args.report_dir) as job:
        if args.swap:
            from pipelinelib.promotion.swap import run_swap

            run_swap(job, ctx, args.app, environment=args.environment, repo=args.repo,
                     branch=args.state_branch, namespace=args.namespace, to=args.to)
            return job.exit_code
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
