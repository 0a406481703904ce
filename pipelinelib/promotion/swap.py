"""Swap by environment, the promotion rule: in a protected environment the Services switch
only to a colour that runs the promoted digest.

The swap job itself (privilege, this rule, the swap step, audit) is
``pipelinelib.pipelines.swap``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelinelib.errors import Refused
from pipelinelib.promotion.audit import audit

if TYPE_CHECKING:
    from pipelinelib.context import Context


def check_colour_runs(ctx: Context, env_name: str, app: str, namespace: str, digest: str,
                      to: str | None) -> None:
    """Refuse a switch to a colour whose Deployments run anything but the spec's digest."""
    from pipelinelib.kube import bluegreen
    from pipelinelib.kube.labels import COLOR_LABEL, owner_selector

    kube = ctx.kube
    target = to or bluegreen.other(bluegreen.live_color(kube, app, namespace))
    items = kube.list("Deployment", namespace,
                      selector=f"{owner_selector(app)},{COLOR_LABEL}={target}")["items"]
    images = sorted({c.get("image", "") for d in items for c in
                     d["spec"]["template"]["spec"].get("containers", [])})
    if not digest or any(not i.endswith("@" + digest) for i in images):
        reason = (f"the {target} colour runs {', '.join(images) or 'nothing'}, not the "
                  f"promoted digest {digest or '(none)'}")
        audit(ctx, "swap", target=f"{env_name}/{app}", result="refused", reason=reason)
        raise Refused(f"swap of {env_name}/{app} refused: {reason}", field="--to",
                      hint="apply the environment first (it deploys the promoted digest)")
