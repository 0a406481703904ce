"""Namespace settings and protection on the real control plane, as the least-privilege
deployer: labels, annotations, LimitRange and ResourceQuota planned and applied; a
protected namespace is changed only by the policy's promote role and never deleted in;
``enabled: false`` removes an app where it runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster, rbac_under_test

POLICY = """\
groups: {release-managers: [rm-alice, rm-bob]}
environments:
  prod: {promote: ["group:release-managers"]}
"""


@pytest.fixture
def cluster(kube_env):
    c = Cluster(kube_env)
    grants = rbac_under_test(c.kubectl)
    bind = next(grants)
    plain = c.namespace

    def namespace(prefix: str = "pn") -> str:
        name = plain(prefix)
        bind(name)  # the verbs this tree's rbac/deployer.yaml grants (limitranges, ...)
        return name

    c.namespace = namespace
    yield c
    c.cleanup()
    next(grants, None)


def write(root: Path, ns: str, *, protected: bool = True, quotas: bool = True,
          app: str = "enabled: true") -> None:
    digest = "sha256:" + hashlib.sha256(b"api").hexdigest()
    settings = {"protected": protected, "labels": {"team": "ehealth"},
                "annotations": {"owner": "records-team"},
                "limits": [{"type": "Container", "default": {"cpu": "300m", "memory": "200Mi"},
                            "defaultRequest": {"cpu": "200m", "memory": "100Mi"}}]}
    if quotas:
        settings["quotas"] = {"pods": "10", "requests.cpu": "4", "requests.memory": "4Gi"}
    (root / "environments").mkdir(parents=True, exist_ok=True)
    (root / "policy.yaml").write_text(POLICY)
    (root / "environments" / "prod.yaml").write_text(f"""\
apiVersion: pipelinelib.dev/v1
kind: Environment
name: prod
namespaces: {{{ns}: {json.dumps(settings)}}}
apps:
  api:
    image: {{repository: 127.0.0.1:5001/t/api, tag: "1.0", digest: "{digest}"}}
    replicas: 2
    timeout: 60
    {app}
""")


def as_user(cluster: Cluster, user: str | None) -> dict[str, str]:
    env = cluster.cli_env()
    if user is None:  # a local run: no CI server, no identity
        return {k: v for k, v in env.items() if k not in ("BUILD_USER_ID", "JENKINS_URL",
                                                         "BUILD_URL", "JOB_NAME")}
    return {**env, "BUILD_USER_ID": user}


def pipeline(cluster: Cluster, user: str | None, *args: str):
    return run_pipeline(*args, env=as_user(cluster, user))


def test_namespace_settings_are_planned_then_applied_only_by_the_promote_role(cluster,
                                                                            tmp_path):
    ns = cluster.namespace("pn")
    write(tmp_path, ns)
    plan = pipeline(cluster, "rm-bob", "plan", "prod", "--repo", str(tmp_path),
                    "--output", "json")
    assert plan.returncode == 4, plan.stderr[-2000:]
    (nsplan,) = json.loads(plan.stdout)["namespaces"]
    assert nsplan["protected"] and nsplan["action"] == "update"
    assert nsplan["changes"] == ["~ label team: None -> ehealth",
                                 "~ annotation owner: None -> records-team",
                                 "+ LimitRange/pipelinelib-limits",
                                 "+ ResourceQuota/pipelinelib-quota"]

    for user in ("dev-dana", None):
        refused = pipeline(cluster, user, "apply", "prod", "--repo", str(tmp_path))
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert ("may not change protected namespace" in refused.stderr if user else
                "must run on the CI server" in refused.stderr)
        live = cluster.json("get", "namespace", ns)["metadata"]
        assert "team" not in (live.get("labels") or {}), "nothing written"
        assert cluster.json("-n", ns, "get", "deployments,limitranges,resourcequotas"
                            )["items"] == []

    applied = pipeline(cluster, "rm-bob", "apply", "prod", "--repo", str(tmp_path))
    assert applied.returncode == 0, applied.stderr[-3000:]
    audit = [json.loads(ln) for ln in applied.stderr.splitlines() if '"audit"' in ln]
    assert any(a.get("result") == "allowed" and a.get("user") == "rm-bob" for a in audit)
    meta = cluster.json("get", "namespace", ns)["metadata"]
    assert meta["labels"]["team"] == "ehealth" and meta["annotations"]["owner"] == "records-team"
    limits = cluster.json("-n", ns, "get", "limitrange", "pipelinelib-limits")["spec"]
    assert limits["limits"][0]["default"] == {"cpu": "300m", "memory": "200Mi"}
    quota = cluster.json("-n", ns, "get", "resourcequota", "pipelinelib-quota")["spec"]
    assert quota["hard"] == {"pods": "10", "requests.cpu": "4", "requests.memory": "4Gi"}
    pods = cluster.json("-n", ns, "get", "pods")["items"]
    assert pods and all(c["resources"]["requests"]["cpu"] == "200m"
                        for p in pods for c in p["spec"]["containers"]), "LimitRange defaults"

    again = pipeline(cluster, "rm-bob", "plan", "prod", "--repo", str(tmp_path), "--output",
                     "json")
    assert again.returncode == 0, again.stdout[-3000:]
    before = cluster.versions(ns)
    noop = pipeline(cluster, "dev-dana", "apply", "prod", "--repo", str(tmp_path))
    assert noop.returncode == 0, "nothing to change: no privilege needed"
    assert cluster.versions(ns) == before


def test_a_protected_namespace_is_never_deleted_in_and_enabled_false_removes_elsewhere(
        cluster, tmp_path):
    ns = cluster.namespace("pn")
    write(tmp_path, ns)
    assert pipeline(cluster, "rm-bob", "apply", "prod", "--repo", str(tmp_path)).returncode == 0
    write(tmp_path, ns, app="enabled: false")
    refused = pipeline(cluster, "rm-alice", "apply", "prod", "--repo", str(tmp_path))
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "apply never deletes in a protected namespace: api" in refused.stderr
    assert cluster.json("-n", ns, "get", "deployment", "api")["spec"]["replicas"] == 2

    write(tmp_path, ns, protected=False, quotas=False, app="enabled: false")
    plan = pipeline(cluster, None, "plan", "prod", "--repo", str(tmp_path), "--output", "json")
    assert plan.returncode == 4
    body = json.loads(plan.stdout)
    assert body["namespaces"][0]["changes"] == ["- ResourceQuota/pipelinelib-quota"]
    assert [(a["app"], a["action"], a["disabled"]) for a in body["apps"]] == [
        ("api", "delete", True)]
    removed = pipeline(cluster, "dev-dana", "apply", "prod", "--repo", str(tmp_path))
    assert removed.returncode == 0, removed.stderr[-3000:]
    assert cluster.json("-n", ns, "get", "deployments,resourcequotas")["items"] == []
    assert cluster.json("-n", ns, "get", "limitranges")["items"], "still in the spec"
