"""The promote job: check, commit to the env-state repository, then apply.

``promote`` works in a scratch checkout of the env-state repository (removed afterwards):
one promote (or approve) step per app, or one for the whole set where four eyes bind
several apps together, then the apply of the apps whose spec changed. An environment
rolled out through a branch (preprod via prod) goes through a pull request instead
(``promote_via_pull_request``: request, merge when approved, apply when merged).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelinelib.context import Context
from pipelinelib.envspec.staterepo import EnvStateRepo
from pipelinelib.errors import BadInput
from pipelinelib.job import Job


@dataclass(frozen=True)
class PromoteOptions:
    """What to promote where: apps (or every shared app) from ``source`` into ``target``,
    or a hot-fix ``image``; ``approve`` records a four-eyes approval instead."""

    target: str
    repo: str | None = None
    branch: str = "main"
    apps: list[str] = field(default_factory=list)
    all_apps: bool = False
    source: str | None = None
    approve: bool = False
    hotfix: bool = False
    image: str | None = None
    reason: str = ""
    source_repo: str | None = None
    main_branch: str = "main"
    apply: bool = True
    via_pull_request: bool = False

    def check(self) -> str:
        """The env-state repository; ``BadInput`` before anything runs when options are
        missing."""
        if not self.repo:
            raise BadInput("no env-state repository given", field="--repo",
                           expected="a clone or URL (or set PIPELINE_ENV_REPO)")
        if not self.apps and not self.all_apps and not self.via_pull_request:
            raise BadInput("name the app(s) to promote, or --all", field="APP")
        return self.repo


def promote(job: Job, ctx: Context, options: PromoteOptions) -> list[str]:
    """The promote job; returns the apps whose spec changed (none through a pull request)."""
    from pipelinelib.envspec.staterepo import scratch_checkout

    repo = options.check()
    ctx.environment = options.target
    if options.via_pull_request:
        promote_via_pull_request(job, ctx, repo=repo, branch=options.branch,
                                 target=options.target)
        return []
    with scratch_checkout(repo, options.branch) as state:
        return promote_in(job, ctx, state, options)


def promote_in(job: Job, ctx: Context, state: EnvStateRepo, options: PromoteOptions) -> list[str]:
    """Promote (or approve) in the checkout ``state``, then apply what changed."""
    from pipelinelib.envspec.load import environment_path, load_environment
    from pipelinelib.promotion.hotfix import warnings
    from pipelinelib.promotion.policy import load_policy
    from pipelinelib.promotion.promote import Promotion
    from pipelinelib.steps.apply import apply_environment
    from pipelinelib.steps.promote import approve, promote
    from pipelinelib.steps.promote_set import approve_set, needs_set_approval, promote_set

    target = options.target
    env = load_environment(environment_path(state.root, target), root=state.root)
    names = list(options.apps)
    if options.all_apps:
        src = load_environment(environment_path(state.root, options.source or ""),
                               root=state.root)
        names = sorted(set(src.apps) & set(env.apps))
    promoted: list[str] = []
    promotions = [Promotion(app, target, options.source, options.image, options.hotfix,
                            options.reason, None, options.source_repo, options.main_branch)
                  for app in names]
    if needs_set_approval(state.root, promotions, load_policy(state.root)):
        # several apps under four eyes: one approval binds the whole set, one commit
        if options.approve:
            job.run(approve_set, ctx, state, promotions)
        else:
            promoted = list(job.run(promote_set, ctx, state, promotions).outputs["apps"])
        promotions = []
    for promotion in promotions:
        if options.approve:
            job.run(approve, ctx, state, promotion)
        elif job.run(promote, ctx, state, promotion).changed:
            promoted.append(promotion.app)
    if promoted and env.via_branch and env.via_branch != options.branch:
        ctx.log.warning(f"{target} is rolled out from branch {env.via_branch}: open a pull "
                        f"request {options.branch} -> {env.via_branch}; it is applied when "
                        "merged")
    elif promoted and options.apply and not ctx.dry_run:
        state.refresh()
        env = load_environment(environment_path(state.root, target), root=state.root)
        job.run(apply_environment, ctx, env, promoted)
    for warning in warnings(state.root, target):
        ctx.log.warning(warning)
    return promoted


def promote_via_pull_request(job: Job, ctx: Context, *, repo: str, branch: str,
                             target: str) -> None:
    """Request, merge when approved, apply when merged (``pipelinelib.steps.promote_pr``)."""
    from pipelinelib.envspec.load import environment_path, load_environment
    from pipelinelib.envspec.staterepo import origin_of, scratch_checkout
    from pipelinelib.promotion.policy import load_policy
    from pipelinelib.steps.promote_pr import (
        PullRequestPromotion,
        apply_merged,
        describe_changes,
        merge_when_approved,
        request,
    )

    url = origin_of(repo)
    client, where = ctx.git_server(url)
    if client is None or where is None:
        raise BadInput("--via-pull-request needs the env-state repository on the git server",
                       field="--repo", expected="a URL under $PIPELINELIB_GITEA_URL "
                       "(owner/repo), with PIPELINELIB_GITEA_TOKEN set")
    with scratch_checkout(url, branch, prefix="pipelinelib-pr-", name="head") as head_repo:
        new = load_environment(environment_path(head_repo.root, target), root=head_repo.root)
        if not new.via_branch or new.via_branch == branch:
            raise BadInput(f"{target} is not promoted through a branch", field="--to",
                           source=new.source, expected="promotion.via_branch (e.g. prod) in "
                           "the environment's spec")
        base = new.via_branch
        with scratch_checkout(url, base, prefix="pipelinelib-pr-", name="base") as base_repo:
            old_path = environment_path(base_repo.root, target)
            old = (load_environment(old_path, root=base_repo.root) if old_path.is_file()
                   else None)
            p = PullRequestPromotion(
                client=client, owner=where[0], name=where[1], branch=branch, base=base,
                env=target, head=head_repo.head(), base_head=base_repo.head(),
                files=head_repo.files_differing_from(base), changes=describe_changes(old, new),
                policy=load_policy(base_repo.root), base_repo=base_repo)
            job.run(request, ctx, p)
            job.run(merge_when_approved, ctx, p)
            job.run(apply_merged, ctx, p)
