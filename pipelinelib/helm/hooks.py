"""Helm chart hooks, honoured: a rendered object annotated ``helm.sh/hook`` is not applied
with the app; it runs at its event, as helm runs it.

- ``pre-install``/``pre-upgrade`` hooks run before the app's objects are applied,
  ``post-install``/``post-upgrade`` after the rollout succeeded (install: the app is new).
- Hooks of one event run one at a time, by ``helm.sh/hook-weight`` (low first), then kind
  and name; a Job must complete (a Pod must succeed) before the next one starts; a failed
  hook fails the app and nothing after it runs.
- ``helm.sh/hook-delete-policy``: ``before-hook-creation`` (the default) deletes the previous
  object of that name before creating the new one; ``hook-succeeded`` / ``hook-failed``
  delete it after it succeeded / failed.
- Delete, rollback and test hooks are not run (pipelinelib removes apps by pruning, and has
  no ``helm test``); they are never applied either.

Hook objects carry ``pipelinelib.dev/hook-of: APP`` instead of the app label, so the
rollout's prune and the plan's comparison leave them alone.

Crash-safe: ConfigMap ``APP-hooks`` records the event under way and the fingerprint of the
rendered app, ``done`` once the post hooks ran. A run killed between the rollout and its
post hooks leaves it not done: the plan shows the app pending, and the next apply runs
that event again (install again when the install never finished), then marks it done.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelinelib.errors import StepFailed
from pipelinelib.kube import kinds
from pipelinelib.kube.labels import HOOK_OF

if TYPE_CHECKING:
    from pipelinelib.kube.wait import Outcome

__all__ = ["HOOK", "HOOK_OF", "Hook", "is_hook", "parse", "run", "split"]

HOOK = "helm.sh/hook"
WEIGHT = "helm.sh/hook-weight"
DELETE_POLICY = "helm.sh/hook-delete-policy"
RUN_EVENTS = ("pre-install", "post-install", "pre-upgrade", "post-upgrade")

DELETE_TIMEOUT_S = 60.0  # a hook object's foreground deletion (remove_all)


@dataclass
class Hook:
    """One rendered hook object and when/how it runs."""

    obj: dict[str, Any]
    events: set[str]
    weight: int
    policies: set[str]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.obj.get("metadata", {}).get("name", ""))

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    def order(self) -> tuple[int, int, str]:
        # within one weight: the kinds table's apply order; kinds without one run last
        return self.weight, kinds.rank(self.kind, unknown=len(kinds.TABLE)), self.name


def is_hook(doc: dict[str, Any]) -> bool:
    return HOOK in ((doc.get("metadata") or {}).get("annotations") or {})


def parse(doc: dict[str, Any]) -> Hook:
    annotations = doc["metadata"]["annotations"]
    events = {e.strip() for e in str(annotations[HOOK]).split(",") if e.strip()}
    try:
        weight = int(str(annotations.get(WEIGHT, "0")).strip() or 0)
    except ValueError:
        weight = 0
    policies = {p.strip() for p in str(annotations.get(DELETE_POLICY, "")).split(",")
                if p.strip()} or {"before-hook-creation"}
    return Hook(doc, events, weight, policies)


def split(docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Hook]]:
    """The app's own objects, and its hooks."""
    main = [d for d in docs if not is_hook(d)]
    return main, [parse(d) for d in docs if is_hook(d)]


def describe(hooks: list[Hook]) -> list[str]:
    """One line per hook that runs, in order: ``pre-install Job/db-init (weight -5)``."""
    lines = []
    for event in RUN_EVENTS:
        for hook in sorted((h for h in hooks if event in h.events), key=Hook.order):
            lines.append(f"{event} {hook.ref} (weight {hook.weight}; "
                         f"{', '.join(sorted(hook.policies))})")
    return lines


def marker_name(app: str) -> str:
    return f"{app}-hooks"


def fingerprint(docs: list[dict[str, Any]]) -> str:
    """A short hash of everything an app renders (its objects and its hooks)."""
    blob = json.dumps(sorted(json.dumps(d, sort_keys=True) for d in docs)).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def marker_state(marker: dict[str, Any] | None) -> dict[str, str] | None:
    """``{"event", "fingerprint", "done"}`` recorded by the last apply, or None."""
    if marker is None:
        return None
    data = marker.get("data") or {}
    return {k: str(data.get(k, "")) for k in ("event", "fingerprint", "done")}


def pending_reason(state: dict[str, str] | None, wanted: str) -> str | None:
    """Why the hooks of this spec still have to run (None: they ran)."""
    if state is None:
        return "hooks never ran for this spec"
    if state["fingerprint"] != wanted:
        return "hooks ran for another spec"
    if state["done"] != "true":
        return f"{state['event']} hooks did not finish"
    return None


def record(kube: Any, app: str, namespace: str, labels: dict[str, str], event: str,
           wanted: str, done: bool) -> None:
    """Write the marker: ``event`` under way (``done`` False) or finished."""
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": marker_name(app), "namespace": namespace,
                             "labels": {**labels, HOOK_OF: app}},
                "data": {"event": event, "fingerprint": wanted,
                         "done": "true" if done else "false"}}, namespace=namespace)


def remove_all(kube: Any, app: str, namespace: str) -> list[str]:
    """Delete the hook objects and the marker an app left (it left the spec)."""
    from pipelinelib.errors import Refused

    gone = []
    for kind in ("Job", "Pod", "ConfigMap", "Secret"):
        try:
            items = kube.list(kind, namespace, selector=f"{HOOK_OF}={app}").get("items", [])
        except Refused:  # a kind the deployer may not list holds none of its hooks
            continue
        for item in items:
            if kube.delete(kind, item["metadata"]["name"], namespace, propagation="Foreground"):
                gone.append(f"delete {kind}/{item['metadata']['name']}")
    for line in gone:  # foreground: a Job goes once its pods have gone
        kind, name = line.removeprefix("delete ").split("/", 1)
        _wait_deleted(kube, kind, name, namespace, DELETE_TIMEOUT_S)
    return gone


def run(ctx: Any, hooks: list[Hook], event: str, namespace: str, timeout: float) -> list[str]:
    """Run the hooks of ``event`` in order; the actions taken. ``StepFailed`` on a failure."""
    kube, actions = ctx.kube, []
    for hook in sorted((h for h in hooks if event in h.events), key=Hook.order):
        log = ctx.log.bind(hook=hook.ref, phase=event, namespace=namespace)
        if "before-hook-creation" in hook.policies:
            _delete_and_wait(kube, hook, namespace, timeout)
        log.info("hook starting", weight=hook.weight)
        kube.create(hook.obj, namespace)
        actions.append(f"{event} hook {hook.ref}")
        outcome = _wait(ctx, kube, hook, namespace, timeout)
        if ("hook-succeeded" if outcome.ok else "hook-failed") in hook.policies:
            _delete_and_wait(kube, hook, namespace, timeout)  # with its pods, then go on
            actions.append(f"delete hook {hook.ref}")
        if not outcome.ok:
            raise StepFailed(f"{event} hook {hook.ref} failed", cause=ctx.secrets.redact_text(
                outcome.message), hint="the app's objects were not changed by this event" if
                event.startswith("pre-") else "the app is deployed; its post hook failed",
                evidence=[ctx.secrets.redact_text(line)
                          for line in outcome.evidence or [outcome.message]])
        log.info("hook done", detail=outcome.message or "ready")
    return actions


def _delete_and_wait(kube: Any, hook: Hook, namespace: str, timeout: float) -> None:
    if kube.delete(hook.kind, hook.name, namespace, propagation="Foreground"):
        _wait_deleted(kube, hook.kind, hook.name, namespace, timeout)


def _wait_deleted(kube: Any, kind: str, name: str, namespace: str, timeout: float) -> None:
    """Until a foreground deletion has finished (a Job's pods are deleted first)."""
    deadline = time.monotonic() + timeout
    while kube.get(kind, name, namespace) is not None:
        if time.monotonic() > deadline:
            raise StepFailed(f"{kind}/{name} is still being deleted after {timeout:.0f}s",
                             hint="a foreground deletion waits for the object's pods")
        time.sleep(0.2)


def _wait(ctx: Any, kube: Any, hook: Hook, namespace: str, timeout: float) -> Outcome:
    """Jobs until complete or failed, Pods until succeeded or failed (the rollout's waiter
    and health rules, ``kube.wait``); other kinds at once."""
    from pipelinelib.kube.wait import Outcome, wait_for  # the kubernetes client: when needed

    if kinds.health_rule(hook.kind) not in ("job", "pod"):
        return Outcome(True, {}, message="created")
    return wait_for(kube, namespace, [(hook.kind, hook.name)], timeout,
                    ctx.log.bind(hook=hook.ref))
