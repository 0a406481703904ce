"""Per-kind health rules: is a workload ready, still progressing, or failed (and why)?

Each rule takes the live object and its current pods and returns a ``Verdict``. Pod
problems that cannot clear by themselves (a crash loop, a pull the registry refused, an
invalid spec, missing config, no node that could ever take the pod) fail the workload as
soon as they show, not at the progress deadline; problems that clear by themselves (a first
restart, a pull failing while the registry restarts, a port or PVC not free yet) are shown
in the progress line and wait within the deadline (``pod_condition``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pipelinelib.kube import kinds

READY, PROGRESSING, FAILED = "ready", "progressing", "failed"
# Doom vs. delay (docs/rollout.md, "Doom or delay"): a pod condition fails the rollout at
# once only when it cannot clear by itself; the others wait within the deadline.
ALWAYS_FATAL = {"InvalidImageName", "CreateContainerConfigError", "CreateContainerError",
                "RunContainerError", "ErrImageNeverPull"}
PULL_WAITING = {"ErrImagePull", "ImagePullBackOff"}
# A container that crashed this often is crash-looping; one restart followed by a container
# that stays up (a dependency not ready at first start) is not a failure (krane#819).
CRASH_LOOP_RESTARTS = 2
# A container that restarted counts as ready only once it has run this long: without a
# readiness probe a crashing container is "ready" for the few milliseconds it runs.
STABLE_AFTER_RESTART_S = 5.0
# Pull errors that clear by themselves: the registry restarting, overloaded or unreachable.
TRANSIENT_PULL = ("connection refused", "connection reset", "i/o timeout", "EOF",
                  "timeout", "502 Bad Gateway", "503 Service Unavailable",
                  "504 Gateway Timeout", "500 Internal Server Error", "429 Too Many Requests",
                  "no route to host", "TLS handshake")
# Pull errors that never clear: bad credentials, unknown repository, tag or digest.
FATAL_PULL = ("401", "403", "unauthorized", "Unauthorized", "authorization failed",
              "denied", "not found", "NotFound", "manifest unknown", "404",
              "invalid reference format")
# Scheduler reasons (per node group, from the Unschedulable message) that clear by themselves:
# a port or resources held by the pod being replaced, a PVC still being provisioned, a node
# briefly not ready or cordoned. Since Kubernetes 1.33 the scheduler no longer names the taint
# ("N node(s) had untolerated taint(s)"), and the deployer may not read nodes: a taint may be
# a node briefly NotReady (node.kubernetes.io/not-ready), so it waits within the deadline.
TRANSIENT_UNSCHEDULABLE = ("free ports", "unbound immediate PersistentVolumeClaims",
                           "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
                           "Insufficient ", "were unschedulable", "Too many pods",
                           "anti-affinity", "waiting for first consumer", "being deleted")
# An unnamed taint may be a node briefly NotReady, but most clusters also carry taints that
# never lift (control-plane nodes, dedicated pools): when it is the only reason that could
# clear, the pod waits this long after it was found unschedulable, then the rollout fails.
UNNAMED_TAINT = "untolerated taint(s)"
UNNAMED_TAINT_GRACE_S = 30.0


@dataclass
class Verdict:
    """The state of one workload, a one-line message, and the pod at fault (if any)."""

    state: str
    message: str
    reason: str = ""
    pod: str | None = None
    container: str | None = None
    extra: list[str] = field(default_factory=list)


def transient_pull(message: str) -> bool:
    """True when an image pull failed for a reason that clears by itself (not 401/404)."""
    if any(m in message for m in FATAL_PULL):
        return False
    return any(m in message for m in TRANSIENT_PULL)


def transient_unschedulable(message: str, unschedulable_for: float = 0.0) -> bool:
    """True when at least one reason the scheduler gives can clear by itself; an unnamed
    taint counts only for ``UNNAMED_TAINT_GRACE_S`` after the pod was found unschedulable."""
    if any(m in message for m in TRANSIENT_UNSCHEDULABLE):
        return True
    return UNNAMED_TAINT in message and unschedulable_for < UNNAMED_TAINT_GRACE_S


def _seconds_since(timestamp: str | None) -> float:
    """Seconds since an RFC 3339 timestamp of the apiserver (0 when absent or unreadable)."""
    if not timestamp:
        return 0.0
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(timezone.utc) - then).total_seconds())


def _last_exit(cs: dict[str, Any]) -> str:
    term = ((cs.get("lastState") or {}).get("terminated") or
            (cs.get("state") or {}).get("terminated") or {})
    if not term:
        return ""
    return f"last exit code {term.get('exitCode')} ({term.get('reason', 'Error')})"


def carry_oom_kills(pod: dict[str, Any], seen: set[tuple[str, str]]) -> dict[str, Any]:
    """``pod`` with an OOM kill seen at an earlier restart kept in view.

    containerd on cgroup v2 can miss the OOM event of a later kill of the same container and
    report it as plain ``Error`` (exit 137); ``seen`` remembers (pod uid, container) pairs
    once reported ``OOMKilled``, and such a later 137 reads "Error; OOMKilled before".
    """
    uid = (pod.get("metadata") or {}).get("uid", "")
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    carried = False
    for cs in statuses:
        for term in _terminations(cs):
            if term.get("reason") == "OOMKilled":
                seen.add((uid, cs.get("name", "")))
            elif term.get("exitCode") == 137 and (uid, cs.get("name", "")) in seen:
                carried = True
    if not carried:
        return pod
    copy = copy_pod(pod)
    for cs in copy["status"]["containerStatuses"]:
        for term in _terminations(cs):
            if term.get("exitCode") == 137 and term.get("reason") != "OOMKilled" and \
                    (uid, cs.get("name", "")) in seen:
                term["reason"] = f"{term.get('reason') or 'Error'}; OOMKilled before"
    return copy


def _terminations(cs: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in (((cs.get("lastState") or {}).get("terminated")),
                        ((cs.get("state") or {}).get("terminated"))) if t]


def copy_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``pod`` whose container statuses may be edited."""
    status = dict(pod.get("status") or {})
    status["containerStatuses"] = [
        {**cs, "lastState": {k: dict(v) for k, v in (cs.get("lastState") or {}).items()},
         "state": {k: dict(v) for k, v in (cs.get("state") or {}).items()}}
        for cs in status.get("containerStatuses") or []]
    return {**pod, "status": status}


def pod_problem(pod: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """(reason, message, container) when a pod shows a failure that cannot clear, else None."""
    found = pod_condition(pod)
    return found[:3] if found and found[3] else None


def pod_condition(pod: dict[str, Any]) -> tuple[str, str, str | None, bool] | None:
    """(reason, message, container, fatal) for a pod's worst condition, else None.

    ``fatal`` tells doom from delay: a crash loop past ``CRASH_LOOP_RESTARTS``, a pull the
    registry refused (401/403/404), an invalid spec or missing config are fatal; a first
    restart, a pull failing on a connection error, an Unschedulable whose reasons clear by
    themselves (ports held by the pod being replaced, PVCs being bound) are not.
    """
    status = pod.get("status") or {}
    found: tuple[str, str, str | None, bool] | None = None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and \
                cond.get("reason") == "Unschedulable":
            message = cond.get("message", "")
            waited = _seconds_since(cond.get("lastTransitionTime"))
            found = ("Unschedulable", message, None,
                     not transient_unschedulable(message, waited))
    for group in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(group) or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason, message = waiting.get("reason", ""), waiting.get("message", "")
            name = cs.get("name")
            if reason in ALWAYS_FATAL:
                return reason, message, name, True
            if reason in PULL_WAITING:
                fatal = not transient_pull(message)
                if fatal:
                    return reason, message, name, True
                found = found or (reason, message, name, False)
            elif reason == "CrashLoopBackOff":
                restarts = cs.get("restartCount", 0)
                detail = "; ".join(x for x in (_last_exit(cs), f"{restarts} restarts",
                                               message) if x)
                if restarts >= CRASH_LOOP_RESTARTS:
                    return reason, detail, name, True
                found = found or (reason, detail, name, False)
    return found


def pod_ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _generation_seen(obj: dict[str, Any]) -> bool:
    observed = int((obj.get("status") or {}).get("observedGeneration") or 0)
    return observed >= int((obj.get("metadata") or {}).get("generation", 0))


def _pod_failure(pods: list[dict[str, Any]], what: str) -> Verdict | None:
    """FAILED for the first pod with a fatal condition; else PROGRESSING naming a pod that
    waits on a condition that clears by itself (the verdict's ``extra``); else None."""
    waiting = None
    for pod in pods:
        found = pod_condition(pod)
        if not found:
            continue
        reason, message, container, fatal = found
        name = pod["metadata"]["name"]
        text = f"pod {name} {reason}" + (f": {message}" if message else "")
        if fatal:
            return Verdict(FAILED, f"{what}: {text}", reason, name, container)
        waiting = waiting or Verdict(PROGRESSING, "", reason, name, container,
                                     [f"{text} (may clear by itself: waiting)"])
    return waiting


def _started(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return None


def settling(pods: list[dict[str, Any]], now: float | None = None) -> str | None:
    """A note for a pod whose container restarted and has not yet run
    ``STABLE_AFTER_RESTART_S`` since (it may be about to crash again), else None."""
    now = time.time() if now is None else now
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            running = (cs.get("state") or {}).get("running") or {}
            started = _started(running.get("startedAt", ""))
            if cs.get("restartCount", 0) and started and now - started < STABLE_AFTER_RESTART_S:
                return (f"pod {pod['metadata']['name']} container {cs.get('name')} restarted "
                        f"{cs['restartCount']}x: running {max(0.0, now - started):.0f}s, "
                        f"ready after {STABLE_AFTER_RESTART_S:.0f}s up")
    return None


def _progressing(message: str, waiting: Verdict | None) -> Verdict:
    if waiting is None:
        return Verdict(PROGRESSING, message)
    return Verdict(PROGRESSING, f"{message}; {waiting.extra[0]}", waiting.reason, waiting.pod,
                   waiting.container, waiting.extra)


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
    if failed and failed.state == FAILED:
        return failed
    want = spec.get("replicas", 1)
    updated, total = status.get("updatedReplicas", 0), status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated >= want and total <= updated and available >= updated:
        note = settling(pods)
        if note is None:
            return Verdict(READY, f"{name}: {available}/{want} ready")
        return Verdict(PROGRESSING, f"{name}: {note}")
    return _progressing(f"{name}: {updated}/{want} updated, {available} available" +
                        (f", {total - updated} old" if total > updated else ""), failed)


def statefulset(obj: dict[str, Any], pods: list[dict[str, Any]]) -> Verdict:
    name = f"statefulset/{obj['metadata']['name']}"
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not _generation_seen(obj):
        return Verdict(PROGRESSING, f"{name}: waiting for the controller")
    failed = _pod_failure(pods, name)
    if failed and failed.state == FAILED:
        return failed
    want = spec.get("replicas", 1)
    ready, updated = status.get("readyReplicas", 0), status.get("updatedReplicas", 0)
    strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
    same = status.get("currentRevision") == status.get("updateRevision")
    if ready >= want and (strategy == "OnDelete" or (updated >= want and same)):
        note = settling(pods)
        if note is None:
            return Verdict(READY, f"{name}: {ready}/{want} ready")
        return Verdict(PROGRESSING, f"{name}: {note}")
    return _progressing(f"{name}: {updated}/{want} updated, {ready} ready", failed)


def daemonset(obj: dict[str, Any], pods: list[dict[str, Any]]) -> Verdict:
    name = f"daemonset/{obj['metadata']['name']}"
    status = obj.get("status") or {}
    if not _generation_seen(obj):
        return Verdict(PROGRESSING, f"{name}: waiting for the controller")
    failed = _pod_failure(pods, name)
    if failed and failed.state == FAILED:
        return failed
    want = status.get("desiredNumberScheduled", 0)
    updated = status.get("updatedNumberScheduled", 0)
    available = status.get("numberAvailable", 0)
    if updated >= want and available >= want:
        note = settling(pods)
        if note is None:
            return Verdict(READY, f"{name}: {available}/{want} ready")
        return Verdict(PROGRESSING, f"{name}: {note}")
    return _progressing(f"{name}: {updated}/{want} updated, {available} available", failed)


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
    if failed and failed.state == FAILED:
        return failed
    return _progressing(f"{name}: {status.get('active', 0)} active, "
                        f"{status.get('succeeded', 0)} succeeded, {status.get('failed', 0)} failed",
                        failed)


def cronjob(obj: dict[str, Any], pods: list[dict[str, Any]]) -> Verdict:
    """A CronJob is healthy once the API accepted it (its runs are Jobs of their own)."""
    return Verdict(READY, f"cronjob/{obj['metadata']['name']}: scheduled "
                   f"{(obj.get('spec') or {}).get('schedule', '')}")


def pod(obj: dict[str, Any], pods: list[dict[str, Any]]) -> Verdict:
    """A bare pod runs to completion (a helm hook Pod, like krane's unmanaged pods):
    ready once it succeeded, failed when it failed or shows a condition that cannot clear."""
    name = f"pod/{obj['metadata']['name']}"
    status = obj.get("status") or {}
    phase = status.get("phase", "Pending")
    if phase == "Succeeded":
        return Verdict(READY, f"{name}: succeeded")
    if phase == "Failed":
        exits = [_last_exit(cs) for cs in status.get("containerStatuses") or []]
        detail = "; ".join(e for e in exits if e) or status.get("reason", "")
        return Verdict(FAILED, f"{name}: failed" + (f": {detail}" if detail else ""),
                       status.get("reason") or "PodFailed", obj["metadata"]["name"])
    failed = _pod_failure([obj], name)
    if failed and failed.state == FAILED:
        return failed
    return _progressing(f"{name}: {phase}", failed)


Rule = Callable[[dict[str, Any], list[dict[str, Any]]], Verdict]
_BY_NAME: dict[kinds.HealthRule, Rule] = {
    "deployment": deployment, "statefulset": statefulset, "daemonset": daemonset,
    "job": job, "cronjob": cronjob, "pod": pod}
# kind -> rule, from the kinds table's ``health`` column
RULES: dict[str, Rule] = {k.name: _BY_NAME[k.health] for k in kinds.TABLE.values()
                          if k.health is not None}


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
