"""plan/apply on the real control plane: three environments, no-op, drift, priorities, fail fast."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.cli import run_pipeline
from tests.helpers.envstate import env_app, write_env
from tests.helpers.kube import deployer_env


def pipeline(kube_env, *args: str, report: Path | None = None):
    """``pipeline ARGS`` as the least-privilege deployer (kubectl/admin only sets up)."""
    extra = ("--report-dir", str(report)) if report else ()
    return run_pipeline(*extra, *args, env=deployer_env(kube_env))


def plan_json(kube_env, root: Path, env: str):
    out = pipeline(kube_env, "plan", env, "--repo", str(root), "--output", "json")
    assert out.returncode in (0, 4), out.stderr[-3000:]
    return out.returncode, json.loads(out.stdout)


def test_plan_apply_and_noop_across_three_environments(kube_env, kubectl, tmp_path):
    envs = {}
    for name in ("int-test", "qa", "prod"):
        ns = kubectl.namespace(name)
        envs[name] = ns
        write_env(tmp_path, name, ns, env_app("api", 0) + env_app("web", 10, replicas=2))
    for name, ns in envs.items():
        code, plan = plan_json(kube_env, tmp_path, name)
        assert code == 4 and plan["changes_pending"]
        assert {a["app"]: a["action"] for a in plan["apps"]} == {"api": "create", "web": "create"}
        out = pipeline(kube_env, "apply", name, "--repo", str(tmp_path))
        assert out.returncode == 0, out.stderr[-3000:]
        assert kubectl.json("-n", ns, "get", "deployment", "web")["spec"]["replicas"] == 2
        code, plan = plan_json(kube_env, tmp_path, name)
        assert code == 0 and not plan["changes_pending"], plan
        before = kubectl.versions(ns)
        again = pipeline(kube_env, "apply", name, "--repo", str(tmp_path),
                         report=tmp_path / f"report-{name}")
        assert again.returncode == 0, again.stderr[-3000:]
        summary = json.loads((tmp_path / f"report-{name}" / "summary.json").read_text())
        assert [s["status"] for s in summary["steps"]] == ["unchanged"]
        assert kubectl.versions(ns) == before, "a no-op apply writes nothing"


def test_plan_shows_changes_and_apply_touches_only_changed_apps(kube_env, kubectl, tmp_path):
    ns = kubectl.namespace("chg")
    write_env(tmp_path, "staging", ns, env_app("api") + env_app("web"))
    assert pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path)).returncode == 0
    api_before = kubectl.json("-n", ns, "get", "deployment", "api")["metadata"]["resourceVersion"]
    write_env(tmp_path, "staging", ns, env_app("api") + env_app("web", replicas=3, tag="2.0"))
    code, plan = plan_json(kube_env, tmp_path, "staging")
    assert code == 4
    web = next(a for a in plan["apps"] if a["app"] == "web")
    fields = {c["field"]: (c["live"], c["desired"]) for c in web["changes"]}
    assert fields["spec.replicas"] == (1, 3)
    assert fields["spec.template.spec.containers[web].image"][1].startswith(
        "127.0.0.1:5001/t/web@sha256:")
    text = pipeline(kube_env, "plan", "staging", "--repo", str(tmp_path))
    assert text.returncode == 4 and "~ web" in text.stdout and "replicas: 1 -> 3" in text.stdout
    assert pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path)).returncode == 0
    api_after = kubectl.json("-n", ns, "get", "deployment", "api")["metadata"]["resourceVersion"]
    assert api_after == api_before, "an unchanged app is not touched"


def test_drift_is_detected_and_repaired(kube_env, kubectl, tmp_path):
    ns = kubectl.namespace("drift")
    write_env(tmp_path, "staging", ns, env_app("api"))
    assert pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path)).returncode == 0
    kubectl("-n", ns, "scale", "deployment", "api", "--replicas=4")
    config = next(i["metadata"]["name"] for i in kubectl.json(
        "-n", ns, "get", "configmaps")["items"] if i["metadata"]["name"].startswith("api-config-"))
    kubectl("-n", ns, "patch", "configmap", config, "--type=merge", "-p",
            '{"data":{"LOG_LEVEL":"debug"}}')
    code, plan = plan_json(kube_env, tmp_path, "staging")
    assert code == 4 and plan["drifted"] == ["api"]
    drift = {c["field"]: (c["live"], c["desired"]) for c in plan["apps"][0]["changes"]
             if c["drift"]}
    assert drift == {"spec.replicas": (4, 1), "data.LOG_LEVEL": ("debug", "info")}
    text = pipeline(kube_env, "plan", "staging", "--repo", str(tmp_path))
    assert "drift: changed by hand" in text.stdout
    assert pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path)).returncode == 0
    assert plan_json(kube_env, tmp_path, "staging")[0] == 0


def test_priorities_in_order_equal_priority_in_parallel(kube_env, kubectl, tmp_path):
    ns = kubectl.namespace("prio")
    apps = "".join(env_app(f"first-{i}", 0, ready_after="2s", behavior="slow-ready")
                   for i in range(3))
    apps += "".join(env_app(f"second-{i}", 5) for i in range(2))
    write_env(tmp_path, "staging", ns, apps, extra="max_parallel: 3\n")
    out = pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    items = kubectl.json("-n", ns, "get", "deployments")["items"]
    created = {i["metadata"]["name"]: i["metadata"]["creationTimestamp"] for i in items}
    assert max(v for k, v in created.items() if k.startswith("first")) <= min(
        v for k, v in created.items() if k.startswith("second")), created
    # in parallel: every first-* app was created before any of them became available (each
    # takes 2 s to get ready), from the server's timestamps; a serial run fails this
    available = {i["metadata"]["name"]: next(
        c["lastTransitionTime"] for c in i["status"]["conditions"]
        if c["type"] == "Available" and c["status"] == "True") for i in items}
    firsts = [k for k in created if k.startswith("first")]
    assert max(created[k] for k in firsts) < min(available[k] for k in firsts), (
        created, available)


def test_fail_fast_stops_new_apps_and_reports_each(kube_env, kubectl, tmp_path):
    ns = kubectl.namespace("fail")
    apps = env_app("broken", 0, behavior="crash") + env_app("fine", 0) + env_app("later", 5)
    write_env(tmp_path, "staging", ns, apps, extra="max_parallel: 2\n")
    out = pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path),
                   report=tmp_path / "report")
    assert out.returncode == 1, out.stderr[-3000:]
    assert "apply of staging failed at broken" in out.stderr
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    evidence = "\n".join(summary["steps"][-1]["evidence"])
    assert "later: not started" in evidence and "broken: failed" in evidence
    names = {i["metadata"]["name"] for i in kubectl.json("-n", ns, "get", "deployments")["items"]}
    assert "later" not in names


def test_an_image_not_pinned_by_digest_is_refused_before_any_write(kube_env, kubectl,
                                                                    tmp_path):
    ns = kubectl.namespace("pin")
    write_env(tmp_path, "staging", ns, env_app("api") + "  loose:\n    image: {repository: "
              "127.0.0.1:5001/t/loose, tag: latest}\n")
    out = pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path))
    assert out.returncode == 2
    assert "apps.loose.image: 127.0.0.1:5001/t/loose:latest is not pinned by digest" in out.stderr
    assert kubectl.json("-n", ns, "get", "deployments")["items"] == []


def test_a_missing_secret_is_refused_for_every_app_before_any_write(kube_env, kubectl,
                                                                     tmp_path):
    ns = kubectl.namespace("sec")
    needs_secret = env_app("api", 5).replace("    timeout: 30\n", "    timeout: 30\n    secrets: "
                                             "{DATABASE_URL: {secret: api-db, key: url}}\n")
    write_env(tmp_path, "staging", ns, env_app("first", 0) + needs_secret)
    out = pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path))
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Secret api-db does not exist" in out.stderr
    assert kubectl.json("-n", ns, "get", "deployments,configmaps,services", "-l",
                        "app.kubernetes.io/managed-by=pipelinelib")["items"] == []
