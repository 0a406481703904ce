"""``pipeline promote APP --from ENV --to ENV``: promote an image digest, by commit."""

from __future__ import annotations

import argparse
import os

from pipelinelib.context import Context

DESCRIPTION = """\
Copy APP's exact image digest from the --from environment's spec to the --to
environment's spec (never rebuilt), after checking: the CI user may promote into --to
(policy.yaml), the registry still has the image, its gates passed, and — where the policy
asks for four eyes — someone else approved this exact digest and spec (--approve).
The change is one commit to the env-state repository, pushed to its origin (concurrent
promotions are serialized: a rejected push is redone on the new head), then applied.
--all promotes every app both environments share. A hot-fix (--hotfix --image REF
--reason TEXT) goes straight to --to and warns until its commit is in the main branch.
Identity comes from the CI server (Jenkins BUILD_USER_ID, GoCD GO_TRIGGER_USER) only.
Refusals exit 2, change nothing and are audited.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("apps", metavar="APP", nargs="*", help="app(s) to promote")
    parser.add_argument("--all", action="store_true", help="every app of --from also in --to")
    parser.add_argument("--from", dest="source", metavar="ENV", help="source environment")
    parser.add_argument("--to", dest="target", metavar="ENV", required=True,
                        help="target environment")
    parser.add_argument("--repo", default=os.environ.get("PIPELINE_ENV_REPO"),
                        help="env-state repository: a clone whose origin receives the commit, "
                        "or the origin URL (default $PIPELINE_ENV_REPO)")
    parser.add_argument("--branch", default=os.environ.get("PIPELINE_ENV_BRANCH", "main"),
                        help="env-state branch (default main)")
    parser.add_argument("--approve", action="store_true",
                        help="record your approval of this promotion (four eyes)")
    parser.add_argument("--hotfix", action="store_true", help="promote a hot-fix build")
    parser.add_argument("--image", help="hot-fix: the image (REPOSITORY@DIGEST or :TAG)")
    parser.add_argument("--reason", default="", help="hot-fix: why (mandatory)")
    parser.add_argument("--source-repo",
                        help="hot-fix: the app's git repository (back-merge check)")
    parser.add_argument("--main-branch", default="main", help="hot-fix: the app's main branch")
    parser.add_argument("--no-apply", action="store_true", help="commit only; do not apply")


def _origin(repo: str) -> str:
    from pathlib import Path

    if Path(repo).is_dir() and (Path(repo) / ".git").exists():
        import git

        clone = git.Repo(repo)
        if "origin" in [r.name for r in clone.remotes]:
            return clone.remotes.origin.url
    return repo


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.envspec.load import environment_path, load_environment
    from pipelinelib.envspec.staterepo import EnvStateRepo
    from pipelinelib.errors import BadInput
    from pipelinelib.job import Job
    from pipelinelib.promotion.hotfix import warnings
    from pipelinelib.steps.apply import apply_environment
    from pipelinelib.steps.promote import Promotion, approve, promote

    if not args.repo:
        raise BadInput("no env-state repository given", field="--repo",
                       expected="a clone or URL (or set PIPELINE_ENV_REPO)")
    if not args.apps and not args.all:
        raise BadInput("name the app(s) to promote, or --all", field="APP")
    ctx.environment = args.target
    with Job("promote", ctx, args.report_dir) as job:
        state = EnvStateRepo.checkout(_origin(args.repo), args.branch)
        target = load_environment(environment_path(state.root, args.target), root=state.root)
        apps = list(args.apps)
        if args.all:
            source = load_environment(environment_path(state.root, args.source or ""),
                                      root=state.root)
            apps = sorted(set(source.apps) & set(target.apps))
        promoted = []
        for app in apps:
            promotion = Promotion(app, args.target, args.source, args.image, args.hotfix,
                                  args.reason, None, args.source_repo, args.main_branch)
            if args.approve:
                job.run(approve, ctx, state, promotion)
                continue
            if job.run(promote, ctx, state, promotion).changed:
                promoted.append(app)
        if promoted and target.via_branch:
            ctx.log.info("promotion lands through a branch: merge it to apply",
                         branch=args.branch, via=target.via_branch)
        elif promoted and not args.no_apply and not args.approve:
            state.refresh()
            env = load_environment(environment_path(state.root, args.target), root=state.root)
            job.run(apply_environment, ctx, env, promoted)
        for warning in warnings(state.root, args.target):
            ctx.log.warning(warning)
    return job.exit_code
