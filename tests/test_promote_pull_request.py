"""Preprod through the master -> prod pull request (seed 004) on a real git server (Gitea)
and the real control plane: the pull request lists the changes, its reviews are the
four-eyes and privilege rules, the merge is applied and the result reported back."""

from __future__ import annotations

import pytest

from tests.helpers.pull_request import change_master, deployed_image, open_pr, promote, spec


def test_only_a_privileged_requester_opens_the_pull_request_and_it_lists_the_changes(pr_world):
    w = pr_world
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


def test_self_approval_or_an_unprivileged_approval_does_not_deploy(pr_world):
    w = pr_world
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


def test_an_approval_by_another_release_manager_merges_applies_and_reports_back(pr_world):
    w = pr_world
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


def test_the_git_server_can_hold_the_same_rule_branch_protection_refuses_a_bare_merge(pr_world):
    from pipelinelib.errors import StepFailed

    w = pr_world
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
