"""``pipeline promote APP --from ENV --to ENV``: promote an image digest, by commit."""

from __future__ import annotations

import argparse
import os
from typing import Any

from pipelinelib.context import Context

DESCRIPTION = """\
Copy APP's exact image digest from the --from environment's spec to the --to
environment's spec (never rebuilt), after checking: the CI user may promote into --to
(policy.yaml), the registry still has the image, its gates passed, and — where the policy
asks for four eyes — someone else approved this exact digest and spec (--approve).
The change is one commit to the env-state repository, pushed to its origin (concurrent
promotions are serialized: a rejected push is redone on the new head), then applied.
--all promotes every app both environments share; several apps into an environment with
four eyes are approved once, as one set (every app, digest and resulting spec), and
promoted in one commit; any member changing makes that approval stale. A hot-fix
(--hotfix --image REF --reason TEXT) goes straight to --to and warns until its commit is
in the main branch.
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
    parser.add_argument("--via-pull-request", action="store_true",
                        help="an environment promoted through a branch (preprod via prod): "
                        "open/update the pull request, merge it when its reviews approve, "
                        "apply when merged (docs/queue.md)")


def _origin(repo: str) -> str:
    from pathlib import Path

    if Path(repo).is_dir() and (Path(repo) / ".git").exists():
        import git

        clone = git.Repo(repo)
        if "origin" in [r.name for r in clone.remotes]:
            return clone.remotes.origin.url
    return repo


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.errors import BadInput
    from pipelinelib.job import Job
    from pipelinelib.steps.apply import exit_code

    if not args.repo:
        raise BadInput("no env-state repository given", field="--repo",
                       expected="a clone or URL (or set PIPELINE_ENV_REPO)")
    if not args.apps and not args.all and not args.via_pull_request:
        raise BadInput("name the app(s) to promote, or --all", field="APP")
    ctx.environment = args.target
    if args.via_pull_request:
        from pipelinelib.steps.promote_pr import promote_via_pull_request

        with Job("promote", ctx, args.report_dir) as job:
            promote_via_pull_request(job, ctx, repo=args.repo, branch=args.branch,
                                     target=args.target)
        return exit_code(job)
    with Job("promote", ctx, args.report_dir) as job:
        promote_pipeline(job, ctx, repo=args.repo, branch=args.branch, apps=args.apps,
                         all_apps=args.all, source=args.source, target=args.target,
                         approve=args.approve, hotfix=args.hotfix, image=args.image,
                         reason=args.reason, source_repo=args.source_repo,
                         main_branch=args.main_branch, apply=not args.no_apply)
    return exit_code(job)


def promote_pipeline(job: Any, ctx: Context, *, repo: str, target: str, apps: list[str],
                     branch: str = "main", all_apps: bool = False, source: str | None = None,
                     approve: bool = False, hotfix: bool = False, image: str | None = None,
                     reason: str = "", source_repo: str | None = None,
                     main_branch: str = "main", apply: bool = True) -> list[str]:
    """The promote job: check, commit to the env-state repo, then apply. Returns the apps
    whose spec changed. Works in a private clone that is removed afterwards."""
    import tempfile

    from pipelinelib.envspec.staterepo import EnvStateRepo

    with tempfile.TemporaryDirectory(prefix="pipelinelib-envstate-") as scratch:
        state = EnvStateRepo.checkout(_origin(repo), branch, f"{scratch}/repo")
        return _promote_in(job, ctx, state, target=target, apps=apps, branch=branch,
                           all_apps=all_apps, source=source, approve=approve, hotfix=hotfix,
                           image=image, reason=reason, source_repo=source_repo,
                           main_branch=main_branch, apply=apply)


def _promote_in(job: Any, ctx: Context, state: Any, *, target: str, apps: list[str],
                branch: str, all_apps: bool, source: str | None, approve: bool, hotfix: bool,
                image: str | None, reason: str, source_repo: str | None, main_branch: str,
                apply: bool) -> list[str]:
    from pipelinelib.envspec.load import environment_path, load_environment
    from pipelinelib.promotion.hotfix import warnings
    from pipelinelib.promotion.policy import load_policy
    from pipelinelib.steps.apply import apply_environment
    from pipelinelib.steps.promote import Promotion
    from pipelinelib.steps.promote import approve as approve_step
    from pipelinelib.steps.promote import promote as promote_step
    from pipelinelib.steps.promote_set import approve_set, needs_set_approval, promote_set

    env = load_environment(environment_path(state.root, target), root=state.root)
    names = list(apps)
    if all_apps:
        src = load_environment(environment_path(state.root, source or ""), root=state.root)
        names = sorted(set(src.apps) & set(env.apps))
    promoted = []
    promotions = [Promotion(app, target, source, image, hotfix, reason, None, source_repo,
                            main_branch) for app in names]
    if needs_set_approval(state.root, promotions, load_policy(state.root)):
        # several apps under four eyes: one approval binds the whole set, one commit
        if approve:
            job.run(approve_set, ctx, state, promotions)
        else:
            promoted = list(job.run(promote_set, ctx, state, promotions).outputs["apps"])
        promotions = []
    for promotion in promotions:
        if approve:
            job.run(approve_step, ctx, state, promotion)
        elif job.run(promote_step, ctx, state, promotion).changed:
            promoted.append(promotion.app)
    if promoted and env.via_branch and env.via_branch != branch:
        ctx.log.warning(f"{target} is rolled out from branch {env.via_branch}: open a pull "
                        f"request {branch} -> {env.via_branch}; it is applied when merged")
    elif promoted and apply and not ctx.dry_run:
        state.refresh()
        env = load_environment(environment_path(state.root, target), root=state.root)
        job.run(apply_environment, ctx, env, promoted)
    for warning in warnings(state.root, target):
        ctx.log.warning(warning)
    return promoted
