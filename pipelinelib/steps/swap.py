"""The swap step (blue/green): point every Service of an app at the other colour.

Under the app's deploy lock (fenced: it stops before a write once the Lease is lost), all
Services switch together or none does (``bluegreen.switch``).
"""

from __future__ import annotations

from pipelinelib.context import Context
from pipelinelib.errors import BadInput
from pipelinelib.kube import bluegreen
from pipelinelib.kube.lock import DeployLock
from pipelinelib.promotion.guard import guard_namespace
from pipelinelib.result import StepResult
from pipelinelib.step import step


@step("swap")
def swap(ctx: Context, *, app: str, namespace: str | None = None,
         to: str | None = None, lock_timeout: float = 300, lock_ttl: int = 30) -> StepResult:
    """Switch ``app``'s Services to ``to`` (default: the colour not live now).

    Refused when the target colour is not healthy; ``unchanged`` when already there.
    """
    kube, namespace = ctx.kube, namespace or app
    colors = bluegreen.service_colors(kube, app, namespace)
    live = bluegreen.live_of(colors)
    if live is None:
        raise BadInput(f"{app} in {namespace} has no blue/green Services", field="--app",
                       expected="an app deployed with `pipeline rollout --blue-green`")
    # Services on both colours: a swap killed half-way (it switches them in list order, so
    # the first one shows where it was going): finish that switch
    split = len({c for c in colors if c}) > 1
    target = to or (live if split else bluegreen.other(live))
    if target == live and not split:
        if not ctx.dry_run:  # a swap killed after its last switch leaves its lock: clear it
            DeployLock.clear_dead(kube, app, namespace, ctx.log)
        return StepResult.of("swap", [], live_color=live, previous=live, namespace=namespace)
    bluegreen.ensure_swappable(kube, app, namespace, target)
    actions = bluegreen.switch(kube, app, namespace, target, dry_run=True)
    if ctx.dry_run or not actions:
        return StepResult.of("swap", actions, dry_run=ctx.dry_run, live_color=target,
                             previous=live, namespace=namespace)
    guard_namespace(ctx, kube, namespace, app, "swap")  # protected: `swap --env` verifies
    with DeployLock(kube, app, namespace, DeployLock.holder_of(ctx.ci), ttl_s=lock_ttl,
                    wait_s=lock_timeout, log=ctx.log) as lock:
        actions = bluegreen.switch(lock.fenced(kube), app, namespace, target)
    return StepResult.of("swap", actions, live_color=target, previous=live,
                         namespace=namespace)
