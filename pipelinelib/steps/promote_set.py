"""Whole-environment promotion under four eyes: one approval binds the whole set.

``approve_set`` records a second person's approval of every (app, digest, resulting spec
fingerprint) being promoted together; ``promote_set`` checks that approval against the set
it is about to write — same apps, same digests, same fingerprints, someone else holding
the approve role — and writes every member in one commit; the approval stays for the
deploy to check again.
If any member changed since the approval (a digest, a spec, an app added or dropped), it is
stale and the promotion is refused (exit 2, nothing written, audited).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from pipelinelib.context import Context
from pipelinelib.envspec.load import environment_path, load_environment
from pipelinelib.envspec.staterepo import EnvStateRepo
from pipelinelib.errors import BadInput
from pipelinelib.promotion import approvals
from pipelinelib.promotion.audit import audit
from pipelinelib.promotion.enforce import content_hash
from pipelinelib.promotion.policy import Policy, identity, load_policy
from pipelinelib.promotion.trust import NS_APPROVAL, SIGNING_KEY_ENV
from pipelinelib.result import StepResult
from pipelinelib.step import step
from pipelinelib.steps.promote import (
    Promotion,
    Resolved,
    _check_image,
    _source_image,
    check_approver,
    check_signing_key,
    edit_target,
    promoted,
    refuse,
    resolve,
    sign_record,
)


def needs_set_approval(root: Path, promotions: list[Promotion], policy: Policy) -> bool:
    """Several apps into an environment with four eyes (or a protected member)."""
    if len(promotions) < 2 or any(p.hotfix for p in promotions):
        return False
    target = promotions[0].target
    if policy.env(target).four_eyes:
        return True
    env = load_environment(environment_path(root, target), root=root)
    return any(env.apps[p.app].protected for p in promotions if p.app in env.apps)


def _whole(promotions: list[Promotion]) -> Promotion:
    """A stand-in naming the whole set (for refusals and audit)."""
    first = promotions[0]
    return dataclasses.replace(first, app=",".join(p.app for p in promotions))


def _members(resolved: list[Resolved]) -> dict[str, dict[str, str]]:
    return {r.new_app.name: {"digest": r.image.digest or "", "fingerprint":
                             r.new_app.fingerprint()} for r in resolved}


def resolve_set(ctx: Context, root: Path, promotions: list[Promotion],
                policy: Policy) -> list[Resolved]:
    """Every member's checks, then the set approval's (four eyes)."""
    resolved = [resolve(ctx, root, p, policy, check_approval=False) for p in promotions]
    whole = _whole(promotions)
    target, user = whole.target, resolved[0].user
    found = approvals.read_set_approval(root, target)
    hint = (f"someone else in environments.{target}.approve runs the same promotion with "
            "--approve")
    check_approver(ctx, whole, policy, user, found,
                   f"{target} needs a second person's approval (four eyes) of the whole set "
                   f"({whole.app}) and there is none", hint)
    wanted = _members(resolved)
    stale = _differences(found.members, wanted)
    if stale:
        raise refuse(ctx, whole, f"the approval by {found.approved_by} is stale: "
                     + "; ".join(stale) + " since it was given", hint=hint)
    return resolved


def _differences(approved: dict[str, dict[str, str]],
                 wanted: dict[str, dict[str, str]]) -> list[str]:
    out = []
    added, dropped = sorted(set(wanted) - set(approved)), sorted(set(approved) - set(wanted))
    if added or dropped:
        parts = ([f"added {', '.join(added)}"] if added else []) + (
            [f"dropped {', '.join(dropped)}"] if dropped else [])
        out.append("the set of apps changed (" + "; ".join(parts) + ")")
    for app in sorted(set(wanted) & set(approved)):
        if approved[app]["digest"] != wanted[app]["digest"]:
            out.append(f"the digest of {app} changed")
        elif approved[app]["fingerprint"] != wanted[app]["fingerprint"]:
            out.append(f"the spec of {app} changed")
    return out


def _message(ctx: Context, resolved: list[Resolved], promotions: list[Promotion],
             approver: str) -> str:
    source = promotions[0].source or "-"
    target = promotions[0].target
    names = ", ".join(r.new_app.name for r in resolved)
    count = f"{len(resolved)} app" + ("s" if len(resolved) != 1 else "")
    lines = [f"promote {count} to {target} (from {source}): {names}", ""]
    for r in resolved:
        lines += [f"App: {r.new_app.name}", f"Image: {r.image.ref}",
                  f"Previous: {r.app.image.ref}"]
    user = resolved[0].user
    lines += [f"From: {source}", f"To: {target}",
              f"Promoted-by: {user} ({ctx.ci.provider}"
              + (f", {ctx.ci.build_url})" if ctx.ci.build_url else ")"),
              f"Approved-by: {approver} (the whole set)"]
    return ctx.secrets.redact_text("\n".join(lines) + "\n")


def set_event_id(commit: str, app: str) -> str:
    """The audit event id of one member of the set promotion that made ``commit``."""
    import uuid

    return uuid.uuid5(uuid.NAMESPACE_URL, f"pipelinelib:promote-set:{commit}:{app}").hex


def _complete_audit(ctx: Context, state: EnvStateRepo, target: str, resolved: list[Resolved],
                    source: str) -> None:
    """Nothing to promote, and this very CI build made the set's commit: a run killed after
    its push and before (some of) its audit events. Record the events it owes, once each
    (their ids come from that commit and the app, so events already written are skipped)."""
    last = state.last_commit(f"environments/{target}.yaml")
    build = ctx.ci.build_url
    if not last or not build or f", {ctx.secrets.redact_text(build)})" not in last["message"]:
        return
    lines = str(last["message"]).splitlines()
    members = {line[len("App: "):].strip() for line in lines if line.startswith("App: ")}
    approver = next((line[len("Approved-by: "):].split(" (")[0] for line in lines
                     if line.startswith("Approved-by: ")), "")
    for r in resolved:
        if r.new_app.name in members:
            audit(ctx, "promote", target=f"{target}/{r.new_app.name}", result="done",
                  digest=r.image.digest, source=source, commit=last["sha"],
                  approved_by=approver, approval="set",
                  event_id=set_event_id(last["sha"], r.new_app.name))


@step("promote")
def promote_set(ctx: Context, state: EnvStateRepo, promotions: list[Promotion]) -> StepResult:
    """Promote several apps as one approved set, in one commit; ``unchanged`` when every
    member already runs its digest."""
    policy = load_policy(state.root)
    resolved = resolve_set(ctx, state.root, promotions, policy)
    moving = [r for r in resolved if r.app.image.digest != r.image.digest]
    target = promotions[0].target
    if not moving:
        _complete_audit(ctx, state, target, resolved, promotions[0].source or "")
        return StepResult.of("promote", [], target=target, apps=[], commit="")
    actions = [f"set {target}/{r.new_app.name} image to {r.image.ref}" for r in moving]
    if ctx.dry_run:
        return StepResult.of("promote", actions, dry_run=True, target=target,
                             apps=[r.new_app.name for r in moving])
    found = approvals.read_set_approval(state.root, target)
    approver = found.approved_by if found else ""

    def edit(root: Path) -> list[str]:
        # re-checked on the freshest head: another promotion may have landed meanwhile
        again = resolve_set(ctx, root, promotions, load_policy(root))
        written = []
        for r, p in zip(again, promotions, strict=True):
            written += edit_target(root, r, p)
        return sorted(set(written))  # the set approval stays: the deploy checks it again

    user = resolved[0].user
    commit = state.commit_change(edit, _message(ctx, moving, promotions, approver),
                                 author=(user, f"{user}@ci"))
    for r in moving:
        audit(ctx, "promote", target=f"{target}/{r.new_app.name}", result="done",
              digest=r.image.digest, source=promotions[0].source or "",
              commit=commit.sha if commit else "", approved_by=approver, approval="set",
              event_id=set_event_id(commit.sha, r.new_app.name) if commit else "")
    apps = [r.new_app.name for r in moving]
    return StepResult.of("promote", actions, target=target, apps=apps,
                         commit=commit.sha if commit else "",
                         pushed=bool(commit and commit.pushed))


@step("approve")
def approve_set(ctx: Context, state: EnvStateRepo, promotions: list[Promotion]) -> StepResult:
    """Record a second person's approval of exactly this set (four eyes, one approval)."""
    policy = load_policy(state.root)
    whole = _whole(promotions)
    target = whole.target
    rules = policy.env(target)
    user = identity(ctx, rules, target)
    if not policy.holds(user, rules.approve):
        raise refuse(ctx, whole, f"{user} may not approve promotions into {target}")
    env = load_environment(environment_path(state.root, target), root=state.root)
    members = {}
    for p in promotions:
        current = env.apps.get(p.app)
        if current is None:
            raise BadInput(f"{target} has no app {p.app!r}", field="APP", source=env.source)
        image, _ = _source_image(ctx, state.root, p)
        image = _check_image(ctx, p, image, rules.gates)
        new_app = promoted(current, image)
        members[p.app] = {"digest": image.digest or "", "fingerprint": new_app.fingerprint()}
        if content := content_hash(state.root, new_app):
            members[p.app]["content"] = content
    check_signing_key(ctx, whole, user)
    record = approvals.new_set_approval(ctx, target, whole.source or "", members)
    action = f"approve {target}: {whole.app} as one set"
    if ctx.dry_run:
        return StepResult.of("approve", [action], dry_run=True)
    existing = approvals.read_set_approval(state.root, target)
    if existing and existing.members == members and existing.approved_by == user and (
            existing.signature or not os.environ.get(SIGNING_KEY_ENV)):
        return StepResult.of("approve", [], members=members)
    record = sign_record(record, NS_APPROVAL)
    lines = [f"{app}: {m['digest']}" for app, m in members.items()]
    commit = state.commit_change(
        lambda root: [approvals.write_set_approval(root, record)],
        f"approve {len(members)} apps to {target} as one set\n\n" + "\n".join(lines)
        + f"\n\nApproved-by: {user} ({ctx.ci.provider})\n", author=(user, f"{user}@ci"))
    audit(ctx, "approve", target=f"{target}/{whole.app}", result="done", approval="set",
          commit=commit.sha if commit else "")
    return StepResult.of("approve", [action], members=members,
                         commit=commit.sha if commit else "")
