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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers.cli import run_pipeline
from tests.helpers.git import copy_hello, init_repo
from tests.helpers.kube import Cluster
from tests.helpers.paths import ROOT
from tests.helpers.wait import wait_until

NODE_LABEL = "pipelinelib.dev/real-node"
PORT = 18080
UNKNOWN_DIGEST = "sha256:" + "0" * 63 + "1"


def build_hello(tmp: Path, env: dict[str, str], registry: str, user: str, password: str,
                version: str = "1.0.0") -> str:
    """`pipeline build` of examples/hello pushed to ``registry``; returns REPO@sha256:…"""
    repo = tmp / "repo"
    copy_hello(repo / "hello", PROJECT_NAMESPACE=f"realnode{int(time.time())}",
               APP_VERSION=version)
    init_repo(repo, "hello")
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


def delete_image(image: str, user: str | None = None, password: str | None = None) -> None:
    """Delete REGISTRY/REPO@sha256:… from its registry (the testbed's allow deletes)."""
    name, digest = image.split("@", 1)
    registry, repo = name.split("/", 1)
    requests.delete(f"http://{registry}/v2/{repo}/manifests/{digest}", timeout=10,
                    auth=(user, password or "") if user else None)


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
        extra: list[dict[str, Any]] | None = None, kwok_behavior: str | None = None,
        min_ready_seconds: int = 0) -> list[dict[str, Any]]:
    """A Deployment whose pods tolerate the real node's taint and land there — or, with
    ``kwok_behavior``, the same Deployment on the kwok nodes, staged to behave so.

    A container without a readiness probe that exits at once is Ready for the moment it
    runs, and its Deployment is briefly available (kubectl's rollout status succeeds then
    too): ``min_ready_seconds`` is how a manifest asks for pods that stay up."""
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
    annotations = {}
    if kwok_behavior:
        pod["nodeSelector"] = {"type": "kwok"}
        del pod["tolerations"]
        annotations = {"pipelinelib.dev/behavior": kwok_behavior}
    if pull_secret_name:
        pod["imagePullSecrets"] = [{"name": pull_secret_name}]
    if volumes:
        pod["volumes"] = [{"name": "state", "emptyDir": {}}]
        container["volumeMounts"] = [{"name": "state", "mountPath": "/state"}]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "progressDeadlineSeconds": progress_deadline,
                 "minReadySeconds": min_ready_seconds,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
                              "spec": pod}}}
    return [deployment, *(extra or [])]


def pods_of(cluster: Any, namespace: str, app_name: str) -> list[dict[str, Any]]:
    return cluster.json("-n", namespace, "get", "pods", "-l", f"app={app_name}")["items"]


def http_get(ip: str, path: str = "/", timeout: float = 5) -> str:
    """GET a pod address on the node's bridge (never anything off this host)."""
    assert ip.startswith("10.89.0."), f"{ip} is not a pod address of the real node"
    r = requests.get(f"http://{ip}:{PORT}{path}", timeout=timeout)
    r.raise_for_status()
    return r.text


# --- an image that holds pipelinelib (for `pipeline migrate` as a Job in a real pod) --------
# Nothing can be pulled here, so the image is assembled from this machine's own Python: the
# interpreter, its standard library, the packages `pipeline migrate` imports (found by
# running it) and the shared libraries they link, FROM scratch.
MIGRATE_PACKAGES = ("certifi", "colorama", "pglast", "psycopg", "psycopg_binary", "structlog",
                    "tenacity", "typing_extensions")
STDLIB_SKIP = {"site-packages", "test", "tests", "idlelib", "tkinter", "turtledemo",
               "ensurepip", "lib2to3", "__pycache__"}


def _ldd(path: Path) -> set[str]:
    import subprocess

    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False).stdout
    return {part for line in out.splitlines() for part in line.split()
            if part.startswith("/") and Path(part).exists()}


def pipelinelib_image(tmp: Path, docker_host: str, registry: str, root: Path,
                      migrations: dict[str, Path]) -> str:
    """Build and push (to ``registry``) an image holding pipelinelib and ``migrations``
    (target dir -> source dir); returns REPO@sha256:…"""
    import hashlib
    import sys

    import docker
    import requests

    prefix = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    ctx = tmp / "ctx"
    rootfs = ctx / "rootfs"

    def put(src: Path, dst: Path | None = None) -> None:
        target = rootfs / str(dst or src).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, symlinks=False, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src.resolve(), target)

    put(prefix / "bin" / version, prefix / "bin" / "python3")
    squawk = Path(sys.executable).parent / "squawk"  # migrate lints with it (squawk-cli)
    put(squawk, prefix / "bin" / "squawk")
    for lib in (prefix / "lib").glob("libpython*.so*"):
        put(lib)
    stdlib = prefix / "lib" / version
    for entry in stdlib.iterdir():
        if entry.name not in STDLIB_SKIP and not entry.name.startswith("config-"):
            put(entry)
    site = stdlib / "site-packages"
    for name in MIGRATE_PACKAGES:
        for entry in [site / name, site / f"{name}.py", site / f"{name}.libs",
                      *site.glob(f"{name}-*.dist-info")]:
            if entry.exists():
                put(entry)
    libs: set[str] = set()
    for so in [rootfs / str(prefix / "bin" / "python3").lstrip("/"),
               rootfs / str(prefix / "bin" / "squawk").lstrip("/"), *rootfs.rglob("*.so*")]:
        libs |= _ldd(so)
    for lib_path in libs:
        if not (rootfs / lib_path.lstrip("/")).exists():
            put(Path(lib_path), Path(lib_path))
    put(root / "pipelinelib", Path("/app/pipelinelib"))
    for target, source in migrations.items():
        put(source, Path(target))
    (rootfs / "tmp").mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(
        "FROM scratch\nCOPY rootfs/ /\n"
        f"ENV PATH={prefix}/bin PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8\n"
        'LABEL org.opencontainers.image.title="pipelinelib (testbed: this machine\'s Python)"\n'
        'ENTRYPOINT ["python3", "-m", "pipelinelib"]\n')
    digest_of_tree = hashlib.sha256()
    for path in sorted(rootfs.rglob("*")):
        if path.is_file():
            digest_of_tree.update(str(path.relative_to(rootfs)).encode())
            digest_of_tree.update(hashlib.sha256(path.read_bytes()).digest())
    tag = digest_of_tree.hexdigest()[:12]
    repo = f"{registry}/realnode/pipelinelib"
    head = requests.head(f"http://{registry}/v2/realnode/pipelinelib/manifests/{tag}", timeout=5,
                         headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    if head.status_code != 200:  # same content as a pushed one: reuse it
        client = docker.DockerClient(base_url=docker_host)
        client.images.build(path=str(ctx), tag=f"{repo}:{tag}", network_mode="none", rm=True)
        client.images.push(repo, tag)
        client.images.remove(f"{repo}:{tag}")
        head = requests.head(f"http://{registry}/v2/realnode/pipelinelib/manifests/{tag}",
                             timeout=5, headers={"Accept": "application/vnd.docker.distribution"
                                                           ".manifest.v2+json"})
    return f"{repo}@{head.headers['Docker-Content-Digest']}"


# Fixtures the real-node modules use (registered in tests/conftest.py); ``node_env`` (the
# control plane, registries and the real node) comes from pipelinelib.testing.plugin.
@pytest.fixture(scope="module")
def node_image(node_env: dict[str, str],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The hello app built and pushed by `pipeline build` to the htpasswd registry."""
    auth = (node_env["PIPELINELIB_AUTH_REGISTRY_USER"],
            node_env["PIPELINELIB_AUTH_REGISTRY_PASSWORD"])
    ref = build_hello(tmp_path_factory.mktemp("build"), node_env,
                      node_env["PIPELINELIB_AUTH_REGISTRY"], *auth)
    yield ref
    delete_image(ref, *auth)


@pytest.fixture
def node_cluster(node_env: dict[str, str]) -> Iterator[Cluster]:
    """The cluster (admin kubectl, deployer clients) with the real node; namespaces it
    makes are deleted afterwards."""
    c = Cluster(node_env)
    yield c
    c.cleanup()


def regcred(env: dict[str, str], password: str | None = None) -> dict[str, Any]:
    """The pull secret for the htpasswd registry (``password`` overrides the right one)."""
    return pull_secret("regcred", env["PIPELINELIB_AUTH_REGISTRY"],
                       env["PIPELINELIB_AUTH_REGISTRY_USER"],
                       password or env["PIPELINELIB_AUTH_REGISTRY_PASSWORD"])


STAGES = ROOT / "testbed" / "kubernetes" / "stages"


class PrivateNode(str):
    """A private kwok node's name; ``pause()``/``resume()`` stop and continue its kwok (as a
    stopped kubelet: nothing on the node changes meanwhile)."""

    proc: Any

    def pause(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture(scope="module")
def private_kwok(node_env: dict[str, str]) -> Iterator[str]:
    """A kwok of its own with THIS tree's stages (testbed/kubernetes/stages) managing one
    node of its own, tainted so only pods that ask for it land there: the shared testbed's
    kwok loaded its stages when it started, so a stage added since is staged here. Yields
    the node's name; the node and the process go afterwards."""
    import os
    import socket
    import subprocess
    import uuid

    env = node_env
    state = Path(env.get("PIPELINELIB_TESTBED", "/tmp/pipelinelib-testbed")) / "kubernetes"
    kubectl = str(Path(env["PIPELINELIB_KUBE_BIN"]) / "kubectl")
    tag = uuid.uuid4().hex[:8]
    node = f"kwok-private-{tag}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stages = [a for f in sorted(STAGES.glob("*.yaml")) for a in ("--config", str(f))]
    log = (state / "logs").joinpath(f"kwok-private-{tag}.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(env["PIPELINELIB_KUBE_BIN"]) / "kwok"), "--kubeconfig",
         str(state / "kwok.kubeconfig"), "--manage-all-nodes=false",
         "--manage-nodes-with-annotation-selector", f"kwok.x-k8s.io/node=private-{tag}",
         "--cidr", "10.246.0.0/16", "--node-ip", "127.0.0.1", "--node-port", str(port),
         "--server-address", f"127.0.0.1:{port}",
         "--tls-cert-file", str(state / "pki" / "kwok-serving.crt"),
         "--tls-private-key-file", str(state / "pki" / "kwok-serving.key"),
         "--node-lease-duration-seconds", "40", *stages],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
    node_yaml = json.dumps({
        "apiVersion": "v1", "kind": "Node", "metadata": {
            "name": node, "annotations": {"kwok.x-k8s.io/node": f"private-{tag}",
                                          "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux",
                       "type": "kwok-private"}},
        "spec": {"taints": [{"key": PRIVATE_TAINT, "value": tag, "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "250"},
                   "capacity": {"cpu": "32", "memory": "256Gi", "pods": "250"}}})
    run = {**os.environ, **env}
    try:
        subprocess.run([kubectl, "apply", "-f", "-"], input=node_yaml, text=True, env=run,
                       check=True, capture_output=True)
        subprocess.run([kubectl, "wait", "--for=condition=Ready", f"node/{node}",
                        "--timeout=90s"], env=run, check=True, capture_output=True)
        def only_our_taint() -> bool:  # the node controller lifted its not-ready taint
            return subprocess.run([kubectl, "get", "node", node, "-o",
                                   "jsonpath={.spec.taints[*].key}"], env=run, check=True,
                                  capture_output=True, text=True).stdout.split() == [PRIVATE_TAINT]

        wait_until(only_our_taint, 90, "the node controller to lift the not-ready taint")
        named = PrivateNode(node)
        named.proc = proc
        yield named
    finally:
        subprocess.run([kubectl, "delete", "node", node, "--ignore-not-found", "--wait=false"],
                       env=run, check=False, capture_output=True)
        proc.send_signal(__import__("signal").SIGCONT)
        proc.terminate()
        proc.wait(10)
        log.close()


PRIVATE_TAINT = "pipelinelib.dev/private-kwok"


def on_node(docs: list[dict[str, Any]], node: str) -> list[dict[str, Any]]:
    """``docs`` with every pod template pinned to ``node`` (a private kwok node)."""
    node = str(node)  # a plain name, not the PrivateNode
    for doc in docs:
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec")
        if pod is not None:
            pod["nodeSelector"] = {"kubernetes.io/hostname": node}
            pod["tolerations"] = [{"key": PRIVATE_TAINT, "operator": "Exists",
                                   "effect": "NoSchedule"}]
    return docs
