"""Locks that fence, dead holders recognised, and an all-or-nothing blue/green switch.

Every deploy here runs as the least-privilege deployer (``cluster.deployer()`` /
``cluster.cli_env()``); kubectl (admin) only sets up, steals the Lease and verifies.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading

from pipelinelib.kube.lock import PROCESS_ANN, LeaseLost, lease_name, process_stamp
from pipelinelib.steps.rollout import rollout
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster
from tests.helpers.manifests import blue_green_awaiting_swap, image, web, write
from tests.helpers.wait import wait_until

DEPLOYER = "system:serviceaccount:pipelinelib-system:pipelinelib-deployer"


def _stamp(minutes_ago: float = 0) -> str:
    t = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease(cluster: Cluster, ns: str) -> dict | None:
    items = cluster.json("-n", ns, "get", "lease")["items"]
    return next((i for i in items if i["metadata"]["name"] == lease_name("web")), None)


def _config_maps(cluster: Cluster, ns: str) -> list[str]:
    return sorted(i["metadata"]["name"] for i in cluster.json("-n", ns, "get", "cm")["items"]
                  if i["metadata"]["name"].startswith("web-config"))


def test_a_rollout_whose_lease_is_stolen_stops_before_its_next_write(cluster):
    ns = cluster.namespace("fence")
    rollout(cluster.ctx(), web(1, greeting="v1"), app="web", namespace=ns, timeout=60)
    old_config = _config_maps(cluster, ns)
    outcome: dict = {}

    # v2 waits ~20 s for readiness, then would prune the old ConfigMap: time enough for the
    # theft below (three kubectl calls) on a loaded machine, where 6 s was not always
    def second() -> None:
        try:
            outcome["result"] = rollout(
                cluster.ctx(), web(2, greeting="v2", behavior="slow-ready", ready_after="20s"),
                app="web", namespace=ns, timeout=120)
        except Exception as exc:
            outcome["error"] = exc

    runner = threading.Thread(target=second)
    runner.start()
    wait_until(lambda: cluster.json("-n", ns, "get", "deploy", "web")["spec"]["template"]
                ["spec"]["containers"][0]["image"] == image(2), 120, "v2 applied")
    lease = _lease(cluster, ns)
    assert lease is not None, "the rollout holds the Lease while it waits"
    lease["spec"].update(holderIdentity="thief #1", renewTime=_stamp(), acquireTime=_stamp(),
                         leaseDurationSeconds=2)
    lease["metadata"]["annotations"] = {"pipelinelib.dev/holder": "rm-mallory (job 9)"}
    cluster.kubectl("replace", "-f", "-", stdin=json.dumps(lease))
    runner.join(180)

    error = outcome.get("error")
    assert isinstance(error, LeaseLost), outcome
    assert "rm-mallory (job 9)" in error.message and "stopped before delete" in error.message
    assert set(old_config) < set(_config_maps(cluster, ns)), \
        "the old ConfigMap was not pruned after the Lease was lost"
    assert _lease(cluster, ns)["spec"]["holderIdentity"] == "thief #1", "ours never overwrote"

    # the thief's Lease expires (2 s, not renewed): the next run takes over and converges
    result = rollout(cluster.ctx(), web(2, greeting="v2"), app="web", namespace=ns, timeout=120)
    assert result.outputs["pruned"], "the re-run finishes the prune"
    assert len(_config_maps(cluster, ns)) == 1 and _lease(cluster, ns) is None


def test_a_rerun_after_sigkill_takes_over_its_dead_holders_lock_at_once(cluster, tmp_path):
    ns = cluster.namespace("fence")
    env = {**os.environ, **cluster.cli_env(), "PIPELINE_LOG_FORMAT": "json"}
    path = write(tmp_path / "v1.yaml", web(1, behavior="slow-ready", ready_after="30s"))
    proc = subprocess.Popen([sys.executable, "-m", "pipelinelib", "rollout", str(path),
                             "--app", "web", "-n", ns], env=env, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _lease(cluster, ns) is not None, 120, "the first run holds the Lease")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    held = _lease(cluster, ns)
    assert held["spec"]["leaseDurationSeconds"] == 30, "default TTL: still valid when re-run"
    assert held["metadata"]["annotations"][PROCESS_ANN].split("/")[2] == str(proc.pid)

    out = run_pipeline("rollout", str(write(tmp_path / "v1b.yaml", web(1))), "--app", "web",
                       "-n", ns, env=cluster.cli_env())
    assert out.returncode == 0, out.stderr[-2000:]
    assert "taking over the deploy lock of a dead holder" in out.stderr
    assert "waiting for the deploy lock" not in out.stderr
    assert _lease(cluster, ns) is None


def test_a_noop_rerun_removes_a_dead_holders_lock_but_not_a_live_ones(cluster, tmp_path):
    ns = cluster.namespace("fence")
    path = write(tmp_path / "v1.yaml", web(1))
    out = run_pipeline("rollout", str(path), "--app", "web", "-n", ns, env=cluster.cli_env())
    assert out.returncode == 0, out.stderr[-2000:]
    gone = subprocess.Popen(["sleep", "60"])
    dead_stamp = process_stamp(gone.pid)
    gone.kill()
    gone.wait()
    live_stamp = process_stamp(os.getpid())  # this test process: alive
    for stamp, removed in ((live_stamp, False), (dead_stamp, True)):
        cluster.kubectl("apply", "-f", "-", stdin=f"""
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: {lease_name('web')}
  namespace: {ns}
  annotations: {{"pipelinelib.dev/holder": "rm-killed (job 3)", "{PROCESS_ANN}": "{stamp}"}}
spec: {{holderIdentity: "rm-killed #1", leaseDurationSeconds: 30, acquireTime: "{_stamp()}",
        renewTime: "{_stamp()}"}}
""")
        out = run_pipeline("rollout", str(path), "--app", "web", "-n", ns,
                           env=cluster.cli_env())
        assert out.returncode == 0 and '"status": "unchanged"' in out.stderr, out.stderr[-2000:]
        assert (_lease(cluster, ns) is None) == removed, stamp
        assert ("removing the deploy lock of a dead holder" in out.stderr) == removed


def _bind_limited_role(cluster: Cluster, ns: str, patchable: list[str]) -> None:
    """The deployer may read everything it needs for a swap but patch only ``patchable``."""
    cluster.kubectl("-n", ns, "delete", "rolebinding", "pipelinelib-deployer", check=False)
    names = ", ".join(patchable)
    cluster.kubectl("apply", "-f", "-", stdin=f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: swap-limited, namespace: {ns}}}
rules:
- {{apiGroups: [""], resources: [services], verbs: [get, list, watch]}}
- {{apiGroups: [""], resources: [services], verbs: [patch], resourceNames: [{names}]}}
- {{apiGroups: [apps], resources: [deployments], verbs: [get, list, watch]}}
- {{apiGroups: [coordination.k8s.io], resources: [leases],
    verbs: [get, create, update, delete]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: swap-limited, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: swap-limited}}
subjects: [{{kind: ServiceAccount, name: pipelinelib-deployer,
             namespace: pipelinelib-system}}]
""")

    def effective() -> bool:
        allowed = cluster.kubectl("auth", "can-i", "patch", f"services/{patchable[0]}", "-n",
                                  ns, "--as", DEPLOYER, check=False).strip() == "yes"
        third = cluster.kubectl("auth", "can-i", "patch", "services/web-metrics", "-n", ns,
                                "--as", DEPLOYER, check=False).strip()
        denied = third == ("yes" if "web-metrics" in patchable else "no")
        full = cluster.kubectl("auth", "can-i", "create", "deployments", "-n", ns, "--as",
                               DEPLOYER, check=False).strip() == "no"
        return allowed and denied and full
    wait_until(effective, 120, "the limited Role is in force")


def test_three_services_switch_together_or_all_go_back(cluster, tmp_path):
    ns, env = cluster.namespace("bg3"), cluster.cli_env()

    colors = blue_green_awaiting_swap(cluster, tmp_path, ns, env)
    assert colors() == {"web": "blue", "web-admin": "blue", "web-metrics": "blue"}

    _bind_limited_role(cluster, ns, ["web", "web-admin"])  # the third one is denied
    out = run_pipeline("swap", "--app", "web", "-n", ns, env=env)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "failed at service/web-metrics" in out.stderr
    assert "switched back service/web-admin, service/web" in out.stderr
    assert colors() == {"web": "blue", "web-admin": "blue", "web-metrics": "blue"}

    _bind_limited_role(cluster, ns, ["web", "web-admin", "web-metrics"])
    out = run_pipeline("swap", "--app", "web", "-n", ns, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert colors() == {"web": "green", "web-admin": "green", "web-metrics": "green"}
