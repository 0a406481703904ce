"""The rollout proven on real pods: the testbed's real node (kubelet + containerd) pulls the
image `pipeline build` pushed to the htpasswd registry, runs it, probes it and reports its
real failures. Every failure detection here also runs on kwok (tests/test_real_node_kwok.py).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
import requests

from pipelinelib.errors import StepFailed
from pipelinelib.steps.rollout import rollout
from tests.helpers.realnode import (
    PORT,
    UNKNOWN_DIGEST,
    app,
    http_get,
    pods_of,
    regcred,
    serve,
)
from tests.helpers.wait import wait_until

# what a pod or Service still settling raises while a test polls it
SETTLING = (AssertionError, requests.RequestException, KeyError)
READY_FILE = {"exec": {"command": ["/bin/cat", "/tmp/ready"]}, "periodSeconds": 1}


def fails(node_cluster, docs, timeout: float = 120) -> StepFailed:
    ns = node_cluster.namespace("rn")
    with pytest.raises(StepFailed) as failed:
        rollout(node_cluster.ctx("web"), docs, app="web", namespace=ns, timeout=timeout)
    return failed.value


def serve_www() -> list[str]:
    """The built image's own content (/www, with version.txt) on every pod address."""
    return ["/bin/sh", "-c", f"echo serving /www on :{PORT} && exec httpd -f -v -p {PORT} -h /www"]


def test_the_built_image_is_pulled_by_digest_through_a_pull_secret_and_serves(
        node_cluster, node_env, node_image):
    ns = node_cluster.namespace("rn")
    result = rollout(node_cluster.ctx("web"), app("web", node_image, command=serve_www(),
                                                  extra=[regcred(node_env)]),
                     app="web", namespace=ns, timeout=120)
    assert result.changed
    [pod] = pods_of(node_cluster, ns, "web")
    assert pod["spec"]["nodeName"] == node_env["PIPELINELIB_REAL_NODE"]
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] and status["imageID"].endswith(node_image.split("@", 1)[1])
    assert http_get(pod["status"]["podIP"], "/version.txt") == "version 1.0.0\n"
    logs = node_cluster.kubectl("-n", ns, "logs", pod["metadata"]["name"])
    assert "serving /www on :18080" in logs, "the apiserver reaches the kubelet for logs"


@pytest.mark.parametrize("case", ["wrong-password", "no-secret"])
def test_a_pull_the_registry_refuses_fails_with_its_401(node_cluster, node_env, node_image, case):
    docs = (app("web", node_image, extra=[regcred(node_env, "wrong-password-1")])
            if case == "wrong-password" else app("web", node_image, pull_secret_name=None))
    error = fails(node_cluster, docs)
    text = error.one_line()
    assert "ErrImagePull" in text or "ImagePullBackOff" in text, text
    assert "401 Unauthorized" in text, text
    assert "wrong-password-1" not in text + "\n".join(error.evidence)


def test_an_unknown_digest_fails_with_not_found(node_cluster, node_env, node_image):
    unknown = node_image.split("@", 1)[0] + "@" + UNKNOWN_DIGEST
    error = fails(node_cluster, app("web", unknown, extra=[regcred(node_env)]))
    text = error.one_line()
    assert "ErrImagePull" in text or "ImagePullBackOff" in text, text
    assert f"{UNKNOWN_DIGEST}: not found" in text, text


def test_a_crash_loop_fails_with_the_exit_code_and_the_last_log_lines(
        node_cluster, node_env, node_image):
    crash = ["/bin/sh", "-c", "echo starting; echo 'fatal: cannot open /data/db' >&2; exit 3"]
    error = fails(node_cluster, app("web", node_image, command=crash, readiness={},
                                    min_ready_seconds=5, extra=[regcred(node_env)]))
    text = error.one_line()
    assert "CrashLoopBackOff" in text and "last exit code 3 (Error)" in text, text
    assert "fatal: cannot open /data/db" in text, text
    assert "rolled back: first deploy" in text


def test_a_container_that_restarts_once_and_stays_up_does_not_fail(
        node_cluster, node_env, node_image):
    once = ["/bin/sh", "-c", "if [ ! -e /state/started ]; then touch /state/started; "
            "echo 'database not ready yet' >&2; exit 1; fi; " + serve()[2]]
    ns = node_cluster.namespace("rn")
    result = rollout(node_cluster.ctx("web"), app("web", node_image, command=once, volumes=True,
                                                  extra=[regcred(node_env)]),
                     app="web", namespace=ns, timeout=120)
    assert result.changed
    [pod] = pods_of(node_cluster, ns, "web")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 1
    assert http_get(pod["status"]["podIP"]) == "hello\n"


def test_a_readiness_probe_that_never_passes_fails_at_the_deadline_naming_it(
        node_cluster, node_env, node_image):
    probe = {"httpGet": {"path": "/healthz", "port": PORT}, "periodSeconds": 1}
    error = fails(node_cluster, app("web", node_image, readiness=probe,
                                    extra=[regcred(node_env)]), timeout=20)
    text = error.one_line()
    # not before the deadline: the waiter says ReadinessTimeout only once it has passed
    # (kube/wait.py); a probe failing was no reason to give up earlier
    assert "ReadinessTimeout" in text and "not ready after 20s" in text, text
    assert "readiness probe httpGet http://:18080/healthz never passed" in text, text
    assert "last failure: Readiness probe failed: HTTP probe failed with statuscode: 404" in text


def test_a_liveness_probe_that_kills_the_container_reports_the_restarts(
        node_cluster, node_env, node_image):
    probe = {"exec": {"command": ["/bin/false"]}, "periodSeconds": 1, "failureThreshold": 1}
    slow = ["/bin/sh", "-c", "sleep 5; touch /tmp/ready; exec sleep 3600"]
    error = fails(node_cluster, app("web", node_image, command=slow, readiness=READY_FILE,
                                    liveness=probe, extra=[regcred(node_env)]))
    text = error.one_line()
    assert "CrashLoopBackOff" in text and "2 restarts" in text, text
    evidence = "\n".join(error.evidence)
    # the kubelet's Unhealthy event or its Killing event names the probe (its event spam
    # filter may drop one of them under load); neither is pushed out by the Normal churn
    assert "Liveness probe failed" in evidence or "failed liveness probe" in evidence, evidence
    assert "{}" not in evidence, "an empty log is no lines, not a JSON object"


def test_a_missing_config_key_fails_with_create_container_config_error(
        node_cluster, node_env, node_image):
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
              "data": {"GREETING": "hi"}}
    error = fails(node_cluster, app("web", node_image, env_from_key=("cfg", "DATABASE_URL"),
                                    extra=[regcred(node_env), config]))
    text = error.one_line()
    assert "CreateContainerConfigError" in text, text
    assert "couldn't find key DATABASE_URL in ConfigMap" in text, text


def test_a_memory_limit_exceeded_is_reported_as_oomkilled(node_cluster, node_env, node_image):
    # dd is the container's main process, so the OOM killer ends the container itself.
    hog = ["/bin/sh", "-c", "echo allocating 64 MiB; exec dd if=/dev/zero of=/dev/null bs=64M"]
    error = fails(node_cluster, app("web", node_image, command=hog, readiness=READY_FILE,
                                    memory_limit="16Mi", extra=[regcred(node_env)]))
    text = error.one_line()
    # containerd may report a second OOM kill as "Error"; the waiter keeps the first in view
    assert "CrashLoopBackOff" in text and "last exit code 137 (" in text, text
    assert "OOMKilled" in text, text


def test_a_pull_that_fails_while_the_registry_restarts_then_succeeds_does_not_fail(
        node_cluster, node_env, tmp_path):
    spare = node_env["PIPELINELIB_NODE_SPARE_REGISTRY"]
    registry = Registry(tmp_path, spare)
    registry.start()
    try:
        ref = registry.push_base(node_env)
        registry.stop()
        ns = node_cluster.namespace("rn")
        outcome: dict = {}

        def deploy():
            try:
                outcome["result"] = rollout(node_cluster.ctx("web"),
                                            app("web", ref, pull_secret_name=None),
                                            app="web", namespace=ns, timeout=120)
            except StepFailed as exc:
                outcome["error"] = exc
        worker = threading.Thread(target=deploy)
        worker.start()
        try:
            # ErrImagePull (the registry's "connection refused") lasts only until the
            # kubelet's back-off begins (ImagePullBackOff: "Back-off pulling image"): either
            # says the pull failed; the reason is asserted from the events below
            wait_until(lambda: any(
                (cs.get("state", {}).get("waiting") or {}).get("reason") in (
                    "ErrImagePull", "ImagePullBackOff")
                for p in pods_of(node_cluster, ns, "web")
                for cs in p.get("status", {}).get("containerStatuses") or []), 60,
                "the pull to fail while the registry is down", interval=0.5, ignoring=SETTLING)
        finally:
            registry.start()
            worker.join(150)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["result"].changed
        events = node_cluster.json("-n", ns, "get", "events")["items"]
        assert any("connection refused" in (e.get("message") or "") for e in events), [
            e.get("message") for e in events]
    finally:
        registry.stop()


def test_blue_green_endpoints_come_from_real_probes_and_the_live_colour_answers(
        node_cluster, node_env, node_image):
    ns = node_cluster.namespace("rn")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": PORT}]}}

    def deploy(greeting: str):
        docs = app("web", node_image, env={"GREETING": greeting},
                   extra=[regcred(node_env), service])
        return rollout(node_cluster.ctx("web"), docs, app="web", namespace=ns, timeout=120,
                       blue_green=True)

    def live_answers() -> tuple[str, set[str]]:
        color = node_cluster.json("-n", ns, "get", "service", "web")["spec"]["selector"][
            "pipelinelib.dev/color"]
        slices = node_cluster.json("-n", ns, "get", "endpointslices", "-l",
                                   "kubernetes.io/service-name=web")["items"]
        ready = [a for s in slices for e in s.get("endpoints") or []
                 if (e.get("conditions") or {}).get("ready") for a in e["addresses"]]
        assert ready, "the Service has no ready endpoint"
        return color, {http_get(ip) for ip in ready}

    deploy("v1")
    first, answers = wait_until(lambda: _stable(live_answers), 120, "v1 to answer",
                                interval=0.5, ignoring=SETTLING)
    assert answers == {"v1\n"}
    deploy("v2")
    second, answers = wait_until(lambda: _stable(live_answers, {"v2\n"}), 120, "v2 to answer",
                                 interval=0.5, ignoring=SETTLING)
    assert second != first and answers == {"v2\n"}


def _stable(read, want=None):
    color, answers = read()
    return (color, answers) if want is None or answers == want else None


class Registry:
    """A registry of this test's own on the node's spare port (it may stop and start)."""

    def __init__(self, tmp: Path, address: str):
        self.address, self.dir, self.proc = address, tmp / "registry", None
        self.dir.mkdir()
        (self.dir / "config.yml").write_text(
            "version: 0.1\nlog: {level: warn}\nstorage:\n"
            f"  filesystem: {{rootdirectory: {self.dir / 'data'}}}\n"
            f"http:\n  addr: {address}\n")

    def start(self) -> None:
        self.proc = subprocess.Popen(["docker-registry", "serve", str(self.dir / "config.yml")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, 120, "the registry to start",
                   ignoring=(requests.RequestException,))

    def _answers(self) -> bool:
        return requests.get(f"http://{self.address}/v2/", timeout=2).status_code == 200

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def push_base(self, node_env) -> str:
        """Push the testbed base image here; return it as REPO@sha256:…"""
        import docker

        client = docker.DockerClient(base_url=node_env["DOCKER_HOST"])
        repo = f"{self.address}/realnode/base"
        # a new digest every run: the node must really pull it (not find it cached)
        dockerfile = (f"FROM {node_env['PIPELINELIB_BASE_IMAGE']}\n"
                      f"LABEL io.pipelinelib.test.run={uuid.uuid4().hex}\n")
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"{repo}:1",
                            network_mode="none", rm=True)
        try:
            client.images.push(repo, "1")
        finally:
            client.images.remove(f"{repo}:1")
        head = requests.head(f"http://{self.address}/v2/realnode/base/manifests/1", timeout=5,
                             headers={"Accept": "application/vnd.docker.distribution.manifest"
                                                ".v2+json"})
        return f"{repo}@{head.headers['Docker-Content-Digest']}"


REAL_HOST_NETWORK = {
    # the testbed's PostgreSQL listens on loopback: the Job's pod shares the host's network
    "hostNetwork": True, "nodeSelector": {"pipelinelib.dev/real-node": "true"},
    "tolerations": [{"key": "pipelinelib.dev/real-node", "operator": "Exists",
                     "effect": "NoSchedule"}]}


def test_the_migration_runs_as_a_job_in_a_real_pod_of_an_image_holding_pipelinelib(
        node_cluster, node_env, postgres_db, tmp_path):
    import psycopg

    from pipelinelib.steps.migrate import run_migration_job
    from tests.helpers.paths import EXAMPLE, ROOT
    from tests.helpers.realnode import pipelinelib_image

    bad = tmp_path / "bad"  # the example's migrations and a third one that fails
    shutil.copytree(EXAMPLE / "migrations", bad)
    (bad / "V3__boom.sql").write_text("update visits set referrer = (1 / 0)::text;\n")
    image = pipelinelib_image(tmp_path, node_env["DOCKER_HOST"], node_env["PIPELINELIB_REGISTRY"],
                              ROOT, {"/migrations": EXAMPLE / "migrations", "/bad": bad})
    ns = node_cluster.namespace("rn")
    node_cluster.kubectl("-n", ns, "create", "secret", "generic", "db",
                         f"--from-literal=dsn={postgres_db}")
    ctx = node_cluster.ctx("hello")
    done = run_migration_job(ctx, ns, image, ["python3", "-m", "pipelinelib", "migrate",
                                              "--dir", "/migrations"],
                             secret_env={"PIPELINE_DB_DSN": ("db", "dsn")},
                             pod_spec=REAL_HOST_NETWORK, timeout_s=180)
    assert done.changed and done.outputs["state"] == "succeeded"
    [pod] = node_cluster.json("-n", ns, "get", "pods", "-l",
                              "pipelinelib.dev/purpose=migrate")["items"]
    assert pod["spec"]["nodeName"] == node_env["PIPELINELIB_REAL_NODE"]
    with psycopg.connect(postgres_db) as conn:
        columns = {r[0] for r in conn.execute(
            "select column_name from information_schema.columns where table_name = 'visits'")}
    assert "referrer" in columns, "V2 ran inside the pod against the testbed PostgreSQL"
    with pytest.raises(StepFailed) as failed:
        run_migration_job(node_cluster.ctx("hello"), ns, image,
                          ["python3", "-m", "pipelinelib", "migrate", "--dir", "/bad"],
                          secret_env={"PIPELINE_DB_DSN": ("db", "dsn")},
                          pod_spec=REAL_HOST_NETWORK, timeout_s=180)
    evidence = "\n".join(failed.value.evidence)
    assert "division by zero" in evidence, evidence
    assert postgres_db.split("@")[0] not in evidence, "the DSN's password stays out"
