"""Kubernetes steps with a fault between them and the apiserver (Toxiproxy), and real
server-side faults (API Priority and Fairness 429s, a watch the server ends).

Each scenario: the step runs through the fault; a fault that clears by itself (latency,
bandwidth, small slices, some connections reset, a watch cut) is survived with bounded
retries; a fault that does not clear (the apiserver down, every connection going silent)
ends in exit 3 with one line naming the Kubernetes API, after a bounded number of retries;
then a re-run on a healthy network converges and leaves no lock behind.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelinelib.testing.faults import (
    Proxy,
    clear_reason,
    count_retries,
    host_port,
    kube_server,
    kubeconfig_via,
)
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster
from tests.helpers.manifests import image, web, write
from tests.helpers.wait import wait_until

MAX_ATTEMPTS = 5  # KubeClient._request: transient_retry(attempts=5)


def _reset_some(p: Proxy) -> None:
    p.add("reset_peer", timeout=0, toxicity=0.15)


# name -> (add the fault, exit code expected, what the test calls it in the table)
FAULTS: dict[str, tuple[Callable[[Proxy], Any], int]] = {
    "latency 100 ms each way": (lambda p: (p.add("latency", latency=100),
                                           p.add("latency", latency=100, stream="upstream")), 0),
    "bandwidth 32 KB/s": (lambda p: p.add("bandwidth", rate=32), 0),
    "slicer: answers in 64-byte slices": (
        lambda p: p.add("slicer", average_size=64, size_variation=32, delay=500), 0),
    "reset_peer on 15% of connections": (_reset_some, 0),
    "reset_peer: every connection held 1 s, then reset": (
        lambda p: p.add("reset_peer", timeout=1000), 3),
    "timeout: every connection silent, closed after 1 s": (
        lambda p: p.add("timeout", timeout=1000), 3),
    "apiserver down (proxy disabled: connection refused)": (
        lambda p: p.set_enabled(False), 3),
}


def leases(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    return [lease for lease in cluster.json("-n", ns, "get", "lease")["items"]
            if (lease.get("spec") or {}).get("holderIdentity")]


def image_of(cluster: Cluster, ns: str) -> str:
    live = cluster.json("-n", ns, "get", "deploy", "web")
    return live["spec"]["template"]["spec"]["containers"][0]["image"]


def run_through(cluster: Cluster, proxy: Proxy, tmp_path, args: list[str]
                ) -> tuple[subprocess.CompletedProcess[str], float]:
    kubeconfig = kubeconfig_via(cluster.deployer_kubeconfig, proxy,
                                tmp_path / f"{proxy.name}.kubeconfig")
    started = time.monotonic()
    out = run_pipeline(*args, env={**cluster.cli_env(), "KUBECONFIG": str(kubeconfig)})
    return out, round(time.monotonic() - started, 2)


STEPS = {
    "rollout": lambda ns, path: ["rollout", str(path), "--app", "web", "-n", ns,
                                 "--lock-ttl", "3"],
    "rollback": lambda ns, path: ["rollback", "--app", "web", "-n", ns, "--lock-ttl", "3"],
}


@pytest.mark.parametrize("step", sorted(STEPS))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_step_survives_or_fails_clearly_through_an_apiserver_fault(
        cluster, fault_proxy, tmp_path, scenario, step, fault):
    row = scenario(step, fault, "kubernetes")
    ns = cluster.namespace("flt")
    first = write(tmp_path / "v1.yaml", web(1, ready_after="2s"))
    second = write(tmp_path / "v2.yaml", web(2, greeting="two", ready_after="2s"))
    assert run_pipeline("rollout", str(first), "--app", "web", "-n", ns,
                        env=cluster.cli_env()).returncode == 0
    if step == "rollback":
        assert run_pipeline("rollout", str(second), "--app", "web", "-n", ns,
                            env=cluster.cli_env()).returncode == 0
    wanted = image(1) if step == "rollback" else image(2)
    args = STEPS[step](ns, second)
    proxy = fault_proxy("apiserver", host_port(kube_server(cluster.deployer_kubeconfig)))
    add, code = FAULTS[fault]
    add(proxy)

    out, row.seconds = run_through(cluster, proxy, tmp_path, args)
    row.retries = count_retries(out.stderr)
    assert out.returncode == code, out.stderr[-3000:]
    if code == 3:
        reason = clear_reason(out.stderr)
        row.outcome = f"exit 3: {reason}"
        assert "Kubernetes API" in reason, reason
        assert "Traceback" not in out.stderr
        assert row.retries <= MAX_ATTEMPTS - 1, "one call's retries, then a clear failure"
    else:
        row.outcome = "survived" + (f" ({row.retries} retries)" if row.retries else "")
        assert image_of(cluster, ns) == wanted

    proxy.clear()
    rerun, _ = run_through(cluster, proxy, tmp_path, args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert image_of(cluster, ns) == wanted
    live = cluster.json("-n", ns, "get", "deploy", "web")
    assert live["status"].get("readyReplicas") == 2
    row.stuck_locks = len(leases(cluster, ns))
    assert row.stuck_locks == 0
    row.rerun = "converged" if code else "unchanged (converged on the first run)"
    row.passed = True


def test_a_watch_cut_mid_wait_is_resumed_and_the_rollout_converges(
        cluster, fault_proxy, tmp_path, scenario):
    """Every open connection (the wait's watches among them) is reset once the Deployment
    is written (the audit log shows it) and the wait says it is waiting (its first progress
    line comes after every watch has listed); the wait watches again and the rollout
    succeeds."""
    import json
    import os
    import sys
    import threading

    from pipelinelib.testing.kill import KubeAuditWrites

    row = scenario("rollout", "reset_peer mid-watch (all open connections reset once)",
                   "kubernetes")
    ns = cluster.namespace("flt")
    assert run_pipeline("rollout", str(write(tmp_path / "v1.yaml", web(1))), "--app", "web",
                        "-n", ns, env=cluster.cli_env()).returncode == 0
    proxy = fault_proxy("apiserver", host_port(kube_server(cluster.deployer_kubeconfig)))
    writes = KubeAuditWrites(cluster.kube_env["PIPELINELIB_KUBE_AUDIT_LOG"], [ns])
    writes.mark()
    kubeconfig = kubeconfig_via(cluster.deployer_kubeconfig, proxy,
                                tmp_path / f"{proxy.name}.kubeconfig")
    stderr: list[str] = []
    cut: list[str] = []

    def waiting() -> bool:
        return any(line.startswith("{") and json.loads(line).get("event") == "waiting"
                   for line in list(stderr))

    def cut_once_the_wait_watches() -> None:
        wait_until(lambda: any(w.what == "patch deployments/web" for w in writes.poll()),
                   120, "the Deployment write", interval=0.02)
        wait_until(waiting, 120, "the wait's first progress line", interval=0.02)
        with proxy.toxic("reset_peer", timeout=0):
            cut.append("reset")
            time.sleep(0.3)  # the fault itself: connections reset for 0.3 s

    started = time.monotonic()
    with open(tmp_path / "stdout", "w") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelinelib", "rollout",
             str(write(tmp_path / "v2.yaml", web(2, ready_after="4s"))), "--app", "web",
             "-n", ns, "--lock-ttl", "3"], stdout=stdout, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PIPELINE_LOG_FORMAT": "json",
                 **cluster.cli_env(), "KUBECONFIG": str(kubeconfig)})
        assert proc.stderr is not None
        cutter = threading.Thread(target=cut_once_the_wait_watches, daemon=True)
        cutter.start()
        for line in proc.stderr:  # until it exits; the cutter reads the lines so far
            stderr.append(line)
        code = proc.wait(timeout=600)
    row.seconds = round(time.monotonic() - started, 2)
    cutter.join(10)
    text = "".join(stderr)
    assert cut == ["reset"], "the cut happened while the rollout waited"
    row.retries = count_retries(text)
    assert code == 0, text[-3000:]
    row.outcome = "survived" + (f" ({row.retries} retries)" if row.retries else "")
    assert image_of(cluster, ns) == image(2)
    assert cluster.json("-n", ns, "get", "deploy", "web")["status"].get("readyReplicas") == 2
    row.stuck_locks = len(leases(cluster, ns))
    assert row.stuck_locks == 0
    row.rerun = "unchanged (converged on the first run)"
    row.passed = True


# -- API Priority and Fairness: a real 429 with Retry-After ----------------------------------

APF_USER = "pipelinelib-apf-test"


@pytest.fixture
def tiny_priority_level(cluster):
    """A FlowSchema sending one service account's requests to a PriorityLevelConfiguration
    with the smallest share and no queue: concurrent requests beyond it get 429."""
    ns = cluster.namespace("apf")
    name = f"pipelinelib-{ns}"
    cluster.kubectl("-n", ns, "create", "serviceaccount", APF_USER)
    cluster.kubectl("-n", ns, "create", "rolebinding", "apf-deployer",
                    "--clusterrole=pipelinelib-deployer", f"--serviceaccount={ns}:{APF_USER}")
    cluster.kubectl("apply", "-f", "-", stdin=f"""
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {{name: {name}}}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    limitResponse: {{type: Reject}}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {{name: {name}}}
spec:
  priorityLevelConfiguration: {{name: {name}}}
  matchingPrecedence: 100
  rules:
  - subjects:
    - kind: ServiceAccount
      serviceAccount: {{name: {APF_USER}, namespace: {ns}}}
    resourceRules:
    - verbs: ["*"]
      apiGroups: ["*"]
      resources: ["*"]
      namespaces: ["*"]
      clusterScope: true
""")
    token = cluster.kubectl("-n", ns, "create", "token", APF_USER, "--duration=1h").strip()
    yield ns, name, token
    cluster.kubectl("delete", "flowschema", name, "--ignore-not-found", check=False)
    cluster.kubectl("delete", "prioritylevelconfiguration", name, "--ignore-not-found",
                    check=False)


def test_apf_429s_with_retry_after_are_retried_and_the_rollout_converges(
        cluster, tiny_priority_level, tmp_path, scenario):
    """Background load from the same user keeps the tiny priority level busy: the rollout
    meets real 429s (Retry-After set by the apiserver), retries them and converges."""
    import threading

    import requests

    row = scenario("rollout", "API Priority and Fairness: 429 + Retry-After (tiny share)",
                   "kubernetes")
    ns, _name, token = tiny_priority_level
    server = kube_server(cluster.deployer_kubeconfig)
    ca = tmp_path / "ca.crt"
    import base64

    import yaml

    doc = yaml.safe_load(Path(cluster.deployer_kubeconfig).read_text())
    ca.write_bytes(base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]))
    kubeconfig = tmp_path / "apf.kubeconfig"
    doc["users"][0]["user"] = {"token": token}
    kubeconfig.write_text(yaml.safe_dump(doc))
    kubeconfig.chmod(0o600)

    stop = threading.Event()
    statuses: list[tuple[int, str]] = []

    def hammer() -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                r = session.get(f"{server}/api/v1/namespaces/{ns}/configmaps", verify=str(ca),
                                headers={"Authorization": f"Bearer {token}"}, timeout=5)
                statuses.append((r.status_code, r.headers.get("Retry-After", "")))
            except requests.RequestException:
                pass

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        started = time.monotonic()
        out = run_pipeline("rollout", str(write(tmp_path / "v1.yaml", web(1))), "--app", "web",
                           "-n", ns, env={**cluster.cli_env(), "KUBECONFIG": str(kubeconfig)})
        row.seconds = round(time.monotonic() - started, 2)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    rejected = [s for s in statuses if s[0] == 429]
    assert rejected, f"the load met no 429 (statuses {sorted({s for s, _ in statuses})})"
    assert all(after for _, after in rejected), "every 429 carries Retry-After"
    row.retries = count_retries(out.stderr)
    row.outcome = ("survived" if out.returncode == 0 else f"exit {out.returncode}: "
                   f"{clear_reason(out.stderr)}") + f" ({len(rejected)} 429s seen by the load)"
    if out.returncode != 0:  # retries exhausted under sustained 429: a clear exit 3
        assert out.returncode == 3 and "Kubernetes API" in clear_reason(out.stderr)
    rerun = run_pipeline("rollout", str(tmp_path / "v1.yaml"), "--app", "web", "-n", ns,
                         env={**cluster.cli_env(), "KUBECONFIG": str(kubeconfig)})
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert image_of(cluster, ns) == image(1)
    row.stuck_locks = len(leases(cluster, ns))
    assert row.stuck_locks == 0
    row.rerun = "converged"
    row.passed = True


def test_apf_retry_after_is_honoured_by_the_kube_client(cluster, tiny_priority_level, tmp_path,
                                                        scenario):
    """The same real 429s, met by the library's own Kubernetes client (server-side apply
    PATCHes): every retry after a 429 waits at least the Retry-After the apiserver sent (read
    from the retry log: the wait chosen, not a wall time), and the call then succeeds."""
    import base64
    import threading

    import requests
    import structlog
    import yaml

    from pipelinelib.adapters.kube import KubeClient

    row = scenario("kubernetes client", "API Priority and Fairness: 429 waits >= Retry-After",
                   "kubernetes")
    ns, _name, token = tiny_priority_level
    server = kube_server(cluster.deployer_kubeconfig)
    doc = yaml.safe_load(Path(cluster.deployer_kubeconfig).read_text())
    ca = tmp_path / "ca.crt"
    ca.write_bytes(base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]))
    doc["users"][0]["user"] = {"token": token}
    kubeconfig = tmp_path / "apf.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(doc))
    kubeconfig.chmod(0o600)
    stop = threading.Event()
    sent: list[str] = []

    def hammer() -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                r = session.get(f"{server}/api/v1/namespaces/{ns}/configmaps", verify=str(ca),
                                headers={"Authorization": f"Bearer {token}"}, timeout=5)
                if r.status_code == 429:
                    sent.append(r.headers.get("Retry-After", ""))
            except requests.RequestException:
                pass

    client = KubeClient.from_kubeconfig(str(kubeconfig))
    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    answered: list[int] = []

    def lists(logs: list[dict[str, Any]]) -> None:  # the client's own calls, four at a time
        deadline = time.monotonic() + 120
        while (sum(1 for e in logs if e.get("retry_after_s")) < 3
               and time.monotonic() < deadline):
            # a write: urllib3 itself retries idempotent GETs on 429 + Retry-After, so
            # the library's own retry meets the 429s of PATCH (server-side apply)
            client.apply({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "apf-probe", "namespace": ns},
                          "data": {"n": str(len(answered))}})
            answered.append(1)

    try:
        with structlog.testing.capture_logs() as logs:
            callers = [threading.Thread(target=lists, args=(logs,)) for _ in range(4)]
            for t in callers:
                t.start()
            for t in callers:
                t.join(300)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    retries = [e for e in logs if e.get("event") == "retrying after transient fault"]
    honoured = [e for e in retries if e.get("retry_after_s")]
    assert sent and all(sent), "the apiserver's 429s carry Retry-After"
    assert honoured, (f"the client met no 429 with Retry-After ({len(retries)} retries, "
                      f"{len(answered)} answers, {len(sent)} 429s to the load)")
    assert all(e["wait_s"] >= e["retry_after_s"] for e in honoured), honoured
    assert answered, "the client's calls were answered after their retries"
    row.retries = len(retries)
    row.outcome = (f"survived: {len(honoured)} retries after a 429, each waited >= its "
                   f"Retry-After ({', '.join(sorted(set(sent)))} s)")
    row.rerun = "n/a (one ConfigMap applied, deleted with its namespace)"
    row.passed = True


def test_etcd_paused_briefly_mid_rollout_is_waited_out(cluster, testbed, tmp_path, scenario):
    """etcd stopped (SIGSTOP) for 3 s right after the rollout's Deployment write, as the
    audit log shows it, then continued: the apiserver stalls, the rollout waits it out and
    converges. Kept short: the testbed's etcd is shared."""
    import os
    import signal
    import threading

    from pipelinelib.testing.kill import KubeAuditWrites

    row = scenario("rollout", "etcd paused 3 s (SIGSTOP/SIGCONT) mid-rollout", "kubernetes")
    ns = cluster.namespace("flt")
    assert run_pipeline("rollout", str(write(tmp_path / "v1.yaml", web(1))), "--app", "web",
                        "-n", ns, env=cluster.cli_env()).returncode == 0
    etcd = int((testbed.state_dir / "kubernetes" / "run" / "etcd.pid").read_text().strip())
    writes = KubeAuditWrites(cluster.kube_env["PIPELINELIB_KUBE_AUDIT_LOG"], [ns])
    writes.mark()
    paused: list[bool] = []

    def pause_after_the_deployment_write() -> None:
        wait_until(lambda: any(w.what == "patch deployments/web" for w in writes.poll()),
                   120, "the Deployment write", interval=0.02)
        os.kill(etcd, signal.SIGSTOP)
        try:
            paused.append(True)
            time.sleep(3)  # the fault itself: etcd paused for 3 s
        finally:
            os.kill(etcd, signal.SIGCONT)

    pauser = threading.Thread(target=pause_after_the_deployment_write, daemon=True)
    pauser.start()
    started = time.monotonic()
    out = run_pipeline("rollout", str(write(tmp_path / "v2.yaml", web(2, ready_after="2s"))),
                       "--app", "web", "-n", ns, "--lock-ttl", "3", env=cluster.cli_env())
    row.seconds = round(time.monotonic() - started, 2)
    pauser.join(10)
    assert paused == [True]
    row.retries = count_retries(out.stderr)
    assert out.returncode == 0, out.stderr[-3000:]
    row.outcome = "survived" + (f" ({row.retries} retries)" if row.retries else "")
    assert image_of(cluster, ns) == image(2)
    row.stuck_locks = len(leases(cluster, ns))
    assert row.stuck_locks == 0
    row.rerun = "unchanged (converged on the first run)"
    row.passed = True
