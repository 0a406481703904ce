"""Fencing of rollback and swap: a run whose Lease is stolen between two writes stops before
the next one, naming the holder, and the next run converges.

The run uses the real deployer client; the only test hook steals the Lease (kubectl, admin)
right after the run's first write and lets the Lease's confirmation interval (1 s) pass.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest

from pipelinelib.kube.lock import CONFIRM_S, LeaseLost, lease_name
from pipelinelib.steps.rollback import rollback
from pipelinelib.steps.rollout import rollout
from pipelinelib.steps.swap import swap
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster
from tests.helpers.manifests import blue_green_awaiting_swap, image, web


def _stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class StealAfterFirstWrite:
    """The deployer's real client; after the first ``verb`` it makes, an admin steals the
    app's Lease for ``rm-mallory (job 9)`` (2 s TTL, never renewed)."""

    def __init__(self, kube: Any, cluster: Cluster, namespace: str, verb: str):
        self._kube, self._cluster, self._ns, self._verb = kube, cluster, namespace, verb
        self.writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._kube, name)
        if name != self._verb:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            out = attr(*args, **kwargs)
            if kwargs.get("dry_run"):
                return out
            first = args[0] if args else None
            self.writes.append(f"{first.get('kind')}/{first['metadata']['name']}"
                               if isinstance(first, dict) else f"{args[0]}/{args[1]}")
            if len(self.writes) == 1:
                self._steal()
            return out
        return write

    def _steal(self) -> None:
        lease = json.loads(self._cluster.kubectl("-n", self._ns, "get", "lease",
                                                 lease_name("web"), "-o", "json"))
        lease["spec"].update(holderIdentity="thief #1", renewTime=_stamp(),
                             acquireTime=_stamp(), leaseDurationSeconds=2)
        lease["metadata"]["annotations"] = {"pipelinelib.dev/holder": "rm-mallory (job 9)"}
        self._cluster.kubectl("replace", "-f", "-", stdin=json.dumps(lease))
        # the pause IS the behaviour under test: the run's last confirmation of the Lease
        # grows older than CONFIRM_S, so its next write must confirm again and find the thief
        time.sleep(CONFIRM_S + 0.5)


def _lease_gone(cluster: Cluster, ns: str) -> bool:
    items = cluster.json("-n", ns, "get", "lease")["items"]
    return not any(i["metadata"]["name"] == lease_name("web") for i in items)


def _images(cluster: Cluster, ns: str) -> dict[str, str]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
            for d in cluster.json("-n", ns, "get", "deploy")["items"]}


def test_a_rollback_whose_lease_is_stolen_stops_before_its_next_write(cluster):
    ns = cluster.namespace("fence")
    for n in (1, 2):  # two workloads of app web: web and web-worker, v1 then v2
        rollout(cluster.ctx(), web(n, extra=web(n, name="web-worker", service=False)),
                app="web", namespace=ns, timeout=120)
    assert set(_images(cluster, ns).values()) == {image(2)}

    ctx = cluster.ctx()
    hook = StealAfterFirstWrite(ctx.kube, cluster, ns, "apply")
    ctx.adapters["kube"] = hook
    with pytest.raises(LeaseLost) as lost:
        rollback(ctx, app="web", namespace=ns, timeout=120)
    assert "rm-mallory (job 9)" in lost.value.message
    assert "stopped before apply Deployment/" in lost.value.message
    assert len(hook.writes) == 1, "no write after the Lease was lost"
    assert sorted(_images(cluster, ns).values()) == sorted([image(1), image(2)])
    lease = cluster.json("-n", ns, "get", "lease", lease_name("web"))
    assert lease["spec"]["holderIdentity"] == "thief #1", "ours never overwrote it"

    # the thief's Lease expires (2 s, never renewed): the next run finishes the rollback
    out = run_pipeline("rollback", "--app", "web", "-n", ns, env=cluster.cli_env())
    assert out.returncode == 0, out.stderr[-2000:]
    assert set(_images(cluster, ns).values()) == {image(1)}
    assert _lease_gone(cluster, ns)
    out = run_pipeline("rollback", "--app", "web", "-n", ns, env=cluster.cli_env())
    assert out.returncode == 0 and '"status": "unchanged"' in out.stderr, out.stderr[-2000:]


def test_a_swap_whose_lease_is_stolen_stops_before_its_next_write(cluster, tmp_path):
    ns, env = cluster.namespace("fence"), cluster.cli_env()

    colors = blue_green_awaiting_swap(cluster, tmp_path, ns, env)
    assert set(colors().values()) == {"blue"}

    ctx = cluster.ctx()
    hook = StealAfterFirstWrite(ctx.kube, cluster, ns, "patch")
    ctx.adapters["kube"] = hook
    with pytest.raises(LeaseLost) as lost:
        swap(ctx, app="web", namespace=ns, to="green")
    assert "rm-mallory (job 9)" in lost.value.message
    assert "stopped before patch Service/" in lost.value.message
    assert len(hook.writes) == 1, "no write after the Lease was lost, not even an undo"
    assert sorted(colors().values()) == ["blue", "blue", "green"]

    # the next run (after the thief's 2 s Lease expired) switches the rest and converges
    out = run_pipeline("swap", "--app", "web", "-n", ns, "--to", "green", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert set(colors().values()) == {"green"}
    assert _lease_gone(cluster, ns)
