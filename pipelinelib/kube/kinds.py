"""The one table of Kubernetes kinds: what pipelinelib knows about each kind it handles.

Every module that asks "is this a workload?", "in which order is it applied?", "is it
pruned?" reads this table (through the tuples below), never a list of its own:

- ``order``: apply order (dependencies, then Jobs, then long-running workloads, then
  Services and Ingresses; krane-like). A kind without one is applied first by a rollout
  (``manifests.order``) and run last among hooks of one weight (``helm.hooks``).
- ``workload``: runs pods from a pod template; a rollout stamps its record annotations on
  it and waits for it (``kube.wait``).
- ``hashed``: content-hash name suffix, references rewritten, so pods roll on a change.
- ``prunable``: listed (by owner label) and deleted by a rollout when no longer shipped.
- ``history``: a long-running workload whose controller keeps a revision history
  (ReplicaSets or ControllerRevisions): rollback, the env spec's image overlay.
- ``cluster_scoped``: no namespace.
- ``compared``: the environment plan lists and diffs its live objects (``envspec.live``).
- ``health``: the name of its rule in ``kube.health`` (None: healthy once applied).

Kinds not in the table (custom resources, rarer built-ins) are found through discovery by
the adapter and treated as plain objects: applied first, never waited for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HealthRule = Literal["deployment", "statefulset", "daemonset", "job", "cronjob", "pod"]


@dataclass(frozen=True)
class Kind:
    """One row of the table (see the module docstring for each column)."""

    name: str
    order: int | None = None
    workload: bool = False
    hashed: bool = False
    prunable: bool = False
    history: bool = False
    cluster_scoped: bool = False
    compared: bool = False
    health: HealthRule | None = None


def _table(*rows: Kind) -> dict[str, Kind]:
    return {row.name: row for row in rows}


# Rows in apply order; the kinds without an order follow.
TABLE: dict[str, Kind] = _table(
    Kind("Namespace", 0, cluster_scoped=True),
    Kind("ResourceQuota", 1),
    Kind("LimitRange", 2),
    Kind("ServiceAccount", 3, compared=True),
    Kind("Role", 4),
    Kind("RoleBinding", 5),
    Kind("NetworkPolicy", 6),
    Kind("ConfigMap", 7, hashed=True, prunable=True, compared=True),
    Kind("Secret", 8, hashed=True, prunable=True, compared=True),
    Kind("PersistentVolumeClaim", 9),
    Kind("PodDisruptionBudget", 10, compared=True),
    Kind("Pod", 11, health="pod"),  # a bare pod runs to completion (a helm hook Pod)
    # e.g. a migration Job: before the workloads that need it
    Kind("Job", 12, workload=True, prunable=True, compared=True, health="job"),
    Kind("Deployment", 13, workload=True, prunable=True, history=True, compared=True,
         health="deployment"),
    Kind("StatefulSet", 14, workload=True, prunable=True, history=True, compared=True,
         health="statefulset"),
    Kind("DaemonSet", 15, workload=True, prunable=True, history=True, compared=True,
         health="daemonset"),
    Kind("CronJob", 16, workload=True, prunable=True, compared=True, health="cronjob"),
    Kind("HorizontalPodAutoscaler", 17, compared=True),
    Kind("Service", 18, prunable=True, compared=True),
    Kind("Ingress", 19, prunable=True, compared=True),
    Kind("ReplicaSet"),
    Kind("ControllerRevision"),
    Kind("ClusterRole", cluster_scoped=True),
    Kind("ClusterRoleBinding", cluster_scoped=True),
    Kind("CustomResourceDefinition", cluster_scoped=True),
    Kind("PersistentVolume", cluster_scoped=True),
    Kind("StorageClass", cluster_scoped=True),
    Kind("PriorityClass", cluster_scoped=True),
)


def _where(column: str) -> tuple[str, ...]:
    return tuple(k.name for k in TABLE.values() if getattr(k, column))


APPLY_ORDER: tuple[str, ...] = tuple(
    k.name for k in sorted((k for k in TABLE.values() if k.order is not None),
                           key=lambda k: k.order or 0))
WORKLOADS = _where("workload")
HASHED = _where("hashed")
PRUNABLE = _where("prunable")
WITH_HISTORY = _where("history")
CLUSTER_SCOPED = _where("cluster_scoped")
COMPARED = _where("compared")


def get(kind: str) -> Kind | None:
    """The row of ``kind``, or None for a kind the table does not know."""
    return TABLE.get(kind)


def rank(kind: str, unknown: int = -1) -> int:
    """Apply order of ``kind``; ``unknown`` for a kind without one."""
    row = TABLE.get(kind)
    return unknown if row is None or row.order is None else row.order


def ordered_up_to(last: str) -> frozenset[str]:
    """The ordered kinds applied no later than ``last`` (kinds without an order excluded)."""
    return frozenset(k for k in APPLY_ORDER if rank(k) <= rank(last))


def health_rule(kind: str) -> HealthRule | None:
    """The name of ``kind``'s health rule (``kube.health``), or None."""
    row = TABLE.get(kind)
    return row.health if row else None
