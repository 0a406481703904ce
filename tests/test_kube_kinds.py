"""The one table of Kubernetes kinds: its columns agree with each other and with the
testbed's real apiserver (discovery), and every user reads it instead of a list of its own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pipelinelib.envspec import live, render
from pipelinelib.helm.hooks import Hook
from pipelinelib.kube import health, history, kinds, revisions
from pipelinelib.kube import manifests as mf
from pipelinelib.steps import annotate, rollout


def test_the_scope_of_every_kind_matches_the_apiservers_discovery(kube_env):
    kubectl = str(Path(kube_env["PIPELINELIB_KUBE_BIN"]) / "kubectl")
    out = subprocess.run([kubectl, "get", "--raw", "/api/v1"], capture_output=True, text=True,
                         check=True, env={"KUBECONFIG": kube_env["KUBECONFIG"]}).stdout
    served = {r["kind"]: r["namespaced"] for r in json.loads(out)["resources"]
              if "/" not in r["name"]}
    groups = json.loads(subprocess.run(
        [kubectl, "get", "--raw", "/apis"], capture_output=True, text=True, check=True,
        env={"KUBECONFIG": kube_env["KUBECONFIG"]}).stdout)["groups"]
    for group in groups:
        path = f"/apis/{group['preferredVersion']['groupVersion']}"
        listed = json.loads(subprocess.run(
            [kubectl, "get", "--raw", path], capture_output=True, text=True, check=True,
            env={"KUBECONFIG": kube_env["KUBECONFIG"]}).stdout)
        served.update({r["kind"]: r["namespaced"] for r in listed["resources"]
                       if "/" not in r["name"]})
    assert set(kinds.TABLE) <= set(served), set(kinds.TABLE) - set(served)
    wrong = {k for k, row in kinds.TABLE.items() if row.cluster_scoped == served[k]}
    assert not wrong, f"cluster_scoped disagrees with discovery for {wrong}"


def test_the_columns_agree_with_each_other():
    for row in kinds.TABLE.values():
        if row.history:
            assert row.workload and row.health, row
        if row.workload:
            assert row.health and row.order is not None and row.prunable, row
        if row.cluster_scoped:
            assert not (row.workload or row.prunable or row.hashed or row.compared), row
        if row.hashed:
            assert row.prunable and row.compared, row
    rank = kinds.rank
    # dependencies, then Jobs (a migration), then long-running workloads, then their Services
    assert rank("ConfigMap") < rank("Job") < rank("Deployment") < rank("Service")
    assert rank("CustomResourceDefinition") == -1 and rank("Nope") == -1


def test_every_former_table_is_the_kinds_table():
    assert mf.ORDER == kinds.APPLY_ORDER and mf.WORKLOADS == kinds.WORKLOADS
    assert mf.HASHED == kinds.HASHED and revisions.PRUNE_KINDS == kinds.PRUNABLE
    assert render.WORKLOADS == history.HISTORY_KINDS == kinds.WITH_HISTORY
    assert live.KINDS == kinds.COMPARED
    assert set(health.RULES) == {k for k, row in kinds.TABLE.items() if row.health}
    assert set(annotate.WORKLOAD_KINDS.values()) == {*kinds.WORKLOADS, "ReplicaSet"}
    assert set(mf.ORDER[: mf.ORDER.index("Job") + 1]) == rollout.PHASE_ONE
    hooks = [Hook({"kind": k, "metadata": {"name": "x"}}, {"pre-install"}, 0, set())
             for k in ("Job", "CustomResourceDefinition", "ConfigMap", "Pod")]
    assert [h.kind for h in sorted(hooks, key=Hook.order)] == [
        "ConfigMap", "Pod", "Job", "CustomResourceDefinition"]
