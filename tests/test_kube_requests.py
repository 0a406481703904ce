"""Request budgets, counted by the apiserver itself (pipelinelib.testing.apiserver): every
request of a `pipeline` process (reads, watches, writes) from the API Priority and Fairness
metrics of a FlowSchema that matches only the test's own ServiceAccount, writes from the
audit log. Counts, never wall time.

Before issue 13 (same manifests: ConfigMap, Secret, Deployment, Service): a one-app update
made 31 requests, a no-op rollout 18; a no-op `pipeline apply` 3 lists plus one GET per app
(the plan engine of issue 13 alone would add one GET per object). Now a no-op apply makes
the plan's lists (9 kinds), one namespace read and one Lease list, whatever the app count.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipelinelib.adapters.kube import KubeClient
from pipelinelib.testing.apiserver import RequestCounter
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster
from tests.helpers.manifests import web, write

# Budgets as measured after the change (each a ceiling, with the reads they are made of).
UPDATE_REQUESTS = 25  # ns (read once: it also serves the protected-namespace guard), 9 owned
#   lists, 1 dry run, Lease, 4 re-reads under the lock, apply, 6 wait (list+watch: Deployment,
#   Pods, ReplicaSets), Lease release = 24; + 1 for the fence's re-read of the Lease before
#   the write when the machine is slow
NOOP_REQUESTS = 12  # ns, 9 owned lists (no dry run: applied hash), dead-lock check, health


@pytest.fixture
def cluster(kube_env):
    c = Cluster(kube_env)
    yield c
    c.cleanup()


@pytest.fixture
def counter(cluster):
    with RequestCounter(KubeClient.from_kubeconfig(cluster.kube_env["KUBECONFIG"])) as c:
        yield c


def pipeline(cluster: Cluster, counter: RequestCounter, *args: str) -> None:
    out = run_pipeline(*args, env={**cluster.kube_env, "KUBECONFIG": counter.kubeconfig,
                                   "PIPELINE_KUBECONFIG": ""})
    assert out.returncode == 0, out.stderr[-3000:]


def test_an_update_and_a_no_op_rollout_stay_within_their_request_budgets(cluster, counter,
                                                                          tmp_path):
    ns = cluster.namespace("rq")
    counter.grant(ns)
    v1, v2 = write(tmp_path / "v1.yaml", web(1)), write(tmp_path / "v2.yaml", web(2))
    args = ("--app", "web", "-n", ns, "--lock-ttl", "120")  # no Lease renewal meanwhile
    pipeline(cluster, counter, "rollout", str(v1), *args)

    before = counter.snapshot()
    pipeline(cluster, counter, "rollout", str(v2), *args)
    update = counter.since(before)
    assert update.writes == 3, "Lease create, Deployment apply, Lease delete"
    assert update.requests <= UPDATE_REQUESTS, update

    before = counter.snapshot()
    pipeline(cluster, counter, "rollout", str(v2), *args)
    noop = counter.since(before)
    assert noop.writes == 0
    assert noop.requests <= NOOP_REQUESTS, noop
    live = cluster.json("-n", ns, "get", "deployment", "web")
    assert live["metadata"]["generation"] == 2, "v1, then v2 once"


def environment(root: Path, ns: str, apps: int) -> None:
    digest = "sha256:" + hashlib.sha256(b"requests").hexdigest()
    lines = ["apiVersion: pipelinelib.dev/v1", "kind: Environment", "name: rq",
             f"namespaces: [{ns}]", "apps:"]
    for i in range(apps):
        lines += [f"  app-{i}:",
                  f"    image: {{repository: 127.0.0.1:5001/rq/app, tag: \"1\", "
                  f"digest: \"{digest}\"}}",
                  "    config: {LOG_LEVEL: info}", "    ports: [{name: http, port: 8080}]",
                  "    timeout: 120"]
    (root / "environments").mkdir(parents=True)
    (root / "environments" / "rq.yaml").write_text("\n".join(lines) + "\n")


def test_a_no_op_apply_makes_at_most_one_request_per_app(cluster, counter, tmp_path):
    ns, apps = cluster.namespace("rq"), 12  # the plan lists 9 kinds + 2 reads, for any count
    counter.grant(ns)
    environment(tmp_path, ns, apps)
    pipeline(cluster, counter, "apply", "rq", "--repo", str(tmp_path))
    before = counter.snapshot()
    pipeline(cluster, counter, "apply", "rq", "--repo", str(tmp_path))
    noop = counter.since(before)
    assert noop.writes == 0
    assert noop.requests <= apps, f"{noop.requests} requests for {apps} unchanged apps"
