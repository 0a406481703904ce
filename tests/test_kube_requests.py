"""Request budgets, counted by the apiserver itself (pipelinelib.testing.apiserver): every
request of a `pipeline` process (reads, watches, writes) from the API Priority and Fairness
metrics of a FlowSchema that matches only the test's own ServiceAccount, writes from the
audit log. Counts, never wall time; kubectl is measured in the same test, on the same
manifests, as a ServiceAccount of its own (its discovery cache warmed first: its best case).

Before issue 13 (same manifests: ConfigMap, Secret, Deployment, Service): a one-app update
made 31 requests, a no-op rollout 18; a no-op `pipeline apply` 3 lists plus one GET per app
(the plan engine of issue 13 alone would add one GET per object). On main 57bf78b this test
measured first deploy 30, update 24, no-op 12 (kubectl 15, 9, 9); now 27, 15, 7. An update
makes the Namespace read, one list per kind the app's record of owned kinds names (4 here),
the dry run of the changed object, Lease create, the apply (conditional on the listed
resourceVersion: no re-read under the lock), the waiter's requests and Lease delete; a
no-op `pipeline apply` the plan's lists, one namespace read and one Lease list, whatever
the app count.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from pipelinelib.adapters.kube import KubeClient
from pipelinelib.testing.apiserver import Counts, RequestCounter
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster
from tests.helpers.manifests import web, write

# The write path of an update (ns read, 4 owned lists, dry run, Lease create, apply, Lease
# delete) is 9 requests; the waiter's one watch-list each of Deployment, Pods and
# ReplicaSets is 3. kubectl makes 9 here (a GET per object, the changed one's PATCH,
# rollout status' list+watch...). Goal (issue 13): kubectl + 3.
UPDATE_OVER_KUBECTL = 3 + 1  # + 1: the fence's re-read of the Lease
#   before the apply when the machine is slow (over a second since the Lease was taken)
NOOP_REQUESTS = 8  # ns, 4 owned lists (no dry run: applied hash), dead-lock check, health


@pytest.fixture
def admin(cluster):
    return KubeClient.from_kubeconfig(cluster.kube_env["KUBECONFIG"])


@pytest.fixture
def counter(admin):
    with RequestCounter(admin) as c:
        yield c


@pytest.fixture
def kubectl_counter(admin):
    with RequestCounter(admin) as c:
        yield c


def pipeline(cluster: Cluster, counter: RequestCounter, *args: str) -> None:
    out = run_pipeline(*args, env={**cluster.kube_env, "KUBECONFIG": counter.kubeconfig,
                                   "PIPELINE_KUBECONFIG": ""})
    assert out.returncode == 0, out.stderr[-3000:]


def kubectl_rollout(counter: RequestCounter, cache: Path, ns: str, path: Path) -> None:
    """``kubectl apply -f PATH`` + ``kubectl rollout status`` as ``counter``'s account."""
    kubectl = str(Path(os.environ["PIPELINELIB_KUBE_BIN"]) / "kubectl")
    base = [kubectl, "--kubeconfig", counter.kubeconfig, "--cache-dir", str(cache), "-n", ns]
    for args in (["apply", "-f", str(path)],
                 ["rollout", "status", "deployment/web", "--timeout=120s"]):
        out = subprocess.run([*base, *args], capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr[-2000:]


def counted(counter: RequestCounter, run: object) -> Counts:
    before = counter.snapshot()
    run()  # type: ignore[operator]
    return counter.since(before)


def test_an_update_and_a_no_op_rollout_against_kubectl_on_the_same_manifests(
        cluster, counter, kubectl_counter, tmp_path):
    ours_ns, theirs_ns, warm = (cluster.namespace("rq") for _ in range(3))
    counter.grant(ours_ns)
    for ns in (theirs_ns, warm):
        kubectl_counter.grant(ns)
    v1, v2 = write(tmp_path / "v1.yaml", web(1)), write(tmp_path / "v2.yaml", web(2))
    cache = tmp_path / "kubectl-cache"
    kubectl_rollout(kubectl_counter, cache, warm, v1)  # kubectl's discovery cache, warm
    args = ("--app", "web", "-n", ours_ns, "--lock-ttl", "120")  # no Lease renewal meanwhile

    first = counted(counter, lambda: pipeline(cluster, counter, "rollout", str(v1), *args))
    kubectl_first = counted(kubectl_counter,
                            lambda: kubectl_rollout(kubectl_counter, cache, theirs_ns, v1))
    update = counted(counter, lambda: pipeline(cluster, counter, "rollout", str(v2), *args))
    kubectl_update = counted(kubectl_counter,
                             lambda: kubectl_rollout(kubectl_counter, cache, theirs_ns, v2))
    noop = counted(counter, lambda: pipeline(cluster, counter, "rollout", str(v2), *args))
    kubectl_noop = counted(kubectl_counter,
                           lambda: kubectl_rollout(kubectl_counter, cache, theirs_ns, v2))
    print(f"requests ours/kubectl: first deploy {first.requests}/{kubectl_first.requests}, "
          f"update {update.requests}/{kubectl_update.requests}, "
          f"no-op {noop.requests}/{kubectl_noop.requests}")

    assert first.writes == 7, "Lease, record of owned kinds, 4 objects, Lease delete"
    assert update.writes == 3, "Lease create, Deployment apply, Lease delete"
    assert update.requests <= kubectl_update.requests + UPDATE_OVER_KUBECTL, \
        (update, kubectl_update)
    assert noop.writes == 0
    assert noop.requests <= NOOP_REQUESTS, noop
    live = cluster.json("-n", ours_ns, "get", "deployment", "web")
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
