"""The testbed's Kubernetes control plane: RBAC, the deployer identity and the kwok pod behaviours.

Runs against the real control plane (`kube_env`): etcd, kube-apiserver, controller-manager,
scheduler and kwok. Every test works in its own namespace, so tests may run concurrently.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.helpers.paths import ROOT
from tests.helpers.wait import wait_until

DEPLOYER = "system:serviceaccount:pipelinelib-system:pipelinelib-deployer"


@pytest.fixture(scope="module")
def admin(kube_env: dict[str, str]) -> client.ApiClient:
    return config.new_client_from_config(config_file=kube_env["KUBECONFIG"])


@pytest.fixture(scope="module")
def deployer(kube_env: dict[str, str]) -> client.ApiClient:
    return config.new_client_from_config(config_file=kube_env["PIPELINELIB_DEPLOYER_KUBECONFIG"])


@pytest.fixture
def ns(admin: client.ApiClient):
    """A fresh namespace bound to the deployer's ClusterRole (as a platform team would)."""
    name = f"tb-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": name}})
    client.RbacAuthorizationV1Api(admin).create_namespaced_role_binding(name, {
        "metadata": {"name": "pipelinelib-deployer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "pipelinelib-deployer"},
        "subjects": [{"kind": "ServiceAccount", "name": "pipelinelib-deployer",
                      "namespace": "pipelinelib-system"}],
    })
    yield name
    core.delete_namespace(name)


def pod_body(name: str, behavior: str = "", image: str = "example.org/app:1",
             ready_after: str = "", restart: str = "Always", **spec: Any) -> dict:
    annotations = {}
    if behavior:
        annotations["pipelinelib.dev/behavior"] = behavior
    if ready_after:
        annotations["pipelinelib.dev/ready-after"] = ready_after
    return {"metadata": {"name": name, "annotations": annotations},
            "spec": {"restartPolicy": restart, "containers": [{"name": "app", "image": image}],
                     **spec}}


def deployment_body(name: str, image: str, replicas: int = 2) -> dict:
    labels = {"app": name}
    return {"metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}}


def condition(obj: Any, kind: str) -> Any:
    return next((c for c in (obj.status.conditions or []) if c.type == kind), None)


def waiting_reason(pod: Any) -> str | None:
    statuses = pod.status.container_statuses or []
    return statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else None


# --- the control plane itself -------------------------------------------------------------

def test_exports_point_at_a_pinned_release_with_every_binary(kube_env, admin):
    bin_dir = Path(kube_env["PIPELINELIB_KUBE_BIN"])
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                 "kubectl", "kwok"):
        assert (bin_dir / name).is_file(), name
    out = subprocess.run([str(bin_dir / "kubectl"), "--kubeconfig", kube_env["KUBECONFIG"],
                          "version", "-o", "json"], capture_output=True, text=True, check=True)
    versions = json.loads(out.stdout)
    assert versions["serverVersion"]["gitVersion"] == "v1.35.4"
    assert versions["clientVersion"]["gitVersion"] == "v1.35.4"
    _contexts, current = config.list_kube_config_contexts(config_file=kube_env["KUBECONFIG"])
    assert current["name"] == kube_env["PIPELINELIB_KUBE_CONTEXT"]
    nodes = client.CoreV1Api(admin).list_node(label_selector="type=kwok").items
    assert len(nodes) >= 2
    assert all(condition(n, "Ready").status == "True" and not n.spec.taints for n in nodes)
    # The apiserver reaches the simulated kubelets (pod logs) on loopback only.
    assert {a.address for n in nodes for a in n.status.addresses if a.type == "InternalIP"} \
        == {"127.0.0.1"}


def test_up_again_reuses_the_running_processes(kube_env):
    state = Path(kube_env["KUBECONFIG"]).parent
    pids = {p.name: p.read_text() for p in (state / "run").glob("*.pid")}
    assert len(pids) == 5
    out = subprocess.run([str(ROOT / "testbed" / "kubernetes" / "up"), str(state.parent)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert all(line.startswith("export ") for line in out.stdout.splitlines())
    assert f"KUBECONFIG={kube_env['KUBECONFIG']}" in out.stdout
    assert {p.name: p.read_text() for p in (state / "run").glob("*.pid")} == pids
    # warm: the same processes (pids above), nothing started or built again
    assert "already running" in out.stderr


# --- RBAC and the least-privilege deployer ---------------------------------------------

def forbidden(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ApiException as exc:
        return exc.status == 403
    return False


def test_deployer_token_is_a_service_account_with_least_privilege(deployer, admin, ns):
    review = client.AuthenticationV1Api(deployer).create_self_subject_review({})
    assert review.status.user_info.username == DEPLOYER

    core, apps = client.CoreV1Api(deployer), client.AppsV1Api(deployer)
    # Nothing cluster-scoped but namespaces; nothing in namespaces it is not bound to.
    assert forbidden(lambda: core.list_node())
    assert forbidden(lambda: core.list_namespaced_secret("kube-system"))
    assert forbidden(lambda: core.read_namespaced_secret("x", "kube-system"))
    assert forbidden(lambda: apps.list_namespaced_deployment("kube-system"))
    assert forbidden(lambda: client.RbacAuthorizationV1Api(deployer).list_cluster_role())
    assert forbidden(lambda: core.create_namespaced_pod(ns, pod_body("direct")))
    assert forbidden(lambda: core.delete_namespace(ns))
    # What a rollout needs, in its bound namespace.
    core.read_namespace(ns)
    apps.create_namespaced_deployment(ns, deployment_body("web", "example.org/web:1", 1))
    core.create_namespaced_secret(ns, {"metadata": {"name": "db"}, "stringData": {"pw": "x"}})
    assert core.read_namespaced_secret("db", ns).data["pw"]
    client.CoordinationV1Api(deployer).create_namespaced_lease(
        ns, {"metadata": {"name": "deploy-lock-web"}, "spec": {"holderIdentity": "t"}})
    pod = wait_until(lambda: next((
        p for p in core.list_namespaced_pod(ns).items if p.status.phase == "Running"), None),
        timeout=120, what="the deployer to see its running pod")
    core.list_namespaced_event(ns)
    assert "listening on :8080" in core.read_namespaced_pod_log(pod.metadata.name, ns,
                                                                tail_lines=10)
    # An admin request without credentials is refused too (authentication on).
    bare = client.Configuration()
    bare.host = admin.configuration.host
    bare.ssl_ca_cert = admin.configuration.ssl_ca_cert
    anon = client.ApiClient(bare)
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(anon).list_namespaced_pod(ns)
    assert exc.value.status in (401, 403)


def test_service_account_tokens_are_issued(admin, ns):
    core = client.CoreV1Api(admin)
    wait_until(lambda: core.list_namespaced_service_account(
        ns, field_selector="metadata.name=default").items, timeout=120,
        what="the default service account")
    token = core.create_namespaced_service_account_token(
        "default", ns, {"spec": {"expirationSeconds": 600}})
    review = client.AuthenticationV1Api(admin).create_token_review(
        {"spec": {"token": token.status.token}})
    assert review.status.authenticated
    assert review.status.user.username == f"system:serviceaccount:{ns}:default"


# --- workloads --------------------------------------------------------------------------

def test_deployment_becomes_available_and_rolls_to_a_new_image(deployer, ns):
    apps, core = client.AppsV1Api(deployer), client.CoreV1Api(deployer)
    apps.create_namespaced_deployment(ns, deployment_body("web", "example.org/web:1"))

    def available(generation: int = 1) -> bool:
        d = apps.read_namespaced_deployment("web", ns)
        s = d.status
        return (s.observed_generation or 0) >= generation and s.available_replicas == 2 \
            and s.updated_replicas == 2 and (s.replicas or 0) == 2
    wait_until(available, 120, "2 available replicas")
    old = {p.metadata.name for p in core.list_namespaced_pod(ns, label_selector="app=web").items}

    apps.patch_namespaced_deployment("web", ns, {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "example.org/web:2"}]}}}})
    wait_until(lambda: available(2), 120, "the rollout to finish")
    # Old pods are deleted for real (kwok's pod-delete stage), not left Terminating.
    pods = wait_until(lambda: (lambda items: items if not old & {
        p.metadata.name for p in items} else None)(
        core.list_namespaced_pod(ns, label_selector="app=web").items), 120, "old pods to go")
    assert {p.spec.containers[0].image for p in pods} == {"example.org/web:2"}
    assert all(condition(p, "Ready").status == "True" for p in pods)


def pod_status(core: client.CoreV1Api, ns: str, name: str) -> Any:
    return core.read_namespaced_pod(name, ns)


def test_default_pod_is_ready_within_seconds(admin, ns):
    core = client.CoreV1Api(admin)
    core.create_namespaced_pod(ns, pod_body("plain"))
    pod = wait_until(lambda: (lambda p: p if condition(p, "Ready") and condition(
        p, "Ready").status == "True" else None)(pod_status(core, ns, "plain")), 120, "Ready")
    assert pod.status.phase == "Running"
    assert pod.status.container_statuses[0].state.running is not None
    assert pod.status.pod_ip


def test_slow_ready_pod_runs_unready_until_its_delay_passes(admin, ns):
    core = client.CoreV1Api(admin)
    core.create_namespaced_pod(ns, pod_body("slow", "slow-ready", ready_after="3s"))
    running = wait_until(lambda: (lambda p: p if p.status.phase == "Running" else None)(
        pod_status(core, ns, "slow")), 120, "Running")
    assert condition(running, "Ready").status == "False"
    assert running.status.container_statuses[0].started
    wait_until(lambda: condition(pod_status(core, ns, "slow"), "Ready").status == "True",
               120, "Ready")
    # order from the server's own timestamps (1 s resolution), not this machine's clock
    ready = pod_status(core, ns, "slow")
    delay = condition(ready, "Ready").last_transition_time - ready.status.start_time
    assert delay.total_seconds() >= 2, delay


def test_crash_pod_loops_in_crash_loop_back_off(admin, ns):
    core = client.CoreV1Api(admin)
    core.create_namespaced_pod(ns, pod_body("crash", "crash"))
    pod = wait_until(lambda: (lambda p: p if waiting_reason(p) == "CrashLoopBackOff" else None)(
        pod_status(core, ns, "crash")), 120, "CrashLoopBackOff")
    status = pod.status.container_statuses[0]
    assert pod.status.phase == "Running"
    assert condition(pod, "Ready").status == "False"
    assert status.last_state.terminated.exit_code == 1
    assert status.last_state.terminated.reason == "Error"
    first = status.restart_count
    assert first >= 1
    wait_until(lambda: pod_status(
        core, ns, "crash").status.container_statuses[0].restart_count > first, 120,
        "restartCount to grow")
    events = core.list_namespaced_event(ns, field_selector="involvedObject.name=crash").items
    assert any(e.reason == "BackOff" and e.type == "Warning" for e in events)
    previous = core.read_namespaced_pod_log("crash", ns, previous=True, tail_lines=5)
    assert "fatal: simulated crash" in previous


def test_never_ready_pod_runs_but_stays_unready(admin, ns):
    core = client.CoreV1Api(admin)
    core.create_namespaced_pod(ns, pod_body("never", "never-ready"))
    wait_until(lambda: pod_status(core, ns, "never").status.phase == "Running", 120, "Running")
    time.sleep(2)  # the pause IS the test: two seconds later it still runs, still unready
    pod = pod_status(core, ns, "never")
    assert pod.status.phase == "Running"
    assert condition(pod, "Ready").status == "False"
    assert pod.status.container_statuses[0].state.running is not None
    assert pod.status.container_statuses[0].restart_count == 0


@pytest.mark.parametrize("behavior,image", [
    ("pull-fail", "example.org/app:1"),
    ("", "example.org/does-not-exist:1"),
])
def test_pull_failures_show_err_image_pull_then_back_off(admin, ns, behavior, image):
    core = client.CoreV1Api(admin)
    core.create_namespaced_pod(ns, pod_body("pull", behavior, image=image))
    seen = set()

    def backoff() -> bool:
        reason = waiting_reason(pod_status(core, ns, "pull"))
        seen.add(reason)
        return reason == "ImagePullBackOff"
    wait_until(backoff, 120, "ImagePullBackOff")
    assert "ErrImagePull" in seen
    pod = pod_status(core, ns, "pull")
    assert pod.status.phase == "Pending"
    assert image in pod.status.container_statuses[0].state.waiting.message


def job_body(name: str, behavior: str = "") -> dict:
    annotations = {"pipelinelib.dev/behavior": behavior} if behavior else {}
    return {"metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {
                "metadata": {"annotations": annotations},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "task", "image": "example.org/task:1"}]}}}}


def test_jobs_complete_or_fail(deployer, ns):
    batch, core = client.BatchV1Api(deployer), client.CoreV1Api(deployer)
    batch.create_namespaced_job(ns, job_body("ok"))
    batch.create_namespaced_job(ns, job_body("bad", "job-fail"))

    def finished(name: str, kind: str) -> bool:
        c = condition(batch.read_namespaced_job(name, ns), kind)
        return bool(c and c.status == "True")
    wait_until(lambda: finished("ok", "Complete"), 120, "job ok Complete")
    wait_until(lambda: finished("bad", "Failed"), 120, "job bad Failed")
    ok = core.list_namespaced_pod(ns, label_selector="job-name=ok").items
    bad = core.list_namespaced_pod(ns, label_selector="job-name=bad").items
    assert [p.status.phase for p in ok] == ["Succeeded"]
    assert ok[0].status.container_statuses[0].state.terminated.exit_code == 0
    assert [p.status.phase for p in bad] == ["Failed"]
    assert bad[0].status.container_statuses[0].state.terminated.exit_code == 1


def test_unschedulable_pod_gets_pod_scheduled_false(admin, ns):
    core = client.CoreV1Api(admin)
    core.create_namespaced_pod(ns, pod_body("nowhere", nodeSelector={"pool": "does-not-match"}))
    cond = wait_until(lambda: (lambda c: c if c and c.status == "False" else None)(
        condition(pod_status(core, ns, "nowhere"), "PodScheduled")), 120, "PodScheduled=False")
    assert cond.reason == "Unschedulable"
    assert "node" in cond.message
    assert pod_status(core, ns, "nowhere").spec.node_name is None


def test_grant_deployer_script_binds_a_new_namespace(kube_env, admin, deployer):
    name = f"tb-grant-{uuid.uuid4().hex[:8]}"
    review = {"spec": {"resourceAttributes": {"namespace": name, "verb": "create",
                                              "group": "apps", "resource": "deployments"}}}
    authz = client.AuthorizationV1Api(deployer)
    assert not authz.create_self_subject_access_review(review).status.allowed
    out = subprocess.run([str(ROOT / "testbed" / "kubernetes" / "grant-deployer"), name],
                         env={**kube_env, "PATH": "/usr/bin:/bin"}, capture_output=True,
                         text=True, check=False)
    try:
        assert out.returncode == 0, out.stderr
        # the apiserver's RBAC authorizer learns of the new RoleBinding through an informer:
        # allow it a moment (under load this takes tens of milliseconds)
        wait_until(lambda: authz.create_self_subject_access_review(review).status.allowed,
                   120, "the RoleBinding to take effect")
    finally:
        client.CoreV1Api(admin).delete_namespace(name)
