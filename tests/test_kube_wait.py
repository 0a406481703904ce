"""The rollout's waits watch only their own workloads and pods (real control plane)."""

from __future__ import annotations

import dataclasses

import pytest

from pipelinelib.adapters.kube import KubeClient
from pipelinelib.kube.wait import label_selector, pod_selector
from pipelinelib.steps.rollout import rollout
from tests.fixtures.manifests.kit import Cluster, web


class WatchRecorder(KubeClient):
    """The real client, noting the selectors of every list and watch it sends."""

    seen: list[tuple[str, str, str | None, str | None]]

    def list(self, kind, namespace=None, selector=None, field_selector=None, api_version=None):
        self.seen.append(("list", kind, selector, field_selector))
        return super().list(kind, namespace, selector, field_selector, api_version)

    def watch(self, kind, namespace, resource_version, selector=None, field_selector=None,
              timeout_s=60):
        self.seen.append(("watch", kind, selector, field_selector))
        return super().watch(kind, namespace, resource_version, selector, field_selector,
                             timeout_s)


@pytest.fixture
def cluster(kube_env):
    c = Cluster(kube_env)
    yield c
    c.cleanup()


def test_label_selector_renders_match_labels_and_every_expression_operator():
    assert label_selector({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web", "api"]},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "canary", "operator": "DoesNotExist"},
        {"key": "team", "operator": "Exists"}]}) == \
        "a=1,b=2,tier in (web,api),env notin (dev),!canary,team"


def test_pod_selector_only_when_every_workload_shares_one():
    web_sel = {"spec": {"selector": {"matchLabels": {"app": "web"}}}}
    api_sel = {"spec": {"selector": {"matchLabels": {"app": "api"}}}}
    assert pod_selector([web_sel, web_sel]) == "app=web"
    assert pod_selector([web_sel, api_sel]) is None, "two selectors: watch every pod"
    assert pod_selector([web_sel, None]) is None, "a workload not seen yet"
    assert pod_selector([{"kind": "CronJob", "spec": {}}]) is None
    assert pod_selector([{"spec": {"selector": {}}}]) is None, "an empty selector selects all"


def test_a_rollout_in_a_shared_namespace_watches_only_its_own_objects(cluster):
    ns = cluster.namespace()
    assert rollout(cluster.ctx("api"), web(1, name="api"), app="api", namespace=ns,
                   timeout=60).changed
    kube = WatchRecorder.from_kubeconfig(cluster.deployer_kubeconfig)
    kube.seen = []
    ctx = dataclasses.replace(cluster.ctx("web"), adapters={"kube": kube})
    result = rollout(ctx, web(2), app="web", namespace=ns, timeout=60)
    assert result.changed and result.outputs["seconds_to_ready"] < 10
    watched = {(kind, sel, field) for verb, kind, sel, field in kube.seen if verb == "watch"}
    assert ("Deployment", None, "metadata.name=web") in watched
    assert ("Pod", "app=web", None) in watched and ("ReplicaSet", "app=web", None) in watched
    assert all(sel or field for _, sel, field in watched), f"an unfiltered watch: {watched}"
