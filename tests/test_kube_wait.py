"""The rollout's waits watch only their own workloads and pods (real control plane)."""

from __future__ import annotations

import dataclasses
import json
import random
import threading

import pytest

from pipelinelib.adapters.kube import KubeClient
from pipelinelib.errors import StepFailed
from pipelinelib.kube import health
from pipelinelib.kube.wait import label_selector, pod_selector
from pipelinelib.steps.rollout import rollout
from tests.helpers.cli import run_pipeline
from tests.helpers.manifests import PLANTED, image, web, write
from tests.helpers.wait import wait_until


class WatchRecorder(KubeClient):
    """The real client, noting the selectors of every list and watch it sends."""

    seen: list[tuple[str, str, str | None, str | None]]

    def list(self, kind, namespace=None, selector=None, field_selector=None, api_version=None):
        self.seen.append(("list", kind, selector, field_selector))
        return super().list(kind, namespace, selector, field_selector, api_version)

    def watch(self, kind, namespace, resource_version, selector=None, field_selector=None,
              timeout_s=60):
        self.seen.append(("watch", kind, selector, field_selector))
        return super().watch(kind, namespace, resource_version, selector, field_selector,
                             timeout_s)

    def watch_list(self, kind, namespace, selector=None, field_selector=None, timeout_s=60):
        self.seen.append(("watch", kind, selector, field_selector))  # a watch, state first
        return super().watch_list(kind, namespace, selector, field_selector, timeout_s)


def test_label_selector_renders_match_labels_and_every_expression_operator():
    assert label_selector({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web", "api"]},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "canary", "operator": "DoesNotExist"},
        {"key": "team", "operator": "Exists"}]}) == \
        "a=1,b=2,tier in (web,api),env notin (dev),!canary,team"


def test_pod_selector_only_when_every_workload_shares_one():
    web_sel = {"spec": {"selector": {"matchLabels": {"app": "web"}}}}
    api_sel = {"spec": {"selector": {"matchLabels": {"app": "api"}}}}
    assert pod_selector([web_sel, web_sel]) == "app=web"
    assert pod_selector([web_sel, api_sel]) is None, "two selectors: watch every pod"
    assert pod_selector([web_sel, None]) is None, "a workload not seen yet"
    assert pod_selector([{"kind": "CronJob", "spec": {}}]) is None
    assert pod_selector([{"spec": {"selector": {}}}]) is None, "an empty selector selects all"


def test_a_rollout_in_a_shared_namespace_watches_only_its_own_objects(cluster):
    ns = cluster.namespace()
    assert rollout(cluster.ctx("api"), web(1, name="api"), app="api", namespace=ns,
                   timeout=60).changed
    kube = WatchRecorder.from_kubeconfig(cluster.deployer_kubeconfig)
    kube.seen = []
    ctx = dataclasses.replace(cluster.ctx("web"), adapters={"kube": kube})
    result = rollout(ctx, web(2), app="web", namespace=ns, timeout=60)
    assert result.changed and result.outputs["seconds_to_ready"] >= 0
    watched = {(kind, sel, field) for verb, kind, sel, field in kube.seen if verb == "watch"}
    assert ("Deployment", None, "metadata.name=web") in watched
    assert ("Pod", "app=web", None) in watched
    # a healthy update needs no ReplicaSets: the Deployment's status says when it is ready
    assert not any(kind == "ReplicaSet" for kind, _, _ in watched), watched
    assert all(sel or field for _, sel, field in watched), f"an unfiltered watch: {watched}"


def test_an_update_that_fixes_a_crash_loop_is_not_failed_by_the_old_revisions_pods(cluster):
    """The waiter judges a doomed-looking pod only once it knows the revisions (their
    ReplicaSets, watched then): the old revision's crash-looping pods are not the update's."""
    ns = cluster.namespace()
    with pytest.raises(StepFailed) as crashed:
        rollout(cluster.ctx("web"), web(1, behavior="crash"), app="web", namespace=ns,
                timeout=60, rollback_on_failure=False)
    assert "CrashLoopBackOff" in crashed.value.one_line()
    kube = WatchRecorder.from_kubeconfig(cluster.deployer_kubeconfig)
    kube.seen = []
    ctx = dataclasses.replace(cluster.ctx("web"), adapters={"kube": kube})
    result = rollout(ctx, web(2), app="web", namespace=ns, timeout=60)
    assert result.changed
    pods = cluster.json("-n", ns, "get", "pods", "-l", "app=web")["items"]
    assert pods and all(not (p["status"].get("containerStatuses") or [{}])[0].get(
        "restartCount") for p in pods if not p["metadata"].get("deletionTimestamp")), pods


# --- doom vs. delay: conditions that clear by themselves wait within the deadline ---------

def _watch_pods_for(cluster, ns: str, text: str, stop: threading.Event, seen: list[str]) -> None:
    """Note every pod condition or event message containing ``text`` until ``stop``."""
    while not stop.is_set():
        pods = cluster.json("-n", ns, "get", "pods")["items"]
        for p in pods:
            for c in (p.get("status") or {}).get("conditions") or []:
                if text in (c.get("message") or ""):
                    seen.append(c["message"])
        stop.wait(0.2)


def test_a_statefulset_whose_pvc_binds_after_its_pod_is_created_waits_and_succeeds(cluster):
    ns = cluster.namespace()
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"replicas": 1, "serviceName": "db",
                    "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                        "nodeSelector": {"type": "kwok"},
                        "containers": [{"name": "db", "image": image(1)}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                        "resources": {"requests": {"storage": "1Gi"}}}}]}}
    pv = f"pv-{ns}"
    seen: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_pods_for,
                               args=(cluster, ns, "unbound immediate PersistentVolumeClaims",
                                     stop, seen))
    outcome: dict = {}

    def deploy():
        try:
            outcome["result"] = rollout(cluster.ctx("db"), [sts], app="db", namespace=ns,
                                        timeout=90)
        except StepFailed as exc:
            outcome["error"] = exc
    worker = threading.Thread(target=deploy)
    watcher.start()
    worker.start()
    try:
        wait_until(lambda: seen, 60, "the pod to wait for its PersistentVolumeClaim")
        # the volume is provisioned a moment later (as a provisioner would)
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": "", "hostPath": {"path": f"/tmp/{pv}"},
                     "claimRef": {"namespace": ns, "name": "data-db-0"}}}))
        worker.join(120)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["result"].changed
    finally:
        stop.set()
        worker.join(120)
        cluster.kubectl("delete", "persistentvolume", pv, "--ignore-not-found", "--wait=false")


def test_a_rolling_update_waits_for_the_host_port_the_replaced_pod_holds(cluster):
    ns = cluster.namespace()
    port = random.randint(20000, 29999)

    def docs(n: int):
        out = web(n, replicas=3, node_selector={"type": "kwok"})
        deployment = next(d for d in out if d["kind"] == "Deployment")
        deployment["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {
            "maxSurge": 1, "maxUnavailable": 1}}
        deployment["spec"]["template"]["spec"]["containers"][0]["ports"] = [
            {"containerPort": 8080, "hostPort": port}]
        return out

    assert rollout(cluster.ctx(), docs(1), app="web", namespace=ns, timeout=60).changed
    seen: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_pods_for,
                               args=(cluster, ns, "free ports", stop, seen))
    watcher.start()
    try:
        result = rollout(cluster.ctx(), docs(2), app="web", namespace=ns, timeout=90)
    finally:
        stop.set()
        watcher.join(10)
    assert result.changed
    pods = cluster.json("-n", ns, "get", "pods", "-l", "app=web")["items"]
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {image(2)}
    events = cluster.json("-n", ns, "get", "events", "--field-selector",
                          "reason=FailedScheduling")["items"]
    assert seen or any("free ports" in e.get("message", "") for e in events), \
        "the surge pod never waited for the port: the case was not exercised"


def _pod(waiting: dict | None = None, restarts: int = 0, unschedulable: str | None = None,
         since: str | None = None):
    status: dict = {"conditions": [], "containerStatuses": []}
    if unschedulable:
        status["conditions"].append({"type": "PodScheduled", "status": "False",
                                     "reason": "Unschedulable", "message": unschedulable,
                                     "lastTransitionTime": since})
    if waiting:
        status["containerStatuses"].append({
            "name": "web", "restartCount": restarts, "state": {"waiting": waiting},
            "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}})
    return {"metadata": {"name": "web-1"}, "status": status}


@pytest.mark.parametrize(("pod", "fatal"), [
    # messages as the real node's kubelet/containerd and the scheduler write them
    (_pod({"reason": "ErrImagePull", "message": 'failed to pull and unpack image "r/x@sha256:1":'
           ' pulling from host r failed with status code [manifests sha256:1]: 401 Unauthorized'}),
     True),
    (_pod({"reason": "ErrImagePull", "message": "rpc error: code = NotFound desc = failed to "
           "pull and unpack image: r/x@sha256:1: not found"}), True),
    (_pod({"reason": "ImagePullBackOff", "message": 'Back-off pulling image "r/x": ErrImagePull:'
           ' failed to do request: Head "http://127.0.0.1:5009/v2/x/manifests/sha256:1": dial '
           "tcp 127.0.0.1:5009: connect: connection refused"}), False),
    (_pod({"reason": "CrashLoopBackOff", "message": "back-off 10s"}, restarts=1), False),
    (_pod({"reason": "CrashLoopBackOff", "message": "back-off 20s"}, restarts=2), True),
    (_pod({"reason": "CreateContainerConfigError", "message": "couldn't find key K"}), True),
    (_pod(unschedulable="0/4 nodes are available: 1 node(s) had untolerated taint "
          "{pipelinelib.dev/real-node: true}, 3 node(s) didn't have free ports for the "
          "requested pod ports."), False),
    (_pod(unschedulable='0/4 nodes are available: pod has unbound immediate '
          'PersistentVolumeClaims. preemption: 0/4 nodes are available'), False),
    (_pod(unschedulable="0/4 nodes are available: 1 node(s) had untolerated taint "
          "{pipelinelib.dev/real-node: true}, 3 node(s) didn't match Pod's node "
          "affinity/selector."), True),
    # 1.33+ names no taint: it may be a node briefly NotReady (tests/test_real_node_kwok.py)
    (_pod(unschedulable="0/5 nodes are available: 2 node(s) had untolerated taint(s), 3 "
          "node(s) didn't match Pod's node affinity/selector. no new claims to deallocate"),
     False),
    # ... but most clusters carry taints that never lift (control-plane nodes): past the
    # grace the same message is doom
    (_pod(unschedulable="0/5 nodes are available: 2 node(s) had untolerated taint(s), 3 "
          "node(s) didn't match Pod's node affinity/selector. no new claims to deallocate",
          since="2026-01-01T00:00:00Z"), True),
], ids=["401", "not-found", "registry-down", "first-restart", "crash-loop", "config",
        "host-port", "unbound-pvc", "no-node-matches", "taint-unnamed", "taint-unnamed-long"])
def test_doom_or_delay(pod, fatal):
    found = health.pod_condition(pod)
    assert found is not None and found[3] is fatal, found
    assert (health.pod_problem(pod) is not None) is fatal


def test_a_restarted_container_counts_as_ready_only_after_it_stayed_up():
    pod = {"metadata": {"name": "web-1"}, "status": {"containerStatuses": [{
        "name": "web", "restartCount": 1,
        "state": {"running": {"startedAt": "2026-11-28T07:00:00Z"}}}]}}
    started = health._started("2026-11-28T07:00:00Z")
    assert "restarted 1x" in health.settling([pod], now=started + 1)
    assert health.settling([pod], now=started + health.STABLE_AFTER_RESTART_S) is None
    pod["status"]["containerStatuses"][0]["restartCount"] = 0
    assert health.settling([pod], now=started) is None, "never restarted: ready at once"


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_the_failing_pods_evidence_is_in_the_log_not_only_the_report(cluster, tmp_path,
                                                                     log_format):
    ns = cluster.namespace()
    path = write(tmp_path / "app.yaml", web(1, replicas=1, behavior="crash"))
    out = run_pipeline("rollout", str(path), "--app", "web", "-n", ns, "--timeout", "60",
                       env={**cluster.cli_env(), "PIPELINE_LOG_FORMAT": log_format})
    assert out.returncode == 1, out.stderr
    assert PLANTED not in out.stderr
    if log_format == "console":
        lines = [x for x in out.stderr.splitlines() if "evidence" in x]
        assert any("condition=" in x and "Ready=False" in x for x in lines), out.stderr
        assert any("k8s_event=" in x and "BackOff" in x for x in lines), out.stderr
        assert any("log_line=" in x and "fatal: simulated crash" in x for x in lines), out.stderr
        return
    events = [json.loads(x) for x in out.stderr.splitlines() if x.startswith("{")]
    evidence = [e for e in events if e.get("event") == "evidence"]
    pod = next(e["pod"] for e in evidence if "pod" in e)
    assert pod.startswith("web-") and all(e.get("namespace") == ns for e in evidence)
    assert any(e.get("condition", "").startswith("Ready=False") for e in evidence), evidence
    assert any("Back-off restarting failed container" in e.get("k8s_event", "")
               for e in evidence), evidence
    assert any("fatal: simulated crash" in e.get("log_line", "") for e in evidence), evidence
    failure = next(e for e in events if e.get("event") == "failure")
    assert failure["reason"] == "CrashLoopBackOff" and failure["workload"] == "deployment/web"


def test_the_warnings_that_explain_a_failure_are_not_pushed_out_by_normal_events():
    from pipelinelib.kube.wait import telling_events

    def event(kind, reason, n):
        return {"type": kind, "reason": reason, "message": f"{reason} {n}"}
    events = ([event("Normal", "Scheduled", 0), event("Warning", "Unhealthy", 1)] +
              [event("Normal", "Started", n) for n in range(2, 12)] +
              [event("Warning", "BackOff", 12)])
    chosen = telling_events(events, limit=4)
    assert [e["message"] for e in chosen] == ["Unhealthy 1", "Started 10", "Started 11",
                                               "BackOff 12"], "oldest first, warnings kept"
    many = [event("Warning", "Unhealthy", n) for n in range(10)]
    assert [e["message"] for e in telling_events(many, limit=3)] == [
        "Unhealthy 7", "Unhealthy 8", "Unhealthy 9"]
    assert telling_events([], limit=3) == []
