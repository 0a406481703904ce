"""Namespaces as the spec describes them: labels, annotations, a LimitRange and a ResourceQuota.

Only namespaces given with settings (``namespaces:`` as a mapping) are observed: two GETs
per namespace (LimitRange ``pipelinelib-limits``, ResourceQuota ``pipelinelib-quota``) plus
the Namespace. Labels and annotations are added or updated, never removed from a
namespace someone else also labels; the LimitRange and ResourceQuota are ours alone
(server-side applied; deleted when the spec drops them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelinelib.envspec.model import EnvSpec, NamespaceSpec
from pipelinelib.kube.labels import ENV_LABEL as LABEL_ENV
from pipelinelib.kube.labels import MANAGED_BY as LABEL_MANAGED

# PROTECTED_LABEL: the cluster administrator's mark of a protected namespace
# (promotion.guard.guard_namespace): never set or removed through a spec (load.py refuses
# it, plan_namespaces never writes it).
from pipelinelib.kube.labels import PROTECTED_LABEL

LIMITS = "pipelinelib-limits"
QUOTA = "pipelinelib-quota"


@dataclass
class NamespacePlan:
    """What applying a namespace's settings would do."""

    namespace: str
    protected: bool
    action: str = "none"  # create (the namespace), update or none
    changes: list[str] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)  # to apply
    deletes: list[str] = field(default_factory=list)  # kinds to delete
    exists: bool = True

    @property
    def pending(self) -> bool:
        return self.action != "none"

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "action": self.action, "changes": self.changes,
                "deletes": self.deletes, "protected": self.protected}


def desired(env: EnvSpec, ns: NamespaceSpec) -> list[dict[str, Any]]:
    """The LimitRange and ResourceQuota the spec asks for (none when it asks for none)."""
    labels = {LABEL_ENV: env.name, LABEL_MANAGED: "pipelinelib"}
    out = []
    if ns.limits:
        out.append({"apiVersion": "v1", "kind": "LimitRange",
                    "metadata": {"name": LIMITS, "namespace": ns.name, "labels": labels},
                    "spec": {"limits": [dict(lim) for lim in ns.limits]}})
    if ns.quotas:
        out.append({"apiVersion": "v1", "kind": "ResourceQuota",
                    "metadata": {"name": QUOTA, "namespace": ns.name, "labels": labels},
                    "spec": {"hard": dict(ns.quotas)}})
    return out


def _namespace_doc(ns: NamespaceSpec) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": ns.name}
    labels = {k: v for k, v in ns.labels.items() if k != PROTECTED_LABEL}
    if labels:
        meta["labels"] = labels
    if ns.annotations:
        meta["annotations"] = dict(ns.annotations)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def plan_namespaces(kube: Any, env: EnvSpec) -> list[NamespacePlan]:
    """One plan per namespace given with settings, in the spec's order."""
    plans = []
    for ns in env.namespace_specs.values():
        plan = NamespacePlan(ns.name, ns.protected)
        live = kube.get("Namespace", ns.name)
        if live is None:
            plan.exists, plan.action = False, "create"
            plan.changes.append(f"+ Namespace/{ns.name}")
        meta = (live or {}).get("metadata", {})
        labels = {k: v for k, v in ns.labels.items() if k != PROTECTED_LABEL}
        for what, wanted in (("label", labels), ("annotation", ns.annotations)):
            have = meta.get(f"{what}s") or {}
            for k, v in sorted(wanted.items()):
                if have.get(k) != v:
                    plan.changes.append(f"~ {what} {k}: {have.get(k)} -> {v}")
        if plan.changes:
            plan.objects.append(_namespace_doc(ns))
        wanted_objs = {d["kind"]: d for d in desired(env, ns)}
        for kind, name in (("LimitRange", LIMITS), ("ResourceQuota", QUOTA)):
            current = kube.get(kind, name, ns.name) if live is not None else None
            doc = wanted_objs.get(kind)
            if doc is None:
                if current is not None:
                    plan.deletes.append(kind)
                    plan.changes.append(f"- {kind}/{name}")
                continue
            plan.objects.append(doc)
            if current is None:
                plan.changes.append(f"+ {kind}/{name}")
            elif not _holds(doc["spec"], current.get("spec") or {}) or (
                    kind == "ResourceQuota" and set(doc["spec"]["hard"]) != set(
                        (current.get("spec") or {}).get("hard") or {})):
                plan.changes.append(f"~ {kind}/{name}: {current.get('spec')} -> {doc['spec']}")
        if plan.changes and plan.action == "none":
            plan.action = "update"
        if not plan.changes:
            plan.objects = []
        plans.append(plan)
    return plans


def _holds(want: Any, have: Any) -> bool:
    """Whether the live spec holds what we want (quantities compared as written; fields the
    apiserver defaults, such as a LimitRange's defaultRequest, are not ours to compare)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_holds(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(
            _holds(w, h) for w, h in zip(want, have, strict=True))
    return str(want) == str(have)


def apply_namespaces(kube: Any, plans: list[NamespacePlan], log: Any) -> list[str]:
    """Create or update each pending namespace and its LimitRange/ResourceQuota."""
    actions = []
    for plan in (p for p in plans if p.pending):
        for doc in plan.objects:
            if doc["kind"] == "Namespace" and not plan.exists:
                kube.create(doc, ok=(409,))
            elif doc["kind"] == "Namespace":
                kube.apply(doc)  # server-side apply: only our labels and annotations
            else:
                kube.apply(doc, namespace=plan.namespace)
        for kind in plan.deletes:
            kube.delete(kind, LIMITS if kind == "LimitRange" else QUOTA, plan.namespace)
        log.info("namespace settings applied", namespace=plan.namespace,
                 changes=len(plan.changes))
        actions.append(f"{plan.action} namespace {plan.namespace}")
    return actions
