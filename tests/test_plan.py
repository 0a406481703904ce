"""`pipeline plan` against the real control plane: creates, no changes, drift, masking, deletes.

The plan runs as the least-privilege deployer (tests/helpers/kube.py `deployer_env`);
kubectl (admin) only puts objects in place.

Objects are put in place the way a previous apply leaves them (the rendered manifests,
applied with kubectl), so these tests prove the plan alone; tests/test_apply.py proves apply.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.helpers.cli import run_pipeline
from tests.helpers.envstate import PLAN_PLANTED, put_in_place, write_staging
from tests.helpers.kube import deployer_env


def plan(kube_env, root: Path, *extra: str):
    return run_pipeline("plan", "staging", "--repo", str(root), *extra,
                        env={**deployer_env(kube_env), "PIPELINE_LOG_FORMAT": "json"})


def test_plan_lists_creates_then_no_changes_once_the_cluster_matches(kube_env, kubectl,
                                                                     tmp_path):
    ns = kubectl.namespace("plan")
    write_staging(tmp_path, ns)
    out = plan(kube_env, tmp_path)
    assert out.returncode == 4, out.stderr[-3000:]
    assert "+ web  (create" in out.stdout and "+ Deployment/web" in out.stdout
    assert "Plan: 1 to create, 0 to change, 0 to delete" in out.stdout
    put_in_place(kubectl, tmp_path)
    out = plan(kube_env, tmp_path, "--output", "json")
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout)
    assert data["changes_pending"] is False and data["apps"][0]["action"] == "none"


def test_plan_shows_each_changed_field_with_secrets_masked(kube_env, kubectl, tmp_path):
    ns = kubectl.namespace("plan")
    write_staging(tmp_path, ns)
    put_in_place(kubectl, tmp_path)
    write_staging(tmp_path, ns, replicas=3, tag="2.0")
    text = (tmp_path / "environments" / "staging.yaml").read_text()
    (tmp_path / "environments" / "staging.yaml").write_text(
        text.replace(PLAN_PLANTED, PLAN_PLANTED + "-rotated")
        .replace("memory: 64Mi", "memory: 96Mi"))
    out = plan(kube_env, tmp_path)
    assert out.returncode == 4
    assert "~ Deployment/web replicas: 2 -> 3" in out.stdout
    assert "container[web].image: 127.0.0.1:5001/t/web:1.0 -> 127.0.0.1:5001/t/web:2.0" \
        in out.stdout
    assert "resources.limits.memory: 64Mi -> 96Mi" in out.stdout
    assert "env[API_TOKEN].value: *** -> ***" in out.stdout
    assert PLAN_PLANTED not in out.stdout + out.stderr
    assert "drift" not in out.stdout, "a spec change is not drift"


def live_then_changed_by_hand(kubectl, tmp_path) -> str:
    """The spec's objects live in a fresh namespace, then scaled to 5 and MODE=debug by hand."""
    ns = kubectl.namespace("plan")
    write_staging(tmp_path, ns)
    put_in_place(kubectl, tmp_path)
    kubectl("-n", ns, "scale", "deployment", "web", "--replicas=5")
    kubectl("-n", ns, "set", "env", "deployment/web", "MODE=debug")
    return ns


def test_plan_detects_drift_made_by_hand(kube_env, kubectl, tmp_path):
    live_then_changed_by_hand(kubectl, tmp_path)
    out = plan(kube_env, tmp_path, "--output", "json")
    assert out.returncode == 4
    data = json.loads(out.stdout)
    assert data["drifted"] == ["web"]
    drift = {c["field"]: (c["live"], c["desired"]) for c in data["apps"][0]["changes"]}
    assert drift["spec.replicas"] == (5, 2)
    assert drift["spec.template.spec.containers[web].env[MODE].value"] == ("debug", "prod")


def test_drift_and_a_spec_change_on_one_app_are_both_reported(kube_env, kubectl, tmp_path):
    ns = live_then_changed_by_hand(kubectl, tmp_path)
    write_staging(tmp_path, ns, tag="2.0")
    out = plan(kube_env, tmp_path, "--output", "json")
    assert out.returncode == 4, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert data["drifted"] == ["web"]
    changes = {c["field"]: (c["live"], c["desired"], c["drift"])
               for c in data["apps"][0]["changes"]}
    assert changes["spec.replicas"] == (5, 2, True)
    assert changes["spec.template.spec.containers[web].env[MODE].value"] == ("debug", "prod",
                                                                             True)
    assert changes["spec.template.spec.containers[web].image"] == (
        "127.0.0.1:5001/t/web:1.0", "127.0.0.1:5001/t/web:2.0", False)
    text = plan(kube_env, tmp_path).stdout
    assert "! Deployment/web replicas: 5 -> 2   (drift: changed by hand in the cluster)" in text
    assert "~ Deployment/web container[web].image: 127.0.0.1:5001/t/web:1.0 -> " \
        "127.0.0.1:5001/t/web:2.0\n" in text
    assert "1 drifted" in text


def test_an_app_removed_from_the_spec_is_planned_for_deletion(kube_env, kubectl, tmp_path):
    ns = kubectl.namespace("plan")
    write_staging(tmp_path, ns, apps="web,old")
    put_in_place(kubectl, tmp_path)
    write_staging(tmp_path, ns, apps="web")
    out = plan(kube_env, tmp_path, "--output", "json")
    assert out.returncode == 4
    old = next(a for a in json.loads(out.stdout)["apps"] if a["app"] == "old")
    assert old["action"] == "delete"
    config, *rest = sorted(old["deletes"])
    assert config.startswith("ConfigMap/old-config-")
    assert rest == ["Deployment/old", "Ingress/old", "Service/old"]


def test_plan_against_an_unreachable_cluster_exits_3(tmp_path):
    write_staging(tmp_path, "nowhere")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("""\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
""")
    out = run_pipeline("plan", "staging", "--repo", str(tmp_path),
                       env={"KUBECONFIG": str(kubeconfig), **{k: v for k, v in os.environ.items()
                                                             if k == "PATH"}})
    assert out.returncode == 3, out.stderr[-2000:]
