"""The deploy lock and crash safety on the real control plane."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

from pipelinelib.kube.lock import DeployLock, lease_name
from pipelinelib.kube.revisions import Owned, apply_planned, plan_changes, refresh
from pipelinelib.steps.rollout import prepare, rollout
from pipelinelib.testing.kill import KubeAuditWrites
from tests.helpers.cli import run_pipeline
from tests.helpers.manifests import image, web, write
from tests.helpers.wait import wait_until


def test_a_held_lock_names_its_holder_and_times_out(cluster, tmp_path):
    ns = cluster.namespace("lk")
    lock = DeployLock(cluster.deployer(), "web", ns, "rm-alice (https://ci.example/job/1/)")
    lock.acquire()
    try:
        out = run_pipeline("rollout", str(write(tmp_path / "m.yaml", web(1))), "--app", "web",
                           "-n", ns, "--lock-timeout", "2", env=cluster.cli_env())
        assert out.returncode == 1, out.stderr[-2000:]
        assert "held by rm-alice (https://ci.example/job/1/) since" in out.stderr
        assert "web" not in cluster.kubectl("-n", ns, "get", "deploy")
    finally:
        lock.release()
    out = run_pipeline("rollout", str(tmp_path / "m.yaml"), "--app", "web", "-n", ns,
                       env=cluster.cli_env())
    assert out.returncode == 0, out.stderr[-2000:]
    assert cluster.kubectl("-n", ns, "get", "lease", check=False).strip() == "", "released"


def test_an_expired_lease_of_a_dead_holder_is_taken_over(cluster, tmp_path):
    ns = cluster.namespace("lk")
    stale = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    cluster.kubectl("apply", "-f", "-", stdin=f"""
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {{name: {lease_name('web')}, namespace: {ns}}}
spec: {{holderIdentity: ghost, leaseDurationSeconds: 30, acquireTime: "{stale}",
        renewTime: "{stale}"}}
""")
    out = run_pipeline("rollout", str(write(tmp_path / "m.yaml", web(1))), "--app", "web",
                       "-n", ns, env=cluster.cli_env())
    assert out.returncode == 0, out.stderr[-2000:]
    assert "taking over an expired deploy lock" in out.stderr
    assert "waiting for the deploy lock" not in out.stderr, "taken over without a wait"


def test_two_rollouts_of_one_app_are_serialized(cluster, tmp_path):
    ns = cluster.namespace("lk")
    env = {**os.environ, **cluster.cli_env(), "PIPELINE_LOG_FORMAT": "json"}
    first = write(tmp_path / "a.yaml", web(1, behavior="slow-ready", ready_after="6s"))
    second = write(tmp_path / "b.yaml", web(2))
    cmd = [sys.executable, "-m", "pipelinelib", "rollout", "--app", "web", "-n", ns]
    writes = KubeAuditWrites(cluster.kube_env["PIPELINELIB_KUBE_AUDIT_LOG"], [ns])
    writes.mark()
    a = subprocess.Popen([*cmd, str(first)], env=env, stderr=subprocess.PIPE, text=True)
    # b starts once a holds the lock (its Lease exists), not after a guessed sleep
    def a_holds_the_lock() -> bool:
        assert a.poll() is None, "a exited before it took the lock"
        return bool(cluster.kubectl("-n", ns, "get", "lease", lease_name("web"),
                                    "--ignore-not-found", "-o", "name").strip())

    wait_until(a_holds_the_lock, 60, "a to take the lock")
    b = subprocess.Popen([*cmd, str(second)], env=env, stderr=subprocess.PIPE, text=True)
    err_a, err_b = a.communicate(120)[1], b.communicate(120)[1]
    assert a.returncode == 0 and b.returncode == 0, err_a[-1500:] + err_b[-1500:]
    # serialized, as the apiserver saw it: one holder's lease is created and deleted before
    # the next one is created, and b's Deployment write comes after a's lease is gone
    seen = [w.what for w in writes.poll()]
    lease_writes = [w.split()[0] for w in seen if w.startswith(("create leases",
                                                                  "delete leases"))]
    assert lease_writes == ["create", "delete", "create", "delete"], seen
    first_release = seen.index(next(w for w in seen if w.startswith("delete leases")))
    assert [i for i, w in enumerate(seen) if w == "patch deployments/web"][-1] > first_release
    if "waiting for the deploy lock" in err_b:  # b came while a held it: it says who
        assert "rm-bob" in err_b
    live = cluster.json("-n", ns, "get", "deploy", "web")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image(2)


def test_under_the_lock_only_objects_that_moved_are_planned_again(cluster):
    ns = cluster.namespace("lk")
    rollout(cluster.ctx(), web(1), app="web", namespace=ns, timeout=60)
    kube = cluster.deployer()
    planned = plan_changes(kube, prepare(cluster.ctx(), web(2), "web", ns), True)
    assert {c.manifest.kind: c.action for c in planned}["Deployment"] == "update"
    # meanwhile another rollout of the same version lands (ours waited for the lock)
    rollout(cluster.ctx(), web(2), app="web", namespace=ns, timeout=60)
    fresh = refresh(kube, planned)
    assert [c.action for c in fresh] == ["none"] * len(planned), "nothing left to write"
    for before, after in zip(planned, fresh, strict=True):
        moved = before.manifest.kind == "Deployment"
        assert (after is before) != moved, f"{before.ref}: re-planned only if it moved"




def test_an_update_is_written_only_over_the_version_it_was_planned_against(cluster):
    """No re-read under the lock: each update carries the listed resourceVersion, and an
    object that moved since the plan (409) is planned again and that change written."""
    ns = cluster.namespace("lk")
    rollout(cluster.ctx(), web(1), app="web", namespace=ns, timeout=60)
    kube = cluster.deployer()

    def planned(n: int):
        owned = Owned(kube, "web", ns)  # the plan's lists: the live state it writes over
        changes = plan_changes(kube, prepare(cluster.ctx(), web(n), "web", ns), True, owned)
        return next(c for c in changes if c.manifest.kind == "Deployment")

    stale = planned(2)
    assert stale.action == "update"
    rollout(cluster.ctx(), web(3), app="web", namespace=ns, timeout=60)  # lands meanwhile
    result, written = apply_planned(kube, stale)
    assert result is not None and written is not stale and written.action == "update"
    assert written.live["spec"]["template"]["spec"]["containers"][0]["image"] == image(3), \
        "planned again against what is live now (what a rollback would restore)"
    assert result["spec"]["template"]["spec"]["containers"][0]["image"] == image(2)

    stale = planned(4)
    rollout(cluster.ctx(), web(4), app="web", namespace=ns, timeout=60)  # the same version
    writes = kube.writes
    result, written = apply_planned(kube, stale)
    assert result is None and written.action == "none" and kube.writes == writes, \
        "nothing left to write"
