"""Where the time goes between the last pod becoming Ready and `pipeline rollout` exiting.

An image update of one app on the real node (kubelet + containerd; busybox httpd with an
httpGet readiness probe every second), timed by the apiserver itself: its audit log
($PIPELINELIB_KUBE_AUDIT_LOG, every write with microsecond timestamps) gives when the kubelet
wrote the new pod's last status before the scale-down (its Ready), when the deployment
controller scaled the old ReplicaSet down, when the ReplicaSet controller deleted the old
pod, the Deployment's last status write, and our own last write (the Lease released); the
process exit is the wall clock when `pipeline` returned (same machine, same clock).

    python benchmarks/rollout_exit.py [--runs 3]

Needs the testbed's variables (node and kubernetes); runs as the least-privilege deployer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.rollout_vs_kubectl import kubectl, namespace  # noqa: E402
from tests.helpers.manifests import write  # noqa: E402
from tests.helpers.realnode import app, delete_image, pull_secret  # noqa: E402

DEPLOYER = "system:serviceaccount:pipelinelib-system:pipelinelib-deployer"
HOPS = ("kubelet: new pod Ready (its last status write before the scale-down)",
        "deployment controller: old ReplicaSet scaled to 0",
        "ReplicaSet controller: old pod deleted",
        "deployment controller: last Deployment status write",
        "pipelinelib: last write (deploy Lease released)",
        "pipelinelib: process exited")


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def audit_since(offset: int, ns: str) -> list[dict]:
    path = Path(os.environ["PIPELINELIB_KUBE_AUDIT_LOG"])
    with path.open("rb") as handle:
        handle.seek(offset)
        lines = handle.read().splitlines()
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if (event.get("objectRef") or {}).get("namespace") == ns and \
                event.get("stage") == "ResponseComplete":
            events.append(event)
    return events


def timeline(events: list[dict], old_rs: str, new_rs: str, exited: float) -> list[float]:
    def at(e: dict) -> float:
        return _ts(e["stageTimestamp"])

    def who(e: dict) -> str:
        return e["user"]["username"]

    def ref(e: dict) -> dict:
        return e["objectRef"]

    scale = min(at(e) for e in events if ref(e).get("resource") == "replicasets"
                and ref(e).get("name") == old_rs and "deployment-controller" in who(e)
                and e["verb"] in ("update", "patch") and not ref(e).get("subresource"))
    ready = max(at(e) for e in events if who(e).startswith("system:node:")
                and ref(e).get("resource") == "pods" and ref(e).get("subresource") == "status"
                and ref(e).get("name", "").startswith(new_rs) and at(e) <= scale)
    deleted = min(at(e) for e in events if e["verb"] == "delete"
                  and ref(e).get("resource") == "pods" and ref(e).get("name", "").startswith(old_rs)
                  and "replicaset-controller" in who(e))
    status = max(at(e) for e in events if ref(e).get("resource") == "deployments"
                 and ref(e).get("subresource") == "status" and at(e) <= exited)
    ours = max(at(e) for e in events if who(e) == DEPLOYER and at(e) <= exited)
    return [ready, scale, deleted, status, ours, exited]


def rs_names(ns: str) -> dict[str, str]:
    out = kubectl("-n", ns, "get", "replicasets", "-o", "json").stdout
    return {rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]:
            rs["metadata"]["name"] for rs in json.loads(out)["items"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    import docker
    import requests

    auth = os.environ["PIPELINELIB_AUTH_REGISTRY"]
    user, password = (os.environ["PIPELINELIB_AUTH_REGISTRY_USER"],
                      os.environ["PIPELINELIB_AUTH_REGISTRY_PASSWORD"])
    client = docker.DockerClient(base_url=os.environ["DOCKER_HOST"])
    repo = f"{auth}/bench/rollout-exit"
    client.images.get(os.environ["PIPELINELIB_BASE_IMAGE"]).tag(repo, "1")
    client.images.push(repo, "1", auth_config={"username": user, "password": password})
    head = requests.head(f"http://{auth}/v2/bench/rollout-exit/manifests/1",
                         auth=(user, password), timeout=10, headers={
                             "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    image = f"{repo}@{head.headers['Docker-Content-Digest']}"
    secret = pull_secret("regcred", auth, user, password)
    env = {**os.environ, "KUBECONFIG": os.environ["PIPELINELIB_DEPLOYER_KUBECONFIG"],
           "PIPELINE_LOG_FORMAT": "json"}
    rows: list[list[float]] = []
    created: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(args.runs):
                ns = namespace("rx")
                created.append(ns)
                for n in (1, 2):
                    path = write(Path(tmp) / f"v{n}.yaml", app("web", image, env={
                        "GREETING": f"v{n}"}, extra=[secret]))
                    offset = Path(os.environ["PIPELINELIB_KUBE_AUDIT_LOG"]).stat().st_size
                    out = subprocess.run([sys.executable, "-m", "pipelinelib", "rollout",
                                          str(path), "--app", "web", "-n", ns], env=env,
                                         capture_output=True, text=True, check=False)
                    exited = time.time()
                    if out.returncode != 0:
                        raise SystemExit(f"rollout v{n} failed: {out.stderr[-2000:]}")
                time.sleep(1)  # the audit log is written asynchronously (batch backend)
                names = rs_names(ns)
                row = timeline(audit_since(offset, ns), names["1"], names["2"], exited)
                rows.append(row)
                print(f"run {run + 1}: " + ", ".join(
                    f"+{t - row[0]:.2f}" for t in row[1:]) + " s after Ready")
    finally:
        for ns in created:
            kubectl("delete", "namespace", ns, "--wait=false", check=False)
        delete_image(image, user, password)
        client.images.remove(f"{repo}:1")
    print("image update on the real node, median seconds after the new pod became Ready "
          "(apiserver audit timestamps; exit: wall clock when `pipeline` returned):")
    for i, hop in enumerate(HOPS):
        print(f"  {statistics.median(r[i] - r[0] for r in rows):6.2f} s  {hop}")
    steps = [statistics.median(r[i] - r[i - 1] for r in rows) for i in range(1, len(HOPS))]
    print("  per hop: " + ", ".join(f"{HOPS[i + 1].split(':')[0]} +{s:.2f}"
                                    for i, s in enumerate(steps)))


if __name__ == "__main__":
    main()
