"""An approval source: the reviews of a pull request on the git server (seed 004 preprod).

The four-eyes and privilege rules of ``policy.yaml`` judged on a pull request's reviews:
an approval counts only when

- its state is ``APPROVED``, it is the reviewer's latest review, not dismissed, not stale,
  and it was given on exactly the head commit that is (or was) merged;
- the reviewer is not the person who asked for the promotion (the requester the pull
  request names) nor the pull request's author — no self-approval;
- the reviewer holds the environment's ``approve`` privilege (``promote`` when the
  environment names no approvers).

A privileged reviewer's latest ``REQUEST_CHANGES`` blocks. The verdict says who counted
and why each other review did not, so a refusal explains itself. ``as_record`` gives the
same facts as the other approval sources (who, when, what exactly was approved).
``ReviewApproval`` carries a verdict to the deploy-time check (``promotion.enforce``),
where it stands in for a signed approval when the policy names its server in
``review_sources``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipelinelib.promotion.policy import Policy

SOURCE = "pull-request-review"


@dataclass(frozen=True)
class ReviewVerdict:
    """Whether the reviews approve the promotion, and why."""

    approved_by: tuple[str, ...] = ()
    blocked_by: tuple[str, ...] = ()
    ignored: tuple[tuple[str, str], ...] = ()  # (reviewer, why it does not count)
    head: str = ""
    needed: int = 1
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return len(self.approved_by) >= self.needed and not self.blocked_by

    def explain(self) -> str:
        if self.ok:
            return f"approved by {', '.join(self.approved_by)} on {self.head[:12]}"
        parts = []
        if self.blocked_by:
            parts.append(f"changes requested by {', '.join(self.blocked_by)}")
        parts.append(f"{len(self.approved_by)} of {self.needed} valid approval(s)")
        parts += [f"{who}: {why}" for who, why in self.ignored]
        return "; ".join(parts)

    def as_record(self, env: str, pull_request: str) -> dict[str, str]:
        """The approval as the other approval sources record it (for audit and notes)."""
        return {"source": SOURCE, "env": env, "approved_by": ",".join(self.approved_by),
                "fingerprint": self.head, "pull_request": pull_request}


@dataclass(frozen=True)
class ReviewApproval:
    """A verdict as an approval source for ``enforce``: which server vouched for it, which
    pull request, and the commit (the merge) that is being deployed."""

    verdict: ReviewVerdict
    server: str
    pull_request: str
    commit: str


def judge_reviews(policy: Policy, env: str, reviews: Iterable[Any], *, head: str,
                  requester: str, author: str, needed: int = 1) -> ReviewVerdict:
    """The verdict on ``reviews`` (``adapters.gitea.Review``) for promoting into ``env``."""
    rules = policy.env(env)
    approvers = rules.approve or rules.promote
    latest: dict[str, Any] = {}
    for review in sorted(reviews, key=lambda r: (r.submitted_at, r.id)):
        if review.state in ("APPROVED", "REQUEST_CHANGES"):
            latest[review.user] = review
    approved, blocked, ignored = [], [], []
    for user, review in sorted(latest.items()):
        privileged = policy.holds(user, approvers)
        if review.state == "REQUEST_CHANGES":
            if privileged and not review.dismissed:
                blocked.append(user)
            continue
        why = ""
        if review.dismissed:
            why = "approval dismissed"
        elif user in (requester, author):
            why = "self-approval (requested or opened the promotion) does not count"
        elif not privileged:
            why = f"not allowed to approve {env} (policy.yaml)"
        elif review.stale or (review.commit and review.commit != head):
            why = f"approved {review.commit[:12] or 'an older head'}, not the head {head[:12]}"
        if why:
            ignored.append((user, why))
        else:
            approved.append(user)
    return ReviewVerdict(tuple(approved), tuple(blocked), tuple(ignored), head, needed)
