"""Swap by environment: the blue/green switch of one app, resolved from the env spec.

The namespace and the cluster (kubeconfig/context) come from ``environments/<env>.yaml``;
who may swap comes from ``policy.yaml`` (``swap:``, default the ``promote:`` list) with the
identity the CI server gives. Refusals exit 2, change nothing and are audited; so is every
swap made.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelinelib.context import Context
from pipelinelib.errors import BadInput, PipelineError, Refused
from pipelinelib.promotion.audit import audit


@contextlib.contextmanager
def env_state_root(repo: str, branch: str = "main") -> Iterator[Path]:
    """A readable env-state checkout: ``repo`` itself when it is one, else a private clone
    of it (an origin URL, a bare repository) removed afterwards."""
    path = Path(repo)
    if path.is_dir() and (path / "environments").is_dir():
        yield path
        return
    from pipelinelib.commands.promote import _origin
    from pipelinelib.envspec.staterepo import EnvStateRepo

    with tempfile.TemporaryDirectory(prefix="pipelinelib-swap-") as scratch:
        yield EnvStateRepo.checkout(_origin(repo), branch, f"{scratch}/repo").root



def run_swap(job: Any, ctx: Context, app: str, *, environment: str | None, repo: str | None,
             branch: str, namespace: str | None, to: str | None) -> None:
    """The swap as both CLIs offer it: by environment (privilege checked, audited) when
    ``environment`` is given, else in ``namespace`` on the current cluster."""
    if environment:
        if not repo:
            raise BadInput("no env-state repository given", field="--repo",
                           expected="a checkout or origin URL (or set PIPELINE_ENV_REPO)")
        with env_state_root(repo, branch) as root:
            swap_in_environment(job, ctx, root, environment, app, to)
    else:
        from pipelinelib.steps.swap import swap

        job.run(swap, ctx, app=app, namespace=namespace or app, to=to)

def _check_colour_runs(ctx: Context, env_name: str, app: str, namespace: str, digest: str,
                       to: str | None) -> None:
    """Refuse a switch to a colour whose Deployments run anything but the spec's digest."""
    from pipelinelib.kube import COLOR_LABEL, bluegreen, owner_selector

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


def swap_in_environment(job: Any, ctx: Context, root: Path, env_name: str, app: str,
                        to: str | None = None) -> Any:
    """Check the privilege, then run the swap step against the environment's cluster."""
    from pipelinelib.promotion.access import enter_environment
    from pipelinelib.promotion.enforce import enforce, guarded_apps
    from pipelinelib.steps.swap import swap

    entered = enter_environment(ctx, root, env_name, app, action="swap", verb="swap")
    ctx, env, spec, policy, target = (entered.ctx, entered.env, entered.spec, entered.policy,
                                      entered.target)
    if not spec.blue_green:
        raise BadInput(f"{app} is not deployed blue/green in {env_name}", source=env.source,
                       line=spec.line, field=f"apps.{app}.strategy",
                       expected="strategy: blue-green")
    if guarded_apps(policy, env, [app]):  # protected: only the promoted, approved digest
        enforce(ctx, env, [app], action="swap")
        _check_colour_runs(ctx, env_name, app, spec.namespace, spec.image.digest or "", to)
    try:
        result = job.run(swap, ctx, app=app, namespace=spec.namespace, to=to)
    except PipelineError as exc:
        audit(ctx, "swap", target=target, result="refused" if isinstance(exc, BadInput)
              else "failed", reason=exc.message)
        raise
    if not ctx.dry_run:
        audit(ctx, "swap", target=target, result="done" if result.changed else "unchanged",
              from_=result.outputs.get("previous") or "", to=result.outputs.get("live_color"),
              namespace=spec.namespace)
    return result
