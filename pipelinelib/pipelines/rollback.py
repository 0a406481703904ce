"""The rollback job: return an app to an earlier revision (or blue/green colour).

By environment (``environment`` set): the namespace and cluster come from the environment's
spec, the caller needs its swap role, and in a protected environment every target must run
only digests once promoted into it (``pipelinelib.promotion.rollback``). Otherwise in
``namespace`` (default the app's name) on the current cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipelinelib.context import Context
from pipelinelib.errors import BadInput, PipelineError, Refused
from pipelinelib.job import Job
from pipelinelib.result import StepResult


@dataclass(frozen=True)
class RollbackOptions:
    """Which app, where, to what (the previous revision by default) and how long to wait."""

    app: str
    environment: str | None = None
    repo: str | None = None
    branch: str = "main"
    namespace: str | None = None
    to_revision: int | None = None
    to_git_revision: str | None = None
    timeout: float = 300.0
    lock_timeout: float = 300.0
    lock_ttl: int = 30


def rollback(job: Job, ctx: Context, options: RollbackOptions) -> StepResult:
    """Check the target, then roll back by environment or in the namespace."""
    from pipelinelib.envspec.staterepo import readable_root
    from pipelinelib.steps.rollback import rollback as rollback_step

    sha = options.to_git_revision
    if sha is not None and options.to_revision is not None:
        raise BadInput("two targets given", field="--to-revision/--to-git-revision",
                       expected="one of them, or neither (the previous revision)")
    if sha is not None and not re.fullmatch(r"[0-9a-f]{7,40}", sha):
        raise BadInput(f"{sha!r} is not a git revision", field="--to-git-revision",
                       expected="7 to 40 lowercase hex digits")
    if not options.environment:
        return job.run(rollback_step, ctx, app=options.app,
                       namespace=options.namespace or options.app, **_step_args(options))
    if not options.repo:
        raise BadInput("no env-state repository given", field="--repo",
                       expected="a checkout or origin URL (or set PIPELINE_ENV_REPO)")
    with readable_root(options.repo, options.branch) as root:
        return rollback_in_environment(job, ctx, root, options.environment, options)


def _step_args(options: RollbackOptions) -> dict[str, object]:
    return dict(to_revision=options.to_revision, to_git_revision=options.to_git_revision,
                timeout=options.timeout, lock_timeout=options.lock_timeout,
                lock_ttl=options.lock_ttl)


def rollback_in_environment(job: Job, ctx: Context, root: Path, env_name: str,
                            options: RollbackOptions) -> StepResult:
    """Check who asks and, in a protected environment, that the target was promoted; then
    run the rollback step against the environment's cluster."""
    from pipelinelib.promotion.access import enter_environment
    from pipelinelib.promotion.audit import audit
    from pipelinelib.promotion.rollback import rollback_vetter
    from pipelinelib.steps.rollback import rollback as rollback_step

    app = options.app
    entered = enter_environment(ctx, root, env_name, app, action="rollback",
                                verb="roll back")
    ctx = entered.ctx
    vet = rollback_vetter(ctx, root, entered, env_name, app)
    try:
        return job.run(rollback_step, ctx, app=app, namespace=entered.spec.namespace, vet=vet,
                       **_step_args(options))
    except PipelineError as exc:
        if not isinstance(exc, Refused):
            audit(ctx, "rollback", target=entered.target, result="failed", reason=exc.message)
        raise
