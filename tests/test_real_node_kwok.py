"""Side by side: every failure the rollout detects on the real node, staged on kwok too.

kwok stands in for the kubelet at scale; each case asserts the rollout reports the same
reason and the same message shape for both, so a stage that drifts from the real kubelet
(reasons, message formats, restart counts) fails here. Differences that remain on purpose are
listed in docs/testbed.md ("kwok versus the real kubelet").
"""

from __future__ import annotations

import pytest

from pipelinelib.errors import StepFailed
from pipelinelib.steps.rollout import rollout
from tests.helpers.realnode import (
    PORT,
    UNKNOWN_DIGEST,
    app,
    on_node,
    pods_of,
    pull_secret,
    regcred,
    serve,
)
from tests.helpers.wait import wait_until

PROBE = {"httpGet": {"path": "/healthz", "port": PORT}, "periodSeconds": 1}
CRASH = ["/bin/sh", "-c", "echo starting; echo 'fatal: simulated crash' >&2; exit 1"]


def docs_for(case: str, where: str, node_image: str, node_env) -> tuple[list[dict], float]:
    kwok = {"kwok_behavior": {"crash": "crash", "pull": "pull-fail", "config": "config-error",
                              "never-ready": "never-ready", "unauthorized": "pull-unauthorized",
                              "oom": "oom"}[case]} if where == "kwok" else {}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
              "data": {"GREETING": "hi"}}
    extra = [regcred(node_env), config]
    if case == "crash":
        return app("web", node_image, command=CRASH, readiness={}, min_ready_seconds=5,
                   extra=extra, **kwok), 120
    if case == "unauthorized":
        wrong = pull_secret("regcred", node_env["PIPELINELIB_AUTH_REGISTRY"],
                            node_env["PIPELINELIB_AUTH_REGISTRY_USER"], "wrong-password-1")
        return app("web", node_image, extra=[wrong, config], **kwok), 120
    if case == "oom":
        hog = ["/bin/sh", "-c", "echo allocating; exec dd if=/dev/zero of=/dev/null bs=64M"]
        return app("web", node_image, command=hog, readiness={"exec": {"command": ["/bin/false"]}},
                   memory_limit="16Mi", extra=extra, **kwok), 120
    if case == "pull":
        ref = node_image if kwok else node_image.split("@", 1)[0] + "@" + UNKNOWN_DIGEST
        return app("web", ref, extra=extra, **kwok), 120
    if case == "config":
        key = ("cfg", "GREETING") if kwok else ("cfg", "DATABASE_URL")
        return app("web", node_image, env_from_key=key, extra=extra, **kwok), 120
    return app("web", node_image, readiness=PROBE, extra=extra, **kwok), 15


EXPECT = {
    "crash": ["CrashLoopBackOff", "last exit code 1 (Error)", "2 restarts",
              "back-off 20s restarting failed container=web pod=web-"],
    "pull": ["ErrImagePull", "rpc error: code = NotFound desc = failed to pull and unpack image",
             "failed to resolve reference", ": not found"],
    "config": ["CreateContainerConfigError", "couldn't find key DATABASE_URL in ConfigMap"],
    "unauthorized": ["ErrImagePull", "failed to pull and unpack image",
                     "failed to resolve reference", "failed with status code [manifests sha256:",
                     "401 Unauthorized"],
    "oom": ["CrashLoopBackOff", "last exit code 137 (OOMKilled)", "2 restarts"],
    "never-ready": ["ReadinessTimeout",
                    "readiness probe httpGet http://:18080/healthz never passed",
                    "last failure: Readiness probe failed: HTTP probe failed with statuscode: "],
}


@pytest.mark.parametrize("where", ["real", "kwok"])
@pytest.mark.parametrize("case", sorted(EXPECT))
def test_the_same_failure_reads_the_same_on_the_real_node_and_on_kwok(
        node_cluster, node_env, node_image, case, where):
    ns = node_cluster.namespace(f"{where}-{case}"[:12])
    docs, timeout = docs_for(case, where, node_image, node_env)
    with pytest.raises(StepFailed) as failed:
        rollout(node_cluster.ctx("web"), docs, app="web", namespace=ns, timeout=timeout,
                rollback_on_failure=False)
    text = failed.value.one_line()
    for part in EXPECT[case]:
        assert part in text, f"{where}: {part!r} not in {text}"
    [pod] = pods_of(node_cluster, ns, "web")
    assert pod["spec"]["nodeName"].startswith("kwok-" if where == "kwok" else "real-")
    status = pod["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    running = any((cs.get("state") or {}).get("running")
                  for cs in status.get("containerStatuses") or [])
    # a crashing container without a readiness probe is Ready for the moment it runs
    # between two crashes (the real kubelet restarts it while the test reads the pod)
    if not (case == "crash" and running):
        assert ready["status"] == "False" and ready.get("reason") == "ContainersNotReady"
    if case == "crash":
        cs = status["containerStatuses"][0]
        # the real kubelet is at 2 for 40 s (its back-off); kwok counts on every 3 s
        assert status["phase"] == "Running" and cs["restartCount"] >= 2
        assert cs["lastState"]["terminated"]["reason"] == "Error"
        assert cs["lastState"]["terminated"]["exitCode"] == 1


LIVENESS = {"exec": {"command": ["/bin/false"]}, "periodSeconds": 1, "failureThreshold": 1}
READY_FILE = {"exec": {"command": ["/bin/cat", "/tmp/ready"]}, "periodSeconds": 1}


@pytest.mark.parametrize("where", ["real", "kwok"])
def test_a_liveness_kill_reports_the_restarts_on_both(node_cluster, node_env, node_image,
                                                      private_kwok, where):
    """kwok's liveness-kill stage (testbed/kubernetes/stages/pod-restarts.yaml) reads as the
    real kubelet's liveness kills: CrashLoopBackOff at the second restart, the SIGKILL's exit
    code, the probe's failure in the evidence."""
    ns = node_cluster.namespace(f"{where}-live")
    slow = ["/bin/sh", "-c", "sleep 5; touch /tmp/ready; exec sleep 3600"]
    docs = app("web", node_image, command=slow, readiness=READY_FILE, liveness=LIVENESS,
               extra=[regcred(node_env)],
               **({"kwok_behavior": "liveness-kill"} if where == "kwok" else {}))
    if where == "kwok":
        docs = on_node(docs, private_kwok)
    with pytest.raises(StepFailed) as failed:
        rollout(node_cluster.ctx("web"), docs, app="web", namespace=ns, timeout=120,
                rollback_on_failure=False)
    text = failed.value.one_line()
    for part in ("CrashLoopBackOff", "2 restarts", "last exit code 137 (Error)"):
        assert part in text, f"{where}: {part!r} not in {text}"
    # the kubelet's words for the probe's failure: the Unhealthy event ("Liveness probe
    # failed: ...") or its Killing event ("failed liveness probe, will be restarted"); under
    # load the recent-events window may hold only the latter
    evidence = "\n".join(failed.value.evidence)
    assert "Liveness probe failed" in evidence or "failed liveness probe" in evidence, evidence
    [pod] = pods_of(node_cluster, ns, "web")
    assert pod["spec"]["nodeName"] == (private_kwok if where == "kwok" else node_env[
        "PIPELINELIB_REAL_NODE"])


@pytest.mark.parametrize("where", ["real", "kwok"])
def test_a_container_that_restarts_once_and_stays_up_passes_on_both(
        node_cluster, node_env, node_image, private_kwok, where):
    """kwok's restart-once stage: exit 1 once, CrashLoopBackOff for a moment, then up for
    good — the rollout waits it out (not a false failure), as on the real node."""
    ns = node_cluster.namespace(f"{where}-once")
    once = ["/bin/sh", "-c", "if [ ! -e /state/started ]; then touch /state/started; "
            "echo 'database not ready yet' >&2; exit 1; fi; " + serve()[2]]
    docs = app("web", node_image, command=once, volumes=True, extra=[regcred(node_env)],
               **({"kwok_behavior": "restart-once"} if where == "kwok" else {}))
    if where == "kwok":
        docs = on_node(docs, private_kwok)
    result = rollout(node_cluster.ctx("web"), docs, app="web", namespace=ns, timeout=120)
    assert result.changed
    [pod] = pods_of(node_cluster, ns, "web")
    cs = pod["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 1 and cs["ready"] is True, cs
    assert cs["lastState"]["terminated"]["exitCode"] == 1, cs
    assert pod["spec"]["nodeName"] == (private_kwok if where == "kwok" else node_env[
        "PIPELINELIB_REAL_NODE"])


def _node_ready(node_cluster, node: str, ready: bool) -> None:
    """Write the node's Ready condition as its kubelet would (admin: test set-up only)."""
    import datetime
    import json

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cond = {"type": "Ready", "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": "kubelet is posting ready status" if ready else
            "container runtime is down (staged by the test)",
            "lastHeartbeatTime": now, "lastTransitionTime": now}
    node_cluster.kubectl("patch", "node", node, "--subresource", "status", "--type", "strategic",
                         "-p", json.dumps({"status": {"conditions": [cond]}}))


def test_a_node_briefly_not_ready_waits_and_the_rollout_finishes(
        node_cluster, node_env, node_image, private_kwok):
    """Doom vs. delay: the node of the app's pods goes NotReady (its kwok stopped, Ready=False,
    as a kubelet whose runtime is down) while an update rolls out, and comes back: the node
    controller taints the node, the new pod cannot be scheduled ("untolerated taint(s)") —
    and the rollout waits that out and finishes, no false failure."""
    import threading

    node = private_kwok
    ns = node_cluster.namespace("nr-brief")

    def docs(greeting: str) -> list[dict]:
        return on_node(app("web", node_image, env={"GREETING": greeting},
                           extra=[regcred(node_env)]), node)

    rollout(node_cluster.ctx("web"), docs("v1"), app="web", namespace=ns, timeout=60)
    node.pause()
    try:
        _node_ready(node_cluster, node, False)
        result: dict = {}

        def update() -> None:
            try:
                result["ok"] = rollout(node_cluster.ctx("web"), docs("v2"), app="web", namespace=ns,
                                       timeout=120)
            except Exception as exc:  # reported below
                result["error"] = exc

        thread = threading.Thread(target=update)
        thread.start()

        def tainted() -> bool:  # the node controller has seen the node NotReady
            taints = node_cluster.json("get", "node", node)["spec"].get("taints") or []
            return any(t["key"] == "node.kubernetes.io/not-ready" for t in taints)

        def new_pod_waits() -> bool:  # ... and the new pod cannot be scheduled meanwhile
            return any(c.get("reason") == "Unschedulable" for p in pods_of(node_cluster, ns, "web")
                       for c in p["status"].get("conditions", []))

        wait_until(tainted, 60, "the node controller to taint the NotReady node")
        wait_until(new_pod_waits, 60, "the new pod to wait for a schedulable node")
        assert thread.is_alive(), result  # still waiting, not failed
        _node_ready(node_cluster, node, True)  # the kubelet's runtime is back
    finally:
        node.resume()
    thread.join(150)
    assert "error" not in result, result.get("error")
    assert result["ok"].changed
    [pod] = pods_of(node_cluster, ns, "web")
    assert {"name": "GREETING", "value": "v2"} in pod["spec"]["containers"][0]["env"]
    assert pod["spec"]["nodeName"] == node


def test_a_node_not_ready_past_the_deadline_fails_naming_the_node(
        node_cluster, node_env, node_image, private_kwok):
    """The same node stays NotReady past the rollout's deadline: a failure whose evidence
    names the node the pod is bound to."""
    import threading

    node = private_kwok
    ns = node_cluster.namespace("nr-long")
    docs = on_node(app("web", node_image, extra=[regcred(node_env)]), node)
    node.pause()  # pods get bound to the node but nothing runs them
    failed: dict = {}

    def first() -> None:
        try:
            rollout(node_cluster.ctx("web"), docs, app="web", namespace=ns, timeout=25,
                    rollback_on_failure=False)
        except StepFailed as exc:
            failed["error"] = exc

    thread = threading.Thread(target=first)
    try:
        thread.start()
        wait_until(lambda: any(p["spec"].get("nodeName") for p in pods_of(node_cluster, ns, "web")),
                   60, "the pod to be bound to the node")
        _node_ready(node_cluster, node, False)
        thread.join(120)
    finally:
        node.resume()
    error = failed["error"]
    text = error.one_line() + "\n" + "\n".join(error.evidence)
    assert "ReadinessTimeout" in text, text
    assert f"on node {node}" in text, text
