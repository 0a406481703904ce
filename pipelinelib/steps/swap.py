"""The swap step (blue/green): point every Service of an app at the other colour."""

from __future__ import annotations

from pipelinelib.context import Context
from pipelinelib.errors import BadInput
from pipelinelib.kube import bluegreen
from pipelinelib.result import StepResult
from pipelinelib.step import step


@step("swap")
def swap(ctx: Context, *, app: str, namespace: str | None = None,
         to: str | None = None) -> StepResult:
    """Switch ``app``'s Services to ``to`` (default: the colour not live now).

    Refused when the target colour is not healthy; ``unchanged`` when already there.
    """
    kube, namespace = ctx.kube, namespace or app
    live = bluegreen.live_color(kube, app, namespace)
    if live is None:
        raise BadInput(f"{app} in {namespace} has no blue/green Services", field="--app",
                       expected="an app deployed with `pipeline rollout --blue-green`")
    target = to or bluegreen.other(live)
    if target == live:
        return StepResult.of("swap", [], live_color=live, previous=live, namespace=namespace)
    bluegreen.ensure_swappable(kube, app, namespace, target)
    actions = bluegreen.switch(kube, app, namespace, target, dry_run=ctx.dry_run)
    return StepResult.of("swap", actions, dry_run=ctx.dry_run, live_color=target, previous=live,
                         namespace=namespace)
