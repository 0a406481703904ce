"""When a first deploy writes its record of owned kinds, read from the apiserver's audit log.

Without a record every later run lists every prunable kind, so a first deploy whose kinds
are all prunable writes its record after the objects (its first object one write earlier);
a first deploy that ships any other kind writes it before the first object, as every
later run that adds a kind does. Either way the record names every kind shipped.
"""

from __future__ import annotations

import time

from pipelinelib.kube.revisions import RECORD_PREFIX, parse_record
from pipelinelib.testing.kill import KubeAuditWrites
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster
from tests.helpers.manifests import web, write

DEPLOYER = "system:serviceaccount:pipelinelib-system:pipelinelib-deployer"
RECORD = f"configmaps/{RECORD_PREFIX}web"


def deploy_and_read_writes(cluster: Cluster, ns: str, docs: list[dict], path) -> list[str]:
    audit = KubeAuditWrites(cluster.kube_env["PIPELINELIB_KUBE_AUDIT_LOG"], [ns], DEPLOYER,
                            skip_renewals=True)
    audit.mark()
    out = run_pipeline("rollout", str(write(path, docs)), "--app", "web", "-n", ns,
                       env=cluster.cli_env())
    assert out.returncode == 0, out.stderr[-3000:]
    writes: list[str] = []
    for _ in range(50):  # the audit log is written asynchronously
        writes += [w.what for w in audit.poll()]
        if writes and writes[-1].startswith("delete leases/"):
            break
        time.sleep(0.1)
    return writes


def recorded_kinds(cluster: Cluster, ns: str) -> set[str]:
    record = cluster.json("-n", ns, "get", "configmap", f"{RECORD_PREFIX}web")
    return {kind for _, kind in parse_record(record)}


def test_a_first_deploy_of_prunable_kinds_writes_its_record_after_the_objects(cluster,
                                                                               tmp_path):
    ns = cluster.namespace("rec")
    writes = deploy_and_read_writes(cluster, ns, web(1), tmp_path / "v1.yaml")
    objects = [w for w in writes if not w.endswith(RECORD) and "leases/" not in w]
    assert [w.split()[1].split("/")[0] for w in objects] == \
        ["configmaps", "secrets", "deployments", "services"], writes
    assert writes.index(f"patch {RECORD}") > writes.index(objects[-1]), writes
    assert writes[0].startswith("create leases/") and writes[-1].startswith("delete leases/")
    assert recorded_kinds(cluster, ns) == {"ConfigMap", "Secret", "Deployment", "Service"}


def test_a_first_deploy_with_a_kind_not_prunable_writes_its_record_before_any_object(
        cluster, tmp_path):
    ns = cluster.namespace("rec")
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web"}}
    writes = deploy_and_read_writes(cluster, ns, web(1, extra=[account]),
                                    tmp_path / "v1.yaml")
    assert writes[0].startswith("create leases/") and writes[1] == f"patch {RECORD}", writes
    assert "patch serviceaccounts/web" in writes
    assert recorded_kinds(cluster, ns) == {"ConfigMap", "Secret", "Deployment", "Service",
                                           "ServiceAccount"}
