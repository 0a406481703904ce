"""The waiter's own requests, counted by the apiserver itself (pipelinelib.testing.apiserver:
API Priority and Fairness metrics of a FlowSchema matching only the test's ServiceAccount,
which has the deployer's Role only). Counts, never wall time.

Before issue 13's "fewer API calls": 6 requests to wait for an updated Deployment (a list
and a watch each of the Deployment, its ReplicaSets and its Pods). Now 2: one streaming
watch-list each of the Deployment and its Pods (sendInitialEvents; the initial-events-end
bookmark is the "caught up" signal) — the ReplicaSets only when a pod looks doomed (is it of
the new revision?) — and none for an unchanged workload the caller already read.
"""

from __future__ import annotations

import pytest
import structlog

from pipelinelib.adapters.kube import KubeClient
from pipelinelib.kube import health
from pipelinelib.kube.wait import wait_for
from pipelinelib.testing.apiserver import RequestCounter
from tests.helpers.manifests import web

WAIT_REQUESTS = 2  # Deployment, Pods: one watch-list each (no ReplicaSets while healthy)


@pytest.fixture
def counter(cluster):
    with RequestCounter(KubeClient.from_kubeconfig(cluster.kube_env["KUBECONFIG"])) as c:
        yield c


def applied(kube: KubeClient, ns: str, docs: list[dict]) -> dict:
    results = [kube.apply({**d, "metadata": {**d["metadata"], "namespace": ns}}) for d in docs]
    return next(r for r in results if r["kind"] == "Deployment")


@pytest.mark.parametrize("streaming", [True, False], ids=["watch-list", "list-then-watch"])
def test_waiting_for_an_updated_deployment_costs_one_request_per_kind(cluster, counter,
                                                                       streaming):
    ns = cluster.namespace("wq")
    counter.grant(ns)
    kube = KubeClient.from_kubeconfig(counter.kubeconfig)
    kube.watch_timeout_s = 300  # no watch ends (and resumes) within the test
    if not streaming:  # as with an apiserver that refuses streaming lists (and as before)
        kube.streaming_lists = False
    log = structlog.get_logger("test")
    first = applied(kube, ns, web(1))
    ref = ("Deployment", "web")
    assert wait_for(kube, ns, [ref], 120, log, {ref: first["metadata"]["generation"]}).ok

    update = applied(kube, ns, web(2))
    before = counter.snapshot()
    outcome = wait_for(kube, ns, [ref], 120, log, {ref: update["metadata"]["generation"]},
                       known={ref: update})
    used = counter.since(before)
    assert outcome.ok, outcome.message
    assert outcome.verdicts["deployment/web"].state == health.READY
    assert used.requests == (WAIT_REQUESTS if streaming else 2 * WAIT_REQUESTS), used
    assert used.writes == 0
    assert kube.streaming_lists is streaming


def test_an_unchanged_ready_workload_the_caller_has_read_costs_no_request(cluster, counter):
    ns = cluster.namespace("wq")
    counter.grant(ns)
    kube = KubeClient.from_kubeconfig(counter.kubeconfig)
    log = structlog.get_logger("test")
    ref = ("Deployment", "web")
    first = applied(kube, ns, web(1))
    assert wait_for(kube, ns, [ref], 120, log, {ref: first["metadata"]["generation"]}).ok
    live = kube.get("Deployment", "web", ns)

    before = counter.snapshot()
    outcome = wait_for(kube, ns, [ref], 120, log, known={ref: live})
    assert outcome.ok and counter.since(before).requests == 0

    before = counter.snapshot()  # without the caller's read: one GET
    assert wait_for(kube, ns, [ref], 120, log).ok
    assert counter.since(before).requests == 1
