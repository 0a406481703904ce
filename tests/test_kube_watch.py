"""The watch iterator (KubeClient.follow) against the real apiserver: a watch the server
closes resumes where it stopped, a watch answered 410 Gone lists again, and neither reaches
the step or loses a change."""

from __future__ import annotations

import json
import re
import threading

import pytest

from pipelinelib.adapters.kube import KubeClient
from pipelinelib.context import CIInfo, Context
from pipelinelib.secrets import Secrets
from pipelinelib.steps.rollout import rollout
from tests.helpers.kube import Cluster
from tests.helpers.manifests import web


class Recorder(KubeClient):
    """The real client, noting every list and watch it sends (kind, resourceVersion)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, str, str | None]] = []

    def list(self, kind, namespace=None, selector=None, field_selector=None, api_version=None):
        self.calls.append(("list", kind, None))
        return super().list(kind, namespace, selector, field_selector, api_version)

    def watch(self, kind, namespace, resource_version, selector=None, field_selector=None,
              timeout_s=60):
        self.calls.append(("watch", kind, resource_version))
        return super().watch(kind, namespace, resource_version, selector, field_selector,
                             timeout_s)

    def watch_list(self, kind, namespace, selector=None, field_selector=None, timeout_s=60):
        self.calls.append(("watch-list", kind, None))
        return super().watch_list(kind, namespace, selector, field_selector, timeout_s)

    def count(self, verb: str, kind: str) -> int:
        return sum(1 for v, k, _ in self.calls if (v, k) == (verb, kind))


@pytest.fixture
def cluster(kube_env):
    c = Cluster(kube_env)
    yield c
    c.cleanup()


def recorder(cluster: Cluster, cls: type[Recorder] = Recorder) -> Recorder:
    plain = KubeClient.from_kubeconfig(cluster.deployer_kubeconfig)
    return cls(plain.api_client, source=plain.source)


def cm(name: str, ns: str, value: str = "1") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": {"k": value}}


def expired_version(kube: KubeClient, ns: str) -> str:
    """A resourceVersion the apiserver no longer keeps, as the apiserver itself says: a watch
    from version 1 is answered 410 "too old resource version: 1 (OLDEST)"."""
    response = kube._send("GET", kube.path("ConfigMap", ns),
                          {"watch": "1", "resourceVersion": "1", "timeoutSeconds": "5"},
                          None, None, 10, stream=True)
    event = json.loads(response.read().splitlines()[0])
    assert event["type"] == "ERROR" and event["object"]["code"] == 410, event
    oldest = re.search(r"too old resource version: 1 \((\d+)\)", event["object"]["message"])
    assert oldest, event["object"]["message"]
    return str(int(oldest.group(1)) - 1)


def test_a_watch_answered_410_gone_lists_again_and_yields_every_change_it_missed(cluster):
    ns, kube = cluster.namespace("kw"), recorder(cluster)
    cluster.kubectl("-n", ns, "wait", "--for=create", "configmap/kube-root-ca.crt",
                    "--timeout=30s")  # the controller's own ConfigMap: not part of the story
    for name in ("keep", "change", "drop"):
        kube.apply(cm(name, ns))
    seen_then = kube.list("ConfigMap", ns)["items"]
    stale = expired_version(kube, ns)
    # what happens while the consumer is away: one deleted, one changed, one created
    kube.delete("ConfigMap", "drop", ns)
    kube.apply(cm("change", ns, "2"))
    kube.apply(cm("new", ns))

    kube.calls.clear()
    stop = threading.Event()
    events: list[tuple[str, str]] = []
    synced = False
    for etype, obj in kube.follow("ConfigMap", ns, stop=stop, resource_version=stale,
                                  known=seen_then):
        if etype == "SYNCED":
            synced = True
            kube.apply(cm("late", ns))  # after the re-list: must come through the watch
            continue
        events.append((etype, obj["metadata"]["name"]))
        if synced and obj["metadata"]["name"] == "late":
            stop.set()

    assert kube.relists == 1, "the apiserver answered 410 Gone once and the iterator re-listed"
    assert [c[:2] for c in kube.calls[:2]] == [("watch", "ConfigMap"),
                                               ("watch-list", "ConfigMap")]
    assert kube.calls[0][2] == stale
    *missed, last = events
    assert sorted(missed) == [("ADDED", "new"), ("DELETED", "drop"), ("MODIFIED", "change")]
    assert last == ("ADDED", "late")


def test_a_watch_the_server_closes_resumes_at_its_last_version_without_listing_again(cluster):
    ns, kube = cluster.namespace("kw"), recorder(cluster)
    kube.watch_timeout_s = 1  # the server ends each watch after 1 s (timeoutSeconds)
    stop = threading.Event()
    names = [f"c{i}" for i in range(4)]
    added: list[str] = []
    writer = None
    for etype, obj in kube.follow("ConfigMap", ns, stop=stop):
        if etype == "SYNCED" and writer is None:
            def write() -> None:  # one object per closed watch
                for name in names:
                    if stop.wait(1.2):
                        return
                    kube.apply(cm(name, ns))
            writer = threading.Thread(target=write)
            writer.start()
        elif etype == "ADDED" and obj["metadata"]["name"] in names:
            added.append(obj["metadata"]["name"])
            if len(added) == len(names):
                stop.set()
    writer.join()
    assert added == names, "every object once, in order"
    assert kube.count("watch-list", "ConfigMap") == 1, "a closed watch resumes; no re-list"
    assert kube.count("list", "ConfigMap") == 0
    watches = [rv for verb, _, rv in kube.calls if verb == "watch"]
    assert len(watches) >= len(names) - 1, watches  # the first write may reach the watch-list
    assert [int(v) for v in watches] == sorted(int(v) for v in watches)
    assert kube.relists == 0


def test_a_rollout_whose_watches_the_server_closes_mid_wait_still_finishes(cluster, tmp_path):
    ns, kube = cluster.namespace("kw"), recorder(cluster)
    kube.watch_timeout_s = 1  # shorter than the pods take to become ready (3 s)
    ctx = Context(app="web", secrets=Secrets(), ci=CIInfo(user="rm-alice"),
                  adapters={"kube": kube})
    result = rollout(ctx, web(1, ready_after="3s"), app="web", namespace=ns, timeout=60)
    assert result.changed and result.outputs["seconds_to_ready"] > 0
    live = cluster.json("-n", ns, "get", "deployment", "web")
    assert live["status"].get("readyReplicas") == 2
    assert kube.count("watch", "Pod") >= 2, "the server closed a watch mid-wait"
    assert kube.count("watch-list", "Pod") == 1, "resumed from its version, not read per watch"
    assert kube.count("list", "Pod") == 0
    assert kube.relists == 0


def test_the_state_comes_in_one_watch_list_request_ending_with_its_bookmark(cluster):
    ns, kube = cluster.namespace("kw"), recorder(cluster)
    for name in ("a", "b"):
        kube.apply(cm(name, ns))
    stop = threading.Event()
    before: list[tuple[str, str]] = []
    synced = None
    for etype, obj in kube.follow("ConfigMap", ns, "app!=none", stop=stop):
        if etype == "SYNCED":
            synced = obj
            kube.apply(cm("c", ns))
            continue
        if synced is None:
            before.append((etype, obj["metadata"]["name"]))
        elif obj["metadata"]["name"] == "c":
            stop.set()
    assert sorted(before) == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "kube-root-ca.crt")] \
        or sorted(before) == [("ADDED", "a"), ("ADDED", "b")]
    assert {o["metadata"]["name"] for o in synced["items"]} >= {"a", "b"}
    assert int(synced["metadata"]["resourceVersion"]) > 0
    assert kube.streaming_lists is True
    assert [c[:2] for c in kube.calls] == [("watch-list", "ConfigMap")], \
        "the state and the change after it: one request"


class RefusesStreaming(Recorder):
    """An apiserver without streaming lists refuses their parameters (4xx): sent here as a
    ``resourceVersionMatch`` the real apiserver refuses on a watch."""

    def watch_list(self, kind, namespace, selector=None, field_selector=None, timeout_s=60):
        self.calls.append(("watch-list", kind, None))
        return self._stream(kind, namespace, {
            "watch": "1", "sendInitialEvents": "true", "resourceVersionMatch": "Exact",
            "timeoutSeconds": str(timeout_s), "allowWatchBookmarks": "true"}, timeout_s)


def test_an_apiserver_refusing_streaming_lists_gets_a_list_then_a_watch(cluster):
    ns, kube = cluster.namespace("kw"), recorder(cluster, RefusesStreaming)
    kube.apply(cm("a", ns))
    stop = threading.Event()
    seen: list[tuple[str, str]] = []
    for etype, obj in kube.follow("ConfigMap", ns, stop=stop):
        if etype == "SYNCED":
            kube.apply(cm("b", ns))
            continue
        seen.append((etype, obj["metadata"]["name"]))
        if obj["metadata"]["name"] == "b":
            stop.set()
    assert kube.streaming_lists is False
    assert [v for v, _, _ in kube.calls][:3] == ["watch-list", "list", "watch"]
    assert ("ADDED", "a") in seen and seen[-1] == ("ADDED", "b")
