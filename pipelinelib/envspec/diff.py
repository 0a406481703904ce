"""Compare an app's desired manifests with the live objects: what would change, and drift.

The comparison asks "does the live object hold what we want?": every field we set must
have the same value live (the API server's defaults are ignored); named lists
(containers, env, ports) and ConfigMap ``data`` must also hold no extra entries.
Each object carries ``pipelinelib.dev/spec-hash`` from its last apply: when that hash
equals the desired one, the spec did not change, so any difference was made by hand
— drift. When the spec did change too, each differing field is attributed by the live
object's ``managedFields``: a field now owned by a manager other than the one that applied
the spec hash (``kubectl scale``/``edit``/``patch``...) was changed by hand — drift — and
the rest is the spec change, so one app can report both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pipelinelib.envspec.render import ANN_HASH, key
from pipelinelib.secrets import MASK, secret_field

IGNORED_META = {"annotations", "labels"}


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

    def to_dict(self) -> dict[str, Any]:
        return {"app": self.app, "namespace": self.namespace, "priority": self.priority,
                "action": self.action, "drift": self.drift, "image": self.image,
                "creates": self.creates, "deletes": self.deletes,
                "changes": [c.to_dict() for c in self.changes], "strategy": self.strategy,
                "live_color": self.live_color, "awaiting_promotion": self.awaiting,
                "hooks": self.hooks, "disabled": self.disabled,
                "hooks_state": self.hooks_state}


def _name(doc: dict[str, Any]) -> str:
    kind, _, name = key(doc)
    return f"{kind}/{name}"


def diff_app(app: str, namespace: str, priority: int, image: str,
             desired: list[dict[str, Any]], live: dict[tuple[str, str, str], dict[str, Any]],
             orphans: list[dict[str, Any]] = ()) -> AppPlan:
    """Plan one app: ``live`` maps (kind, namespace, name) to live objects."""
    plan = AppPlan(app, namespace, priority, "none", image=image)
    for doc in desired:
        current = live.get(key(doc))
        if current is None:
            plan.creates.append(_name(doc))
            continue
        secret = doc.get("kind") == "Secret"
        if secret:
            doc = _secret_as_data(doc)
        diffs: list[tuple[str, Any, Any]] = []
        _compare(doc, current, "", diffs, top=True)
        if not diffs:
            continue
        recorded = current.get("metadata", {}).get("annotations", {}).get(ANN_HASH)
        wanted = doc.get("metadata", {}).get("annotations", {}).get(ANN_HASH)
        spec_unchanged = recorded == wanted or recorded is None
        by_hand = _by_hand(current)
        for path, live_value, desired_value in diffs:
            drift = spec_unchanged or by_hand(path)
            plan.changes.append(FieldChange(_name(doc), path, _mask(path, live_value, doc["kind"]),
                                       _mask(path, desired_value, doc["kind"]), drift))
            plan.drift = plan.drift or drift
    plan.deletes = [_name(o) for o in orphans]
    if plan.creates and len(plan.creates) == len(desired):
        plan.action = "create"
    elif plan.creates or plan.changes or plan.deletes:
        plan.action = "update"
    return plan


_HASH_FIELD = ("f:metadata", "f:annotations", f"f:{ANN_HASH}")
_PART = re.compile(r"\[[^\]]*\]|[^.\[\]]+")


def _by_hand(live: dict[str, Any]) -> Any:
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


def _secret_as_data(doc: dict[str, Any]) -> dict[str, Any]:
    """A Secret as the apiserver keeps it: ``stringData`` folded into base64 ``data``."""
    import base64

    if not doc.get("stringData"):
        return doc
    data = dict(doc.get("data") or {})
    for k, v in doc["stringData"].items():
        data[k] = base64.b64encode(str(v).encode()).decode()
    return {**{k: v for k, v in doc.items() if k != "stringData"}, "data": data}


def _compare(want: Any, have: Any, path: str, out: list[tuple[str, Any, Any]],
             top: bool = False) -> None:
    if isinstance(want, dict):
        if not isinstance(have, dict):
            out.append((path, have, want))
            return
        for k, v in want.items():
            if top and k in ("status", "apiVersion"):
                continue
            if path == "metadata" and k in IGNORED_META:
                continue
            _compare(v, have.get(k), f"{path}.{k}" if path else k, out)
        if path == "data" or path.endswith(".data"):
            for k in have.keys() - want.keys():
                out.append((f"{path}.{k}", have[k], None))
        return
    if isinstance(want, list):
        if not isinstance(have, list):
            out.append((path, have, want))
            return
        if want and all(isinstance(i, dict) and "name" in i for i in want) and all(
                isinstance(i, dict) and "name" in i for i in have):
            theirs = {i["name"]: i for i in have}
            for item in want:
                _compare(item, theirs.get(item["name"]), f"{path}[{item['name']}]", out)
            for extra in theirs.keys() - {i["name"] for i in want}:
                out.append((f"{path}[{extra}]", _summary(theirs[extra]), None))
            return
        if len(want) != len(have):
            out.append((path, have, want))
            return
        for i, (w, h) in enumerate(zip(want, have, strict=False)):
            _compare(w, h, f"{path}[{i}]", out)
        return
    if want != have and not _same_scalar(want, have):
        out.append((path, have, want))


def _summary(item: dict[str, Any]) -> Any:
    return item.get("value", item)


def _same_scalar(want: Any, have: Any) -> bool:
    if have is None or isinstance(want, bool) or isinstance(have, bool):
        return False
    return str(want) == str(have)
