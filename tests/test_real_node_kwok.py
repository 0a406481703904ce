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
    pods_of,
    pull_secret,
    regcred,
)

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
    assert ready["status"] == "False" and ready.get("reason") == "ContainersNotReady"
    if case == "crash":
        cs = status["containerStatuses"][0]
        # the real kubelet is at 2 for 40 s (its back-off); kwok counts on every 3 s
        assert status["phase"] == "Running" and cs["restartCount"] >= 2
        assert cs["lastState"]["terminated"]["reason"] == "Error"
        assert cs["lastState"]["terminated"]["exitCode"] == 1
