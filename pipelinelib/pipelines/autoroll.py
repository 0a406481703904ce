"""The auto-roll job (seed 004): given a commit to the env-state repo, apply what it touched.

The environments touched are those whose file changed, and those whose apps use a chart
or manifests directory that changed. An environment rolled out through a branch
(``promotion.via_branch``, e.g. preprod via ``prod``) is applied only for commits on that
branch; the others only for commits on the default branch.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelinelib.context import Context
from pipelinelib.envspec.staterepo import EnvStateRepo
from pipelinelib.job import Job


@dataclass(frozen=True)
class AutorollOptions:
    """The env-state repository, the branch the commit is on, and the commit."""

    repo: str
    branch: str = "main"
    default_branch: str = "main"  # environments without via_branch roll out from it
    commit: str = "HEAD"


def touched_environments(state: EnvStateRepo, commit: str, branch: str,
                         default_branch: str = "main") -> list[str]:
    """Environments a commit on ``branch`` changes and that roll out from that branch."""
    from pipelinelib.envspec.load import environment_path, list_environments, load_environment

    changed = state.changed_files(commit)
    names = []
    for name in list_environments(state.root):
        env = load_environment(environment_path(state.root, name), root=state.root)
        rolls_from = env.via_branch or default_branch
        if rolls_from != branch:
            continue
        used = {f"environments/{name}.yaml"}
        for app in env.apps.values():
            for local in (app.manifests, app.chart.repository if app.chart and
                          app.chart.kind == "local" else None):
                if local:
                    used.add(local.rstrip("/") + "/")
        if any(path in used or any(path.startswith(u) for u in used if u.endswith("/"))
               for path in changed):
            names.append(name)
    return names


def autoroll(job: Job, ctx: Context, options: AutorollOptions) -> list[str]:
    """Apply every environment the commit touched, at that commit; returns their names."""
    from pipelinelib.envspec.load import environment_path, load_environment
    from pipelinelib.envspec.staterepo import scratch_checkout
    from pipelinelib.steps.apply import apply_environment

    with scratch_checkout(options.repo, options.branch, prefix="pipelinelib-autoroll-") as state:
        state.detach_at(options.commit)
        names = touched_environments(state, options.commit, options.branch,
                                     options.default_branch)
        ctx.log.info("environments touched", commit=options.commit[:12],
                     branch=options.branch, environments=names)
        for name in names:
            ctx.environment = name
            spec = load_environment(environment_path(state.root, name), root=state.root)
            job.run(apply_environment, ctx, spec)
    return names
