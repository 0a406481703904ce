"""The promote and approve steps for several apps approved as one set (four eyes).

Observe (every member's checks and the set approval: ``promotion.sets.resolve_set``) ->
plan (the members whose digest moves) -> apply (one commit for the whole set, audited).
The rules live in ``pipelinelib.promotion.sets``.
"""

from __future__ import annotations

from pipelinelib import attest
from pipelinelib.context import Context
from pipelinelib.envspec.staterepo import EnvStateRepo
from pipelinelib.promotion.policy import load_policy
from pipelinelib.promotion.promote import Promotion
from pipelinelib.promotion.sets import (
    commit_set,
    commit_set_approval,
    complete_set_audit,
    needs_set_approval,
    resolve_set,
    set_approval_record,
    set_approval_recorded,
    whole_set,
)
from pipelinelib.result import StepResult
from pipelinelib.step import step

__all__ = ["approve_set", "needs_set_approval", "promote_set"]


@step("promote")
def promote_set(ctx: Context, state: EnvStateRepo, promotions: list[Promotion]) -> StepResult:
    """Promote several apps as one approved set, in one commit; ``unchanged`` when every
    member already runs its digest."""
    resolved = resolve_set(ctx, state.root, promotions, load_policy(state.root), attest)
    moving = [r for r in resolved if r.previous_digest != r.image.digest]
    target = promotions[0].target
    if not moving:  # a run killed after its push may still owe audit events
        complete_set_audit(ctx, state, target, resolved, promotions[0].source or "")
        return StepResult.of("promote", [], target=target, apps=[], commit="")
    actions = [f"set {target}/{r.new_app.name} image to {r.image.ref}" for r in moving]
    apps = [r.new_app.name for r in moving]
    if ctx.dry_run:
        return StepResult.of("promote", actions, dry_run=True, target=target, apps=apps)
    commit, _ = commit_set(ctx, state, promotions, moving, attest)
    return StepResult.of("promote", actions, target=target, apps=apps,
                         commit=commit.sha if commit else "",
                         pushed=bool(commit and commit.pushed))


@step("approve")
def approve_set(ctx: Context, state: EnvStateRepo, promotions: list[Promotion]) -> StepResult:
    """Record a second person's approval of exactly this set (four eyes, one approval)."""
    record, user = set_approval_record(ctx, state.root, promotions, load_policy(state.root),
                                       attest)
    action = f"approve {record.env}: {whole_set(promotions).app} as one set"
    if ctx.dry_run:
        return StepResult.of("approve", [action], dry_run=True)
    if set_approval_recorded(ctx, state.root, record, user):
        return StepResult.of("approve", [], members=record.members)
    commit = commit_set_approval(ctx, state, promotions, record, user)
    return StepResult.of("approve", [action], members=record.members,
                         commit=commit.sha if commit else "")
