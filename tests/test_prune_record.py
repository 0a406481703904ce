"""The prune lists the kinds the app's record names (plus the kinds being applied), not every
kind there is: a kind the app stops shipping — a custom resource too, mapped to its resource
by discovery — is still pruned; without a record (the first run after an upgrade) every
prunable kind is listed, once, and nothing the app owned is left behind."""

from __future__ import annotations

import json
import uuid

import pytest

from pipelinelib.kube.revisions import parse_record, record_name
from pipelinelib.steps.rollout import rollout
from tests.helpers.kube import DEPLOYER_SA, Cluster
from tests.helpers.manifests import web


@pytest.fixture
def cluster(kube_env):
    c = Cluster(kube_env)
    yield c
    c.cleanup()


def ingress(name: str = "web") -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"rules": [{"host": "web.example", "http": {"paths": [{
                "path": "/", "pathType": "Prefix", "backend": {"service": {
                    "name": "web", "port": {"number": 80}}}}]}}]}}


def record(cluster: Cluster, ns: str) -> set[tuple[str, str]] | None:
    found = cluster.json("-n", ns, "get", "configmaps")["items"]
    mine = [i for i in found if i["metadata"]["name"] == record_name("web")]
    return parse_record(mine[0]) if mine else None


def test_a_kind_the_app_stops_shipping_is_pruned_through_its_record(cluster):
    ns = cluster.namespace("pr")
    rollout(cluster.ctx(), web(1, extra=[ingress()]), app="web", namespace=ns, timeout=60)
    assert record(cluster, ns) == {("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"),
                                   ("apps/v1", "Deployment"),
                                   ("networking.k8s.io/v1", "Ingress")}
    result = rollout(cluster.ctx(), web(1), app="web", namespace=ns, timeout=60)
    assert result.outputs["pruned"] == ["Ingress/web"]
    assert cluster.json("-n", ns, "get", "ingress")["items"] == []
    assert ("networking.k8s.io/v1", "Ingress") not in (record(cluster, ns) or set()), \
        "the record narrows once the kind is pruned"
    again = rollout(cluster.ctx(), web(1), app="web", namespace=ns, timeout=60)
    assert not again.changed and again.outputs["writes"] == 0


def test_without_a_record_every_prunable_kind_is_listed_and_the_record_is_written(cluster):
    ns = cluster.namespace("pr")
    rollout(cluster.ctx(), web(1, extra=[ingress()]), app="web", namespace=ns, timeout=60)
    cluster.kubectl("-n", ns, "delete", "configmap", record_name("web"))  # before upgrading
    noop = rollout(cluster.ctx(), web(1, extra=[ingress()]), app="web", namespace=ns,
                   timeout=60)
    assert not noop.changed and noop.outputs["writes"] == 0, "a no-op writes no record"
    assert record(cluster, ns) is None
    result = rollout(cluster.ctx(), web(1), app="web", namespace=ns, timeout=60)
    assert result.outputs["pruned"] == ["Ingress/web"], "found by listing every kind"
    assert record(cluster, ns) == {("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"),
                                   ("apps/v1", "Deployment")}


def test_a_custom_resource_the_app_stops_shipping_is_pruned(cluster):
    group = f"t{uuid.uuid4().hex[:8]}.pipelinelib.dev"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"widgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                        "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                            "type": "object", "properties": {
                                "size": {"type": "integer"}}}}}}}]}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(crd))
    try:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}",
                        "--timeout=60s")
        ns = cluster.namespace("pr")
        cluster.kubectl("-n", ns, "create", "role", "widgets", f"--resource=widgets.{group}",
                        "--verb=get,list,watch,create,update,patch,delete")
        cluster.kubectl("-n", ns, "create", "rolebinding", "widgets", "--role=widgets",
                        f"--serviceaccount={DEPLOYER_SA}")
        widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"},
                  "spec": {"size": 3}}
        rollout(cluster.ctx(), web(1, extra=[widget]), app="web", namespace=ns, timeout=60)
        assert (f"{group}/v1", "Widget") in (record(cluster, ns) or set())
        result = rollout(cluster.ctx(), web(1), app="web", namespace=ns, timeout=60)
        assert result.outputs["pruned"] == ["Widget/w1"]
        assert cluster.json("-n", ns, "get", f"widgets.{group}")["items"] == []
    finally:
        cluster.kubectl("delete", "crd", f"widgets.{group}", "--wait=false", check=False)
