"""A four-eyes preprod promoted through the master -> prod pull request: the pull request's
review, vouched for by a git server the trusted policy names (``review_sources``), is the
approval the deploy-time check (``promotion.enforce``) counts — approver not the promoter,
approver holding the approve role. Real Gitea, real SSH signatures, real control plane."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelinelib.envspec.load import environment_path, load_environment
from pipelinelib.promotion import approvals
from pipelinelib.promotion.trust import NS_PROMOTION, sign
from tests.helpers.cli import run_pipeline
from tests.helpers.envstate import ci_env
from tests.helpers.git import git
from tests.helpers.pull_request import PullRequestWorld, deployed_image, open_pr, spec, spec_digest
from tests.helpers.trust import make_trust

TRUSTED_POLICY = """\
groups:
  release-managers: [alice, bob]
review_sources: [{server}]
environments:
  preprod:
    promote: ["group:release-managers"]
    approve: ["group:release-managers"]
    four_eyes: true
"""


@pytest.fixture
def trusted(pr_world, tmp_path: Path):
    """``pr_world`` plus a trust root whose signed policy makes preprod four-eyes and names
    this Gitea as a review source."""
    server = pr_world.env["PIPELINELIB_GITEA_URL"]
    trust = make_trust(tmp_path / "t", TRUSTED_POLICY.format(server=server),
                       people=("alice", "bob", "carol"))
    return pr_world, trust


def promoted_on_master(w: PullRequestWorld, trust, tag: str, promoter: str) -> None:
    """Master gets the new spec and the promotion record signed by ``promoter``'s key
    (what `pipeline promote --to preprod` writes)."""
    git(w.clone, "pull", "-q", "--rebase", "origin", "master")
    path = w.clone / "environments" / "preprod.yaml"
    path.write_text(spec(w.namespace, tag))
    app = load_environment(environment_path(w.clone, "preprod"), root=w.clone).apps["api"]
    record = approvals.PromotionRecord(env="preprod", app="api", digest=app.image.digest,
                                       fingerprint=app.fingerprint(), promoted_by=promoter,
                                       at="2026-11-28T08:00:00")
    record.signature = sign(approvals.signed_bytes(record), trust.keys[promoter], NS_PROMOTION)
    approvals.write_promotion(w.clone, record)
    git(w.clone, "add", "-A")
    git(w.clone, "commit", "-q", "-m", f"promote preprod {tag} ({promoter})")
    git(w.clone, "push", "-q", "origin", "master")


def promote(w: PullRequestWorld, trust, user: str):
    env = {**w.kube_env, **ci_env(user), **w.ci_env(), **trust.env()}
    return run_pipeline("promote", "--to", "preprod", "--via-pull-request", "--repo", w.url,
                        "--branch", "master", env=env)


def test_a_review_by_another_release_manager_is_the_four_eyes_approval(trusted):
    w, trust = trusted
    promoted_on_master(w, trust, "1.1", promoter="alice")
    opened = promote(w, trust, "alice")
    assert opened.returncode == 0, opened.stderr[-3000:]
    pr = open_pr(w)
    w.client.as_user("bob").review(w.owner, w.name, pr.number, "APPROVED", "ok",
                                   commit=pr.head_sha)
    out = promote(w, trust, "")
    assert out.returncode == 0, out.stderr[-3000:]
    merged = w.client.pull_request(w.owner, w.name, pr.number)
    assert merged.merged
    image = deployed_image(w)
    digest = spec_digest("1.1")
    assert image is not None and digest in image
    status = w.client.statuses(w.owner, w.name, merged.merge_commit)["pipelinelib/preprod"]
    assert status.state == "success" and "approved by bob" in status.description
    assert "change verified" in out.stderr and "approved_by" in out.stderr


def test_a_review_by_the_promoter_or_from_an_untrusted_server_does_not_deploy(trusted):
    w, trust = trusted
    promoted_on_master(w, trust, "1.1", promoter="alice")
    opened = promote(w, trust, "bob")  # bob asks for the pull request, alice promoted
    assert opened.returncode == 0, opened.stderr[-3000:]
    pr = open_pr(w)
    w.client.as_user("alice").review(w.owner, w.name, pr.number, "APPROVED", "mine",
                                     commit=pr.head_sha)
    refused = promote(w, trust, "")  # the review passes the pull request's rule; enforce's not
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "alice cannot approve their own change (four eyes)" in refused.stderr
    merged = w.client.pull_request(w.owner, w.name, pr.number)
    assert merged.merged and deployed_image(w) is None
    status = w.client.statuses(w.owner, w.name, merged.merge_commit)["pipelinelib/preprod"]
    assert status.state == "failure" and "own change" in status.description, refused.stderr[-4000:]
    comments = w.client.comments(w.owner, w.name, pr.number)
    assert sum("own change" in c["body"] for c in comments) == 1

    # the next promotion, reviewed by bob, but the policy no longer names this server
    trust.write_policy(TRUSTED_POLICY.format(server="https://git.example.org"),
                       signers=("alice", "bob"))
    promoted_on_master(w, trust, "1.2", promoter="alice")
    assert promote(w, trust, "alice").returncode == 0
    pr2 = open_pr(w)
    w.client.as_user("bob").review(w.owner, w.name, pr2.number, "APPROVED", "ok",
                                   commit=pr2.head_sha)
    untrusted = promote(w, trust, "")
    assert untrusted.returncode == 2, untrusted.stderr[-3000:]
    assert "names no such review_sources" in untrusted.stderr
    assert deployed_image(w) is None


# --- the rule itself, on the `signed` fixture (tests/helpers/trust.py; no server needed) -----

def test_enforce_counts_a_review_only_from_a_named_server_on_the_deployed_merge(signed):
    from pipelinelib.errors import Refused
    from pipelinelib.promotion.enforce import enforce
    from pipelinelib.promotion.review_approval import ReviewApproval, ReviewVerdict
    from tests.helpers.trust import TRUST_POLICY, release_ctx, write_signed

    trust, clone, env = signed
    # promoted, no signed approval
    write_signed(clone, env, "rm-alice", "jenkins", None, None, trust)
    head = git(clone, "rev-parse", "HEAD")
    server = "https://git.example.org"

    def review(*approvers: str, commit: str = head, at: str = server) -> ReviewApproval:
        return ReviewApproval(ReviewVerdict(approved_by=approvers, head="c0ffee"), at,
                              "platform/env-state#7", commit)

    def refusal(r: ReviewApproval) -> str:
        with pytest.raises(Refused) as caught:
            enforce(release_ctx(), env, ["api"], review=r)
        return caught.value.message

    assert "names no such review_sources" in refusal(review("rm-bob"))
    trust.write_policy(TRUST_POLICY + f"review_sources: [{server}/]\n")
    [verified] = enforce(release_ctx(), env, ["api"], review=review("rm-bob"))
    assert (verified.promoted_by, verified.approved_by) == ("rm-alice", "rm-bob")
    assert "cannot approve their own change" in refusal(review("rm-alice"))
    assert "does not hold the approve role" in refusal(review("qa-quinn"))
    assert "is being deployed" in refusal(review("rm-bob", commit="0" * 40))
    assert "names no such review_sources" in refusal(review("rm-bob", at="https://evil.example"))
    assert "is not approved" in refusal(review())
    [both] = enforce(release_ctx(), env, ["api"], review=review("rm-alice", "rm-bob"))
    assert both.approved_by == "rm-bob"


def test_review_sources_must_be_server_urls(tmp_path):
    from pipelinelib.errors import BadInput
    from pipelinelib.promotion.policy import parse_policy

    path = tmp_path / "policy.yaml"
    path.write_text("review_sources: [git.example.org]\nenvironments: {}\n")
    with pytest.raises(BadInput) as caught:
        parse_policy(path)
    assert caught.value.field == "review_sources"
