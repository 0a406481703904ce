"""Wait for workloads with watches (no sleeps): ready, failed with evidence, or timed out.

One thread per kind follows the namespace (``KubeClient.follow``: one streaming watch-list
request that sends the current state, then its changes) and feeds a shared cache; every
event re-assesses every workload with ``health.assess``, so success is reported within a
fraction of a second of the last pod becoming ready, and a failure as soon as a pod shows
it. A progress line is logged every few seconds while waiting.

Requests: one per kind watched (the workloads' kinds, their Pods, a Deployment's
ReplicaSets) — 3 for a Deployment — plus one more per watch the server ends after
``watch_timeout_s`` on a long wait; none when every workload is already ready as the caller
read it (``known``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelinelib.errors import PipelineError, TransientError
from pipelinelib.kube import health
from pipelinelib.kube.labels import CONTROLLER_REVISION_HASH
from pipelinelib.kube.labels import DEPLOYMENT_REVISION as REVISION

PROGRESS_EVERY_S = 3.0


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
    """Objects by kind and name, kept current by one watch thread per kind.

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
        self._oom_killed: set[tuple[str, str]] = set()

    def _keep(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        if kind == "Pod":
            obj = health.carry_oom_kills(obj, self._oom_killed)
        return {**obj, "kind": kind}

    def watch(self, kind: str, selector: str | None = None,
              field_selector: str | None = None) -> None:
        """Start keeping ``kind`` current (narrowed by the selectors, when given)."""
        self.objects[kind] = {}
        listed = threading.Event()
        self._listed.append(listed)
        threading.Thread(target=self._run, args=(kind, selector, field_selector, listed),
                         daemon=True, name=f"watch-{kind}").start()

    def wait_listed(self, timeout_s: float = 30) -> None:
        """Block until every started watch has read the state once (its SYNCED: the end of
        the watch-list's initial events, or a list), or given up."""
        deadline = time.monotonic() + timeout_s
        for listed in self._listed:
            listed.wait(max(0.0, deadline - time.monotonic()))

    def _run(self, kind: str, selector: str | None, field_selector: str | None,
             arrived: threading.Event) -> None:
        while not self.stop.is_set():
            try:  # the adapter's iterator reads the state, watches, and reads it again
                #     when a watch expires (410 Gone)
                for etype, obj in self.kube.follow(kind, self.namespace, selector,
                                                   field_selector, stop=self.stop):
                    with self.lock:
                        if etype == "SYNCED":
                            self.objects[kind] = {o["metadata"]["name"]: self._keep(kind, o)
                                                  for o in obj["items"]}
                        elif etype == "DELETED":
                            self.objects[kind].pop(obj["metadata"]["name"], None)
                        else:
                            self.objects[kind][obj["metadata"]["name"]] = self._keep(kind,
                                                                                     obj)
                    self.changed.put(kind)
                    if etype == "SYNCED":
                        arrived.set()
            except PipelineError as exc:
                self.errors.append(exc)
                self.changed.put("error")
                arrived.set()
                return
            except Exception:  # an undecodable answer: list again shortly
                if self.stop.wait(0.2):
                    return

    def watching(self, kind: str) -> bool:
        """True once ``kind`` is being kept current."""
        return kind in self.objects

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
        if not cache.watching("ReplicaSet"):  # see wait_for: every live pod is a candidate
            return [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        revision = workload["metadata"].get("annotations", {}).get(REVISION)
        sets = [rs for rs in cache.snapshot("ReplicaSet") if _owned_by(rs, uid)]
        current = [rs["metadata"]["uid"] for rs in sets
                   if rs["metadata"].get("annotations", {}).get(REVISION) == revision]
        return [p for p in pods if any(_owned_by(p, u) for u in current)]
    owned = [p for p in pods if _owned_by(p, uid)]
    if kind == "StatefulSet":
        update = (workload.get("status") or {}).get("updateRevision")
        return [p for p in owned
                if not update or p["metadata"]["labels"].get(CONTROLLER_REVISION_HASH) == update]
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
             log: Any, min_generation: dict[tuple[str, str], int] | None = None,
             known: Mapping[tuple[str, str], dict[str, Any] | None] | None = None) -> Outcome:
    """Wait until every ``(kind, name)`` is ready, one fails, or ``timeout_s`` passes.

    ``min_generation``: the generations just applied (nothing counts as ready before the
    controllers have seen them). ``known``: the live objects as the caller last read or
    applied them: an unchanged workload ready there costs no request, and their pod
    selector lets the Pod watches start with the workloads' own.
    """
    started = time.monotonic()
    workloads = [w for w in workloads if w[0] in health.RULES]
    if not workloads:
        return Outcome(True, {})
    if _already_ready(kube, namespace, workloads, min_generation, known):
        return Outcome(True, {}, seconds=round(time.monotonic() - started, 3))
    cache = _Cache(kube, namespace)
    for kind in sorted({k for k, _ in workloads}):
        names = [n for k, n in workloads if k == kind]
        cache.watch(kind, field_selector=f"metadata.name={names[0]}" if len(names) == 1 else None)
    if not all((known or {}).get(w) for w in workloads):
        cache.wait_listed()  # their selectors, from the objects themselves
    pods = pod_selector([(known or {}).get((k, n)) or cache.get(k, n) for k, n in workloads])
    if any(k != "Pod" for k, _ in workloads):  # a bare Pod (a hook) is its own evidence
        cache.watch("Pod", pods)
    # A Deployment's ReplicaSets tell which pods are of the new revision; until a pod looks
    # doomed the waiter does without them (the Deployment's status says when it is ready):
    # their watch is one request more, made only to judge a failing pod, or for evidence.
    revisions_unknown = any(k == "Deployment" for k, _ in workloads)

    def learn_revisions() -> None:
        nonlocal revisions_unknown
        if revisions_unknown:
            revisions_unknown = False
            cache.watch("ReplicaSet", pods)
            cache.wait_listed()

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
            if failed and verdicts[failed].pod and revisions_unknown:
                learn_revisions()  # is the doomed pod of the new revision or an old one?
                continue
            now = time.monotonic()
            if failed:
                learn_revisions()  # the evidence names the new revision's pods
                v = verdicts[failed]
                kind, name = next(w for w in workloads if f"{w[0].lower()}/{w[1]}" == failed)
                lines = evidence(kube, namespace, cache, kind, name, v, log)
                message = v.message
                tail = [x.split(": ", 1)[1] for x in lines if x.startswith(f"log {v.pod}: ")
                        and "(no log lines" not in x]
                if v.reason == "CrashLoopBackOff" and tail:
                    message += "; last log lines: " + " | ".join(tail[-3:])
                return Outcome(False, verdicts, failed, message, v.reason, lines,
                               round(now - started, 3))
            if all(v.state == health.READY for v in verdicts.values()):
                return Outcome(True, verdicts, seconds=round(now - started, 3))
            if now >= deadline:
                waiting = [v for v in verdicts.values() if v.state != health.READY]
                ref = next(r for r, v in verdicts.items() if v.state != health.READY)
                learn_revisions()
                lines, probes = timeout_evidence(kube, namespace, cache, workloads, log)
                message = (f"not ready after {timeout_s:.0f}s: " +
                           "; ".join(v.message for v in waiting) +
                           (f"; {probes}" if probes else ""))
                return Outcome(False, verdicts, ref, message, "ReadinessTimeout", lines,
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
                   min_generation: dict[tuple[str, str], int] | None,
                   known: Mapping[tuple[str, str], dict[str, Any] | None] | None) -> bool:
    """True when every workload is ready now: judged on the caller's ``known`` objects,
    else on one GET each (stopping at the first that is not ready)."""
    if min_generation:
        return False  # just applied: the controllers have not seen it yet
    for kind, name in workloads:
        obj = (known or {}).get((kind, name)) or kube.get(kind, name, namespace)
        if obj is None:
            return False
        if health.assess({**obj, "kind": kind}, []).state != health.READY:
            return False
    return True


def pod_evidence(kube: Any, namespace: str, pod: str, container: str | None = None,
                 lines: int = 10) -> list[str]:
    """A pod's recent events and last log lines (best effort)."""
    return _lines(pod_clues(kube, namespace, pod, container, lines))


def pod_clues(kube: Any, namespace: str, pod: str, container: str | None = None,
              lines: int = 10, crashed: bool = False) -> dict[str, Any]:
    """A pod's recent events and last log lines as data: ``{"pod", "events", "logs"}``;
    for a ``crashed`` container the log of its terminated run comes first."""
    clues: dict[str, Any] = {"pod": pod, "events": [], "logs": []}
    try:
        for e in telling_events(kube.events(namespace, pod, "Pod", limit=50)):
            clues["events"].append(f"{e.get('type', '')} {e.get('reason', '')}: "
                                   f"{e.get('message', '')}".strip())
    except PipelineError as exc:
        clues["events_error"] = exc.message
    for previous in ((True, False) if crashed else (False, True)):
        try:
            clues["logs"] = kube.pod_logs(pod, namespace, container, tail=lines,
                                          previous=previous)
        except (PipelineError, TransientError):  # e.g. the pod's node does not answer
            clues["logs"] = []
        if clues["logs"]:
            break
    return clues


def telling_events(events: list[dict[str, Any]], limit: int = 8) -> list[dict[str, Any]]:
    """The events that explain a failure, oldest first: the newest ``limit`` Warnings (a
    probe's failure, a pull's refusal), then the newest Normal ones while room is left —
    a crash loop's Created/Started/Pulled churn must not push the one Warning out."""
    warnings = [e for e in events if e.get("type") == "Warning"][-limit:]
    room = limit - len(warnings)
    normal = [e for e in events if e.get("type") != "Warning"][-room:] if room > 0 else []
    chosen = {id(e) for e in warnings + normal}
    return [e for e in events if id(e) in chosen]


def _lines(clues: dict[str, Any]) -> list[str]:
    pod = clues["pod"]
    out = [f"event {pod}: {e}" for e in clues["events"]]
    if "events_error" in clues:
        out.append(f"events of {pod} unavailable: {clues['events_error']}")
    if clues["logs"]:
        out.extend(f"log {pod}: {line}" for line in clues["logs"])
    else:
        out.append(f"log {pod}: (no log lines available from the node)")
    return out


def _pod_conditions(pod: dict[str, Any] | None) -> list[str]:
    return [f"{c.get('type')}={c.get('status')}" +
            (f" {c.get('reason')}" if c.get("reason") else "") +
            (f": {c.get('message')}" if c.get("message") else "")
            for c in ((pod or {}).get("status") or {}).get("conditions") or []]


def log_evidence(log: Any, workload: str, reason: str, message: str,
                 conditions: list[str], clues: list[dict[str, Any]],
                 events: list[str] | None = None) -> None:
    """The failure's evidence to the console (one readable line each) and the JSON log
    (structured fields: conditions, events, log tail), not only to the report directory."""
    log.error("failure", workload=workload, reason=reason, message=message)
    for line in conditions:
        log.error("evidence", workload=workload, condition=line)
    for line in events or []:
        log.error("evidence", workload=workload, k8s_event=line)
    for c in clues:
        if c.get("summary"):
            log.error("evidence", pod=c["pod"], status=c["summary"])
        for line in c.get("pod_conditions", []):
            log.error("evidence", pod=c["pod"], condition=line)
        for event in c["events"]:
            log.error("evidence", pod=c["pod"], k8s_event=event)
        for line in c["logs"]:
            log.error("evidence", pod=c["pod"], log_line=line)


def pod_summary(pod: dict[str, Any]) -> str:
    """``pod NAME: PHASE; container C: exit N (REASON)`` for each container that ended."""
    status = pod.get("status") or {}
    parts = [f"pod {pod['metadata']['name']}: {status.get('phase', '?')}"]
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses")
                                                             or []):
        term = (cs.get("state") or {}).get("terminated") or {}
        if term:
            parts.append(f"container {cs.get('name')}: exit {term.get('exitCode')} "
                         f"({term.get('reason', 'Error')})" +
                         (f" {term['message']}" if term.get("message") else ""))
    return "; ".join(parts)


def workload_events(kube: Any, namespace: str, kind: str, name: str) -> list[str]:
    """The workload's own recent events (a Job's BackoffLimitExceeded, a quota refusal)."""
    try:
        return [f"event {kind} {name}: {e.get('type', '')} {e.get('reason', '')}: "
                f"{e.get('message', '')}"
                for e in telling_events(kube.events(namespace, name, kind, limit=50))]
    except PipelineError as exc:
        return [f"events of {kind} {name} unavailable: {exc.message}"]


def evidence(kube: Any, namespace: str, cache: _Cache, kind: str, name: str,
             verdict: health.Verdict, log: Any = None) -> list[str]:
    """Why a workload failed: its conditions and events, then the pod at fault (its phase
    and exit codes, conditions, events and log tail); to ``log`` as well when given."""
    out = [f"reason {verdict.reason}: {verdict.message}"]
    obj = cache.get(kind, name)
    conditions = [f"{cond.get('type')}={cond.get('status')} "
                  f"{cond.get('reason', '')}: {cond.get('message', '')}"
                  for cond in ((obj or {}).get("status") or {}).get("conditions") or []]
    out.extend(f"condition {c}" for c in conditions)
    events = workload_events(kube, namespace, kind, name)
    out.extend(events)
    clues = []
    pod_name = verdict.pod
    if pod_name is None and obj is not None and kind != "Pod":
        failed = [p for p in current_pods(cache, obj)
                  if (p.get("status") or {}).get("phase") == "Failed"]
        pod_name = failed[0]["metadata"]["name"] if failed else None
    if pod_name:
        pod = obj if kind == "Pod" else cache.get("Pod", pod_name)
        c = pod_clues(kube, namespace, pod_name, verdict.container,
                      crashed=verdict.reason == "CrashLoopBackOff")
        if pod is not None:
            c["summary"] = pod_summary(pod)
            out.append(c["summary"])
        c["pod_conditions"] = _pod_conditions(pod)
        out.extend(f"pod condition {pod_name}: {line}" for line in c["pod_conditions"])
        out.extend(_lines(c))
        clues.append(c)
    if log is not None:
        log_evidence(log, f"{kind.lower()}/{name}", verdict.reason, verdict.message,
                     conditions, clues, [e.split(": ", 1)[1] for e in events if ": " in e])
    return out


def probe_text(probe: dict[str, Any]) -> str:
    """A probe as a short phrase: ``httpGet :8080/healthz``, ``exec [cat /tmp/ok]``..."""
    if "httpGet" in probe:
        h = probe["httpGet"]
        return f"httpGet {h.get('scheme', 'HTTP').lower()}://:{h.get('port')}{h.get('path', '/')}"
    if "tcpSocket" in probe:
        return f"tcpSocket :{probe['tcpSocket'].get('port')}"
    if "grpc" in probe:
        return f"grpc :{probe['grpc'].get('port')}"
    if "exec" in probe:
        return f"exec {probe['exec'].get('command')}"
    return "probe"


def unready_probes(pod: dict[str, Any], events: list[str]) -> str:
    """Which readiness probes keep a running pod unready, and their last failure."""
    statuses = {cs.get("name"): cs for cs in (pod.get("status") or {}).get("containerStatuses")
                or []}
    parts = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        cs = statuses.get(c.get("name")) or {}
        if cs.get("ready") or "running" not in (cs.get("state") or {}):
            continue
        probe = c.get("readinessProbe")
        if probe:
            parts.append(f"container {c['name']}: readiness probe {probe_text(probe)} never "
                         "passed")
    failures = [e.split(": ", 1)[-1] for e in events if "Unhealthy" in e and "Readiness" in e]
    if parts and failures:
        parts[-1] += f"; last failure: {failures[-1]}"
    return "; ".join(parts)


def timeout_evidence(kube: Any, namespace: str, cache: _Cache,
                     workloads: list[tuple[str, str]], log: Any = None) -> tuple[list[str], str]:
    """Evidence for a readiness timeout, and a note naming the probes that never passed."""
    out: list[str] = []
    notes: list[str] = []
    clues_all = []
    for kind, name in workloads:
        obj = cache.get(kind, name)
        if obj is None:
            continue
        for pod in current_pods(cache, obj):
            if health.pod_ready(pod) or len(out) > 20:
                continue
            pname = pod["metadata"]["name"]
            conds = [f"{c.get('type')}={c.get('status')}" for c in
                     (pod.get("status") or {}).get("conditions") or []]
            where = pod.get("spec", {}).get("nodeName")
            out.append(f"pod {pname} not ready" + (f" on node {where}" if where else "") +
                       f": phase {pod.get('status', {}).get('phase')}, " + ", ".join(conds))
            clues = pod_clues(kube, namespace, pname, lines=5)
            clues["pod_conditions"] = _pod_conditions(pod)
            clues_all.append(clues)
            out.extend(_lines(clues))
            note = unready_probes(pod, clues["events"])
            if note and note not in notes:
                notes.append(f"pod {pname} {note}")
    if log is not None and clues_all:
        log_evidence(log, ", ".join(f"{k.lower()}/{n}" for k, n in workloads),
                     "ReadinessTimeout", "; ".join(notes), [], clues_all)
    return out, "; ".join(notes[:2])
