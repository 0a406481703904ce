"""The testbed's control plane for tests: one kubectl wrapper (admin: set-up and checks
only), the typed cluster world (deployer clients and CLI environment for the code under
test), and the deployer's RBAC."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelinelib.adapters.kube import KubeClient
from pipelinelib.context import CIInfo, Context
from pipelinelib.secrets import Secrets
from tests.helpers.paths import RBAC_FILE
from tests.helpers.wait import wait_until

DEPLOYER_SA = "pipelinelib-system:pipelinelib-deployer"
MANAGED = "app.kubernetes.io/managed-by=pipelinelib"
ALL_KINDS = "deployments,services,configmaps,secrets,replicasets,jobs,cronjobs,leases"
MANAGED_KINDS = "deployments,services,configmaps,ingresses"


class Kubectl:
    """Runs the testbed's kubectl against the admin kubeconfig; remembers the namespaces it
    made so ``cleanup`` deletes them (the kwok nodes fill up otherwise)."""

    def __init__(self, kube_env: dict[str, str]):
        self.env = {**os.environ, **kube_env}
        self.kube_env = kube_env
        self.binary = str(Path(kube_env["PIPELINELIB_KUBE_BIN"]) / "kubectl")
        self.namespaces: list[str] = []

    def __call__(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        out = subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True,
                             input=stdin, check=False)
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr}")
        return out.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))

    def namespace(self, prefix: str = "t", bind: bool = True) -> str:
        """A fresh namespace where (with ``bind``) the least-privilege deployer may deploy."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self("create", "namespace", name)
        if bind:
            self("-n", name, "create", "rolebinding", "pipelinelib-deployer",
                 "--clusterrole=pipelinelib-deployer", f"--serviceaccount={DEPLOYER_SA}")
            # the authorizer learns of a new binding from its watch: under load the
            # deployer's first write right after it was refused (403) — wait until allowed
            user = "system:serviceaccount:" + DEPLOYER_SA
            wait_until(lambda: self("auth", "can-i", "create", "deployments.apps", "-n", name,
                                    f"--as={user}", check=False).strip() == "yes",
                       120, f"the deployer allowed in {name}", interval=0.2)
        self.namespaces.append(name)
        return name

    def cleanup(self) -> None:
        """Delete every namespace ``namespace()`` made."""
        for name in self.namespaces:
            self("delete", "namespace", name, "--wait=false", check=False)
        self.namespaces.clear()

    def versions(self, namespace: str, kinds: str = MANAGED_KINDS,
                 selector: str | None = MANAGED) -> dict[str, str]:
        """resourceVersion of every object of ``kinds`` in ``namespace`` (zero-write checks);
        by default the ones pipelinelib manages."""
        args = ["-n", namespace, "get", kinds] + (["-l", selector] if selector else [])
        items = self.json(*args)["items"]
        return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"]
                for i in items}


def deployer_env(kube_env: dict[str, str]) -> dict[str, str]:
    """``kube_env`` with KUBECONFIG the least-privilege deployer's (for the code under test)."""
    return {**kube_env, "KUBECONFIG": kube_env["PIPELINELIB_DEPLOYER_KUBECONFIG"]}


class Cluster:
    """The testbed cluster as admin (``kubectl``) plus deployer clients for the code under
    test (``deployer()``, ``ctx()``, ``cli_env()``)."""

    def __init__(self, kube_env: dict[str, str]):
        self.kubectl = Kubectl(kube_env)
        self.env = self.kubectl.env
        self.kube_env = kube_env
        self.kubectl_bin = self.kubectl.binary
        self.deployer_kubeconfig = kube_env["PIPELINELIB_DEPLOYER_KUBECONFIG"]

    @property
    def namespaces(self) -> list[str]:
        return self.kubectl.namespaces

    def json(self, *args: str) -> Any:
        return self.kubectl.json(*args)

    def namespace(self, prefix: str = "ro", bind: bool = True) -> str:
        """A fresh namespace where the deployer service account may deploy."""
        return self.kubectl.namespace(prefix, bind)

    def cleanup(self) -> None:
        self.kubectl.cleanup()

    def deployer(self) -> KubeClient:
        return KubeClient.from_kubeconfig(self.deployer_kubeconfig)

    def ctx(self, app: str = "web", *, dry_run: bool = False, user: str = "rm-alice",
            build_url: str = "https://ci.example/job/web/7/",
            revision: str = "0123456789abcdef0123456789abcdef01234567") -> Context:
        return Context(app=app, revision=revision, dry_run=dry_run, secrets=Secrets(),
                       ci=CIInfo(provider="jenkins", user=user, build_url=build_url),
                       adapters={"kube": self.deployer()})

    def cli_env(self) -> dict[str, str]:
        return {**deployer_env(self.kube_env),
                "BUILD_URL": "https://ci.example/job/web/8/", "JOB_NAME": "web",
                "BUILD_USER_ID": "rm-bob", "JENKINS_URL": "https://ci.example/"}

    def versions(self, namespace: str) -> dict[str, str]:
        """resourceVersion of every object in the namespace (zero-write checks)."""
        return self.kubectl.versions(namespace, ALL_KINDS, selector=None)


def grant_deployer_rbac(kubectl: Callable[..., str] | Cluster) -> None:
    """The repository's deployer ClusterRole, applied as admin (set-up only; idempotent)."""
    run = kubectl.kubectl if isinstance(kubectl, Cluster) else kubectl
    run("apply", "-f", str(RBAC_FILE))


UNDER_TEST = "-under-test"


def rbac_under_test(kubectl: Callable[..., str]) -> Iterator[Callable[[str], None]]:
    """The deployer's ClusterRoles exactly as this tree's rbac/deployer.yaml writes them, under
    their own names (the shared testbed's roles may be re-applied from another tree at any
    time), bound to the deployer; yields ``bind(namespace)``. Removed afterwards."""
    import yaml

    docs = [d for d in yaml.safe_load_all(RBAC_FILE.read_text()) if d]
    made: list[tuple[str, str]] = []
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            continue
        doc["metadata"]["name"] += UNDER_TEST
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] += UNDER_TEST
        kubectl("apply", "-f", "-", stdin=json.dumps(doc))
        made.append((doc["kind"].lower(), doc["metadata"]["name"]))

    def bind(namespace: str) -> None:
        kubectl("-n", namespace, "create", "rolebinding", "pipelinelib-deployer" + UNDER_TEST,
                "--clusterrole=pipelinelib-deployer" + UNDER_TEST,
                f"--serviceaccount={DEPLOYER_SA}")

    yield bind
    for kind, name in made:
        kubectl("delete", kind, name, "--ignore-not-found")


@pytest.fixture
def cluster(kube_env: dict[str, str]) -> Iterator[Cluster]:
    """The testbed cluster (admin kubectl, deployer clients); the namespaces the test makes
    are deleted afterwards."""
    c = Cluster(kube_env)
    yield c
    c.cleanup()


@pytest.fixture(scope="module")
def kubectl(kube_env: dict[str, str]) -> Iterator[Kubectl]:
    """The admin kubectl; the namespaces the module's tests make are deleted after them."""
    k = Kubectl(kube_env)
    yield k
    k.cleanup()

