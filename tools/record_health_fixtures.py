"""Record the health-rule fixtures (tests/fixtures/health/<case>.yaml) from the testbed.

Each case is applied to a fresh namespace of the testbed's cluster (pods on the real node
run in containerd; ``kwok`` cases on the kwok nodes), awaited until the state it shows is
reached, then read back with ``kubectl get -o json`` (written as YAML): the workload
first, then its pods (by the workload's selector). ``managedFields`` are stripped;
nothing else is changed.
The namespace is deleted at the end.

    source /tmp/pipelinelib-testbed.env
    python tools/record_health_fixtures.py [CASE ...]    # all cases when none is named

Cases and the verdicts they must give are listed in tests/test_kube_health_fixtures.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "health"
NODE_LABEL = "pipelinelib.dev/real-node"
UNKNOWN_DIGEST = "sha256:" + "0" * 63 + "1"
Obj = dict[str, Any]


def kubectl(*args: str, stdin: str | None = None) -> str:
    binary = str(Path(os.environ["PIPELINELIB_KUBE_BIN"]) / "kubectl")
    done = subprocess.run([binary, "--request-timeout=20s", *args], input=stdin,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def busybox(*script: str) -> list[str]:
    """The testbed's pause image is a static busybox: run its shell."""
    return ["/busybox", "sh", "-c", "; ".join(script)]


def pod_spec(command: list[str], *, image: str | None = None, kwok: bool = False,
             **container: Any) -> Obj:
    spec: Obj = {"containers": [{"name": "main", "image": image or os.environ[
        "PIPELINELIB_PAUSE_IMAGE"], "command": command, **container}],
        "terminationGracePeriodSeconds": 1}
    if kwok:
        spec["nodeSelector"] = {"type": "kwok"}
    else:
        spec["nodeSelector"] = {NODE_LABEL: "true"}
        spec["tolerations"] = [{"key": NODE_LABEL, "operator": "Exists",
                                "effect": "NoSchedule"}]
    return spec


def deployment(name: str, spec: Obj, replicas: int = 1, progress_deadline: int = 600) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": progress_deadline,
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def job(name: str, spec: Obj) -> Obj:
    spec = {**spec, "restartPolicy": "Never"}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": spec}}}


def pod(name: str, spec: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {**spec, "restartPolicy": "Never"}}


SERVE = busybox("mkdir -p /w", "echo ok > /w/index.html", "exec /busybox httpd -f -p 8080 -h /w")
PROBE = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}


def waiting(reason: str, restarts: int = 0) -> Callable[[Obj, list[Obj]], bool]:
    def check(_obj: Obj, pods: list[Obj]) -> bool:
        return any(((cs.get("state") or {}).get("waiting") or {}).get("reason") == reason
                   and cs.get("restartCount", 0) >= restarts
                   for p in pods for cs in (p.get("status") or {}).get("containerStatuses") or [])
    return check


def condition(ctype: str, reason: str | None = None,
              status: str = "True") -> Callable[[Obj, list[Obj]], bool]:
    def check(obj: Obj, _pods: list[Obj]) -> bool:
        return any(c.get("type") == ctype and c.get("status") == status and
                   (reason is None or c.get("reason") == reason)
                   for c in (obj.get("status") or {}).get("conditions") or [])
    return check


def available(obj: Obj, _pods: list[Obj]) -> bool:
    status = obj.get("status") or {}
    want = (obj.get("spec") or {}).get("replicas", 1)
    return bool(status.get("availableReplicas", 0) >= want and
                status.get("updatedReplicas", 0) >= want and
                status.get("observedGeneration", 0) >= obj["metadata"]["generation"])


def running_unready(obj: Obj, pods: list[Obj]) -> bool:
    return bool(pods) and all((p.get("status") or {}).get("phase") == "Running" for p in pods)


def unschedulable(_obj: Obj, pods: list[Obj]) -> bool:
    return any(c.get("reason") == "Unschedulable" for p in pods
               for c in (p.get("status") or {}).get("conditions") or [])


def phase(value: str) -> Callable[[Obj, list[Obj]], bool]:
    return lambda obj, _pods: (obj.get("status") or {}).get("phase") == value


def statefulset_ready(obj: Obj, _pods: list[Obj]) -> bool:
    status = obj.get("status") or {}
    return bool(status.get("readyReplicas", 0) >= obj["spec"]["replicas"] and
                status.get("currentRevision") == status.get("updateRevision"))


def daemonset_ready(obj: Obj, _pods: list[Obj]) -> bool:
    status = obj.get("status") or {}
    want = status.get("desiredNumberScheduled", 0)
    return bool(want and status.get("numberAvailable", 0) >= want and
                status.get("observedGeneration", 0) >= obj["metadata"]["generation"])


def cases() -> dict[str, tuple[list[Obj], Callable[[Obj, list[Obj]], bool], str]]:
    """case -> (objects to apply (the first is recorded), when it is reached, what it shows)."""
    auth_registry = os.environ["PIPELINELIB_AUTH_REGISTRY"]
    pause = os.environ["PIPELINELIB_PAUSE_IMAGE"]
    repo = pause.rsplit(":", 1)[0]
    return {
        "deployment-ready": (
            [deployment("web", pod_spec(SERVE, readinessProbe=PROBE))], available,
            "real node: busybox httpd behind a passing readiness probe"),
        "deployment-crashloopbackoff": (
            [deployment("crash", pod_spec(busybox("echo starting",
                                                  "echo 'fatal: cannot open /data/db' >&2",
                                                  "exit 3")))],
            waiting("CrashLoopBackOff", 2), "real node: the container exits 3 at once"),
        "deployment-oomkilled": (
            [deployment("hog", pod_spec(
                busybox("echo allocating 64 MiB", "exec /busybox dd if=/dev/zero "
                        "of=/dev/null bs=64M"),
                resources={"limits": {"memory": "16Mi"}, "requests": {"memory": "16Mi"}}))],
            waiting("CrashLoopBackOff", 2), "real node: dd over a 16Mi memory limit"),
        "deployment-imagepullbackoff-not-found": (
            [deployment("nodigest", pod_spec(SERVE, image=f"{repo}@{UNKNOWN_DIGEST}"))],
            waiting("ImagePullBackOff"), "real node: a digest the registry does not hold"),
        "deployment-errimagepull-unauthorized": (
            [deployment("noauth", pod_spec(SERVE, image=f"{auth_registry}/health/none:1"))],
            lambda o, p: waiting("ErrImagePull")(o, p) or waiting("ImagePullBackOff")(o, p),
            "real node: the htpasswd registry without a pull secret"),
        "deployment-createcontainerconfigerror": (
            [deployment("noconfig", pod_spec(SERVE, env=[{"name": "X", "valueFrom": {
                "configMapKeyRef": {"name": "absent", "key": "x"}}}]))],
            waiting("CreateContainerConfigError"), "real node: env from a missing ConfigMap"),
        "deployment-readiness-probe-failing": (
            [deployment("unready", pod_spec(busybox("exec /busybox sleep 3600"),
                                            readinessProbe=PROBE))],
            running_unready, "real node: nothing listens on the probed port"),
        "deployment-progress-deadline-exceeded": (
            [deployment("deadline", pod_spec(busybox("exec /busybox sleep 3600"),
                                             readinessProbe=PROBE), progress_deadline=5)],
            condition("Progressing", "ProgressDeadlineExceeded", "False"),
            "real node: an unready pod past progressDeadlineSeconds 5"),
        "deployment-kwok-ready": (
            [deployment("kwokweb", pod_spec(["serve"], image="registry.invalid/app:1",
                                            kwok=True), replicas=3)], available,
            "kwok nodes: three replicas the kwok stages run"),
        "statefulset-pending-pvc": (
            [{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
              "spec": {"replicas": 1, "serviceName": "db",
                       "selector": {"matchLabels": {"app": "db"}},
                       "template": {"metadata": {"labels": {"app": "db"}},
                                    "spec": {**pod_spec(busybox("exec /busybox sleep 3600")),
                                             "containers": [{
                                                 "name": "main", "image": pause,
                                                 "command": busybox("exec /busybox sleep 3600"),
                                                 "volumeMounts": [{"name": "data",
                                                                   "mountPath": "/data"}]}]}},
                       "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                           "accessModes": ["ReadWriteOnce"], "storageClassName": "none",
                           "resources": {"requests": {"storage": "1Gi"}}}}]}}],
            unschedulable, "real node: a PVC no provisioner binds"),
        "statefulset-kwok-ready": (
            [{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "kv"},
              "spec": {"replicas": 2, "serviceName": "kv",
                       "selector": {"matchLabels": {"app": "kv"}},
                       "template": {"metadata": {"labels": {"app": "kv"}},
                                    "spec": pod_spec(["serve"], image="registry.invalid/kv:1",
                                                     kwok=True)}}}],
            statefulset_ready, "kwok nodes: two replicas"),
        "daemonset-kwok-ready": (
            [{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
              "spec": {"selector": {"matchLabels": {"app": "agent"}},
                       "template": {"metadata": {"labels": {"app": "agent"}},
                                    "spec": pod_spec(["agent"], image="registry.invalid/agent:1",
                                                     kwok=True)}}}],
            daemonset_ready, "kwok nodes: one pod on each"),
        "job-succeeded": (
            [job("migrate", pod_spec(busybox("echo migrated")))], condition("Complete"),
            "real node: a command that exits 0"),
        "job-failed": (
            [job("migrate-fails", pod_spec(busybox("echo 'relation users does not exist' >&2",
                                                   "exit 1")))],
            condition("Failed"), "real node: a command that exits 1, backoffLimit 0"),
        "pod-succeeded": (
            [pod("hook-ok", pod_spec(busybox("echo done")))], phase("Succeeded"),
            "real node: a bare pod (a helm hook) that exits 0"),
        "pod-failed": (
            [pod("hook-fails", pod_spec(busybox("echo failing >&2", "exit 2")))],
            phase("Failed"), "real node: a bare pod (a helm hook) that exits 2"),
    }


def strip(obj: Obj) -> Obj:
    obj.get("metadata", {}).pop("managedFields", None)
    return obj


def selector_of(obj: Obj) -> str | None:
    sel = (obj.get("spec") or {}).get("selector")
    if obj["kind"] == "Pod" or not isinstance(sel, dict):
        return None
    return ",".join(f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items()))


def read(namespace: str, obj: Obj) -> tuple[Obj, list[Obj]]:
    live = json.loads(kubectl("-n", namespace, "get", obj["kind"].lower(),
                              obj["metadata"]["name"], "-o", "json"))
    selector = selector_of(live)
    pods = [] if selector is None else json.loads(kubectl(
        "-n", namespace, "get", "pods", "-l", selector, "-o", "json"))["items"]
    return live, pods


def record(names: list[str]) -> None:
    table = cases()
    unknown = [n for n in names if n not in table]
    if unknown:
        sys.exit(f"unknown cases {unknown}; known: {sorted(table)}")
    namespace = f"health-fixtures-{int(time.time())}"
    version = json.loads(kubectl("version", "-o", "json"))["serverVersion"]["gitVersion"]
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    runtimes = sorted({n["status"]["nodeInfo"]["containerRuntimeVersion"] for n in nodes})
    kubectl("create", "namespace", namespace)
    try:
        todo = {n: table[n] for n in names or sorted(table)}
        for objects, _, _ in todo.values():
            for obj in objects:
                kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(obj))
        deadline = time.monotonic() + 300
        while todo and time.monotonic() < deadline:
            for name, (objects, reached, what) in list(todo.items()):
                live, pods = read(namespace, objects[0])
                if not reached(live, pods):
                    continue
                time.sleep(0.5)  # let the status settle on what it shows
                live, pods = read(namespace, objects[0])
                header = [f"# Recorded from the testbed (tools/record_health_fixtures.py {name}):",
                          f"# {what}.",
                          f"# kube-apiserver {version}; node runtimes {', '.join(runtimes)};",
                          f"# {time.strftime('%Y-%m-%d', time.gmtime())}. `kubectl get -o json` "
                          "of the workload, then of its pods (by its selector), as YAML;",
                          "# metadata.managedFields stripped, nothing else changed."]
                docs = [strip(live), *(strip(p) for p in pods)]
                text = "\n".join(header) + "\n" + yaml.safe_dump_all(docs, sort_keys=False)
                OUT.mkdir(parents=True, exist_ok=True)
                (OUT / f"{name}.yaml").write_text(text, encoding="utf-8")
                print(f"recorded {name}", flush=True)
                del todo[name]
            time.sleep(1)
        if todo:
            sys.exit(f"not reached within 300 s: {sorted(todo)}")
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")


if __name__ == "__main__":
    record(sys.argv[1:])
