"""Helm chart hooks honoured, values files and set with $ENV, images per container, and a
plan that lists the Secret apply then creates — rendered by the real helm, deployed on the
real control plane as the least-privilege deployer."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from pipelinelib.envspec.load import load_environment
from pipelinelib.helm import hooks
from pipelinelib.kube.labels import APP_LABEL
from pipelinelib.secrets import Secrets
from pipelinelib.steps.plan import render_all
from tests.helpers.cli import run_pipeline
from tests.helpers.paths import ROOT

CHART = ROOT / "tests" / "fixtures" / "charts" / "hooked"
DIGEST = "sha256:" + "1" * 64
CACHE = "sha256:" + "2" * 64
PLANTED = "planted-hook-db-secret-4d2a"


def state(root: Path, ns: str, replicas: int = 1, extra: str = "") -> Path:
    shutil.copytree(CHART, root / "charts" / "hooked", dirs_exist_ok=True)
    (root / "values").mkdir(parents=True, exist_ok=True)
    (root / "values" / "shop.yaml").write_text("cache: {image: example/cache:7.2}\n")
    path = root / "environments" / "staging.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""\
apiVersion: pipelinelib.dev/v1
kind: Environment
name: staging
namespaces: [{ns}]
apps:
  shop:
    image: {{repository: 127.0.0.1:5001/t/shop, tag: "1.0", digest: "{DIGEST}"}}
    chart: {{name: hooked, repository: charts/hooked, version: 0.3.0}}
    images: {{cache: {{repository: 127.0.0.1:5001/t/cache, digest: "{CACHE}"}}}}
    values_files: [values/shop.yaml]
    set: {{auth.password: $SHOP_DB_PASSWORD}}
    replicas: {replicas}
    timeout: 60
{extra}""")
    return path


def test_hooks_are_split_from_the_app_and_ordered_by_event_and_weight(helm_bin, tmp_path):
    env = load_environment(state(tmp_path, "shop-ns"), root=tmp_path,
                           environ={"SHOP_DB_PASSWORD": PLANTED})
    secrets = Secrets()
    os.environ["SHOP_DB_PASSWORD"] = PLANTED
    try:
        docs = render_all(env, secrets)["shop"]
    finally:
        del os.environ["SHOP_DB_PASSWORD"]
    main, found = hooks.split(docs)
    assert sorted(f"{d['kind']}/{d['metadata']['name']}" for d in main
                  if d["kind"] != "Secret") == ["Deployment/shop", "Deployment/shop-cache"]
    assert hooks.describe(found) == [
        "pre-install ConfigMap/shop-pre-install-settings (weight -10; before-hook-creation)",
        "pre-install Job/shop-pre-install (weight -5; before-hook-creation)",
        "post-install Job/shop-post-install (weight 5; hook-succeeded)",
        "pre-upgrade Job/shop-pre-upgrade (weight -5; before-hook-creation, hook-failed)",
        "post-upgrade Job/shop-post-upgrade (weight 5; hook-succeeded)"]
    for hook in found:
        labels = hook.obj["metadata"]["labels"]
        assert labels[hooks.HOOK_OF] == "shop" and APP_LABEL not in labels
    images = {c["name"]: c["image"] for d in main if d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {"shop": f"127.0.0.1:5001/t/shop@{DIGEST}",
                      "cache": f"127.0.0.1:5001/t/cache@{CACHE}"}
    (secret,) = [d for d in main if d["kind"] == "Secret"]
    assert secret["stringData"] == {"password": PLANTED} and PLANTED in secrets


def events(stderr: str) -> list[str]:
    """The hook starts and the app's Deployment writes of a JSON log, in order."""
    out = []
    for line in stderr.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        text = str(rec.get("event", ""))
        if text == "hook starting":
            out.append(f"hook starting {rec.get('hook')}")
        elif " Deployment/" in text and text.split(" ", 1)[0].endswith("d"):
            out.append(text)
    return out


def test_apply_runs_hooks_in_order_and_plan_lists_the_secret_it_creates(helm_bin, cluster,
                                                                       tmp_path):
    ns = cluster.namespace("hk")
    state(tmp_path, ns)
    env = {**cluster.cli_env(), "SHOP_DB_PASSWORD": PLANTED, "PIPELINELIB_HELM": helm_bin}
    plan = run_pipeline("plan", "staging", "--repo", str(tmp_path), "--output", "json", env=env)
    assert plan.returncode == 4, plan.stderr[-2000:]
    (app,) = json.loads(plan.stdout)["apps"]
    secrets = [c for c in app["creates"] if c.startswith("Secret/")]
    assert len(secrets) == 1 and secrets[0].startswith("Secret/shop-auth-")
    assert sorted(c for c in app["creates"] if not c.startswith("Secret/")) == [
        "Deployment/shop", "Deployment/shop-cache"], "hooks are not planned as objects"
    assert len(app["hooks"]) == 5
    text = run_pipeline("plan", "staging", "--repo", str(tmp_path), env=env)
    assert f"+ {secrets[0]}" in text.stdout and "> hook pre-install Job/shop-pre-install" \
        in text.stdout
    assert PLANTED not in plan.stdout + plan.stderr + text.stdout + text.stderr

    applied = run_pipeline("apply", "staging", "--repo", str(tmp_path), env=env)
    assert applied.returncode == 0, applied.stderr[-3000:]
    assert PLANTED not in applied.stdout + applied.stderr
    order = events(applied.stderr)
    assert order[:2] == ["hook starting ConfigMap/shop-pre-install-settings",
                         "hook starting Job/shop-pre-install"], order
    assert order[-1] == "hook starting Job/shop-post-install", order
    assert sorted(order[2:-1]) == ["created Deployment/shop", "created Deployment/shop-cache"]
    jobs = {j["metadata"]["name"]: j for j in cluster.json("-n", ns, "get", "jobs")["items"]}
    assert set(jobs) == {"shop-pre-install"}, "post-install: hook-succeeded deletes it"
    assert any(c["type"] == "Complete" for c in jobs["shop-pre-install"]["status"]["conditions"])
    first_uid = jobs["shop-pre-install"]["metadata"]["uid"]
    live_secret = cluster.json("-n", ns, "get", secrets[0].replace("Secret/", "secret/"))
    assert live_secret["metadata"]["labels"][APP_LABEL] == "shop"
    again = run_pipeline("plan", "staging", "--repo", str(tmp_path), "--output", "json", env=env)
    assert again.returncode == 0, again.stdout[-3000:]
    marker = cluster.json("-n", ns, "get", "configmap", "shop-hooks")["data"]
    assert marker["event"] == "install" and marker["done"] == "true"

    # killed after the rollout, before the post-install hook: the marker says not done
    cluster.kubectl("-n", ns, "patch", "configmap", "shop-hooks", "--type=merge",
                    "-p", '{"data": {"done": "false"}}')
    pending = run_pipeline("plan", "staging", "--repo", str(tmp_path), "--output", "json",
                           env=env)
    assert pending.returncode == 4
    (change,) = json.loads(pending.stdout)["apps"][0]["changes"]
    assert change["live"] == "install hooks did not finish"
    resumed = run_pipeline("apply", "staging", "--repo", str(tmp_path), env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert events(resumed.stderr) == ["hook starting ConfigMap/shop-pre-install-settings",
                                      "hook starting Job/shop-pre-install",
                                      "hook starting Job/shop-post-install"]
    assert cluster.json("-n", ns, "get", "configmap", "shop-hooks")["data"]["done"] == "true"
    first_uid = cluster.json("-n", ns, "get", "job", "shop-pre-install")["metadata"]["uid"]

    state(tmp_path, ns, replicas=2)
    upgraded = run_pipeline("apply", "staging", "--repo", str(tmp_path), env=env)
    assert upgraded.returncode == 0, upgraded.stderr[-3000:]
    order = events(upgraded.stderr)
    assert order[0] == "hook starting Job/shop-pre-upgrade"
    assert order[-1] == "hook starting Job/shop-post-upgrade"
    assert "updated Deployment/shop" in order[1:-1], order
    jobs = {j["metadata"]["name"]: j for j in cluster.json("-n", ns, "get", "jobs")["items"]}
    assert set(jobs) == {"shop-pre-install", "shop-pre-upgrade"}
    assert jobs["shop-pre-install"]["metadata"]["uid"] == first_uid, "install hooks not re-run"


def test_a_failing_pre_upgrade_hook_stops_the_upgrade_and_is_deleted(helm_bin, cluster,
                                                                    tmp_path):
    ns = cluster.namespace("hk")
    env = {**cluster.cli_env(), "SHOP_DB_PASSWORD": PLANTED, "PIPELINELIB_HELM": helm_bin}
    state(tmp_path, ns)
    first = run_pipeline("apply", "staging", "--repo", str(tmp_path), env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    state(tmp_path, ns, replicas=3, extra="    set_string: {hookBehavior: job-fail}\n")
    failed = run_pipeline("apply", "staging", "--repo", str(tmp_path), env=env)
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "pre-upgrade hook Job/shop-pre-upgrade failed" in failed.stderr
    live = cluster.json("-n", ns, "get", "deployment", "shop")
    assert live["spec"]["replicas"] == 1, "the app was not changed"
    names = [j["metadata"]["name"] for j in cluster.json("-n", ns, "get", "jobs")["items"]]
    assert "shop-pre-upgrade" not in names, "hook-failed deletes it"
    state(tmp_path, ns, extra="    enabled: false\n")
    removed = run_pipeline("apply", "staging", "--repo", str(tmp_path), env=env)
    assert removed.returncode == 0, removed.stderr[-3000:]
    left = cluster.json("-n", ns, "get", "deployments,jobs,secrets,configmaps")["items"]
    assert [i["metadata"]["name"] for i in left if i["metadata"]["name"]
            != "kube-root-ca.crt"] == [], "the app, its hook objects and marker are gone"
