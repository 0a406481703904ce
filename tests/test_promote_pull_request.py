"""Preprod through the master -> prod pull request (seed 004) on a real git server (Gitea)
and the real control plane: the pull request lists the changes, its reviews are the
four-eyes and privilege rules, the merge is applied and the result reported back."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_pipeline
from tests.fixtures.envs.helpers import ci_env
from tests.fixtures.envs.kube import Kubectl
from tests.fixtures.gitea import GiteaWorld, git, gitea_env  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
# as examples/env-state/policy.yaml has it: preprod's four eyes are the pull request's reviews
POLICY = """\
groups:
  release-managers: [alice, bob]
environments:
  preprod:
    promote: ["group:release-managers"]
    approve: ["group:release-managers"]
"""


def spec(namespace: str, tag: str, replicas: int = 1) -> str:
    digest = "sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, tag).hex * 2
    return (f"apiVersion: pipelinelib.dev/v1\nkind: Environment\nname: preprod\n"
            f"namespaces: [{namespace}]\npromotion:\n  via_branch: prod\napps:\n"
            f"  api:\n    image: {{repository: 127.0.0.1:5001/t/api, tag: \"{tag}\", "
            f"digest: \"{digest}\"}}\n    replicas: {replicas}\n    priority: 0\n"
            f"    config: {{LOG_LEVEL: info}}\n    ports: [{{name: http, port: 8080}}]\n"
            f"    dns: [api.preprod.example]\n    timeout: 60\n")


def make_world(gitea_env, kube_env, tmp_path: Path, prefix: str = "envstate") -> GiteaWorld:  # noqa: F811
    """An env-state repository on Gitea (master = prod = preprod 1.0), the users as
    collaborators, and a fresh namespace the least-privilege deployer may write."""
    kubectl = Kubectl(kube_env)
    namespace = f"pr-{uuid.uuid4().hex[:8]}"
    subprocess.run([str(ROOT / "testbed/kubernetes/grant-deployer"), namespace],
                   env={**os.environ, **kube_env}, check=True, capture_output=True)
    w = GiteaWorld.create(gitea_env, tmp_path, prefix)
    for user in gitea_env["PIPELINELIB_GITEA_USERS"].split(","):
        w.client.add_collaborator(w.owner, w.name, user, "write")
    (w.clone / "environments").mkdir()
    (w.clone / "policy.yaml").write_text(POLICY)
    (w.clone / "environments" / "preprod.yaml").write_text(spec(namespace, "1.0"))
    git(w.clone, "add", "-A")
    git(w.clone, "commit", "-q", "-m", "preprod 1.0")
    git(w.clone, "push", "-q", "origin", "master", "master:prod")
    w.wait_pushed()
    w.namespace, w.kubectl = namespace, kubectl  # type: ignore[attr-defined]
    w.kube_env = {**kube_env, "KUBECONFIG": kube_env["PIPELINELIB_DEPLOYER_KUBECONFIG"]}  # type: ignore[attr-defined]
    return w


def drop_world(w: GiteaWorld) -> None:
    w.delete()
    w.kubectl("delete", "namespace", w.namespace, "--wait=false", check=False)  # type: ignore[attr-defined]


@pytest.fixture
def world(gitea_env, kube_env, tmp_path: Path):  # noqa: F811
    w = make_world(gitea_env, kube_env, tmp_path)
    yield w
    drop_world(w)


def change_master(w: GiteaWorld, tag: str, replicas: int = 1) -> None:
    git(w.clone, "pull", "-q", "--rebase", "origin", "master")
    (w.clone / "environments" / "preprod.yaml").write_text(
        spec(w.namespace, tag, replicas))  # type: ignore[attr-defined]
    git(w.clone, "commit", "-q", "-am", f"preprod {tag}")
    git(w.clone, "push", "-q", "origin", "master")


def promote(w: GiteaWorld, user: str):
    env = {**w.kube_env, **ci_env(user), **w.ci_env()}  # type: ignore[attr-defined]
    return run_pipeline("promote", "--to", "preprod", "--via-pull-request", "--repo", w.url,
                        "--branch", "master", env=env)


def open_pr(w: GiteaWorld):
    return w.client.find_pull_request(w.owner, w.name, "master", "prod")


def deployed_image(w: GiteaWorld) -> str | None:
    out = w.kubectl("-n", w.namespace, "get", "deployment", "api", "-o",  # type: ignore
                    "jsonpath={.spec.template.spec.containers[0].image}", check=False)
    return out or None


def test_only_a_privileged_requester_opens_the_pull_request_and_it_lists_the_changes(world):
    w = world
    change_master(w, "1.1", replicas=2)
    refused = promote(w, "carol")
    assert refused.returncode == 2 and "carol may not promote into preprod" in refused.stderr
    assert open_pr(w) is None

    out = promote(w, "alice")
    assert out.returncode == 0, out.stderr[-3000:]
    pr = open_pr(w)
    assert pr is not None and pr.head == "master" and pr.base == "prod"
    assert "127.0.0.1:5001/t/api:1.0@sha256:" in pr.body
    assert "→ `127.0.0.1:5001/t/api:1.1@sha256:" in pr.body
    assert "replicas `1` → `2`" in pr.body and "environments/preprod.yaml" in pr.body
    assert "Requested by: alice" in pr.body

    again = promote(w, "alice")
    assert again.returncode == 0 and f"#{pr.number} is up to date" in again.stderr
    change_master(w, "1.2")
    updated = promote(w, "")  # the timer's run: no person, the request exists already
    assert updated.returncode == 0, updated.stderr[-3000:]
    assert open_pr(w).number == pr.number and "api:1.2@sha256:" in open_pr(w).body


def test_self_approval_or_an_unprivileged_approval_does_not_deploy(world):
    w = world
    change_master(w, "1.1")
    opened = promote(w, "alice")
    assert opened.returncode == 0, opened.stderr[-3000:]
    pr = open_pr(w)
    for user in ("alice", "carol"):  # the requester herself; someone without the privilege
        w.client.as_user(user).review(w.owner, w.name, pr.number, "APPROVED", "lgtm")
    out = promote(w, "")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "alice: self-approval" in out.stderr and "carol: not allowed to approve" in out.stderr
    assert open_pr(w) is not None and deployed_image(w) is None

    # merged by hand anyway: refused, reported on the pull request, nothing applied
    w.client.merge(w.owner, w.name, pr.number)
    merged = w.client.pull_request(w.owner, w.name, pr.number)
    refused = promote(w, "")
    assert refused.returncode == 2 and "merged without a valid approval" in refused.stderr
    status = w.client.statuses(w.owner, w.name, merged.merge_commit)["pipelinelib/preprod"]
    assert status.state == "failure" and "not deployed" in status.description
    comments = w.client.comments(w.owner, w.name, pr.number)
    assert any("not deployed" in c["body"] for c in comments)
    assert deployed_image(w) is None
    again = promote(w, "")
    assert again.returncode == 0 and "already applied: failure" in again.stderr
    assert len(w.client.comments(w.owner, w.name, pr.number)) == len(comments)


def test_an_approval_by_another_release_manager_merges_applies_and_reports_back(world):
    w = world
    change_master(w, "1.1")
    opened = promote(w, "alice")
    assert opened.returncode == 0, opened.stderr[-3000:]
    pr = open_pr(w)
    w.client.as_user("bob").review(w.owner, w.name, pr.number, "APPROVED", "ok",
                                   commit=pr.head_sha)
    out = promote(w, "")
    assert out.returncode == 0, out.stderr[-3000:]
    merged = w.client.pull_request(w.owner, w.name, pr.number)
    assert merged.merged and open_pr(w) is None
    image = deployed_image(w)
    assert image is not None and image.startswith("127.0.0.1:5001/t/api") and \
        spec(w.namespace, "1.1").split('digest: "')[1].split('"')[0] in image
    status = w.client.statuses(w.owner, w.name, merged.merge_commit)["pipelinelib/preprod"]
    assert status.state == "success" and "Successfully Deployed to preprod" in status.description
    assert "approved by bob" in status.description
    comments = w.client.comments(w.owner, w.name, pr.number)
    assert sum("Successfully Deployed to preprod" in c["body"] for c in comments) == 1

    again = promote(w, "")
    assert again.returncode == 0 and "already applied: success" in again.stderr
    assert len(w.client.comments(w.owner, w.name, pr.number)) == len(comments)


def test_the_git_server_can_hold_the_same_rule_branch_protection_refuses_a_bare_merge(world):
    from pipelinelib.errors import StepFailed

    w = world
    w.client.protect_branch(w.owner, w.name, "prod", approvals=1, approvers=["alice", "bob"])
    change_master(w, "1.1")
    opened = promote(w, "alice")
    assert opened.returncode == 0, opened.stderr[-3000:]
    pr = open_pr(w)
    w.client.as_user("carol").review(w.owner, w.name, pr.number, "APPROVED", "lgtm")
    with pytest.raises(StepFailed) as refused:
        w.client.merge(w.owner, w.name, pr.number)  # waits out "try again later"
    assert "Gitea answered 405" in refused.value.message, refused.value.cause
    assert "approv" in (refused.value.cause or "").lower(), refused.value.cause
    assert not w.client.pull_request(w.owner, w.name, pr.number).merged

    w.client.as_user("bob").review(w.owner, w.name, pr.number, "APPROVED", "ok")
    out = promote(w, "")
    assert out.returncode == 0, out.stderr[-3000:]
    assert w.client.pull_request(w.owner, w.name, pr.number).merged
