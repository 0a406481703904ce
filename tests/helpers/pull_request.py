"""Preprod through the master -> prod pull request (seed 004): an env-state repository on the
real Gitea and a fresh namespace the least-privilege deployer may write. The ``pr_world``
fixture is one such world, deleted afterwards."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import run_pipeline
from tests.helpers.envstate import ci_env
from tests.helpers.git import git
from tests.helpers.gitea import GiteaWorld
from tests.helpers.kube import Kubectl, deployer_env
from tests.helpers.paths import ROOT

# as examples/env-state/policy.yaml has it: preprod's four eyes are the pull request's reviews
PR_POLICY = """\
groups:
  release-managers: [alice, bob]
environments:
  preprod:
    promote: ["group:release-managers"]
    approve: ["group:release-managers"]
"""


def spec_digest(tag: str) -> str:
    """The made-up digest ``spec`` pins for ``tag``."""
    return "sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, tag).hex * 2


def spec(namespace: str, tag: str, replicas: int = 1) -> str:
    """preprod (promoted via the prod branch) with one app ``api`` at ``tag``."""
    digest = spec_digest(tag)
    return (f"apiVersion: pipelinelib.dev/v1\nkind: Environment\nname: preprod\n"
            f"namespaces: [{namespace}]\npromotion:\n  via_branch: prod\napps:\n"
            f"  api:\n    image: {{repository: 127.0.0.1:5001/t/api, tag: \"{tag}\", "
            f"digest: \"{digest}\"}}\n    replicas: {replicas}\n    priority: 0\n"
            f"    config: {{LOG_LEVEL: info}}\n    ports: [{{name: http, port: 8080}}]\n"
            f"    dns: [api.preprod.example]\n    timeout: 60\n")


class PullRequestWorld(GiteaWorld):
    """A ``GiteaWorld`` holding env-state, with the namespace preprod deploys into."""

    namespace: str
    kubectl: Kubectl
    kube_env: dict[str, str]


def make_pr_world(gitea_env: dict[str, str], kube_env: dict[str, str], tmp_path: Path,
                  prefix: str = "envstate") -> PullRequestWorld:
    """An env-state repository on Gitea (master = prod = preprod 1.0), the users as
    collaborators, and a fresh namespace the least-privilege deployer may write."""
    kubectl = Kubectl(kube_env)
    namespace = f"pr-{uuid.uuid4().hex[:8]}"
    subprocess.run([str(ROOT / "testbed/kubernetes/grant-deployer"), namespace],
                   env={**os.environ, **kube_env}, check=True, capture_output=True)
    w = PullRequestWorld.create(gitea_env, tmp_path, prefix)
    for user in gitea_env["PIPELINELIB_GITEA_USERS"].split(","):
        w.client.add_collaborator(w.owner, w.name, user, "write")
    (w.clone / "environments").mkdir()
    (w.clone / "policy.yaml").write_text(PR_POLICY)
    (w.clone / "environments" / "preprod.yaml").write_text(spec(namespace, "1.0"))
    git(w.clone, "add", "-A")
    git(w.clone, "commit", "-q", "-m", "preprod 1.0")
    git(w.clone, "push", "-q", "origin", "master", "master:prod")
    w.wait_pushed()
    w.namespace, w.kubectl = namespace, kubectl
    w.kube_env = deployer_env(kube_env)
    return w


def drop_world(w: PullRequestWorld) -> None:
    w.delete()
    w.kubectl("delete", "namespace", w.namespace, "--wait=false", check=False)


@pytest.fixture
def pr_world(gitea_env: dict[str, str], kube_env: dict[str, str],
             tmp_path: Path) -> Iterator[PullRequestWorld]:
    w = make_pr_world(gitea_env, kube_env, tmp_path)
    yield w
    drop_world(w)


def change_master(w: PullRequestWorld, tag: str, replicas: int = 1) -> None:
    """A developer moves preprod on master to ``tag``."""
    git(w.clone, "pull", "-q", "--rebase", "origin", "master")
    (w.clone / "environments" / "preprod.yaml").write_text(spec(w.namespace, tag, replicas))
    git(w.clone, "commit", "-q", "-am", f"preprod {tag}")
    git(w.clone, "push", "-q", "origin", "master")


def promote(w: PullRequestWorld, user: str) -> subprocess.CompletedProcess[str]:
    """`pipeline promote --to preprod --via-pull-request` as ``user``'s CI run."""
    env = {**w.kube_env, **ci_env(user), **w.ci_env()}
    return run_pipeline("promote", "--to", "preprod", "--via-pull-request", "--repo", w.url,
                        "--branch", "master", env=env)


def open_pr(w: PullRequestWorld) -> Any:
    return w.client.find_pull_request(w.owner, w.name, "master", "prod")


def deployed_image(w: PullRequestWorld) -> str | None:
    out = w.kubectl("-n", w.namespace, "get", "deployment", "api", "-o",
                    "jsonpath={.spec.template.spec.containers[0].image}", check=False)
    return out or None
