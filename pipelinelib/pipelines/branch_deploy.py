"""The branch deploy job (seed 002): a build of a branch deploys to that branch's environment.

The environment whose spec says ``branch: <branch>`` (uro: sandbox -> sandbox, main ->
staging) gets the new image digest as a commit to the env-state repo, then is applied
(the promote job's ``promote_in``). A blue/green app whose spec says ``await_promotion``
stops with the new colour ready (the job exits 5, so CI pauses for a person).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelinelib.context import Context
from pipelinelib.errors import BadInput
from pipelinelib.job import Job


@dataclass(frozen=True)
class BranchDeployOptions:
    """The app, the branch that was built, its pushed image, and the env-state repo."""

    app: str
    branch: str | None = None
    image: str | None = None  # REPOSITORY@sha256:DIGEST
    repo: str | None = None
    state_branch: str = "main"


def environment_for_branch(root: str | Path, branch: str) -> str:
    """The environment that deploys ``branch`` automatically."""
    from pipelinelib.envspec.load import environment_path, list_environments, load_environment

    for name in list_environments(root):
        if load_environment(environment_path(root, name), root=root).branch == branch:
            return name
    raise BadInput(f"no environment deploys branch {branch!r}", field="--branch",
                   expected="an environment spec with `branch: <name>`")


def branch_deploy(job: Job, ctx: Context, options: BranchDeployOptions) -> list[str]:
    """Find the branch's environment, promote the image into it, apply; returns the apps
    whose spec changed."""
    from pipelinelib.envspec.staterepo import scratch_checkout
    from pipelinelib.pipelines.promote import PromoteOptions, promote_in

    if not (options.branch and options.image and options.repo):
        raise BadInput("missing parameters", field="--branch/--image/--repo",
                       expected="the built branch, the pushed image and the env-state repo")
    with scratch_checkout(options.repo, options.state_branch,
                          prefix="pipelinelib-branch-") as state:
        target = environment_for_branch(state.root, options.branch)
        ctx.environment = target
        return promote_in(job, ctx, state, PromoteOptions(
            target=target, repo=options.repo, branch=options.state_branch,
            apps=[options.app], image=options.image))
