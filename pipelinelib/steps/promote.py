"""The promote and approve steps: one app's digest into the next environment's spec.

Observe (the policy, every check: ``promotion.promote.resolve``, with ``pipelinelib.attest``
as the image's signed evidence) -> plan (the spec line to
set) -> apply (one commit to the env-state repo, audited). The checks, the edit and the
commit live in ``pipelinelib.promotion.promote``.
"""

from __future__ import annotations

from pipelinelib import attest
from pipelinelib.context import Context
from pipelinelib.envspec.staterepo import EnvStateRepo
from pipelinelib.promotion.policy import load_policy
from pipelinelib.promotion.promote import (
    Promotion,
    approval_record,
    approval_recorded,
    approver_of,
    audit_promotion,
    commit_approval,
    commit_promotion,
    complete_audit,
    resolve,
)
from pipelinelib.result import StepResult
from pipelinelib.step import step

__all__ = ["Promotion", "approve", "promote"]


@step("promote")
def promote(ctx: Context, state: EnvStateRepo, promotion: Promotion) -> StepResult:
    """Promote one app; ``unchanged`` when the target already runs that digest."""
    policy = load_policy(state.root)
    resolved = resolve(ctx, state.root, promotion, policy, attest)
    target = f"{promotion.target}/{promotion.app}"
    digest = resolved.image.digest
    if resolved.previous_digest == digest and not promotion.hotfix:
        complete_audit(ctx, state, promotion, digest or "", target)
        return StepResult.of("promote", [], digest=digest, commit="",
                             target=promotion.target, app=promotion.app)
    action = f"set {target} image to {resolved.image.ref}"
    if ctx.dry_run:
        return StepResult.of("promote", [action], dry_run=True, digest=digest)
    approver = approver_of(state.root, promotion, policy, resolved)
    commit = commit_promotion(ctx, state, promotion, resolved, approver, attest)
    audit_promotion(ctx, promotion, resolved, commit, approver)
    if commit is None:
        return StepResult.of("promote", [], digest=digest, commit="")
    return StepResult.of("promote", [action], digest=digest, commit=commit.sha,
                         target=promotion.target, app=promotion.app, pushed=commit.pushed)


@step("approve")
def approve(ctx: Context, state: EnvStateRepo, promotion: Promotion) -> StepResult:
    """Record a second person's approval of exactly this promotion (four eyes)."""
    record, image, user = approval_record(ctx, state.root, promotion, load_policy(state.root),
                                          attest)
    action = f"approve {promotion.target}/{promotion.app} at {image.digest}"
    if ctx.dry_run:
        return StepResult.of("approve", [action], dry_run=True)
    if approval_recorded(ctx, state.root, promotion, record, user):
        return StepResult.of("approve", [], digest=image.digest)
    commit = commit_approval(ctx, state, promotion, record, image, user)
    return StepResult.of("approve", [action], digest=image.digest,
                         commit=commit.sha if commit else "")
