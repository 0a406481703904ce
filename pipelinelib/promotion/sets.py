"""Whole-environment promotion under four eyes: one approval binds the whole set.

A second person approves every (app, digest, resulting spec fingerprint) being promoted
together (``set_approval_record``, ``commit_set_approval``); the promotion checks that
approval against the set it is about to write (``resolve_set``) — same apps, same digests,
same fingerprints, someone else holding the approve role — and writes every member in one
commit (``commit_set``); the approval stays for the deploy to check again.
If any member changed since the approval (a digest, a spec, an app added or dropped), it is
stale and the promotion is refused (exit 2, nothing written, audited).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from pipelinelib.envspec.load import environment_path, load_environment
from pipelinelib.envspec.staterepo import Commit, EnvStateRepo
from pipelinelib.errors import BadInput
from pipelinelib.promotion import approvals
from pipelinelib.promotion.audit import audit
from pipelinelib.promotion.enforce import content_hash
from pipelinelib.promotion.policy import Policy, identity, load_policy
from pipelinelib.promotion.promote import (
    ImageEvidence,
    Promotion,
    Resolved,
    check_approver,
    check_image,
    check_signing_key,
    edit_target,
    promoted,
    refuse,
    resolve,
    sign_record,
    source_image,
)
from pipelinelib.promotion.trust import NS_APPROVAL

if TYPE_CHECKING:
    from pipelinelib.context import Context


def needs_set_approval(root: Path, promotions: list[Promotion], policy: Policy) -> bool:
    """Several apps into an environment with four eyes (or a protected member)."""
    if len(promotions) < 2 or any(p.hotfix for p in promotions):
        return False
    target = promotions[0].target
    if policy.env(target).four_eyes:
        return True
    env = load_environment(environment_path(root, target), root=root)
    return any(env.apps[p.app].protected for p in promotions if p.app in env.apps)


def whole_set(promotions: list[Promotion]) -> Promotion:
    """A stand-in naming the whole set (for refusals and audit)."""
    first = promotions[0]
    return dataclasses.replace(first, app=",".join(p.app for p in promotions))


def set_members(resolved: list[Resolved]) -> dict[str, dict[str, str]]:
    return {r.new_app.name: {"digest": r.image.digest or "", "fingerprint":
                             r.new_app.fingerprint()} for r in resolved}


def resolve_set(ctx: Context, root: Path, promotions: list[Promotion],
                policy: Policy, evidence: ImageEvidence) -> list[Resolved]:
    """Every member's checks, then the set approval's (four eyes)."""
    resolved = [resolve(ctx, root, p, policy, evidence, check_approval=False) for p in promotions]
    whole = whole_set(promotions)
    target, user = whole.target, resolved[0].user
    found = approvals.read_set_approval(root, target)
    hint = (f"someone else in environments.{target}.approve runs the same promotion with "
            "--approve")
    found = check_approver(ctx, whole, policy, user, found,
                           f"{target} needs a second person's approval (four eyes) of the "
                           f"whole set ({whole.app}) and there is none", hint)
    wanted = set_members(resolved)
    stale = differences(found.members, wanted)
    if stale:
        raise refuse(ctx, whole, f"the approval by {found.approved_by} is stale: "
                     + "; ".join(stale) + " since it was given", hint=hint)
    return resolved


def differences(approved: dict[str, dict[str, str]],
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


def set_commit_message(ctx: Context, resolved: list[Resolved], promotions: list[Promotion],
             approver: str) -> str:
    source = promotions[0].source or "-"
    target = promotions[0].target
    names = ", ".join(r.new_app.name for r in resolved)
    count = f"{len(resolved)} app" + ("s" if len(resolved) != 1 else "")
    lines = [f"promote {count} to {target} (from {source}): {names}", ""]
    for r in resolved:
        lines += [f"App: {r.new_app.name}", f"Image: {r.image.ref}",
                  f"Previous: {r.previous_ref}"]
    user = resolved[0].user
    lines += [f"From: {source}", f"To: {target}",
              f"Promoted-by: {user} ({ctx.ci.provider}"
              + (f", {ctx.ci.build_url})" if ctx.ci.build_url else ")"),
              f"Approved-by: {approver} (the whole set)"]
    return ctx.secrets.redact_text("\n".join(lines) + "\n")


def commit_set(ctx: Context, state: EnvStateRepo, promotions: list[Promotion],
               moving: list[Resolved], evidence: ImageEvidence) -> tuple[Commit | None, str]:
    """Commit every member in one commit (re-checked on the freshest head), audited per
    moving app; returns the commit and the approver."""
    found = approvals.read_set_approval(state.root, promotions[0].target)
    approver = found.approved_by if found else ""

    def edit(root: Path) -> list[str]:
        # re-checked on the freshest head: another promotion may have landed meanwhile
        again = resolve_set(ctx, root, promotions, load_policy(root), evidence)
        written = []
        for r, p in zip(again, promotions, strict=True):
            written += edit_target(root, r, p, ctx.credentials.signing_key)
        return sorted(set(written))  # the set approval stays: the deploy checks it again

    user = moving[0].user
    commit = state.commit_change(edit, set_commit_message(ctx, moving, promotions, approver),
                                 author=(user, f"{user}@ci"))
    for r in moving:
        audit(ctx, "promote", target=f"{promotions[0].target}/{r.new_app.name}",
              result="done", digest=r.image.digest, source=promotions[0].source or "",
              commit=commit.sha if commit else "", approved_by=approver, approval="set",
              event_id=set_event_id(commit.sha, r.new_app.name) if commit else "")
    return commit, approver


def set_event_id(commit: str, app: str) -> str:
    """The audit event id of one member of the set promotion that made ``commit``."""
    import uuid

    return uuid.uuid5(uuid.NAMESPACE_URL, f"pipelinelib:promote-set:{commit}:{app}").hex


def complete_set_audit(ctx: Context, state: EnvStateRepo, target: str,
                       resolved: list[Resolved], source: str) -> None:
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


def set_approval_record(ctx: Context, root: Path, promotions: list[Promotion],
                        policy: Policy, evidence: ImageEvidence
                        ) -> tuple[approvals.SetApproval, str]:
    """Every check of a set approval (the role, each image and its gates, the approver's
    own key); the record it writes (unsigned yet) and the approver."""
    whole = whole_set(promotions)
    target = whole.target
    rules = policy.env(target)
    user = identity(ctx, rules, target)
    if not policy.holds(user, rules.approve):
        raise refuse(ctx, whole, f"{user} may not approve promotions into {target}")
    env = load_environment(environment_path(root, target), root=root)
    members = {}
    for p in promotions:
        current = env.apps.get(p.app)
        if current is None:
            raise BadInput(f"{target} has no app {p.app!r}", field="APP", source=env.source)
        image, _ = source_image(ctx, root, p)
        image = check_image(ctx, p, image, rules.gates, evidence)
        new_app = promoted(current, image)
        members[p.app] = {"digest": image.digest or "", "fingerprint": new_app.fingerprint()}
        if content := content_hash(root, new_app):
            members[p.app]["content"] = content
    check_signing_key(ctx, whole, user)
    return approvals.new_set_approval(ctx, target, whole.source or "", members), user


def set_approval_recorded(ctx: Context, root: Path, record: approvals.SetApproval,
                          user: str) -> bool:
    """The same set approval by the same person is already there."""
    existing = approvals.read_set_approval(root, record.env)
    return bool(existing and existing.members == record.members and
                existing.approved_by == user and (
                    existing.signature or not ctx.credentials.signing_key))


def commit_set_approval(ctx: Context, state: EnvStateRepo, promotions: list[Promotion],
                        record: approvals.SetApproval, user: str) -> Commit | None:
    """Sign, commit and push ``user``'s approval of the set; audited."""
    target, whole = record.env, whole_set(promotions)
    signed = sign_record(record, NS_APPROVAL, ctx.credentials.signing_key)
    lines = [f"{app}: {m['digest']}" for app, m in record.members.items()]
    commit = state.commit_change(
        lambda root: [approvals.write_set_approval(root, signed)],
        f"approve {len(record.members)} apps to {target} as one set\n\n" + "\n".join(lines)
        + f"\n\nApproved-by: {user} ({ctx.ci.provider})\n", author=(user, f"{user}@ci"))
    audit(ctx, "approve", target=f"{target}/{whole.app}", result="done", approval="set",
          commit=commit.sha if commit else "")
    return commit
