"""`pipeline validate`: every input kind, all problems at once, offline or read-only online."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.helpers.audit_log import AuditLog
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster, grant_deployer_rbac
from tests.helpers.manifests import image, web, write
from tests.helpers.paths import FIXTURES, ROOT
from tests.helpers.yamlbombs import billion_laughs

HELLO = ROOT / "examples" / "hello"


def text(out) -> str:
    """stderr with JSON log lines as their event (and checked input), unicode unescaped."""
    lines = []
    for line in out.stderr.splitlines():
        try:
            record = json.loads(line)
            lines.append(" ".join(str(record[k]) for k in ("event", "input") if k in record))
        except (ValueError, AttributeError, TypeError):
            lines.append(line)
    return "\n".join(lines)


def test_valid_inputs_of_every_kind_pass_offline():
    pin = f"pipelinelib/hello-example-org-web={image(1)}"
    out = run_pipeline("validate", str(HELLO / "k8s"), str(HELLO / "gate.yaml"),
                       str(HELLO / "scan-policy.yaml"), str(HELLO / "perf-budget.yaml"),
                       str(ROOT / "examples" / "env-state" / "policy.yaml"), "--image", pin)
    assert out.returncode == 0, text(out)
    logged = text(out)
    for line in ("k8s: manifests, 3 objects", "gate.yaml: gate", "scan-policy.yaml: scan-policy",
                 "perf-budget.yaml: budget", "policy.yaml: promotion-policy"):
        assert line in logged, logged


def test_problems_in_every_kind_are_reported_together(tmp_path):
    write(tmp_path / "k8s" / "app.yaml", [
        *web(1), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}])
    (tmp_path / "k8s" / "more.yaml").write_text(
        yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "api"}, "spec": {"template": {"spec": {
                            "containers": [{"name": "api", "image": "acme/api:latest"}]}}}}))
    (tmp_path / "scan-policy.yaml").write_text("fail_on: high\nunknown_key: 1\n")
    (tmp_path / "budget.yaml").write_text("categories: {performance: lots}\n")
    (tmp_path / "bomb.yaml").write_text(billion_laughs())
    (tmp_path / "bytes.yaml").write_bytes(b"\xff\xfe\x00garbage")
    out = run_pipeline("validate", str(tmp_path / "k8s"), str(tmp_path / "scan-policy.yaml"),
                       str(tmp_path / "budget.yaml"), str(tmp_path / "bomb.yaml"),
                       str(tmp_path / "bytes.yaml"))
    logged = text(out)
    assert out.returncode == 2 and "Traceback" not in out.stderr, logged
    for phrase in ("6 problems, nothing was written",
                   "invalid name 'Bad_Name'",
                   "image 'acme/api:latest' is not pinned by digest",
                   "scan-policy.yaml", "unknown key 'unknown_key'",
                   "budget.yaml",
                   "bomb.yaml:10: excessive aliasing",
                   "bytes.yaml: not UTF-8 text"):
        assert phrase in logged, (phrase, logged)


def test_an_env_state_repository_is_validated_with_its_charts_rendered(tmp_path):
    repo = tmp_path / "env-state"
    shutil.copytree(ROOT / "examples" / "env-state", repo)
    spec = repo / "environments" / "qa.yaml"
    data = yaml.safe_load(spec.read_text())
    for app in data["apps"].values():
        app["image"]["digest"] = "sha256:" + "1" * 64
    data["apps"]["records-api"]["replicas"] = "two"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    out = run_pipeline("validate", str(spec))
    logged = text(out)
    assert out.returncode == 2, logged
    assert "qa.yaml" in logged and "apps.records-api.replicas" in logged, logged
    data["apps"]["records-api"]["replicas"] = 2
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    out = run_pipeline("validate", str(spec))
    assert out.returncode == 0, text(out)
    assert "qa.yaml: environment" in text(out), "the chart app rendered and checked too"


@pytest.fixture
def cluster(cluster: Cluster) -> Cluster:
    """The shared ``cluster``, with this tree's deployer role applied."""
    grant_deployer_rbac(cluster)
    return cluster


def test_with_a_cluster_kinds_fields_and_live_references_are_checked_read_only(
        cluster, kube_env, tmp_path):
    ns = cluster.namespace("vd")
    cluster.kubectl("-n", ns, "create", "secret", "generic", "present", "--from-literal=a=b")
    audit = AuditLog(kube_env["PIPELINELIB_KUBE_AUDIT_LOG"])
    container = {"name": "web", "image": image(1), "imagePullPolicyy": "Always",
                 "envFrom": [{"secretRef": {"name": "present"}},
                             {"secretRef": {"name": "absent"}}]}
    write(tmp_path / "app.yaml", [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": "two", "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [container]}}}},
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}])
    offline = run_pipeline("validate", str(tmp_path / "app.yaml"), "-n", ns)
    assert offline.returncode == 0, "offline: nothing it can check is wrong"
    online = run_pipeline("validate", str(tmp_path / "app.yaml"), "-n", ns, "--kubeconfig",
                          cluster.deployer_kubeconfig)
    logged = text(online)
    assert online.returncode == 2, logged
    for phrase in ("unknown kind Widget in example.com/v1",
                   "spec.replicas: 'two' is not of type 'integer'",
                   "unknown field ('imagePullPolicyy' was unexpected)",
                   "Secret absent does not exist"):
        assert phrase in logged, (phrase, logged)
    assert "Secret present" not in logged, "a Secret in the namespace is found"
    assert audit.writes(ns) == [] and audit.requests(ns) == [], "read only"


def test_validate_is_listed_and_explained_in_help():
    out = run_pipeline("--help")
    assert "validate" in out.stdout + out.stderr
    out = run_pipeline("validate", "--help")
    assert "Offline by default" in out.stdout and "exit 2" in out.stdout


def test_a_kustomize_directory_is_built_for_validation(cluster, tmp_path):
    folder = FIXTURES / "manifests" / "realworld" / "kustomize-app"
    out = run_pipeline("validate", str(folder), env={"PIPELINE_KUBECTL": cluster.kubectl_bin})
    assert out.returncode == 0, text(out)
    assert "kustomize-app: manifests, 4 objects" in text(out)
