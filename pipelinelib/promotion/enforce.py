"""Enforcement where the deploy happens: no unapproved change reaches a protected environment.

Every path that changes a protected environment (``pipeline apply``, the auto-roll and
branch-deploy jobs, ``pipeline promote`` with its apply, ``swap --env``) calls ``enforce``
before its first write. A protected environment (policy ``protected`` or ``four_eyes``, or
an app spec's ``protected``) accepts a change of an app only when the app's exact
(digest, spec fingerprint, local chart/manifests content) carries:

1. a promotion record signed by the promoter's own key, or by a CI server key named in
   the policy's ``ci_signers`` (which vouches for the user the CI server authenticated);
   the promoter holds the environment's ``promote`` role;
2. with four eyes, an approval (the app's own or its whole-set approval) signed by the
   approver's own key, the approver holds the ``approve`` role and is not the promoter.

Keys are checked against the trust root (``promotion.trust``), never against anything in
the env-state repository. A refused change exits 2 naming environment, app, the commit
that last changed the spec and its author; it is audited, and nothing is written.

``verify_change`` is the check for one app; ``check_four_eyes`` is the rule about people
alone, for approval sources other than signed files. One such source: the reviews of the
merged promotion pull request (``review_approval.ReviewApproval``). Where the trusted
policy names its git server in ``review_sources``, a valid review verdict stands in for the
signed approval — when the checkout being deployed is exactly the reviewed merge (so it
contains the signed promotion record of this digest and fingerprint) and a reviewer passes
``check_four_eyes`` against the promoter.

Paths that know no environment (``pipeline rollout -n``, ``rollback``, ``swap -n``) are
stopped by ``promotion.guard``: a namespace the cluster administrator labelled
``pipelinelib.dev/protected=true`` takes writes only for apps this process verified.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelinelib.envspec.model import AppSpec, EnvSpec
from pipelinelib.errors import PipelineError, Refused
from pipelinelib.promotion import approvals
from pipelinelib.promotion.guard import mark_verified
from pipelinelib.promotion.policy import POLICY_FILE, Policy, load_policy
from pipelinelib.promotion.review_approval import ReviewApproval
from pipelinelib.promotion.trust import NS_APPROVAL, NS_PROMOTION, TrustRoot, trust_root


@dataclass
class Verified:
    """Who made and who approved one change."""

    app: str
    digest: str
    promoted_by: str
    approved_by: str = ""


class ChangeRefused(Exception):
    """One app's change lacks valid evidence (``reason``); ``author`` as far as known."""

    def __init__(self, app: str, reason: str, author: str = ""):
        super().__init__(reason)
        self.app, self.reason, self.author = app, reason, author


def content_hash(root: str | Path | None, app: AppSpec) -> str:
    """A hash of the app's local chart or manifests files ('' when it has none): a chart
    tweak changes what is deployed without changing the spec, so approvals bind it too."""
    if root is None:
        return ""
    locals_ = [app.manifests] if app.manifests else []
    if app.chart is not None and app.chart.kind == "local":
        locals_.append(app.chart.repository)
    digest = hashlib.sha256()
    found = False
    for rel in locals_:
        base = Path(root) / rel
        files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else (
            [base] if base.is_file() else [])
        for path in files:
            found = True
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32] if found else ""


def check_four_eyes(policy: Policy, env: str, author: str, approver: str) -> str | None:
    """The people rule of four eyes: why ``approver`` may not approve ``author``'s change
    in ``env`` (None when they may)."""
    if not approver:
        return "no approval"
    if approver == author:
        return f"{approver} cannot approve their own change (four eyes)"
    if not policy.holds(approver, policy.env(env).approve):
        return f"approver {approver} does not hold the approve role of {env}"
    return None


def verify_change(trust: TrustRoot, policy: Policy, env: str, app: str, spec: AppSpec, *,
                  root: str | Path, review: ReviewApproval | None = None) -> Verified:
    """Check one app's change in ``env`` (see the module doc); ``ChangeRefused`` if not."""
    rules = policy.env(env)
    digest = (spec.image.digest if spec.image else "") or ""  # a chart naming its own images
    fingerprint, content = spec.fingerprint(), content_hash(root, spec)
    root = Path(root)
    record = approvals.read_promotion(root, env, app)
    if record is None:
        raise ChangeRefused(app, "no signed promotion record (it was not promoted with "
                            "`pipeline promote`)")
    signer = trust.signer(approvals.signed_bytes(record), record.signature, NS_PROMOTION)
    if signer is None:
        raise ChangeRefused(app, "the promotion record's signature is missing or not by an "
                            "allowed signer", record.promoted_by)
    if signer != record.promoted_by and signer not in policy.ci_signers:
        raise ChangeRefused(app, f"the promotion record names {record.promoted_by} but was "
                            f"signed by {signer}", record.promoted_by)
    author = record.promoted_by
    if (record.digest, record.fingerprint, record.content) != (digest, fingerprint, content):
        what = "digest" if record.digest != digest else "spec or chart"
        raise ChangeRefused(app, f"the {what} changed after {author} promoted it", author)
    if not policy.holds(author, rules.promote) and not policy.holds(author, rules.hotfix):
        raise ChangeRefused(app, f"{author} may not promote into {env}", author)
    if not rules.four_eyes:
        return Verified(app, digest, author)
    approver = _approver(trust, root, env, app, digest, fingerprint, content)
    problem = check_four_eyes(policy, env, author, approver)
    if problem and review is not None:
        approver, problem = _review_approver(policy, env, author, review, root)
    if problem:
        raise ChangeRefused(app, problem if approver or review is not None else
                            "no valid signed approval by a second person (four eyes)", author)
    return Verified(app, digest, author, approver)


def _review_approver(policy: Policy, env: str, author: str, review: ReviewApproval,
                     root: Path) -> tuple[str, str | None]:
    """The reviewer who approves ``author``'s change through the pull request, or why none."""
    if not policy.trusts_reviews_from(review.server):
        return "", (f"no valid signed approval, and the reviews of {review.pull_request} on "
                    f"{review.server} do not count: the policy names no such review_sources")
    if not review.verdict.ok:
        return "", (f"no valid signed approval, and {review.pull_request} is not approved: "
                    f"{review.verdict.explain()}")
    deployed = _head(root)
    if deployed != review.commit:
        return "", (f"{review.pull_request} was reviewed and merged as {review.commit[:12]}, "
                    f"but {deployed[:12] or 'an unknown commit'} is being deployed")
    problem: str | None = "no reviewer"
    for reviewer in review.verdict.approved_by:
        problem = check_four_eyes(policy, env, author, reviewer)
        if problem is None:
            return reviewer, None
    return review.verdict.approved_by[0], f"review of {review.pull_request}: {problem}"


def _head(root: Path) -> str:
    """The commit checked out at ``root`` ('' when it is not a git checkout)."""
    from pipelinelib.adapters.git_repo import GitRepo

    try:
        return GitRepo.open(root, remote=None).head_commit() or ""
    except (PipelineError, OSError):
        return ""


def _approver(trust: TrustRoot, root: Path, env: str, app: str, digest: str,
              fingerprint: str, content: str) -> str:
    """The approver of this exact change whose signature is valid ('' when none)."""
    one = approvals.read_approval(root, env, app)
    if one is not None and (one.digest, one.fingerprint, one.content) == (
            digest, fingerprint, content):
        signer = trust.signer(approvals.signed_bytes(one), one.signature, NS_APPROVAL)
        if signer and signer == one.approved_by:
            return signer
    whole = approvals.read_set_approval(root, env)
    member = (whole.members.get(app) if whole else None) or {}
    if whole and (member.get("digest"), member.get("fingerprint"),
                  member.get("content", "")) == (digest, fingerprint, content):
        signer = trust.signer(approvals.signed_bytes(whole), whole.signature, NS_APPROVAL)
        if signer and signer == whole.approved_by:
            return signer
    return ""


def guarded_apps(policy: Policy, env: EnvSpec, apps: list[str]) -> list[str]:
    """The apps among ``apps`` whose change needs signed evidence in ``env``."""
    rules = policy.env(env.name)
    return [a for a in apps if rules.guarded or (a in env.apps and env.apps[a].protected)]


def _last_change(root: Path, env: str, spec: AppSpec | None) -> tuple[str, str]:
    """The commit that last changed the app (its environment's spec, its local chart or
    manifests; else HEAD) and its author; ('', '') when ``root`` is not a git checkout."""
    from pipelinelib.adapters.git_repo import GitRepo

    rels = [f"environments/{env}.yaml"]
    if spec is not None and spec.manifests:
        rels.append(spec.manifests)
    if spec is not None and spec.chart is not None and spec.chart.kind == "local":
        rels.append(spec.chart.repository)
    try:
        repo = GitRepo.open(root, remote=None)
        top = repo.path.resolve()
        paths = [str((Path(root).resolve() / r).relative_to(top)) for r in rels]
        commits = repo.log(paths, max_count=1) or repo.log(max_count=1)
        if not commits:
            return "", ""
        return commits[0].sha[:12], f"{commits[0].author_name} <{commits[0].author_email}>"
    except (PipelineError, ValueError, OSError):
        return "", ""


def enforce(ctx: Any, env: EnvSpec, apps: list[str], *, action: str = "apply",
            deletes: Sequence[str] = (), review: ReviewApproval | None = None
            ) -> list[Verified]:
    """Refuse (``Refused``, exit 2, audited) unless every changed app of a protected
    environment carries valid signed evidence; see the module doc. Call before any write.
    ``review``: the merged pull request's verdict, an approval source where the policy
    trusts its server."""
    from pipelinelib.promotion.audit import audit

    root = Path(env.root or ".")
    trust = trust_root()
    if trust is None and not (root / POLICY_FILE).is_file():
        policy = Policy({}, {})  # nothing says an environment is protected, but app specs
    else:
        policy = load_policy(root)
    guarded = guarded_apps(policy, env, [*apps, *deletes])
    if not guarded:
        return []
    problems: list[ChangeRefused] = []
    verified: list[Verified] = []
    for app in guarded:
        spec = env.apps.get(app)
        try:
            if spec is None or app in deletes:
                raise ChangeRefused(app, "removing an app from a protected environment is "
                                    "not a promotion: remove it with cluster-admin rights")
            if trust is None:
                raise ChangeRefused(app, "no trust root (PIPELINE_TRUST_DIR) to verify "
                                    "signed promotions and approvals against")
            if not policy.trusted:
                raise ChangeRefused(app, "the policy is not from the trust root")
            verified.append(verify_change(trust, policy, env.name, app, spec, root=root,
                                          review=review))
        except ChangeRefused as refused:
            problems.append(refused)
    if not problems:
        for v in verified:
            mark_verified(env.apps[v.app].namespace, v.app)
        for v in verified:
            ctx.log.info("change verified", environment=env.name, app=v.app,
                         promoted_by=v.promoted_by, approved_by=v.approved_by or None)
        return verified
    lines = []
    for p in problems:
        commit, author = _last_change(root, env.name, env.apps.get(p.app))
        lines.append(f"{env.name}/{p.app} at commit {commit or '?'} by {author or '?'}: "
                     f"{p.reason}")
        audit(ctx, action, target=f"{env.name}/{p.app}", result="refused", reason=p.reason,
              commit=commit, author=author, promoted_by=p.author)
    raise Refused(f"{action} of {env.name} refused: " + "; ".join(lines), field="approval",
                  hint=f"promote with `pipeline promote --to {env.name}` (signed) and, under "
                       "four eyes, have a second person approve with their own key")
