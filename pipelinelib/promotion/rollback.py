"""Rollback by environment: only to a digest that was once promoted into it.

``pipeline rollback --env ENV --repo REPO --app APP`` resolves the namespace and cluster from
``environments/<env>.yaml`` and checks who asks (the policy's ``swap`` role, default its
``promote`` role), like ``swap --env``. In a protected environment the target revision (or
colour) must run only digests of the app's image that a valid signed promotion — and, under
four eyes, a valid signed approval by a second person — carried into the environment before:
the promotion records in the env-state repository's git history, verified against the trust
root as ``enforce`` verifies the current one. Anything else is refused (exit 2, naming
environment, app and revision; audited; nothing written). The rollback job is
``pipelinelib.pipelines.rollback``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipelinelib.errors import PipelineError, Refused
from pipelinelib.promotion import approvals
from pipelinelib.promotion.access import Entered
from pipelinelib.promotion.audit import audit

if TYPE_CHECKING:
    from pipelinelib.context import Context

HISTORY_LIMIT = 500  # commits of the records read, newest first


def promoted_digests(root: Path, env: str, app: str) -> dict[str, str]:
    """Every digest a valid signed promotion (and under four eyes a valid approval) carried
    into ``env`` for ``app``, with who promoted it, from the git history of the records.
    Empty without a trust root or a trusted policy (then nothing counts as promoted)."""
    from pipelinelib.adapters.git_repo import GitRepo
    from pipelinelib.promotion.enforce import _approver, check_four_eyes
    from pipelinelib.promotion.policy import load_policy
    from pipelinelib.promotion.trust import NS_PROMOTION, trust_root

    trust = trust_root()
    policy = load_policy(root)
    if trust is None or not policy.trusted:
        return {}
    rules = policy.env(env)
    rels = [approvals.promotion_path(env, app), approvals.approval_path(env, app),
            approvals.set_approval_path(env)]
    try:
        repo = GitRepo.open(root, remote=None)
        top = repo.path.resolve()
        prefix = Path(root).resolve().relative_to(top)
        commits = repo.log([str(prefix / r) for r in rels[:2]] + [
            str(prefix / approvals.APPROVALS_DIR / env)], max_count=HISTORY_LIMIT)
    except (PipelineError, ValueError, OSError):
        return {}
    found: dict[str, str] = {}
    for commit in commits:
        files = repo.files_at(commit.sha, [str(prefix / rel) for rel in rels])
        with tempfile.TemporaryDirectory(prefix="pipelinelib-records-") as scratch:
            at = Path(scratch)
            for rel in rels:
                data = files.get(str(prefix / rel))
                if data is None:
                    continue
                (at / rel).parent.mkdir(parents=True, exist_ok=True)
                (at / rel).write_bytes(data)
            record = approvals.read_promotion(at, env, app)
            if record is None or record.digest in found or (record.env, record.app) != (
                    env, app):
                continue
            signer = trust.signer(approvals.signed_bytes(record), record.signature,
                                  NS_PROMOTION)
            if signer is None or (signer != record.promoted_by
                                  and signer not in policy.ci_signers):
                continue
            if not (policy.holds(record.promoted_by, rules.promote)
                    or policy.holds(record.promoted_by, rules.hotfix)):
                continue
            if rules.four_eyes and check_four_eyes(policy, env, record.promoted_by, _approver(
                    trust, at, env, app, record.digest, record.fingerprint, record.content)):
                continue
            found[record.digest] = record.promoted_by
    return found


def rollback_vetter(ctx: Context, root: Path, entered: Entered, env_name: str,
                    app: str) -> Callable[[str, list[str]], None] | None:
    """In a protected environment: the check the rollback step runs on every target it
    would roll to (refused unless each digest was promoted into ``env_name``); None
    elsewhere. Marks the namespace verified for the step's own guard."""
    from pipelinelib.promotion.enforce import guarded_apps
    from pipelinelib.promotion.guard import mark_verified

    env, spec, policy, rules, target = (entered.env, entered.spec, entered.policy,
                                        entered.rules, entered.target)
    if not guarded_apps(policy, env, [app]):
        return None
    promoted = promoted_digests(root, env_name, app)
    repository = spec.image.repository if spec.image else ""

    def vet(what: str, images: list[str]) -> None:
        digests = sorted({i.split("@", 1)[1] for i in images
                          if "@" in i and (not repository or i.startswith(repository + "@"))})
        unpromoted = [d for d in digests if d not in promoted] or (
            [] if digests else ["(no digest of " + (repository or "its image") + ")"])
        if not unpromoted:
            return
        reason = (f"{what} runs {', '.join(unpromoted)}, which no valid signed "
                  f"promotion{' and approval' if rules.four_eyes else ''} ever carried "
                  f"into {env_name}")
        audit(ctx, "rollback", target=target, result="refused", reason=reason)
        raise Refused(f"rollback of {target} refused: {reason}", field="--to-revision",
                      hint="roll back to a revision that was promoted (see --list), or "
                           "promote the digest you want")

    mark_verified(spec.namespace, app)  # the guard passes: vet checks every target
    return vet
