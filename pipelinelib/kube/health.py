"""Per-kind health rules: is a workload ready, still progressing, or failed (and why)?

Each rule takes the live object and its current pods and returns a ``Verdict``. Pod
problems (crash loops, image pulls, unschedulable, missing config) fail the workload as
soon as they show, not at the progress deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

READY, PROGRESSING, FAILED = "ready", "progressing", "failed"
BAD_WAITING = {
    "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
}


@dataclass
class Verdict:
    """The state of one workload, a one-line message, and the pod at fault (if any)."""

    state: str
    message: str
    reason: str = ""
    pod: str | None = None
    container: str | None = None
    extra: list[str] = field(default_factory=list)


def pod_problem(pod: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """(reason, message, container) when a pod shows a failure, else None."""
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and \
                cond.get("reason") == "Unschedulable":
            return "Unschedulable", cond.get("message", ""), None
    for group in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(group) or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in BAD_WAITING:
                return waiting["reason"], waiting.get("message", ""), cs.get("name")
    return None


def pod_ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _generation_seen(obj: dict[str, Any]) -> bool:
    observed = (obj.get("status") or {}).get("observedGeneration") or 0
    return observed >= (obj.get("metadata") or {}).get("generation", 0)


def _pod_failure(pods: list[dict[str, Any]], what: str) -> Verdict | None:
    for pod in pods:
        problem = pod_problem(pod)
        if problem:
            reason, message, container = problem
            name = pod["metadata"]["name"]
            return Verdict(FAILED, f"{what}: pod {name} {reason}" +
                           (f": {message}" if message else ""), reason, name, container)
    return None


def deployment(obj: dict[str, Any], pods: list[dict[str, Any]]) -> Verdict:
    name = f"deployment/{obj['metadata']['name']}"
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not _generation_seen(obj):
        return Verdict(PROGRESSING, f"{name}: waiting for the controller")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Verdict(FAILED, f"{name}: {cond.get('message', 'progress deadline exceeded')}",
                           "ProgressDeadlineExceeded")
    failed = _pod_failure(pods, name)
    if failed:
        return failed
    want = spec.get("replicas", 1)
    updated, total = status.get("updatedReplicas", 0), status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated >= want and total <= updated and available >= updated:
        return Verdict(READY, f"{name}: {available}/{want} ready")
    return Verdict(PROGRESSING, f"{name}: {updated}/{want} updated, {available} available" +
                   (f", {total - updated} old" if total > updated else ""))


def statefulset(obj: dict[str, Any], pods: list[dict[str, Any]]) -> Verdict:
    name = f"statefulset/{obj['metadata']['name']}"
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not _generation_seen(obj):
        return Verdict(PROGRESSING, f"{name}: waiting for the controller")
    failed = _pod_failure(pods, name)
    if failed:
        return failed
    want = spec.get("replicas", 1)
    ready, updated = status.get("readyReplicas", 0), status.get("updatedReplicas", 0)
    strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
    same = status.get("currentRevision") == status.get("updateRevision")
    if ready >= want and (strategy == "OnDelete" or (updated >= want and same)):
        return Verdict(READY, f"{name}: {ready}/{want} ready")
    return Verdict(PROGRESSING, f"{name}: {updated}/{want} updated, {ready} ready")


def daemonset(obj: dict[str, Any], pods: list[dict[str, Any]]) -> Verdict:
    name = f"daemonset/{obj['metadata']['name']}"
    status = obj.get("status") or {}
    if not _generation_seen(obj):
        return Verdict(PROGRESSING, f"{name}: waiting for the controller")
    failed = _pod_failure(pods, name)
    if failed:
        return failed
    want = status.get("desiredNumberScheduled", 0)
    updated = status.get("updatedNumberScheduled", 0)
    available = status.get("numberAvailable", 0)
    if updated >= want and available >= want:
        return Verdict(READY, f"{name}: {available}/{want} ready")
    return Verdict(PROGRESSING, f"{name}: {updated}/{want} updated, {available} available")


def job(obj: dict[str, Any], pods: list[dict[str, Any]]) -> Verdict:
    name = f"job/{obj['metadata']['name']}"
    status = obj.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return Verdict(READY, f"{name}: complete")
        if cond.get("type") in ("Failed", "FailureTarget"):
            failed_pod = next((p["metadata"]["name"] for p in pods
                               if (p.get("status") or {}).get("phase") == "Failed"), None)
            return Verdict(FAILED, f"{name}: failed: {cond.get('reason', '')} "
                           f"{cond.get('message', '')}".strip(), cond.get("reason", "Failed"),
                           failed_pod)
    failed = _pod_failure(pods, name)
    if failed:
        return failed
    return Verdict(PROGRESSING, f"{name}: {status.get('active', 0)} active, "
                   f"{status.get('succeeded', 0)} succeeded, {status.get('failed', 0)} failed")


def cronjob(obj: dict[str, Any], pods: list[dict[str, Any]]) -> Verdict:
    """A CronJob is healthy once the API accepted it (its runs are Jobs of their own)."""
    return Verdict(READY, f"cronjob/{obj['metadata']['name']}: scheduled "
                   f"{(obj.get('spec') or {}).get('schedule', '')}")


RULES = {"Deployment": deployment, "StatefulSet": statefulset, "DaemonSet": daemonset,
         "Job": job, "CronJob": cronjob}


def assess(obj: dict[str, Any], pods: list[dict[str, Any]]) -> Verdict:
    """The verdict for any workload kind (others are ready once applied)."""
    rule = RULES.get(obj.get("kind", ""))
    if rule is None:
        return Verdict(READY, f"{obj.get('kind', '').lower()}/{obj['metadata']['name']}: applied")
    return rule(obj, pods)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """True when ``labels`` match a LabelSelector (matchLabels and matchExpressions)."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
