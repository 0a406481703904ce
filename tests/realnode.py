"""Helpers for tests on the testbed's real node (kubelet + containerd): the image `pipeline
build` made, manifests whose pods land on the real node, and HTTP to pod addresses.

Pod addresses live in the bridge network testbed/node/up made on this host (10.89.0.0/24);
test traffic goes only there and to loopback.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path
from typing import Any

import requests

from tests.conftest import EXAMPLE, git, run_pipeline

NODE_LABEL = "pipelinelib.dev/real-node"
PORT = 18080


def build_hello(tmp: Path, env: dict[str, str], registry: str, user: str, password: str,
                version: str = "1.0.0") -> str:
    """`pipeline build` of examples/hello pushed to ``registry``; returns REPO@sha256:…"""
    repo = tmp / "repo"
    shutil.copytree(EXAMPLE, repo / "hello", ignore=shutil.ignore_patterns("build"))
    env_file = repo / "hello" / "release.env"
    text = env_file.read_text().replace("PROJECT_NAMESPACE=hello-example-org",
                                        f"PROJECT_NAMESPACE=realnode{int(time.time())}")
    env_file.write_text(text.replace("APP_VERSION=1.0.0", f"APP_VERSION={version}"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "hello")
    report = tmp / "build-report"
    out = run_pipeline("--report-dir", str(report), "build", "--app-dir", str(repo / "hello"),
                       "--registry", registry,
                       env={**env, "PIPELINE_REGISTRY_USER": user,
                            "PIPELINE_REGISTRY_PASSWORD": password})
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((report / "summary.json").read_text())
    image = next(s["outputs"]["image"] for s in summary["steps"]
                 if "@" in str((s.get("outputs") or {}).get("image") or ""))
    assert image.startswith(f"{registry}/") and "@sha256:" in image
    return image


def pull_secret(name: str, registry: str, user: str, password: str) -> dict[str, Any]:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = {"auths": {registry: {"username": user, "password": password, "auth": auth}}}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": json.dumps(config)}}


def serve(text_var: str = "GREETING") -> list[str]:
    """A command that serves ``$GREETING`` at / on every address of the pod (busybox httpd)."""
    return ["/bin/sh", "-c", f'mkdir -p /tmp/w && echo "${text_var}" > /tmp/w/index.html && '
            f"echo serving on :{PORT} && exec httpd -f -v -p {PORT} -h /tmp/w"]


def app(name: str, image: str, *, command: list[str] | None = None,
        pull_secret_name: str | None = "regcred", replicas: int = 1,  # noqa: S107
        env: dict[str, str] | None = None, env_from_key: tuple[str, str] | None = None,
        readiness: dict[str, Any] | None = None, liveness: dict[str, Any] | None = None,
        memory_limit: str | None = None, volumes: bool = False, progress_deadline: int = 600,
        extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """A Deployment (+ ConfigMap) whose pods tolerate the real node's taint and land there."""
    container: dict[str, Any] = {
        "name": "web", "image": image, "command": command or serve(),
        "env": [{"name": k, "value": v} for k, v in (env or {"GREETING": "hello"}).items()],
        "ports": [{"containerPort": PORT}],
        "readinessProbe": readiness if readiness is not None else {
            "httpGet": {"path": "/", "port": PORT}, "periodSeconds": 1},
    }
    if readiness == {}:
        del container["readinessProbe"]
    if liveness:
        container["livenessProbe"] = liveness
    if memory_limit:
        container["resources"] = {"limits": {"memory": memory_limit},
                                  "requests": {"memory": memory_limit}}
    if env_from_key:
        container["env"].append({"name": "FROM_CONFIG", "valueFrom": {"configMapKeyRef": {
            "name": env_from_key[0], "key": env_from_key[1]}}})
    pod: dict[str, Any] = {
        "containers": [container], "terminationGracePeriodSeconds": 1,
        "nodeSelector": {NODE_LABEL: "true"},
        "tolerations": [{"key": NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
    }
    if pull_secret_name:
        pod["imagePullSecrets"] = [{"name": pull_secret_name}]
    if volumes:
        pod["volumes"] = [{"name": "state", "emptyDir": {}}]
        container["volumeMounts"] = [{"name": "state", "mountPath": "/state"}]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "progressDeadlineSeconds": progress_deadline,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}}
    return [deployment, *(extra or [])]


def pods_of(cluster: Any, namespace: str, app_name: str) -> list[dict[str, Any]]:
    return cluster.json("-n", namespace, "get", "pods", "-l", f"app={app_name}")["items"]


def http_get(ip: str, path: str = "/", timeout: float = 5) -> str:
    """GET a pod address on the node's bridge (never anything off this host)."""
    assert ip.startswith("10.89.0."), f"{ip} is not a pod address of the real node"
    r = requests.get(f"http://{ip}:{PORT}{path}", timeout=timeout)
    r.raise_for_status()
    return r.text
