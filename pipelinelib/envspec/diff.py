"""What applying an app would change, field by field, and which of it is drift.

One engine decides what changes, for plan, apply and the rollout (``--dry-run`` or not):
``pipelinelib.kube.revisions.plan_changes`` applies each object server-side with
``dryRun=All`` and compares the answer (the object as the apiserver would store it:
defaults, admission, fields we no longer set removed) with the live one — how ``kubectl
diff`` decides. This module only explains its verdicts: each ``update`` becomes the
fields that differ between the live object and the dry run's answer (named lists such
as containers, env and ports keyed by name; Secret values masked).

Drift: each object carries ``pipelinelib.dev/spec-hash`` from its last apply. When that
hash equals the desired one, the spec did not change, so any difference was made by hand.
When the spec changed too, each differing field is attributed by the live object's
``managedFields``: a field now owned by a manager other than the one that applied the
spec hash (``kubectl scale``/``edit``/``patch``...) was changed by hand — drift — and the
rest is the spec change, so one app can report both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipelinelib.kube.labels import ANN_APPLIED
from pipelinelib.kube.labels import ANN_SPEC_HASH as ANN_HASH
from pipelinelib.secrets import MASK, secret_field

# our own bookkeeping annotations: they follow the spec, never a change worth a line
_BOOKKEEPING = {f"metadata.annotations.{ANN_HASH}", f"metadata.annotations.{ANN_APPLIED}"}
# server bookkeeping, never a change (as kube.revisions.normalize drops it)
VOLATILE_META = {"managedFields", "resourceVersion", "generation", "creationTimestamp", "uid"}


class ObjectVerdict(Protocol):
    """One object's verdict from the engine (``kube.revisions.Change``)."""

    action: str
    live: dict[str, Any] | None
    new: dict[str, Any] | None

    @property
    def ref(self) -> str: ...


@dataclass
class FieldChange:
    """One field that differs: ``live`` -> ``desired`` (``drift`` when changed by hand)."""

    obj: str
    field: str
    live: Any
    desired: Any
    drift: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.obj, "field": self.field, "live": self.live,
                "desired": self.desired, "drift": self.drift}


@dataclass
class AppPlan:
    """What applying one app would do: ``create``, ``update``, ``delete`` or ``none``."""

    app: str
    namespace: str
    priority: int
    action: str
    changes: list[FieldChange] = field(default_factory=list)
    creates: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    drift: bool = False
    image: str = ""
    strategy: str = "rolling"
    live_color: str | None = None
    awaiting: str | None = None  # blue/green: this colour holds the spec, awaits a swap
    hooks: list[str] = field(default_factory=list)  # chart hooks that run with a change
    disabled: bool = False  # in the spec with enabled: false (so it is removed)
    hooks_state: dict[str, str] | None = None  # the hook marker's record (helm.hooks)

    @property
    def pending(self) -> bool:
        return self.action != "none"

    def object_actions(self) -> list[str]:
        """``create|update|delete KIND/NAME`` per object, as the rollout names its actions."""
        updates = dict.fromkeys(c.obj for c in self.changes)
        return ([f"create {o}" for o in self.creates] + [f"update {o}" for o in updates]
                + [f"delete {o}" for o in self.deletes])

    def to_dict(self) -> dict[str, Any]:
        return {"app": self.app, "namespace": self.namespace, "priority": self.priority,
                "action": self.action, "drift": self.drift, "image": self.image,
                "creates": self.creates, "deletes": self.deletes,
                "changes": [c.to_dict() for c in self.changes], "strategy": self.strategy,
                "live_color": self.live_color, "awaiting_promotion": self.awaiting,
                "hooks": self.hooks, "disabled": self.disabled,
                "hooks_state": self.hooks_state, "objects": self.object_actions()}


def diff_app(app: str, namespace: str, priority: int, image: str,
             changes: Sequence[ObjectVerdict], orphans: Sequence[dict[str, Any]] = ()
             ) -> AppPlan:
    """Plan one app from the engine's verdict on each of its objects (see the module doc);
    ``orphans``: live objects of the app that its manifests no longer hold."""
    plan = AppPlan(app, namespace, priority, "none", image=image)
    for change in changes:
        if change.action == "create":
            plan.creates.append(change.ref)
        elif change.action == "update" and change.live is not None and change.new is not None:
            _explain(plan, change.ref, change.live, change.new)
    plan.deletes = [f"{o['kind']}/{o['metadata']['name']}" for o in orphans]
    if plan.creates and len(plan.creates) == len(changes):
        plan.action = "create"
    elif plan.creates or plan.changes or plan.deletes:
        plan.action = "update"
    return plan


def _explain(plan: AppPlan, ref: str, live: dict[str, Any], new: dict[str, Any]) -> None:
    """The fields an update changes, each marked drift or spec change."""
    kind = str(live.get("kind") or new.get("kind") or ref.split("/", 1)[0])
    diffs: list[tuple[str, Any, Any]] = []
    _compare(_comparable(live), _comparable(new), "", diffs)
    diffs = [d for d in diffs if d[0] not in _BOOKKEEPING] or [
        ("metadata", None, None)]  # nothing but our bookkeeping: still a write
    recorded = _annotations(live).get(ANN_HASH)
    wanted = _annotations(new).get(ANN_HASH)
    spec_unchanged = recorded == wanted or recorded is None
    by_hand = _by_hand(live)
    for path, live_value, new_value in diffs:
        drift = spec_unchanged or by_hand(path)
        plan.changes.append(FieldChange(ref, path, _mask(path, live_value, kind),
                                        _mask(path, new_value, kind), drift))
        plan.drift = plan.drift or drift


def _annotations(obj: dict[str, Any]) -> dict[str, Any]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without status and server bookkeeping (values kept: masking comes last)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items()
                       if k not in VOLATILE_META}
    return out


_HASH_FIELD = ("f:metadata", "f:annotations", f"f:{ANN_HASH}")
_PART = re.compile(r"\[[^\]]*\]|[^.\[\]]+")


def _by_hand(live: dict[str, Any]) -> Callable[[str], bool]:
    """A predicate: is this diff path owned by a manager that did not apply the spec hash?"""
    entries = [(e.get("manager", ""), e.get("fieldsV1") or {})
               for e in live.get("metadata", {}).get("managedFields") or []]
    appliers = {m for m, fields in entries if _walk(fields, list(_HASH_FIELD))}
    if not appliers:  # no record of who applied the spec: cannot tell field by field
        return lambda path: False
    others = [fields for m, fields in entries if m not in appliers]

    def owned(path: str) -> bool:
        keys = []
        for part in _PART.findall(path):
            keys.append(("[" + part[1:-1]) if part.startswith("[") else f"f:{part}")
        return any(_walk(fields, keys) for fields in others)
    return owned


def _walk(fields: dict[str, Any], keys: list[str]) -> bool:
    """Whether ``fields`` (managedFields fieldsV1) covers ``keys``; ``[name]`` matches a
    keyed list entry ``k:{"name": ...}``; an atomic (empty) node covers all below it."""
    node: Any = fields
    for k in keys:
        if not isinstance(node, dict):
            return False
        if node == {}:
            return True
        if k.startswith("["):
            name = k[1:]
            node = next((v for key, v in node.items() if key.startswith("k:")
                         and _key_name(key) == name), None)
        else:
            node = node.get(k)
        if node is None:
            return False
    return True


def _key_name(key: str) -> str | None:
    try:
        value = json.loads(key[2:])
    except ValueError:
        return None
    return str(value.get("name")) if isinstance(value, dict) and "name" in value else None


def _mask(path: str, value: Any, kind: str | None = None) -> Any:
    if value is not None and secret_field(kind, path):
        return MASK
    return value


def _compare(live: Any, new: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    """Every leaf where ``live`` and ``new`` differ: (path, live value, new value)."""
    if isinstance(live, dict) and isinstance(new, dict):
        for k in sorted(live.keys() | new.keys(), key=str):
            _compare(live.get(k), new.get(k), f"{path}.{k}" if path else str(k), out)
        return
    if isinstance(live, list) and isinstance(new, list):
        if _named(live) and _named(new):
            theirs, ours = {i["name"]: i for i in live}, {i["name"]: i for i in new}
            for name in [*ours, *(n for n in theirs if n not in ours)]:
                if name not in theirs or name not in ours:
                    out.append((f"{path}[{name}]", _summary(theirs.get(name)),
                                _summary(ours.get(name))))
                else:
                    _compare(theirs[name], ours[name], f"{path}[{name}]", out)
            return
        if len(live) == len(new):
            for i, (h, w) in enumerate(zip(live, new, strict=True)):
                _compare(h, w, f"{path}[{i}]", out)
            return
    if live != new:
        out.append((path, live, new))


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _summary(item: dict[str, Any] | None) -> Any:
    return item.get("value", item) if item is not None else None
