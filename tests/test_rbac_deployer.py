"""The deployer's least-privilege Role (testbed/kubernetes/rbac/deployer.yaml): the verbs and
resources the deploy tests use, listed here, and nothing cluster-wide beyond namespaces.

The deploy tests (rollout, apply, plan, swap, rollback, blue/green, fencing, secrets,
enforcement) run as this identity; kubectl (admin) only sets up and verifies.
"""

from __future__ import annotations

import yaml

from tests.helpers.kube import Cluster
from tests.helpers.paths import ROOT

DEPLOYER = "system:serviceaccount:pipelinelib-system:pipelinelib-deployer"
WRITE = ["create", "delete", "get", "list", "patch", "update", "watch"]
READ = ["get", "list", "watch"]
# (api group, resource) -> verbs: what rollout/apply/swap/rollback/migrate do and why
NEEDED = {
    ("apps", "deployments"): WRITE,          # server-side apply, prune, rollback, wait
    ("apps", "statefulsets"): WRITE,
    ("apps", "daemonsets"): WRITE,
    ("apps", "deployments/scale"): ["get", "patch", "update"],
    ("apps", "statefulsets/scale"): ["get", "patch", "update"],
    ("apps", "replicasets"): READ,           # revision history, failure evidence
    ("apps", "controllerrevisions"): READ,
    ("batch", "jobs"): WRITE,                # migrations, hooks
    ("batch", "cronjobs"): WRITE,
    ("", "configmaps"): WRITE,               # hashed config, created before the old is pruned
    ("", "secrets"): WRITE,
    ("", "services"): WRITE,                 # blue/green switch (patch)
    ("networking.k8s.io", "ingresses"): WRITE,
    ("", "serviceaccounts"): WRITE,          # what apps ship beside workloads (issue 16)
    ("", "persistentvolumeclaims"): WRITE,
    ("autoscaling", "horizontalpodautoscalers"): WRITE,
    ("policy", "poddisruptionbudgets"): WRITE,
    ("", "limitranges"): WRITE,              # an environment's namespace settings
    ("", "resourcequotas"): WRITE,
    ("", "pods"): READ,                      # failure diagnosis
    ("", "pods/log"): READ,
    ("", "events"): READ,
    ("events.k8s.io", "events"): READ,
    ("coordination.k8s.io", "leases"): WRITE,  # the fenced deploy lock
}
# patch: an environment spec's namespace labels (server-side apply) — see docs/security.md
# for what that means for the protected-namespace label
CLUSTER_WIDE = {("", "namespaces"): ["create", "get", "list", "patch", "watch"]}


def _rules(kind: str, name: str) -> dict[tuple[str, str], list[str]]:
    docs = yaml.safe_load_all((ROOT / "testbed/kubernetes/rbac/deployer.yaml").read_text())
    role = next(d for d in docs if d and d["kind"] == kind and d["metadata"]["name"] == name)
    out: dict[tuple[str, str], list[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out[(group, resource)] = sorted(rule["verbs"])
    return out


def test_the_shipped_role_grants_exactly_the_listed_verbs_and_resources():
    assert _rules("ClusterRole", "pipelinelib-deployer") == {
        k: sorted(v) for k, v in NEEDED.items()}
    assert _rules("ClusterRole", "pipelinelib-deployer-namespaces") == CLUSTER_WIDE


def _can(cluster: Cluster, verb: str, resource: str, namespace: str | None = None) -> bool:
    where = ["-n", namespace] if namespace else []
    return cluster.kubectl("auth", "can-i", verb, resource, *where, "--as", DEPLOYER,
                           check=False).strip() == "yes"


def test_the_deployer_may_deploy_only_where_it_is_bound(cluster):
    bound, other = cluster.namespace("rbac"), cluster.namespace("rbac", bind=False)
    for (group, resource), verbs in NEEDED.items():
        qualified = f"{resource.split('/')[0]}.{group}" if group else resource.split("/")[0]
        target = qualified + ("/" + resource.split("/")[1] if "/" in resource else "")
        for verb in verbs:
            assert _can(cluster, verb, target, bound), f"{verb} {target} in {bound}"
        assert not _can(cluster, verbs[0], target, other), f"{verbs[0]} {target} in {other}"
    for verb, resource in (("get", "secrets"), ("patch", "deployments.apps")):
        assert not _can(cluster, verb, resource, "kube-system")
    for verb, resource in (("list", "nodes"), ("create", "clusterrolebindings"),
                           ("delete", "namespaces"), ("create", "roles"),
                           ("escalate", "clusterroles"), ("impersonate", "users")):
        assert not _can(cluster, verb, resource), f"{verb} {resource} cluster-wide"
    assert not _can(cluster, "deletecollection", "deployments.apps", bound)
