"""Public example apps deploy as the least-privilege deployer, re-run as no-ops, prune right.

The manifests under tests/fixtures/manifests/realworld/ are written to match public
examples (their headers name the source): a multi-service shop, guestbook, podinfo, an
OpenTelemetry collector, the MySQL StatefulSet tutorial, and a kustomize overlay. Together
they carry gRPC/HTTP/TCP/exec probes, LoadBalancer and headless Services, a StatefulSet with
volumeClaimTemplates, HPA-managed replicas, host ports, initContainers, ServiceAccounts,
flow-style YAML and comments after keys. Images are named as upstream and pinned with
``--image`` (kbld-style), as a user of these manifests would.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from pipelinelib import imageref, yamlsafe
from pipelinelib.kube import manifests as mf
from pipelinelib.kube.revisions import RECORD_PREFIX
from tests.helpers.audit_log import AuditLog
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster, grant_deployer_rbac
from tests.helpers.paths import FIXTURES

REALWORLD = FIXTURES / "manifests" / "realworld"


@pytest.fixture
def cluster(cluster: Cluster) -> Cluster:
    """The shared ``cluster``, with this tree's deployer role applied."""
    grant_deployer_rbac(cluster)
    return cluster


def pins(folder: Path) -> list[str]:
    """``--image NAME=REF@sha256:…`` for every image the folder's manifests name (none for
    a kustomization: its ``images:`` pins them)."""
    if (folder / "kustomization.yaml").is_file():
        return []
    names = set()
    for file in sorted(folder.rglob("*.yaml")):
        for m in mf.load(file):
            names.update(imageref.parse(image).name for _, image in mf.images(m.obj)
                         if "@" not in image)
    out = []
    for name in sorted(names):
        digest = hashlib.sha256(name.encode()).hexdigest()
        out += ["--image", f"{name}=127.0.0.1:5001/mirror/{name.rsplit('/', 1)[-1]}"
                           f"@sha256:{digest}"]
    return out


def deploy(cluster: Cluster, folder: Path, app: str, ns: str):
    grant_deployer_rbac(cluster)  # until merged, another tree's testbed/up may revert it
    out = run_pipeline("rollout", str(folder), "--app", app, "-n", ns, "--timeout", "120",
                       *pins(folder), env={**cluster.cli_env(), "PIPELINE_KUBECTL":
                                           cluster.kubectl_bin})
    assert "Traceback" not in out.stderr, out.stderr
    return out


def objects(cluster: Cluster, ns: str) -> set[str]:
    kinds = ("deployments,statefulsets,daemonsets,services,configmaps,serviceaccounts,"
             "horizontalpodautoscalers")
    return {f"{i['kind']}/{i['metadata']['name']}"
            for i in cluster.json("-n", ns, "get", kinds, "-l",
                                  "app.kubernetes.io/managed-by=pipelinelib")["items"]
            if not i["metadata"]["name"].startswith(RECORD_PREFIX)}  # the record of kinds


def drop(folder: Path, kind: str, name: str) -> None:
    """Remove one object from the copy of an app's manifests (as a user deletes it)."""
    for file in folder.rglob("*.yaml"):
        docs = yamlsafe.safe_load_all(file)
        kept = [d for d in docs if (d.get("kind"), d["metadata"]["name"]) != (kind, name)]
        if len(kept) != len(docs):
            import yaml

            file.write_text(yaml.safe_dump_all(kept, sort_keys=False) if kept else "")


def bind_volumes(cluster: Cluster, ns: str, claims: list[str]) -> list[str]:
    """Admin set-up: pre-provisioned volumes, each a PersistentVolume bound to the claim the
    StatefulSet will use (it adopts an existing claim of its name). Binding a claim the
    controller creates mid-rollout is the doom-vs-delay case (issue 16, i18's tests)."""
    names = []
    for claim in claims:
        name = f"{ns}-{claim}"
        cluster.kubectl("apply", "-f", "-", stdin=f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {name}, labels: {{test: realworld}}}}
spec:
  capacity: {{storage: 10Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {{path: /tmp/{name}}}
  claimRef: {{namespace: {ns}, name: {claim}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {claim}, namespace: {ns}}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  volumeName: {name}
  resources: {{requests: {{storage: 10Gi}}}}
""")
        names.append(name)
    for claim in claims:
        cluster.kubectl("-n", ns, "wait", "--for=jsonpath={.status.phase}=Bound",
                        f"pvc/{claim}", "--timeout=60s")
    return names


APPS = [
    # (folder, app, object to drop for the prune check, objects that must exist)
    ("shop", "shop", ("Deployment", "loadgenerator"),
     {"Deployment/frontend", "Service/frontend-external", "Deployment/cartservice",
      "Deployment/redis-cart", "ServiceAccount/checkoutservice", "Deployment/loadgenerator"}),
    ("guestbook", "guestbook", ("Deployment", "redis-follower"),
     {"Deployment/redis-leader", "Deployment/redis-follower", "Deployment/frontend",
      "Service/frontend"}),
    ("podinfo", "podinfo", ("Service", "podinfo"),
     {"Deployment/podinfo", "HorizontalPodAutoscaler/podinfo", "Service/podinfo"}),
    ("otel-collector", "otel", ("Deployment", "otel-collector"),
     {"DaemonSet/otel-agent", "Deployment/otel-collector", "Service/otel-collector"}),
    ("mysql", "mysql", ("Service", "mysql-read"),
     {"StatefulSet/mysql", "Service/mysql", "Service/mysql-read"}),
]


@pytest.mark.parametrize(("folder", "app", "gone", "expected"), APPS, ids=[a[0] for a in APPS])
def test_public_example_deploys_reruns_as_a_no_op_and_prunes_what_left(
        cluster, kube_env, tmp_path, folder, app, gone, expected):
    ns = cluster.namespace("rw")
    audit = AuditLog(kube_env["PIPELINELIB_KUBE_AUDIT_LOG"])
    volumes = bind_volumes(cluster, ns, ["data-mysql-0", "data-mysql-1"]) \
        if folder == "mysql" else []
    try:
        source = tmp_path / folder
        shutil.copytree(REALWORLD / folder, source)
        first = deploy(cluster, source, app, ns)
        assert first.returncode == 0, first.stderr[-3000:]
        live = objects(cluster, ns)
        assert expected <= live, live
        if folder == "mysql":
            sts = cluster.json("-n", ns, "get", "statefulset", "mysql")
            assert sts["status"].get("readyReplicas") == 2
        if folder == "podinfo":
            dep = cluster.json("-n", ns, "get", "deployment", "podinfo")
            assert "replicas" not in [f for f in _owned_fields(dep)], "replicas left to the HPA"

        mark = AuditLog(kube_env["PIPELINELIB_KUBE_AUDIT_LOG"])
        again = deploy(cluster, source, app, ns)
        assert again.returncode == 0, again.stderr[-3000:]
        assert mark.writes(ns) == [], "a re-run writes nothing"
        assert objects(cluster, ns) == live

        drop(source, *gone)
        mark = AuditLog(kube_env["PIPELINELIB_KUBE_AUDIT_LOG"])
        pruned = deploy(cluster, source, app, ns)
        assert pruned.returncode == 0, pruned.stderr[-3000:]
        assert objects(cluster, ns) == live - {f"{gone[0]}/{gone[1]}"}
        writes = [w for w in mark.writes(ns) if "/leases" not in w  # the deploy lock, and
                  and f"/{RECORD_PREFIX}" not in w]  # the record narrowed when a kind went
        plural = {"Deployment": "deployments", "Service": "services"}[gone[0]]
        assert writes == [f"delete {w.split(' ', 1)[1]}" for w in writes] and len(writes) == 1
        assert writes[0].endswith(f"/{plural}/{gone[1]}"), writes
        assert audit.writes(ns), "the audit log saw the deploy"
    finally:
        for name in volumes:
            cluster.kubectl("delete", "pv", name, "--wait=false", "--ignore-not-found")


def _owned_fields(obj: dict) -> list[str]:
    """The spec fields the pipelinelib field manager owns (server-side apply)."""
    for entry in obj["metadata"].get("managedFields") or []:
        if entry.get("manager") == "pipelinelib":
            return [k[2:] for k in (entry.get("fieldsV1", {}).get("f:spec") or {})]
    return []


def kustomize_names(cluster: Cluster, folder: Path) -> set[str]:
    out = subprocess.run([cluster.kubectl_bin, "kustomize", str(folder)], capture_output=True,
                         text=True, check=True).stdout
    return {f"{d['kind']}/{d['metadata']['name']}" for d in yamlsafe.safe_load_all(out)}


def test_a_kustomize_overlay_is_built_and_its_generated_config_hashed_once(
        cluster, kube_env, tmp_path):
    ns = cluster.namespace("rw")
    source = tmp_path / "kustomize-app"
    shutil.copytree(REALWORLD / "kustomize-app", source)
    built = kustomize_names(cluster, source)
    out = deploy(cluster, source, "greeter", ns)
    assert out.returncode == 0, out.stderr[-3000:]
    live = objects(cluster, ns)
    assert live == built, "kustomize's names, generator hash included, and no second hash"
    config = next(n for n in live if n.startswith("ConfigMap/greeter-config-"))
    dep = cluster.json("-n", ns, "get", "deployment", "greeter")
    pod = dep["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"][0]["configMapRef"]["name"] == config.split("/")[1]
    assert dep["metadata"]["labels"]["team"] == "greeters"

    mark = AuditLog(kube_env["PIPELINELIB_KUBE_AUDIT_LOG"])
    assert deploy(cluster, source, "greeter", ns).returncode == 0
    assert mark.writes(ns) == [], "a re-run writes nothing"

    overlay = source / "kustomization.yaml"
    overlay.write_text(overlay.read_text().replace("GREETING=hello", "GREETING=bonjour"))
    changed = kustomize_names(cluster, source)
    out = deploy(cluster, source, "greeter", ns)
    assert out.returncode == 0, out.stderr[-3000:]
    assert objects(cluster, ns) == changed and config not in changed, "old config pruned"
    new_config = (changed - built).pop().split("/")[1]
    dep = cluster.json("-n", ns, "get", "deployment", "greeter")
    assert dep["spec"]["template"]["spec"]["containers"][0]["envFrom"][0][
        "configMapRef"]["name"] == new_config, "pods roll onto the new generated config"


def test_a_broken_kustomization_is_bad_input_with_kustomizes_message(cluster, tmp_path):
    ns = cluster.namespace("rw")
    source = tmp_path / "broken"
    source.mkdir()
    (source / "kustomization.yaml").write_text("resources:\n- missing.yaml\n")
    out = deploy(cluster, source, "greeter", ns)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "kustomize build failed" in out.stderr and "missing.yaml" in out.stderr
    assert "metadata.name: missing" not in out.stderr
