"""The swap job (blue/green): switch which colour an app's Services select.

By environment (``environment`` set): the namespace and the cluster come from
``environments/<env>.yaml``, who may swap from ``policy.yaml`` (``swap:``, default the
``promote:`` list); in a protected environment only to a colour running the promoted
digest. Refusals exit 2, change nothing and are audited; so is every swap made. Without an
environment: ``namespace`` (default the app's name) on the current cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelinelib.context import Context
from pipelinelib.errors import BadInput, PipelineError
from pipelinelib.job import Job
from pipelinelib.result import StepResult


@dataclass(frozen=True)
class SwapOptions:
    """Which app, where (an environment of the env-state repository, or a namespace), and
    the target colour (default: the one not live now)."""

    app: str
    environment: str | None = None
    repo: str | None = None
    branch: str = "main"
    namespace: str | None = None
    to: str | None = None


def swap(job: Job, ctx: Context, options: SwapOptions) -> StepResult:
    """The swap as both CLIs offer it: by environment (privilege checked, audited) when
    ``options.environment`` is given, else in ``options.namespace``."""
    from pipelinelib.envspec.staterepo import readable_root
    from pipelinelib.steps.swap import swap as swap_step

    if not options.environment:
        return job.run(swap_step, ctx, app=options.app,
                       namespace=options.namespace or options.app, to=options.to)
    if not options.repo:
        raise BadInput("no env-state repository given", field="--repo",
                       expected="a checkout or origin URL (or set PIPELINE_ENV_REPO)")
    with readable_root(options.repo, options.branch) as root:
        return swap_in_environment(job, ctx, root, options.environment, options.app,
                                   options.to)


def swap_in_environment(job: Job, ctx: Context, root: Path, env_name: str, app: str,
                        to: str | None = None) -> StepResult:
    """Check the privilege (and in a protected environment the colour's digest), then run
    the swap step against the environment's cluster; audited."""
    from pipelinelib.promotion.access import enter_environment
    from pipelinelib.promotion.audit import audit
    from pipelinelib.promotion.enforce import enforce, guarded_apps
    from pipelinelib.promotion.swap import check_colour_runs
    from pipelinelib.steps.swap import swap as swap_step

    entered = enter_environment(ctx, root, env_name, app, action="swap", verb="swap")
    ctx, env, spec, policy, target = (entered.ctx, entered.env, entered.spec, entered.policy,
                                      entered.target)
    if not spec.blue_green:
        raise BadInput(f"{app} is not deployed blue/green in {env_name}", source=env.source,
                       line=spec.line, field=f"apps.{app}.strategy",
                       expected="strategy: blue-green")
    if guarded_apps(policy, env, [app]):  # protected: only the promoted, approved digest
        enforce(ctx, env, [app], action="swap")
        check_colour_runs(ctx, env_name, app, spec.namespace,
                          (spec.image.digest or "") if spec.image else "", to)
    try:
        result = job.run(swap_step, ctx, app=app, namespace=spec.namespace, to=to)
    except PipelineError as exc:
        audit(ctx, "swap", target=target, result="refused" if isinstance(exc, BadInput)
              else "failed", reason=exc.message)
        raise
    if not ctx.dry_run:
        audit(ctx, "swap", target=target, result="done" if result.changed else "unchanged",
              from_=result.outputs.get("previous") or "", to=result.outputs.get("live_color"),
              namespace=spec.namespace)
    return result
