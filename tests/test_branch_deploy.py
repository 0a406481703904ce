"""Seed 002 end to end (jobs/branch_deploy.py): a commit on branch sandbox deploys to sandbox,
main deploys to staging (blue/green, awaiting promotion), the release managers' swap job
(`pipeline swap --env`, the one entry release/swap and GoCD's swap-live call) swaps staging and
live; a refused swap exits 2 and changes nothing. Real git, registry and control plane."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelinelib.errors import EXIT_AWAITING_PROMOTION
from tests.helpers.cli import run_pipeline
from tests.helpers.envstate import ci_env, state_repo
from tests.helpers.git import git
from tests.helpers.kube import Kubectl, deployer_env
from tests.helpers.paths import ROOT
from tests.helpers.registry import push_image

JOB = ROOT / "jobs" / "branch_deploy.py"
COLOR = "pipelinelib.dev/color"


@pytest.fixture
def seed002(tmp_path: Path, registry_env, kube_env):
    _clone, origin, prefix = state_repo(tmp_path)
    kubectl = Kubectl(kube_env)
    for env in ("sandbox", "staging"):
        ns = f"{prefix}-uro-{env}"
        kubectl("create", "namespace", ns)
        kubectl("-n", ns, "create", "rolebinding", "pipelinelib-deployer",
                "--clusterrole=pipelinelib-deployer",
                "--serviceaccount=pipelinelib-system:pipelinelib-deployer")
        kubectl("-n", ns, "create", "secret", "generic", "uro-db",
                "--from-literal=url=postgres://uro:s3cret-planted@db/uro")
    yield {"origin": origin, "prefix": prefix, "registry": registry_env["PIPELINELIB_REGISTRY"],
           "kubectl": kubectl, "kube_env": kube_env}
    for env in ("sandbox", "staging"):
        kubectl("delete", "namespace", f"{prefix}-uro-{env}", "--wait=false", check=False)


def build(world, branch: str, n: int) -> str:
    """A build of uro on ``branch`` pushed to the registry; its pinned reference."""
    repo = f"{world['prefix']}/uro"
    digest = push_image(world["registry"], repo, f"{branch}-{n}", str(n) * 40, f"0.{n}.0")
    return f"{world['registry']}/{repo}@{digest}"


def job(world, user: str, *args: str, provider: str = "gocd"):
    env = {**ci_env(user, provider), **deployer_env(world["kube_env"]),
           "PIPELINE_LOG_FORMAT": "json"}  # deploys as the least-privilege deployer
    return subprocess.run([sys.executable, str(JOB), "--app", "uro", "--repo",
                           str(world["origin"]), *args], env=env, capture_output=True,
                          text=True, check=False)


def swap(world, user: str, *args: str):
    """The release swap job as Jenkins runs it: `pipeline swap --env`, the env-state repo
    from PIPELINE_ENV_REPO, the identity from the build cause."""
    env = {**ci_env(user, "jenkins"), **deployer_env(world["kube_env"]),
           "PIPELINE_ENV_REPO": str(world["origin"])}
    return run_pipeline("swap", "--app", "uro", "--env", "staging", *args, env=env)


def deployed(world, env: str, name: str) -> str:
    d = world["kubectl"].json("-n", f"{world['prefix']}-uro-{env}", "get", "deploy", name)
    return d["spec"]["template"]["spec"]["containers"][0]["image"]


def live_color(world) -> str:
    svc = world["kubectl"].json("-n", f"{world['prefix']}-uro-staging", "get", "svc", "uro")
    return svc["spec"]["selector"][COLOR]


def spec_digest(world, env: str) -> str:
    text = git(world["origin"], "show", f"main:environments/{env}.yaml")
    return yaml.safe_load(text)["apps"]["uro"]["image"]["digest"]


def test_seed_002_sandbox_staging_and_the_manual_swap_of_staging_and_live(seed002):
    world = seed002
    sandbox = build(world, "sandbox", 1)
    out = job(world, "changes", "--branch", "sandbox", "--image", sandbox)
    assert out.returncode == 0, out.stderr[-3000:]
    assert deployed(world, "sandbox", "uro") == sandbox
    assert spec_digest(world, "sandbox") == sandbox.split("@")[1]
    assert "s3cret-planted" not in out.stderr

    first = build(world, "main", 2)
    out = job(world, "changes", "--branch", "main", "--image", first)
    assert out.returncode == 0, out.stderr[-3000:]  # the first deploy goes live (blue)
    assert live_color(world) == "blue" and deployed(world, "staging", "uro-blue") == first

    second = build(world, "main", 3)
    out = job(world, "changes", "--branch", "main", "--image", second)
    assert out.returncode == EXIT_AWAITING_PROMOTION, out.stderr[-3000:]
    assert deployed(world, "staging", "uro-green") == second
    assert live_color(world) == "blue", "staging (green) awaits the manual swap"
    assert deployed(world, "sandbox", "uro") == sandbox, "main does not touch sandbox"

    ns = f"{world['prefix']}-uro-staging"
    before = world["kubectl"].versions(ns)
    refused = swap(world, "dev-dana")
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "dev-dana may not swap uro in staging" in refused.stderr
    assert '"result": "refused"' in refused.stderr
    assert world["kubectl"].versions(ns) == before and live_color(world) == "blue"

    swapped = swap(world, "rm-alice")
    assert swapped.returncode == 0, swapped.stderr[-3000:]
    assert live_color(world) == "green"
    assert deployed(world, "staging", "uro-blue") == first, "the old colour stays"
    back = swap(world, "rm-alice", "--to", "blue")
    assert back.returncode == 0 and live_color(world) == "blue", back.stderr[-3000:]
