"""KubeClient against the real control plane: verbs, watch, logs, error translation."""

from __future__ import annotations

import threading

import pytest
import yaml

from pipelinelib.adapters.kube import KubeClient
from pipelinelib.errors import BadInput, Refused, Unreachable
from tests.helpers.manifests import image


def cm(name: str, ns: str, value: str = "1") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": {"k": value}}


def test_apply_get_list_delete_and_write_count(cluster):
    ns, kube = cluster.namespace("ka"), cluster.deployer()
    assert kube.apply(cm("a", ns), dry_run=True)["data"] == {"k": "1"}
    assert kube.writes == 0 and kube.get("ConfigMap", "a", ns) is None
    made = kube.apply(cm("a", ns))
    assert kube.writes == 1 and made["metadata"]["managedFields"][0]["manager"] == "pipelinelib"
    again = kube.apply(cm("a", ns))
    assert again["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
    kube.apply({**cm("b", ns), "metadata": {"name": "b", "namespace": ns,
                                            "labels": {"x": "y"}}})
    names = [i["metadata"]["name"] for i in kube.list("ConfigMap", ns, selector="x=y")["items"]]
    assert names == ["b"]
    assert kube.delete("ConfigMap", "a", ns) is True
    assert kube.delete("ConfigMap", "a", ns) is False


def test_watch_sees_changes_after_a_resource_version(cluster):
    ns, kube = cluster.namespace("ka"), cluster.deployer()
    version = kube.list("ConfigMap", ns)["metadata"]["resourceVersion"]
    threading.Timer(0.3, lambda: kube.apply(cm("w", ns))).start()
    for etype, obj in kube.watch("ConfigMap", ns, version, timeout_s=10):
        if obj["metadata"]["name"] == "w":
            assert etype == "ADDED"
            break
    else:
        pytest.fail("no event")


def test_pod_logs_and_events_are_read_and_a_missing_pod_gives_no_lines(cluster):
    ns, kube = cluster.namespace("ka"), cluster.deployer()
    cluster.kubectl("-n", ns, "run", "p", f"--image={image(1)}")
    cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/p", "--timeout=30s")
    lines = kube.pod_logs("p", ns, tail=5)
    assert lines and all(isinstance(line, str) for line in lines) and len(lines) <= 5
    assert kube.pod_logs("gone", ns) == [], "no logs is not an error"
    assert isinstance(kube.events(ns, "p", "Pod"), list)


def test_errors_are_translated_with_the_api_message(cluster, tmp_path):
    ns, kube = cluster.namespace("ka", bind=False), cluster.deployer()
    with pytest.raises(Refused) as refused:
        kube.list("ConfigMap", ns)
    assert f"namespace {ns}" in refused.value.message and "configmaps" in refused.value.message
    bound = cluster.namespace("ka")
    bad = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "d", "namespace": bound}, "spec": {"template": {}}}
    with pytest.raises(BadInput) as invalid:
        kube.apply(bad)
    assert "selector" in invalid.value.message
    # a kind no test defines (test_prune_record's CRD is a Widget, in a group of its own)
    with pytest.raises(BadInput, match="unknown kind NoSuchKind"):
        kube.resource("NoSuchKind")
    with open(cluster.deployer_kubeconfig) as f:
        config = yaml.safe_load(f)
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    (tmp_path / "k").write_text(yaml.safe_dump(config))
    with pytest.raises(Unreachable):
        KubeClient.from_kubeconfig(str(tmp_path / "k")).get("ConfigMap", "x", bound)
