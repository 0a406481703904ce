"""One diff engine: plan, apply --dry-run and rollout --dry-run report the same changes.

An app is applied for real (as the least-privilege deployer), then changed four ways at
once: a spec change (replicas), drift on one field of another object (its ConfigMap,
patched by hand), an object dropped from the manifests (pruned) and a Secret's value
(a new content-hashed Secret, the old one pruned). All three commands must name the same
objects with the same actions; the Secret's value appears in none of their outputs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipelinelib.envspec.load import load_environment
from pipelinelib.steps.plan import render_all
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Kubectl, deployer_env

PLANTED = "planted-engine-secret-6b2f"
DIGEST = "sha256:" + hashlib.sha256(b"engine-web").hexdigest()


@pytest.fixture(scope="module")
def kubectl(kube_env) -> Iterator[Kubectl]:
    k = Kubectl(kube_env)
    yield k
    k.cleanup()


def write(root: Path, ns: str, *, replicas: int = 1, password: str = PLANTED,
          admin_service: bool = True, hashed: bool = True) -> None:
    (root / "environments").mkdir(parents=True, exist_ok=True)
    (root / "environments" / "staging.yaml").write_text(f"""\
apiVersion: pipelinelib.dev/v1
kind: Environment
name: staging
namespaces: [{ns}]
apps:
  web:
    image: {{repository: 127.0.0.1:5001/t/web, tag: "1.0", digest: "{DIGEST}"}}
    replicas: {replicas}
    manifests: apps/web
    config: {{LOG_LEVEL: info}}
    timeout: 60
""")
    folder = root / "apps" / "web"
    folder.mkdir(parents=True, exist_ok=True)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "placeholder",
                                     "envFrom": [{"secretRef": {"name": "creds"}}]}]}}}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
              "stringData": {"PASSWORD": password}}
    if not hashed:  # keeps its name: a new value updates it in place
        secret["metadata"]["annotations"] = {"pipelinelib.dev/hash": "false"}
    (folder / "deployment.yaml").write_text(yaml.safe_dump(deployment))
    (folder / "secret.yaml").write_text(yaml.safe_dump(secret))
    admin = folder / "admin-service.yaml"
    if admin_service:
        admin.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-admin"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "admin", "port": 9090}]}}))
    elif admin.exists():
        admin.unlink()


def run(kube_env, *args: str):
    out = run_pipeline(*args, env={**deployer_env(kube_env), "PIPELINE_REVISION": "a" * 40})
    assert PLANTED not in out.stdout + out.stderr, "the Secret's value leaked"
    return out


def three_dry_runs(kube_env, tmp_path: Path, ns: str) -> tuple[dict, set, set, dict]:
    """(plan of web, plan's object actions, apply --dry-run's, rollout --dry-run's step)."""
    plan = run(kube_env, "plan", "staging", "--repo", str(tmp_path), "--output", "json")
    assert plan.returncode == 4, plan.stderr[-3000:]
    web = json.loads(plan.stdout)["apps"][0]
    report = tmp_path / "apply-report"
    applied = run(kube_env, "--dry-run", "--report-dir", str(report), "apply", "staging",
                  "--repo", str(tmp_path))
    assert applied.returncode == 0, applied.stderr[-3000:]
    step = json.loads((report / "summary.json").read_text())["steps"][0]
    apply_dry = set(step["outputs"]["changes"]["web"])
    env = load_environment(tmp_path / "environments" / "staging.yaml", root=tmp_path)
    manifests = tmp_path / "web.yaml"
    manifests.write_text(yaml.safe_dump_all(render_all(env)["web"]))
    report = tmp_path / "rollout-report"
    rolled = run(kube_env, "--dry-run", "--report-dir", str(report), "rollout",
                 str(manifests), "--app", "web", "--namespace", ns)
    assert rolled.returncode == 0, rolled.stderr[-3000:]
    rollout = json.loads((report / "summary.json").read_text())["steps"][0]
    rollout["objects"] = {a.replace("prune ", "delete ", 1) for a in rollout["actions"]}
    return web, set(web["objects"]), apply_dry, rollout


def test_a_secret_value_changed_in_place_is_an_update_in_all_three(kube_env, kubectl,
                                                                   tmp_path):
    ns = kubectl.namespace("engine")
    write(tmp_path, ns, hashed=False)
    first = run(kube_env, "apply", "staging", "--repo", str(tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]
    write(tmp_path, ns, hashed=False, password=PLANTED + "-rotated")
    web, planned, apply_dry, rollout = three_dry_runs(kube_env, tmp_path, ns)
    assert planned == apply_dry == rollout["objects"] == {"update Secret/creds"}
    assert {(c["field"], c["live"], c["desired"]) for c in web["changes"]} == {
        ("data.PASSWORD", "***", "***")}
    shown = "\n".join(rollout["outputs"]["diff"])
    assert "--- live Secret/creds" in shown
    assert base64.b64encode(PLANTED.encode()).decode()[:12] not in shown


def test_plan_apply_and_rollout_dry_runs_report_the_same_changes(kube_env, kubectl, tmp_path):
    ns = kubectl.namespace("engine")
    write(tmp_path, ns)
    first = run(kube_env, "apply", "staging", "--repo", str(tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]
    config = next(i["metadata"]["name"] for i in kubectl.json("-n", ns, "get", "configmaps")[
        "items"] if i["metadata"]["name"].startswith("web-config-"))
    old_secret = next(i["metadata"]["name"] for i in kubectl.json("-n", ns, "get", "secrets")[
        "items"] if i["metadata"]["name"].startswith("creds-"))

    write(tmp_path, ns, replicas=2, password=PLANTED + "-rotated", admin_service=False)
    kubectl("-n", ns, "patch", "configmap", config, "--type=merge", "-p",
            '{"data":{"LOG_LEVEL":"debug"}}')

    web, planned, apply_dry, rollout = three_dry_runs(kube_env, tmp_path, ns)
    rollout_dry = rollout["objects"]
    new_secret = next(o.split(" ", 1)[1] for o in planned if o.startswith("create Secret/"))
    assert new_secret != f"Secret/{old_secret}"
    assert planned == {
        "update Deployment/web",              # replicas, and the new Secret's name
        f"update ConfigMap/{config}",         # drift: patched by hand
        f"create {new_secret}",               # the Secret's new value, content-hashed
        f"delete Secret/{old_secret}",
        "delete Service/web-admin",           # dropped from the manifests
    }, planned
    assert apply_dry == planned
    assert rollout_dry == planned
    drift = {(c["object"], c["field"]): (c["live"], c["desired"]) for c in web["changes"]
             if c["drift"]}
    assert drift == {(f"ConfigMap/{config}", "data.LOG_LEVEL"): ("debug", "info")}
    fields = {c["field"]: (c["live"], c["desired"]) for c in web["changes"]
              if c["object"] == "Deployment/web"}
    assert fields["spec.replicas"] == (1, 2)
    assert any("replicas: 2" in line for line in rollout["outputs"]["diff"])

    nothing = run(kube_env, "--dry-run", "apply", "staging", "--repo", str(tmp_path))
    assert nothing.returncode == 0
    assert kubectl.json("-n", ns, "get", "deployment", "web")["spec"]["replicas"] == 1, \
        "the dry runs wrote nothing"
