"""Blue/green: two colours of each Deployment behind the app's Services.

A Deployment ``web`` is deployed as ``web-blue`` / ``web-green`` (selector and pod labels
carry ``pipelinelib.dev/color``). Every Service of the app selects the live colour; the
rollout updates the other colour, verifies it, then switches all Services together (or
stops with exit 5 when the switch awaits a person). The old colour stays for swap-back.
The switch is all or nothing: a Service that cannot be switched puts the others back.
"""

from __future__ import annotations

import copy
from typing import Any

from pipelinelib.errors import PipelineError, Refused, StepFailed
from pipelinelib.kube.health import READY, assess
from pipelinelib.kube.labels import ANN_BLUE_GREEN as BLUE_GREEN_ANN
from pipelinelib.kube.labels import ANN_ROLLED_BACK_FROM, APP_LABEL, COLOR_LABEL, owner_selector
from pipelinelib.kube.manifests import Manifest

COLORS = ("blue", "green")


def other(color: str | None) -> str:
    return "green" if color == "blue" else "blue"


def service_colors(kube: Any, app: str, namespace: str) -> list[str | None]:
    """The colour each Service of ``app`` selects (None: a Service that ignores colour)."""
    return [((svc.get("spec") or {}).get("selector") or {}).get(COLOR_LABEL)
            for svc in kube.list("Service", namespace, selector=owner_selector(app))["items"]]


def live_color(kube: Any, app: str, namespace: str) -> str | None:
    """The colour the app's Services select now (None before the first deploy)."""
    return live_of(service_colors(kube, app, namespace))


def rolled_back_from(kube: Any, app: str, namespace: str) -> str | None:
    """The colour a rollback switched the app's Services away from (None: the last switch
    was a rollout's or a swap's): a second rollback does not toggle back to it."""
    return next((str(v) for svc in kube.list("Service", namespace,
                                             selector=owner_selector(app))["items"]
                 if (v := (svc["metadata"].get("annotations") or {}).get(ANN_ROLLED_BACK_FROM))),
                None)


def live_of(colors: list[str | None]) -> str | None:
    """The live colour among ``service_colors``."""
    return next((str(c) for c in colors if c), None)


def colored(manifests: list[Manifest], color: str, service_color: str | None) -> list[Manifest]:
    """The manifests with each Deployment as its ``color`` and Services on ``service_color``.

    ``service_color=None`` leaves the Services' selectors as written (no colour): used while an
    app that was deployed rolling gets its first colour, so the Services keep serving the old
    pods (and the new ones once ready) until ``switch`` narrows them to that colour.
    """
    out = []
    for m in manifests:
        m = Manifest(copy.deepcopy(m.obj), m.source, m.index, m.line)
        obj = m.obj
        if m.kind == "Deployment":
            obj["metadata"]["name"] = f"{m.name}-{color}"
            obj["metadata"].setdefault("labels", {})[COLOR_LABEL] = color
            spec = obj.setdefault("spec", {})
            spec.setdefault("selector", {}).setdefault("matchLabels", {})[COLOR_LABEL] = color
            template = spec.setdefault("template", {}).setdefault("metadata", {})
            template.setdefault("labels", {})[COLOR_LABEL] = color
        elif m.kind == "Service":
            if service_color:
                obj.setdefault("spec", {}).setdefault("selector", {})[COLOR_LABEL] = service_color
            obj["metadata"].setdefault("annotations", {})[BLUE_GREEN_ANN] = "true"
        out.append(m)
    return out


def color_health(kube: Any, app: str, namespace: str, color: str) -> list[str]:
    """Problems of ``color``'s Deployments (empty when all are ready)."""
    selector = f"{owner_selector(app)},{COLOR_LABEL}={color}"
    deployments = kube.list("Deployment", namespace, selector=selector)["items"]
    if not deployments:
        return [f"no {color} Deployments of {app} in {namespace}"]
    problems = []
    for d in deployments:
        d["kind"] = "Deployment"
        verdict = assess(d, [])
        ready = (d.get("status") or {}).get("readyReplicas", 0)
        if verdict.state != READY or ready < (d.get("spec") or {}).get("replicas", 1):
            problems.append(verdict.message)
    return problems


def switch(kube: Any, app: str, namespace: str, color: str, dry_run: bool = False,
           rollback_from: str | None = None) -> list[str]:
    """Point every Service of ``app`` at ``color`` together, or none of them; a rollback
    marks each Service with the colour it left (``rollback_from``), any other switch clears
    that mark.

    Returns the actions (idempotent: Services already there are left alone). When one
    Service cannot be switched, the ones switched before it go back to what they selected
    and ``StepFailed`` says which failed and what was restored.
    """
    services = [s for s in kube.list("Service", namespace, selector=owner_selector(app))["items"]
                if COLOR_LABEL in ((s.get("spec") or {}).get("selector") or {})
                or BLUE_GREEN_ANN in (s["metadata"].get("annotations") or {})]
    todo = [(svc["metadata"]["name"], (svc["spec"].get("selector") or {}).get(COLOR_LABEL))
            for svc in services
            if (svc["spec"].get("selector") or {}).get(COLOR_LABEL) != color]
    actions = [f"switch service/{name} to {color}" for name, _ in todo]
    if dry_run:
        return actions
    done: list[tuple[str, str | None]] = []
    for name, before in todo:
        try:
            kube.patch("Service", name, namespace, {
                "metadata": {"annotations": {ANN_ROLLED_BACK_FROM: rollback_from}},
                "spec": {"selector": {COLOR_LABEL: color}}})
        except PipelineError as exc:
            if type(exc).__name__ == "LeaseLost":
                raise  # another run owns the app now: no write, not even an undo (it converges)
            _undo(kube, app, namespace, color, done, name, exc)
        done.append((name, before))
    return actions


def _undo(kube: Any, app: str, namespace: str, color: str,
          done: list[tuple[str, str | None]], failed: str, error: PipelineError) -> None:
    """Switch ``done`` back to what each selected before, then raise saying so."""
    restored, stuck = [], []
    for name, before in reversed(done):
        try:
            kube.patch("Service", name, namespace,
                       {"spec": {"selector": {COLOR_LABEL: before}}})  # None: no colour
            restored.append(f"service/{name}")
        except PipelineError as undo:
            stuck.append(f"service/{name} ({undo.message[:120]})")
    if stuck:
        state = (f"could NOT switch back {', '.join(stuck)}: traffic is split between colours"
                 + (f"; switched back {', '.join(restored)}" if restored else ""))
    elif restored:
        state = f"switched back {', '.join(restored)}: every Service serves as before"
    else:
        state = "no Service was switched"
    raise StepFailed(f"switching {app} in {namespace} to {color} failed at service/{failed}: "
                     f"{state}", cause=error.message,
                     hint=error.hint or "fix the cause (RBAC, API) and run the switch again",
                     evidence=[f"service/{n}: {b or 'no colour'} before" for n, b in done]
                     ) from error


def ensure_swappable(kube: Any, app: str, namespace: str, color: str) -> None:
    problems = color_health(kube, app, namespace, color)
    if problems:
        raise Refused(f"will not switch {app} to {color}: it is not healthy",
                      field=f"{namespace}/{app}", expected=f"every {color} Deployment ready; "
                      + "; ".join(problems)[:300])


__all__ = [
    "APP_LABEL",
    "COLORS",
    "color_health",
    "colored",
    "ensure_swappable",
    "live_color",
    "other",
    "switch",
]
