"""Bad input is refused before the first write, every problem at once (issue 16).

Run through the CLI as the least-privilege deployer; what reached the apiserver is read
from its audit log, so "nothing written" covers the namespace and the deploy Lease too.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import uuid

import pytest
import yaml

from pipelinelib.adapters.kube import KubeClient
from pipelinelib.errors import BadInput
from tests.helpers.audit_log import AuditLog
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster, grant_deployer_rbac
from tests.helpers.manifests import image, web, write
from tests.helpers.yamlbombs import billion_laughs


@pytest.fixture
def cluster(cluster: Cluster) -> Cluster:
    """The shared ``cluster``, with this tree's deployer role applied."""
    grant_deployer_rbac(cluster)
    return cluster


@pytest.fixture
def audit(kube_env):
    return AuditLog(kube_env["PIPELINELIB_KUBE_AUDIT_LOG"])


def rollout_cli(cluster: Cluster, path, app: str, namespace: str):
    grant_deployer_rbac(cluster)  # until merged, another tree's testbed/up may revert it
    return run_pipeline("rollout", str(path), "--app", app, "-n", namespace, "--timeout", "30",
                        env=cluster.cli_env())


def logged(out) -> str:
    """stderr with each JSON log line replaced by its event text (unicode unescaped)."""
    lines = []
    for line in out.stderr.splitlines():
        try:
            lines.append(str(json.loads(line).get("event", line)))
        except (ValueError, AttributeError):
            lines.append(line)
    return "\n".join(lines)


def refused(out, *phrases: str) -> str:
    text = logged(out)
    assert out.returncode == 2, (out.returncode, text[-3000:])
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr
    for phrase in phrases:
        assert phrase in text, (phrase, text[-3000:])
    return text


def namespace_missing(cluster: Cluster, name: str) -> bool:
    out = subprocess.run([cluster.kubectl_bin, "get", "namespace", name], env=cluster.env,
                         capture_output=True, text=True, check=False)
    return out.returncode != 0 and "NotFound" in out.stderr


NAMES = [
    ("namespace with a slash", "web", "a/b", "--namespace", "invalid namespace 'a/b'"),
    ("upper-case app", "Web", None, "--app", "invalid app name 'Web'"),
    ("unicode app", "wéb", None, "--app", "invalid app name 'wéb'"),
    ("300-character app", "a" * 300, None, "--app", "(300 characters)"),
    ("shell in the app", "$(touch /tmp/pwned)", None, "--app", "invalid app name '$(touch"),
    ("upper-case namespace", "web", "Shop", "--namespace", "invalid namespace 'Shop'"),
]


@pytest.mark.parametrize(("case", "app", "namespace", "flag", "phrase"), NAMES,
                         ids=[n[0] for n in NAMES])
def test_invalid_app_and_namespace_names_are_refused_before_any_request(
        cluster, audit, tmp_path, case, app, namespace, flag, phrase):
    fresh = f"iv-{uuid.uuid4().hex[:8]}"  # a valid name nobody created: must stay absent
    manifests = write(tmp_path / "app.yaml", web(1))
    err = refused(rollout_cli(cluster, manifests, app, namespace or fresh), flag, phrase,
                  "RFC 1123 label")
    assert "Lease" not in err, "no confusing message about the lock's name"
    assert audit.requests(fresh) == [] and audit.requests(namespace or fresh) == []
    assert namespace_missing(cluster, fresh)


def test_every_problem_of_the_manifests_is_reported_together_and_nothing_written(
        cluster, audit, tmp_path):
    ns = cluster.namespace("iv")
    pod = {"serviceAccountName": "missing-sa",
           "initContainers": [{"name": "init", "image": "busybox:1.36"}],
           "containers": [{"name": "web", "image": "127.0.0.1:5001/acme/web:latest",
                           "envFrom": [{"configMapRef": {"name": "missing-config"}}],
                           "env": [{"name": "T", "valueFrom": {"secretKeyRef": {
                               "name": "missing-secret", "key": "t"}}}]}],
           "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "missing-pvc"}}]}
    docs = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod}}},
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "elsewhere"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}},
    ]
    err = refused(rollout_cli(cluster, write(tmp_path / "app.yaml", docs), "web", ns),
                  "10 problems, nothing was written",
                  "initContainers[0].image: image 'busybox:1.36' is not pinned by digest",
                  "containers[0].image: image '127.0.0.1:5001/acme/web:latest' is not pinned",
                  "kind: unknown kind Widget in example.com/v1",
                  "Namespace is cluster-scoped",
                  "invalid name 'Bad_Name'",
                  "namespace x differs from the target",
                  "serviceAccountName: ServiceAccount missing-sa does not exist",
                  "configMapRef: ConfigMap missing-config does not exist",
                  "secretKeyRef: Secret missing-secret does not exist",
                  "persistentVolumeClaim: PersistentVolumeClaim missing-pvc does not exist")
    assert err.count("\n  ") == 10, "one line per problem"
    assert audit.writes(ns) == [], "no namespace, no Lease, no object"
    assert set(cluster.versions(ns)) == {"ConfigMap/kube-root-ca.crt"}, "only the cluster's"


@pytest.mark.parametrize("content", [
    bytes(random.Random(16).randrange(256) for _ in range(4096)),
    b"just a bare string\n",
    b"- a list\n- not an object\n",
    b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n42\n",
], ids=["random-bytes", "bare-string", "list", "number-document"])
def test_garbage_is_bad_input_without_a_traceback(cluster, audit, tmp_path, content):
    ns = f"iv-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "app.yaml"
    path.write_bytes(content)
    err = refused(rollout_cli(cluster, path, "web", ns), str(path))
    assert any(p in err for p in ("not UTF-8", "not valid YAML", "not a mapping")), err
    assert audit.requests(ns) == [] and namespace_missing(cluster, ns)


def deployment(name: str, **spec_changes) -> dict:
    container = {"name": name, "image": image(1)}
    spec = {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [container]}}}
    for key, value in spec_changes.items():
        if key == "container":
            container.update(value)
        else:
            spec[key] = value
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": spec}


def test_schema_errors_are_bad_input_reported_together_and_never_retried(
        cluster, audit, tmp_path):
    ns = cluster.namespace("iv")
    docs = [deployment("unknown-field", container={"imagePullPolicyy": "Always"}),
            deployment("wrong-type", replicas="two"),
            deployment("negative", replicas=-1)]
    err = refused(rollout_cli(cluster, write(tmp_path / "app.yaml", docs), "web", ns),
                  "3 problems",
                  'containers[name="unknown-field"].imagePullPolicyy: field not declared',
                  ".spec.replicas: expected numeric (int or float), got string",
                  "spec.replicas: Invalid value: -1")
    assert "unreachable" not in err.lower() and "KUBECONFIG" not in err
    dry_runs = [e for e in audit.requests(ns) if e["verb"] == "patch"]
    assert len(dry_runs) == 3, "each object's dry run sent once, none retried"
    assert all("dryRun=All" in e["requestURI"] and "fieldValidation=Strict" in e["requestURI"]
               for e in dry_runs)
    assert audit.writes(ns) == []


def test_schema_errors_for_a_new_namespace_come_from_the_clusters_openapi_schema(
        cluster, audit, tmp_path):
    ns = f"iv-{uuid.uuid4().hex[:8]}"
    docs = [deployment("unknown-field", container={"imagePullPolicyy": "Always"}),
            deployment("wrong-type", replicas="two")]
    refused(rollout_cli(cluster, write(tmp_path / "app.yaml", docs), "web", ns),
            "2 problems",
            "containers[0]: unknown field ('imagePullPolicyy' was unexpected)",
            "spec.replicas: 'two' is not of type 'integer'")
    assert audit.requests(ns) == [] and namespace_missing(cluster, ns)


def test_an_object_over_the_apiserver_limit_is_bad_input_sent_once(cluster, audit):
    ns = cluster.namespace("iv")
    kube = KubeClient.from_kubeconfig(cluster.deployer_kubeconfig)
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big", "namespace": ns},
           "data": {"blob": "x" * (4 * 1024 * 1024)}}
    with pytest.raises(BadInput, match="at most 3145728 bytes"):
        kube.apply(big)  # refused before sending
    assert audit.requests(ns) == []
    with pytest.raises(BadInput) as too_large:  # the apiserver's own answer: 413
        kube.request("PATCH", kube.path("ConfigMap", ns, "big"), {"fieldManager": "t"}, big,
                     "application/apply-patch+yaml")
    assert too_large.value.exit_code == 2
    assert "too large for the apiserver" in too_large.value.message
    assert "RequestEntityTooLarge" in too_large.value.message
    assert len([e for e in audit.requests(ns) if e["verb"] == "patch"]) <= 1, "never re-sent"
    assert kube.writes == 0


def test_a_50_mb_manifest_is_refused_unread(cluster, audit, tmp_path):
    ns = f"iv-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.write(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: huge}\ndata: {a: ")
        handle.truncate(50 * 1024 * 1024)
    refused(rollout_cli(cluster, path, "web", ns), "file too large: 52428800 bytes",
            "max_bytes=16777216")
    assert audit.requests(ns) == []


def test_an_alias_bomb_is_refused_by_rollout_and_plan_with_bounded_memory(
        cluster, audit, tmp_path):
    ns = f"iv-{uuid.uuid4().hex[:8]}"
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    refused(rollout_cli(cluster, bomb, "web", ns), "excessive aliasing", "max_alias_nodes")
    repo = tmp_path / "repo"
    (repo / "environments").mkdir(parents=True)
    spec = {"apiVersion": "pipelinelib.dev/v1", "kind": "Environment", "name": "qa",
            "namespaces": [ns], "apps": {}}
    (repo / "environments" / "qa.yaml").write_text(
        billion_laughs().replace("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\n"
                                 "data:\n", yaml.safe_dump(spec) + "lol:\n"))
    refused(run_pipeline("plan", "qa", "--repo", str(repo), env=cluster.cli_env()),
            "excessive aliasing")
    refused(run_pipeline("validate", str(bomb), str(repo)), "excessive aliasing")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak_kib < 400 * 1024, f"a child process peaked at {peak_kib} KiB"
    assert audit.requests(ns) == [] and namespace_missing(cluster, ns)


# Status bodies as the testbed's kube-apiserver v1.35.4 answered them (captured 2026-11-28
# with server-side apply dry runs as the deployer; the 503/429/500 ones are its documented
# Status shapes for load and timeouts, k8s.io/apimachinery metav1.StatusReason).
ANSWERS = [
    (500, {"kind": "Status", "status": "Failure", "code": 500, "message":
           "failed to create typed patch object (ns/x; apps/v1, Kind=Deployment): "
           '.spec.template.spec.containers[name="c"].bogus: field not declared in schema'},
     "bad input"),
    (500, {"kind": "Status", "status": "Failure", "code": 500, "message":
           "failed to create typed patch object (ns/x; apps/v1, Kind=Deployment): "
           ".spec.replicas: expected numeric (int or float), got string"}, "bad input"),
    (422, {"kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422, "message":
           'Deployment.apps "x" is invalid: spec.replicas: Invalid value: -1: must be greater '
           "than or equal to 0"}, "bad input"),
    (413, {"kind": "Status", "status": "Failure", "reason": "RequestEntityTooLarge",
           "code": 413, "message": "Request entity too large: limit is 3145728"}, "bad input"),
    (400, {"kind": "Status", "status": "Failure", "reason": "BadRequest", "code": 400,
           "message": 'strict decoding error: unknown field "spec.bogus"'}, "bad input"),
    (500, {"kind": "Status", "status": "Failure", "reason": "InternalError", "code": 500,
           "message": "Internal error occurred: etcdserver: request timed out"}, "transient"),
    (504, {"kind": "Status", "status": "Failure", "reason": "Timeout", "code": 504,
           "message": "Timeout: request did not complete within requested timeout"},
     "transient"),
    (429, {"kind": "Status", "status": "Failure", "reason": "TooManyRequests", "code": 429,
           "message": "storage is (re)initializing"}, "transient"),
    (503, {"kind": "Status", "status": "Failure", "reason": "ServiceUnavailable", "code": 503,
           "message": "the server is currently unable to handle the request"}, "transient"),
    (409, {"kind": "Status", "status": "Failure", "reason": "Conflict", "code": 409,
           "message": "the object has been modified; please apply your changes"}, "transient"),
]


@pytest.mark.parametrize(("status", "body", "verdict"), ANSWERS,
                         ids=[f"{a[0]}-{a[1].get('reason', 'no-reason')}-{i}"
                              for i, a in enumerate(ANSWERS)])
def test_apiserver_answers_are_classified_by_status_reason_not_code(status, body, verdict):
    from pipelinelib.adapters.kube import translate
    from pipelinelib.errors import TransientError
    from pipelinelib.retry import is_deterministic, is_transient

    error = translate(status, body, "PATCH", "/apis/apps/v1/namespaces/ns/deployments/x")
    if verdict == "bad input":
        assert isinstance(error, BadInput) and error.exit_code == 2
        assert body["message"] in error.message, "the apiserver's own words"
        assert is_deterministic(status, body.get("reason"), body["message"])
        assert not is_transient(error)
    else:
        assert isinstance(error, TransientError) and is_transient(error)
        assert not is_deterministic(status, body.get("reason"), body["message"])
