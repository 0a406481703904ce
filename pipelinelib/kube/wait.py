"""Wait for workloads with watches (no sleeps): ready, failed with evidence, or timed out.

One thread per kind lists then watches the namespace and feeds a shared cache; every
event re-assesses every workload with ``health.assess``, so success is reported within a
fraction of a second of the last pod becoming ready, and a failure as soon as a pod shows
it. A progress line is logged every few seconds while waiting.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pipelinelib.adapters.kube import WatchExpired
from pipelinelib.errors import PipelineError
from pipelinelib.kube import health

PROGRESS_EVERY_S = 3.0
REVISION = "deployment.kubernetes.io/revision"


@dataclass
class Outcome:
    """How a wait ended: ``ok``, the verdicts by workload, and the evidence of a failure."""

    ok: bool
    verdicts: dict[str, health.Verdict]
    failed: str | None = None
    message: str = ""
    reason: str = ""
    evidence: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Cache:
    """Objects by kind and name, kept current by one list+watch thread per kind.

    Each kind's watch may be narrowed by a label and a field selector, so a rollout in a
    namespace shared with many apps receives (and decodes) only the events of its own
    workloads and their pods.
    """

    def __init__(self, kube: Any, namespace: str):
        self.kube, self.namespace = kube, namespace
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self.changed: queue.Queue[str] = queue.Queue()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self._listed: list[threading.Event] = []

    def watch(self, kind: str, selector: str | None = None,
              field_selector: str | None = None) -> None:
        """Start keeping ``kind`` current (narrowed by the selectors, when given)."""
        self.objects[kind] = {}
        listed = threading.Event()
        self._listed.append(listed)
        threading.Thread(target=self._run, args=(kind, selector, field_selector, listed),
                         daemon=True, name=f"watch-{kind}").start()

    def wait_listed(self, timeout_s: float = 30) -> None:
        """Block until every started watch has listed once (or given up)."""
        deadline = time.monotonic() + timeout_s
        for listed in self._listed:
            listed.wait(max(0.0, deadline - time.monotonic()))

    def _run(self, kind: str, selector: str | None, field_selector: str | None,
             arrived: threading.Event) -> None:
        while not self.stop.is_set():
            try:
                listed = self.kube.list(kind, self.namespace, selector=selector,
                                        field_selector=field_selector)
                with self.lock:
                    self.objects[kind] = {o["metadata"]["name"]: {**o, "kind": kind}
                                          for o in listed["items"]}
                self.changed.put(kind)
                arrived.set()
                version = listed["metadata"]["resourceVersion"]
                while not self.stop.is_set():
                    for etype, obj in self.kube.watch(kind, self.namespace, version, selector,
                                                      field_selector, timeout_s=15):
                        version = obj["metadata"].get("resourceVersion", version)
                        if etype == "BOOKMARK":
                            continue
                        with self.lock:
                            if etype == "DELETED":
                                self.objects[kind].pop(obj["metadata"]["name"], None)
                            else:
                                self.objects[kind][obj["metadata"]["name"]] = {**obj,
                                                                               "kind": kind}
                        self.changed.put(kind)
                        if self.stop.is_set():
                            return
            except WatchExpired:
                continue
            except PipelineError as exc:
                self.errors.append(exc)
                self.changed.put("error")
                arrived.set()
                return
            except Exception:  # a dropped connection: list again shortly
                if self.stop.wait(0.2):
                    return

    def snapshot(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.objects.get(kind, {}).values())

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self.objects.get(kind, {}).get(name)


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def current_pods(cache: _Cache, workload: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods of a workload's current revision."""
    uid, kind = workload["metadata"]["uid"], workload["kind"]
    pods = cache.snapshot("Pod")
    if kind == "Deployment":
        revision = workload["metadata"].get("annotations", {}).get(REVISION)
        sets = [rs for rs in cache.snapshot("ReplicaSet") if _owned_by(rs, uid)]
        current = [rs["metadata"]["uid"] for rs in sets
                   if rs["metadata"].get("annotations", {}).get(REVISION) == revision]
        return [p for p in pods if any(_owned_by(p, u) for u in current)]
    owned = [p for p in pods if _owned_by(p, uid)]
    if kind == "StatefulSet":
        update = (workload.get("status") or {}).get("updateRevision")
        return [p for p in owned
                if not update or p["metadata"]["labels"].get("controller-revision-hash") == update]
    return owned


def pod_selector(workloads: list[dict[str, Any] | None]) -> str | None:
    """The label selector of the workloads' pods when they share one, else None (all pods).

    A Deployment's, StatefulSet's or DaemonSet's ``spec.selector``, or a Job's generated one;
    a CronJob has none, and a workload not seen yet gives no selector either.
    """
    found = set()
    for obj in workloads:
        selector = ((obj or {}).get("spec") or {}).get("selector")
        if not isinstance(selector, dict):
            return None
        found.add(label_selector(selector))
    return found.pop() if len(found) == 1 and "" not in found else None


def label_selector(selector: dict[str, Any]) -> str:
    """A LabelSelector object as the ``labelSelector`` query string."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], ",".join(expr.get("values") or [])
        terms.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[op])
    return ",".join(terms)


def wait_for(kube: Any, namespace: str, workloads: list[tuple[str, str]], timeout_s: float,
             log: Any, min_generation: dict[tuple[str, str], int] | None = None) -> Outcome:
    """Wait until every ``(kind, name)`` is ready, one fails, or ``timeout_s`` passes."""
    started = time.monotonic()
    workloads = [w for w in workloads if w[0] in health.RULES]
    if not workloads:
        return Outcome(True, {})
    if _already_ready(kube, namespace, workloads, min_generation):
        return Outcome(True, {}, seconds=round(time.monotonic() - started, 3))
    cache = _Cache(kube, namespace)
    for kind in sorted({k for k, _ in workloads}):
        names = [n for k, n in workloads if k == kind]
        cache.watch(kind, field_selector=f"metadata.name={names[0]}" if len(names) == 1 else None)
    cache.wait_listed()
    pods = pod_selector([cache.get(k, n) for k, n in workloads])
    cache.watch("Pod", pods)
    if any(k == "Deployment" for k, _ in workloads):
        cache.watch("ReplicaSet", pods)
    cache.wait_listed()
    deadline = started + timeout_s
    last_progress, _last_line = 0.0, ""
    verdicts: dict[str, health.Verdict] = {}
    try:
        while True:
            if cache.errors:
                raise cache.errors[0]
            verdicts = {}
            for kind, name in workloads:
                obj = cache.get(kind, name)
                ref = f"{kind.lower()}/{name}"
                if obj is None:
                    verdicts[ref] = health.Verdict(health.PROGRESSING, f"{ref}: not seen yet")
                    continue
                gen = (min_generation or {}).get((kind, name), 0)
                if obj["metadata"].get("generation", 0) < gen:
                    verdicts[ref] = health.Verdict(health.PROGRESSING, f"{ref}: catching up")
                    continue
                verdicts[ref] = health.assess(obj, current_pods(cache, obj))
            failed = next((r for r, v in verdicts.items() if v.state == health.FAILED), None)
            now = time.monotonic()
            if failed:
                v = verdicts[failed]
                kind, name = next(w for w in workloads if f"{w[0].lower()}/{w[1]}" == failed)
                return Outcome(False, verdicts, failed, v.message, v.reason,
                               evidence(kube, namespace, cache, kind, name, v),
                               round(now - started, 3))
            if all(v.state == health.READY for v in verdicts.values()):
                return Outcome(True, verdicts, seconds=round(now - started, 3))
            if now >= deadline:
                waiting = [v for v in verdicts.values() if v.state != health.READY]
                ref = next(r for r, v in verdicts.items() if v.state != health.READY)
                message = (f"not ready after {timeout_s:.0f}s: " +
                           "; ".join(v.message for v in waiting))
                return Outcome(False, verdicts, ref, message, "ReadinessTimeout",
                               timeout_evidence(kube, namespace, cache, workloads),
                               round(now - started, 3))
            line = "; ".join(v.message for v in verdicts.values() if v.state != health.READY)
            if now - last_progress >= PROGRESS_EVERY_S:
                log.info("waiting", progress=line, elapsed_s=round(now - started, 1))
                last_progress = now
            try:
                cache.changed.get(timeout=max(0.05, min(1.0, deadline - now)))
                while True:  # drain a burst of events before assessing again
                    cache.changed.get_nowait()
            except queue.Empty:
                pass
    finally:
        cache.stop.set()


def _already_ready(kube: Any, namespace: str, workloads: list[tuple[str, str]],
                   min_generation: dict[tuple[str, str], int] | None) -> bool:
    """A cheap read-only pass (one GET each): True when every workload is ready now."""
    if min_generation:
        return False  # just applied: the controllers have not seen it yet
    for kind, name in workloads:
        obj = kube.get(kind, name, namespace)
        if obj is None:
            return False
        obj["kind"] = kind
        if health.assess(obj, []).state != health.READY:
            return False
    return True


def pod_evidence(kube: Any, namespace: str, pod: str, container: str | None = None,
                 lines: int = 10) -> list[str]:
    """A pod's recent events and last log lines (best effort)."""
    out = []
    try:
        for e in kube.events(namespace, pod, "Pod", limit=6):
            out.append(f"event {pod}: {e.get('type', '')} {e.get('reason', '')}: "
                       f"{e.get('message', '')}".strip())
    except PipelineError as exc:
        out.append(f"events of {pod} unavailable: {exc.message}")
    try:
        logs = kube.pod_logs(pod, namespace, container, tail=lines)
    except PipelineError:
        logs = []
    if logs:
        out.extend(f"log {pod}: {line}" for line in logs)
    else:
        out.append(f"log {pod}: (no log lines available from the node)")
    return out


def evidence(kube: Any, namespace: str, cache: _Cache, kind: str, name: str,
             verdict: health.Verdict) -> list[str]:
    out = [f"reason {verdict.reason}: {verdict.message}"]
    obj = cache.get(kind, name)
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        out.append(f"condition {cond.get('type')}={cond.get('status')} "
                   f"{cond.get('reason', '')}: {cond.get('message', '')}")
    if verdict.pod:
        out.extend(pod_evidence(kube, namespace, verdict.pod, verdict.container))
    return out


def timeout_evidence(kube: Any, namespace: str, cache: _Cache,
                     workloads: list[tuple[str, str]]) -> list[str]:
    out: list[str] = []
    for kind, name in workloads:
        obj = cache.get(kind, name)
        if obj is None:
            continue
        for pod in current_pods(cache, obj):
            if health.pod_ready(pod):
                continue
            pname = pod["metadata"]["name"]
            conds = [f"{c.get('type')}={c.get('status')}" for c in
                     (pod.get("status") or {}).get("conditions") or []]
            out.append(f"pod {pname} not ready: phase {pod.get('status', {}).get('phase')}, "
                       + ", ".join(conds))
            out.extend(pod_evidence(kube, namespace, pname, lines=5))
            if len(out) > 20:
                return out
    return out
