"""Kubernetes steps killed right after each of their writes, then re-run.

The harness first runs the step once in a fresh namespace and reads its N writes from the
apiserver's audit log (the deployer's write verbs in that namespace). Then for k = 1..N,
in a fresh namespace each time, it kills the step as soon as write k is in the audit log.
The step talks to the apiserver through a Toxiproxy ``latency`` toxic, so the answer to
write k is still in the proxy when the kill lands: the kill is right after write k, and
``Trial.landed`` (read back from the audit log) proves it. The re-run must converge: the
wanted version live and ready, no orphaned or duplicated objects, no lease left behind.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelinelib.kube.revisions import RECORD_PREFIX, parse_record
from pipelinelib.testing.faults import (
    Scenario,
    clear_reason,
    count_retries,
    host_port,
    kube_server,
    kubeconfig_via,
)
from pipelinelib.testing.kill import KillHarness, KubeAuditWrites, Trial, Write
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster
from tests.helpers.manifests import image, web, write

DEPLOYER = "system:serviceaccount:pipelinelib-system:pipelinelib-deployer"
LATENCY_MS = 150
LOCK_TTL = "3"


@pytest.fixture
def slow_api(cluster, fault_proxy, tmp_path):
    """The deployer's kubeconfig through a proxy that holds every answer LATENCY_MS."""
    proxy = fault_proxy("apiserver", host_port(kube_server(cluster.deployer_kubeconfig)))
    proxy.add("latency", latency=LATENCY_MS)
    return kubeconfig_via(cluster.deployer_kubeconfig, proxy, tmp_path / "slow.kubeconfig")


def image_of(cluster: Cluster, ns: str, name: str = "web") -> str:
    live = cluster.json("-n", ns, "get", "deploy", name)
    return live["spec"]["template"]["spec"]["containers"][0]["image"]


def leases(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    return [lease for lease in cluster.json("-n", ns, "get", "lease")["items"]
            if (lease.get("spec") or {}).get("holderIdentity")]


def kill_at_every_write(cluster: Cluster, scenario: Callable[..., Scenario], step: str,
                        kubeconfig: Path, setup: Callable[[str], list[str]],
                        verify: Callable[[str], None], exit_code: int = 0,
                        exact: bool = True) -> list[Trial]:
    """``setup(ns)`` prepares a namespace and returns the step's CLI arguments; the step
    (and every re-run) ends with ``exit_code``. ``exact=False``: the step writes from
    several threads at once (apply), so the kill lands after write k, not always before k+1."""
    audit_log = cluster.kube_env["PIPELINELIB_KUBE_AUDIT_LOG"]
    slow_env = {**os.environ, **cluster.cli_env(), "KUBECONFIG": str(kubeconfig),
                "PIPELINE_LOG_FORMAT": "json"}
    state: dict[str, Any] = {}

    def fresh(_k: int) -> None:
        ns = cluster.namespace("kill")
        state["ns"], state["args"] = ns, setup(ns)
        harness.cmd = [sys.executable, "-m", "pipelinelib", *state["args"]]
        harness.sources = [KubeAuditWrites(audit_log, [ns], DEPLOYER, skip_renewals=True)]

    harness = KillHarness([], slow_env, [])
    fresh(0)
    done, writes = harness.record()
    assert done.returncode == exit_code, done.stderr[-3000:]
    assert writes, "the step made no write the audit log shows"
    verify(state["ns"])
    described = [f"{w.what}" for w in writes]

    def check(k: int, trial: Trial) -> None:
        w: Write = writes[k - 1]
        row = scenario(step, f"SIGKILL after write {k}/{len(writes)} ({w.what})", "kubernetes")
        row.outcome = f"killed after {trial.landed} write(s): " + ", ".join(
            x.what for x in trial.writes[-1:])
        assert trial.killed and (trial.landed == k if exact else trial.landed >= k), (
            k, [x.what for x in trial.writes], described)
        started = time.monotonic()
        rerun = run_pipeline(*state["args"], env=cluster.cli_env())
        row.seconds = round(time.monotonic() - started, 2)
        row.retries = count_retries(rerun.stderr)
        assert rerun.returncode == exit_code, rerun.stderr[-3000:]
        if exit_code:
            row.outcome += f"; re-run exit {exit_code}: {clear_reason(rerun.stderr)}"
        verify(state["ns"])
        row.stuck_locks = len(leases(cluster, state["ns"]))
        assert row.stuck_locks == 0, "the re-run released (or took over) the killed run's lock"
        row.rerun = "converged"
        row.passed = True

    return harness.kill_at_every_write(len(writes), fresh, check)


def test_rolling_rollout_killed_after_every_write_converges(cluster, slow_api, tmp_path,
                                                            scenario):
    def setup(ns: str) -> list[str]:
        run = run_pipeline("rollout", str(write(tmp_path / f"{ns}-1.yaml", web(1))), "--app",
                           "web", "-n", ns, env=cluster.cli_env())
        assert run.returncode == 0, run.stderr[-2000:]
        path = write(tmp_path / f"{ns}-2.yaml", web(2, greeting="two"))
        return ["rollout", str(path), "--app", "web", "-n", ns, "--lock-ttl", LOCK_TTL]

    def verify(ns: str) -> None:
        assert image_of(cluster, ns) == image(2)
        live = cluster.json("-n", ns, "get", "deploy", "web")
        assert live["status"].get("readyReplicas") == 2
        assert live["status"].get("updatedReplicas") == 2
        cms = [i["metadata"]["name"] for i in cluster.json("-n", ns, "get", "cm")["items"]
               if i["metadata"]["name"].startswith("web-config")]
        assert len(cms) == 1, f"one config, no orphan: {cms}"
        greeting = cluster.json("-n", ns, "get", "cm", cms[0])["data"]["GREETING"]
        assert greeting == "two"

    trials = kill_at_every_write(cluster, scenario, "rollout (rolling)", slow_api, setup, verify)
    assert [t.landed for t in trials] == list(range(1, len(trials) + 1))


def test_rollback_killed_after_every_write_restores_the_previous_version(
        cluster, slow_api, tmp_path, scenario):
    def setup(ns: str) -> list[str]:
        for n in (1, 2):
            run = run_pipeline("rollout", str(write(tmp_path / f"{ns}-{n}.yaml", web(n))),
                               "--app", "web", "-n", ns, env=cluster.cli_env())
            assert run.returncode == 0, run.stderr[-2000:]
        return ["rollback", "--app", "web", "-n", ns, "--lock-ttl", LOCK_TTL]

    def verify(ns: str) -> None:
        assert image_of(cluster, ns) == image(1)
        live = cluster.json("-n", ns, "get", "deploy", "web")
        assert live["status"].get("readyReplicas") == 2
        assert live["status"].get("updatedReplicas") == 2

    trials = kill_at_every_write(cluster, scenario, "rollback", slow_api, setup, verify)
    assert [t.landed for t in trials] == list(range(1, len(trials) + 1))


def test_a_crashing_rollout_killed_after_every_write_is_rolled_back_by_the_rerun(
        cluster, slow_api, tmp_path, scenario):
    def setup(ns: str) -> list[str]:
        run = run_pipeline("rollout", str(write(tmp_path / f"{ns}-1.yaml", web(1))), "--app",
                           "web", "-n", ns, env=cluster.cli_env())
        assert run.returncode == 0, run.stderr[-2000:]
        path = write(tmp_path / f"{ns}-2.yaml", web(2, behavior="crash"))
        return ["rollout", str(path), "--app", "web", "-n", ns, "--lock-ttl", LOCK_TTL]

    def verify(ns: str) -> None:
        assert image_of(cluster, ns) == image(1), "the previous version is back"
        live = cluster.json("-n", ns, "get", "deploy", "web")
        assert live["status"].get("readyReplicas") == 2
        assert live["status"].get("updatedReplicas") == 2

    trials = kill_at_every_write(cluster, scenario, "rollout (crashing version)", slow_api,
                                 setup, verify, exit_code=1)
    assert [t.landed for t in trials] == list(range(1, len(trials) + 1))


def test_a_rollout_that_drops_a_kind_killed_after_every_write_converges(
        cluster, slow_api, tmp_path, scenario):
    """The record of owned kinds narrows after the prune: killed anywhere, the re-run leaves
    no object of the dropped kind and a record naming every kind still live."""
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "web"}, "spec": {"rules": [{"http": {"paths": [{
                   "path": "/", "pathType": "Prefix", "backend": {"service": {
                       "name": "web", "port": {"number": 80}}}}]}}]}}

    def setup(ns: str) -> list[str]:
        run = run_pipeline("rollout", str(write(tmp_path / f"{ns}-1.yaml", web(
            1, extra=[ingress]))), "--app", "web", "-n", ns, env=cluster.cli_env())
        assert run.returncode == 0, run.stderr[-2000:]
        path = write(tmp_path / f"{ns}-2.yaml", web(2))
        return ["rollout", str(path), "--app", "web", "-n", ns, "--lock-ttl", LOCK_TTL]

    def verify(ns: str) -> None:
        assert image_of(cluster, ns) == image(2)
        assert cluster.json("-n", ns, "get", "ingress")["items"] == [], "pruned"
        live = cluster.json("-n", ns, "get", "cm,secret,deploy,svc", "-l",
                            "pipelinelib.dev/app=web")["items"]
        record = next(parse_record(i) for i in live if i["metadata"]["name"] ==
                      f"{RECORD_PREFIX}web")
        assert {i["kind"] for i in live} <= {kind for _, kind in record}, record

    kill_at_every_write(cluster, scenario, "rollout (a kind dropped)", slow_api, setup,
                        verify)


COLOR = "pipelinelib.dev/color"


def two_services(n: int, **kw: Any) -> list[dict[str, Any]]:
    """web(n) plus a second Service: a switch is two writes, so a kill can land between."""
    return web(n, extra=[{"apiVersion": "v1", "kind": "Service",
                          "metadata": {"name": "web-internal"},
                          "spec": {"selector": {"app": "web"},
                                   "ports": [{"port": 8080, "targetPort": 8080}]}}], **kw)


def selected_colors(cluster: Cluster, ns: str) -> set[str]:
    return {s["spec"]["selector"].get(COLOR, "") for s in
            cluster.json("-n", ns, "get", "svc")["items"]}


def test_blue_green_rollout_killed_after_every_write_is_switched_whole_by_the_rerun(
        cluster, slow_api, tmp_path, scenario):
    def setup(ns: str) -> list[str]:
        run = run_pipeline("rollout", str(write(tmp_path / f"{ns}-1.yaml", two_services(1))),
                           "--app", "web", "-n", ns, "--blue-green", env=cluster.cli_env())
        assert run.returncode == 0, run.stderr[-2000:]
        path = write(tmp_path / f"{ns}-2.yaml", two_services(2))
        return ["rollout", str(path), "--app", "web", "-n", ns, "--blue-green",
                "--lock-ttl", LOCK_TTL]

    def verify(ns: str) -> None:
        assert selected_colors(cluster, ns) == {"green"}, "every Service on the new colour"
        assert image_of(cluster, ns, "web-green") == image(2)
        assert image_of(cluster, ns, "web-blue") == image(1), "the old colour kept"
        live = cluster.json("-n", ns, "get", "deploy", "web-green")
        assert live["status"].get("readyReplicas") == 2

    trials = kill_at_every_write(cluster, scenario, "rollout (blue/green)", slow_api, setup,
                                 verify)
    assert [t.landed for t in trials] == list(range(1, len(trials) + 1))


def test_swap_killed_after_every_write_is_completed_by_the_rerun(cluster, slow_api, tmp_path,
                                                                 scenario):
    def setup(ns: str) -> list[str]:
        for n, extra in ((1, []), (2, ["--await-promotion"])):
            run = run_pipeline("rollout", str(write(tmp_path / f"{ns}-{n}.yaml",
                                                    two_services(n))),
                               "--app", "web", "-n", ns, "--blue-green", *extra,
                               env=cluster.cli_env())
            assert run.returncode in (0, 5), run.stderr[-2000:]
        assert selected_colors(cluster, ns) == {"blue"}
        return ["swap", "--app", "web", "-n", ns, "--to", "green"]

    def verify(ns: str) -> None:
        assert selected_colors(cluster, ns) == {"green"}, "never left half-switched"
        assert image_of(cluster, ns, "web-green") == image(2)
        assert image_of(cluster, ns, "web-blue") == image(1)

    trials = kill_at_every_write(cluster, scenario, "swap", slow_api, setup, verify)
    assert [t.landed for t in trials] == list(range(1, len(trials) + 1))


def test_apply_of_several_apps_killed_after_every_write_converges(cluster, slow_api, tmp_path,
                                                                  scenario):
    """`pipeline apply` of an environment of three apps (two priorities), as the deployer."""
    from tests.helpers.envstate import env_app, write_env

    def digests(tag: str) -> dict[str, str]:
        import hashlib

        return {n: "sha256:" + hashlib.sha256(f"{n}:{tag}".encode()).hexdigest()
                for n in ("api", "worker", "web")}

    def setup(ns: str) -> list[str]:
        root = tmp_path / ns
        write_env(root, "staging", ns, env_app("api", 0) + env_app("worker", 0) + env_app("web", 5))
        run = run_pipeline("apply", "staging", "--repo", str(root), env=cluster.cli_env())
        assert run.returncode == 0, run.stderr[-2000:]
        write_env(root, "staging", ns, env_app("api", 0, tag="2.0")
                  + env_app("worker", 0, tag="2.0") + env_app("web", 5, tag="2.0"))
        return ["apply", "staging", "--repo", str(root)]

    def verify(ns: str) -> None:
        for name, digest in digests("2.0").items():
            live = cluster.json("-n", ns, "get", "deploy", name)
            assert live["spec"]["template"]["spec"]["containers"][0]["image"].endswith(digest)
            assert live["status"].get("readyReplicas") == 1
        cms = [i["metadata"]["name"] for i in cluster.json("-n", ns, "get", "cm")["items"]
               if i["metadata"]["name"] != "kube-root-ca.crt"
               and not i["metadata"]["name"].startswith(RECORD_PREFIX)]  # owned kinds
        assert len(cms) == 3, f"one config per app, no orphan: {cms}"

    kill_at_every_write(cluster, scenario, "apply (3 apps)", slow_api, setup, verify,
                        exact=False)
