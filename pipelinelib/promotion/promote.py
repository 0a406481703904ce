"""Promotion in one room: resolve, check, edit and commit a digest's move between specs.

Procedure (validate everything, then one write):
1. identity from the CI server; the policy allows this user to promote (or hot-fix) here;
2. the digest comes from the source environment's spec (never rebuilt); the registry still
   has it; its gates passed (the gate record; until gates exist, the build's labels);
3. four eyes where required: a fresh approval by someone else holding the role;
4. one commit to the env-state repo (pushed; a rejected push is redone on the new head).
Refusals raise ``Refused`` (exit 2), change nothing and are audited.

``resolve`` runs every check of one promotion (``check_image``, ``check_gates``,
``check_fresh_approval``); ``edit_target`` writes it into the target spec; ``commit_promotion``
commits it (re-resolved on the freshest head); ``approval_record`` and ``commit_approval``
do the same for a four-eyes approval. The steps in ``pipelinelib.steps.promote`` compose
them (observe -> plan -> apply); several apps approved as one set are in
``pipelinelib.promotion.sets``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pipelinelib.envspec import yamlines
from pipelinelib.envspec.load import environment_path, load_environment
from pipelinelib.envspec.model import AppSpec, EnvSpec, ImageSpec
from pipelinelib.envspec.staterepo import Commit, EnvStateRepo
from pipelinelib.errors import BadInput, Refused
from pipelinelib.promotion import approvals, hotfix
from pipelinelib.promotion.audit import audit
from pipelinelib.promotion.enforce import content_hash
from pipelinelib.promotion.policy import Policy, identity, load_policy
from pipelinelib.promotion.trust import (
    NS_APPROVAL,
    NS_PROMOTION,
    SIGNING_KEY_ENV,
    sign,
    trust_root,
)

if TYPE_CHECKING:
    from pipelinelib.context import Context


class ImageEvidence(Protocol):
    """The signed evidence about an image (``pipelinelib.attest`` is one): its signature
    and its recorded gate results. Passed in by the steps, so promotion does not import
    attest (which reads the trust root from here)."""

    def verify_image(self, ctx: Any, image_repo_ref: str, digest: str, *,
                     registry: Any = None) -> None: ...

    def read_attestation(self, ctx: Any, repo: str, digest: str, kind: str, *,
                         registry: Any = None, require_signed: bool = False,
                         signed_only: bool | None = None) -> dict[str, Any] | None: ...


class _Approved(Protocol):
    @property
    def approved_by(self) -> str: ...


ApprovalT = TypeVar("ApprovalT", bound=_Approved)


def digest_of(app: AppSpec) -> str | None:
    """The digest ``app``'s spec pins its own image to (None without one)."""
    return app.image.digest if app.image else None


@dataclass
class Promotion:
    """What to promote: ``app`` from ``source`` (an environment) or a hot-fix ``image``."""

    app: str
    target: str
    source: str | None = None
    image: str | None = None
    hotfix: bool = False
    reason: str = ""
    fix_commit: str | None = None
    source_repo: str | None = None
    main_branch: str = "main"


@dataclass
class Resolved:
    """The checked promotion: the new image and the target app spec it produces."""

    app: AppSpec
    new_app: AppSpec
    image: ImageSpec
    env: EnvSpec
    user: str
    record: approvals.PromotionRecord | None = None  # written when the target is protected

    @property
    def previous_digest(self) -> str | None:
        """The digest the target runs now."""
        return digest_of(self.app)

    @property
    def previous_ref(self) -> str:
        """The image the target runs now, as a reference."""
        return self.app.image.ref if self.app.image else "(none)"


def refuse(ctx: Context, promotion: Promotion, message: str, hint: str | None = None) -> Refused:
    """Audit a refusal and return the error to raise."""
    audit(ctx, "hotfix" if promotion.hotfix else "promote", target=
          f"{promotion.target}/{promotion.app}", result="refused", reason=message)
    return Refused(message, field=promotion.app, hint=hint)


def source_image(ctx: Context, root: Path, promotion: Promotion) -> tuple[ImageSpec, str]:
    """The image to promote (from the source spec, or the hot-fix --image) and where it
    comes from."""
    if promotion.hotfix or (promotion.image and not promotion.source):
        if not promotion.image:
            raise BadInput("a hot-fix needs --image REPOSITORY@DIGEST or :TAG", field="--image")
        from pipelinelib import imageref

        ref = imageref.parse(promotion.image, "--image")
        return ImageSpec(ref.name, ref.tag, ref.digest), "hot-fix" if promotion.hotfix else \
            "build"
    if not promotion.source:
        raise BadInput("say where the image comes from", field="--from",
                       expected="the source environment")
    source = load_environment(environment_path(root, promotion.source), root=root)
    app = source.apps.get(promotion.app)
    if app is None:
        raise BadInput(f"{promotion.source} has no app {promotion.app!r}", field="APP",
                       source=source.source, expected="one of " + ", ".join(sorted(source.apps)))
    if app.image is None:  # its chart/manifests (or images:) name the images
        raise BadInput(f"{promotion.app} in {promotion.source} has no image of its own to "
                       "promote", field="APP", source=source.source,
                       expected="an app with image: (promotion moves that digest)")
    return app.image, promotion.source


def resolve(ctx: Context, root: Path, promotion: Promotion, policy: Policy,
            evidence: ImageEvidence, check_approval: bool = True) -> Resolved:
    """Every check before the write; ``Refused``/``BadInput`` say what is wrong.
    ``check_approval=False``: the caller checks four eyes (a whole-set approval)."""
    rules = policy.env(promotion.target)
    try:
        user = identity(ctx, rules, promotion.target)
    except Refused as exc:
        audit(ctx, "promote", target=f"{promotion.target}/{promotion.app}", result="refused",
              reason=exc.message)
        raise
    allowed = rules.hotfix if promotion.hotfix else rules.promote
    if not policy.holds(user, allowed):
        what = "hot-fix" if promotion.hotfix else "promote into"
        role = "hotfix" if promotion.hotfix else "promote"
        raise refuse(ctx, promotion, f"{user} may not {what} {promotion.target}",
                     hint=f"ask someone in {policy.source} environments.{promotion.target}.{role}")
    if promotion.hotfix and not promotion.reason.strip():
        raise BadInput("a hot-fix needs a reason", field="--reason",
                       expected="why this cannot wait for the normal path")
    target = load_environment(environment_path(root, promotion.target), root=root)
    if not promotion.hotfix and not promotion.source and not target.branch:
        raise refuse(ctx, promotion, f"{promotion.target} is not a branch environment: new "
                     "builds reach it only by promotion", hint="use --from ENV")
    if not promotion.hotfix and promotion.source and target.promote_from and \
            promotion.source not in target.promote_from:
        raise refuse(ctx, promotion, f"{promotion.target} takes promotions only from "
                     f"{', '.join(target.promote_from)}, not {promotion.source}")
    current = target.apps.get(promotion.app)
    if current is None:
        raise BadInput(f"{promotion.target} has no app {promotion.app!r}", field="APP",
                       source=target.source, expected="an app of the target environment")
    image, _origin = source_image(ctx, root, promotion)
    image = check_image(ctx, promotion, image, rules.gates, evidence,
                         signed=(rules.guarded or current.protected) and trust_root() is not None)
    new_app = promoted(current, image)
    if check_approval and (rules.four_eyes or current.protected):
        check_fresh_approval(ctx, root, promotion, policy, user, new_app)
    record = None
    if rules.guarded or current.protected:
        record = approvals.PromotionRecord(
            promotion.target, promotion.app, image.digest or "", new_app.fingerprint(), user,
            approvals.now(), ctx.secrets.redact_text(
                ctx.ci.build_url))
        if trust_root() is not None and not ctx.credentials.signing_key:
            raise refuse(ctx, promotion, f"promotions into {promotion.target} are signed and "
                         f"no signing key is set", hint=f"the CI server sets {SIGNING_KEY_ENV} "
                         "to its promotion key (a credential), or yours")
    return Resolved(current, new_app, image, target, user, record)


def sign_record(record: Any, namespace: str, key: str | None) -> Any:
    """``record`` with its SSH signature by ``key`` (the context's
    ``credentials.signing_key``, ``PIPELINE_SIGNING_KEY``); unsigned without a key (an
    unsigned record never passes ``promotion.enforce``)."""
    if not key:
        return record
    record = dataclasses.replace(record, signature="")
    return dataclasses.replace(record, signature=sign(approvals.signed_bytes(record), key,
                                                      namespace))


def promoted(current: AppSpec, image: ImageSpec) -> AppSpec:
    """The target app as ``edit_target`` writes it: the new image's fields, and the current
    ones where the new image has none (a hot-fix by digest keeps the tag line)."""
    old = current.image
    if old is None:
        return dataclasses.replace(current, image=image)
    return dataclasses.replace(current, image=ImageSpec(
        image.repository or old.repository, image.tag or old.tag, image.digest or old.digest,
        image.revision or old.revision, image.version or old.version))


def check_image(ctx: Context, promotion: Promotion, image: ImageSpec,
                required: Sequence[str], evidence: ImageEvidence,
                signed: bool = False) -> ImageSpec:
    """The image exists at its digest, passed its gates; ``signed``: the image and its
    recorded results carry valid signatures by the attestation key (protected targets)."""
    host, path = image.registry_and_path
    registry = ctx.registry(host)
    digest = registry.manifest_digest(path, image.digest or image.tag or "")
    if digest is None:
        raise refuse(ctx, promotion, f"the registry has no image {image.ref}",
                     hint="promote an image that was pushed (build it first)")
    if image.digest and digest != image.digest:
        raise refuse(ctx, promotion, f"{image.ref} resolves to another digest ({digest})")
    labels = registry.labels(path, digest)
    revision = labels.get("org.opencontainers.image.revision") or image.revision
    version = labels.get("org.opencontainers.image.version") or image.version
    if signed:
        try:
            evidence.verify_image(ctx, image.repository, digest, registry=registry)
        except Refused as exc:
            raise refuse(ctx, promotion, exc.message, hint=exc.hint) from exc
    check_gates(ctx, promotion, image.repository, digest, labels, required, evidence, signed)
    return ImageSpec(image.repository, image.tag, digest, revision, version)


GATE_KINDS = ("scan", "gate")


def check_gates(ctx: Context, promotion: Promotion, image: str, digest: str,
                labels: dict[str, str], required: Sequence[str], evidence: ImageEvidence,
                signed: bool = False) -> None:
    """Every recorded gate result (scan, gate) must have passed, the policy's required ones
    must exist, and the image must come from the build job (its revision label)."""
    if "org.opencontainers.image.revision" not in labels:
        raise refuse(ctx, promotion, f"{image}@{digest[:19]} was not built by the build job "
                     "(no revision label)", hint="promote images built by `pipeline build`")
    recorded: dict[str, dict[str, Any]] = {}
    if "/" in image:
        for kind in sorted(set(GATE_KINDS) | set(required)):
            try:
                payload = evidence.read_attestation(ctx, image, digest, kind,
                                                    require_signed=signed)
            except Refused as exc:  # forged, altered or unsigned: never trusted
                raise refuse(ctx, promotion, exc.message, hint=exc.hint) from exc
            if payload is not None:
                recorded[kind] = payload
    for kind, payload in sorted(recorded.items()):
        if not payload.get("passed"):
            raise refuse(ctx, promotion, f"the {kind} gate failed for {digest[:19]}",
                         hint=f"see the recorded {kind} result; fix and build again")
    for kind in required:
        if kind not in recorded:
            raise refuse(ctx, promotion, f"no {kind} result is recorded for {digest[:19]} "
                         f"({promotion.target} requires it)", hint=f"run `pipeline {kind}` "
                         "for this image first")



def check_approver(ctx: Context, promotion: Promotion, policy: Policy, user: str,
                   approval: ApprovalT | None, missing: str, hint: str) -> ApprovalT:
    """Four eyes: ``approval`` (one app's or a set's) exists, else refuse with ``missing``,
    and was given by someone other than ``user`` who holds the target's approve role."""
    if approval is None:
        raise refuse(ctx, promotion, missing, hint=hint)
    approved_by = approval.approved_by
    if approved_by == user:
        raise refuse(ctx, promotion, f"{user} cannot approve their own promotion (four eyes)",
                     hint=hint)
    if not policy.holds(approved_by, policy.env(promotion.target).approve):
        raise refuse(ctx, promotion, f"approver {approved_by} does not hold the approve "
                     f"role of {promotion.target}", hint=hint)
    return approval

def check_fresh_approval(ctx: Context, root: Path, promotion: Promotion, policy: Policy,
                         user: str, new_app: AppSpec) -> None:
    """Four eyes on one app: an approval by someone else, of exactly this digest and spec."""
    found = approvals.read_approval(root, promotion.target, promotion.app)
    hint = (f"someone else in environments.{promotion.target}.approve runs `pipeline promote "
            f"{promotion.app} --to {promotion.target} --approve ...`")
    found = check_approver(ctx, promotion, policy, user, found,
                           f"{promotion.target} needs a second person's approval (four eyes) "
                           f"and there is none for {promotion.app}", hint)
    if found.fingerprint != new_app.fingerprint():
        what = ("the digest changed" if found.digest != digest_of(new_app)
                else "the spec changed")
        raise refuse(ctx, promotion, f"the approval by {found.approved_by} is stale: {what} "
                     "since it was given", hint=hint)


def edit_target(root: Path, resolved: Resolved, promotion: Promotion,
                signing_key: str | None) -> list[str]:
    """Write the new image into the target file; returns the paths written."""
    rel = f"environments/{promotion.target}.yaml"
    path = root / rel
    text = path.read_text(encoding="utf-8")
    new = text
    base = ("apps", promotion.app, "image")
    image = resolved.image
    for field, value in (("repository", image.repository), ("tag", image.tag),
                         ("digest", image.digest), ("revision", image.revision),
                         ("version", image.version)):
        if value:
            new = yamlines.set_value(new, (*base, field), value)
    written = []
    if new != text:
        path.write_text(new, encoding="utf-8")
        written.append(rel)
    rel_hotfix = hotfix.hotfix_path(promotion.target, promotion.app)
    if (root / rel_hotfix).is_file() and not promotion.hotfix:
        (root / rel_hotfix).unlink()
        written.append(rel_hotfix)
    if written and resolved.record is not None:  # who made this change, signed
        landed = load_environment(path, root=root).apps[promotion.app]  # as written
        record = dataclasses.replace(resolved.record, fingerprint=landed.fingerprint(),
                                     content=content_hash(root, landed))
        written.append(approvals.write_promotion(root, sign_record(record, NS_PROMOTION,
                                                                   signing_key)))
    if promotion.hotfix and written:
        written.append(hotfix.write_hotfix(
            root, promotion.target, promotion.app, reason=promotion.reason,
            fix_commit=image.revision or promotion.fix_commit or "",
            source_repo=promotion.source_repo or "", main_branch=promotion.main_branch,
            image=image.ref, by=resolved.user))
    return written


def commit_message(ctx: Context, resolved: Resolved, promotion: Promotion,
                   approver: str | None) -> str:
    kind = "hot-fix" if promotion.hotfix else ("promote" if promotion.source else "deploy")
    origin = (f"from {promotion.source}" if promotion.source else
              "hot-fix build" if promotion.hotfix else "new build")
    lines = [f"{kind} {promotion.app} to {promotion.target}: {resolved.image.digest} ({origin})",
             "", f"App: {promotion.app}", f"From: {promotion.source or '-'}",
             f"To: {promotion.target}", f"Image: {resolved.image.ref}",
             f"Previous: {resolved.previous_ref}"]
    if resolved.image.revision:
        lines.append(f"Revision: {resolved.image.revision}")
    lines.append(f"Promoted-by: {resolved.user} ({ctx.ci.provider}"
                 + (f", {ctx.ci.build_url})" if ctx.ci.build_url else ")"))
    if approver:
        lines.append(f"Approved-by: {approver}")
    if promotion.hotfix:
        lines.append(f"Hotfix: {promotion.reason}")
    return ctx.secrets.redact_text("\n".join(lines) + "\n")


def promotion_event_id(commit: str) -> str:
    """The audit event id of the promotion that made ``commit`` (the same on a re-run)."""
    import uuid

    return uuid.uuid5(uuid.NAMESPACE_URL, f"pipelinelib:promote:{commit}").hex


def complete_audit(ctx: Context, state: EnvStateRepo, promotion: Promotion, digest: str,
                   target: str) -> None:
    """Nothing to promote, and this very CI build made the commit that did it: a run killed
    after its push and before its audit event. Record the event it owes (once: its id comes
    from that commit, so a later re-run finds it there)."""
    last = state.last_commit(f"environments/{promotion.target}.yaml")
    build = ctx.ci.build_url
    if not last or not build or f", {ctx.secrets.redact_text(build)})" not in last["message"]:
        return
    audit(ctx, "promote", target=target, result="done", reason=promotion.reason,
          digest=digest, source=promotion.source or "", commit=last["sha"], approved_by="",
          event_id=promotion_event_id(last["sha"]))


def check_signing_key(ctx: Context, promotion: Promotion, user: str) -> None:
    """An approval is signed with the approver's own key: with a trust root, the key in
    ``PIPELINE_SIGNING_KEY`` must belong to ``user`` (refused otherwise)."""
    trust = trust_root()
    if trust is None:
        return
    key = ctx.credentials.signing_key
    if not key:
        raise refuse(ctx, promotion, f"approvals of {promotion.target} are signed with the "
                     "approver's own key and none is set", hint=f"set {SIGNING_KEY_ENV} to "
                     "your SSH private key (its public key is in the trust root)")
    owner = trust.principal_of_key(key, NS_APPROVAL)
    if owner != user:
        raise refuse(ctx, promotion, f"the signing key is {owner or 'no allowed signer'}'s, "
                     f"not {user}'s: an approval is signed by the approver",
                     hint="use your own key")


def commit_promotion(ctx: Context, state: EnvStateRepo, promotion: Promotion,
                     resolved: Resolved, approver: str | None,
                     evidence: ImageEvidence) -> Commit | None:
    """Commit and push the promotion; the edit is re-resolved on the freshest head (another
    promotion may have landed meanwhile). None when nothing changed."""

    def edit(root: Path) -> list[str]:
        again = resolve(ctx, root, promotion, load_policy(root), evidence)
        return edit_target(root, again, promotion, ctx.credentials.signing_key)

    return state.commit_change(edit, commit_message(ctx, resolved, promotion, approver),
                               author=(resolved.user, f"{resolved.user}@ci"))


def audit_promotion(ctx: Context, promotion: Promotion, resolved: Resolved,
                    commit: Commit | None, approver: str | None) -> None:
    """The promotion's audit event (its id comes from the commit: the same on a re-run)."""
    audit(ctx, "hotfix" if promotion.hotfix else "promote",
          target=f"{promotion.target}/{promotion.app}", result="done",
          reason=promotion.reason, digest=resolved.image.digest, source=promotion.source or "",
          commit=commit.sha if commit else "", approved_by=approver or "",
          event_id=promotion_event_id(commit.sha) if commit else "")


def approver_of(root: Path, promotion: Promotion, policy: Policy,
                resolved: Resolved) -> str | None:
    """Who approved this promotion, where four eyes apply (for the commit message)."""
    found = approvals.read_approval(root, promotion.target, promotion.app)
    if found and (policy.env(promotion.target).four_eyes or resolved.app.protected):
        return found.approved_by
    return None


def approval_record(ctx: Context, root: Path, promotion: Promotion, policy: Policy,
                    evidence: ImageEvidence) -> tuple[approvals.Approval, ImageSpec, str]:
    """Every check of an approval (the approver holds the role, the image and its gates,
    the approver's own signing key): the record it writes (unsigned yet), the image, and
    the approver."""
    rules = policy.env(promotion.target)
    user = identity(ctx, rules, promotion.target)
    if not policy.holds(user, rules.approve):
        raise refuse(ctx, promotion, f"{user} may not approve promotions into "
                     f"{promotion.target}")
    target = load_environment(environment_path(root, promotion.target), root=root)
    current = target.apps.get(promotion.app)
    if current is None:
        raise BadInput(f"{promotion.target} has no app {promotion.app!r}", field="APP")
    image, _ = source_image(ctx, root, promotion)
    image = check_image(ctx, promotion, image, rules.gates, evidence)
    new_app = promoted(current, image)
    check_signing_key(ctx, promotion, user)
    record = approvals.new_approval(ctx, promotion.target, promotion.app, image.digest or "",
                                    new_app.fingerprint())
    record.content = content_hash(root, new_app)
    return record, image, user


def approval_recorded(ctx: Context, root: Path, promotion: Promotion,
                      record: approvals.Approval, user: str) -> bool:
    """The same approval by the same person is already there (signed, when keys are set)."""
    existing = approvals.read_approval(root, promotion.target, promotion.app)
    return bool(existing and (existing.fingerprint, existing.content, existing.approved_by)
                == (record.fingerprint, record.content, user) and (
                    existing.signature or not ctx.credentials.signing_key))


def commit_approval(ctx: Context, state: EnvStateRepo, promotion: Promotion,
                    record: approvals.Approval, image: ImageSpec, user: str) -> Commit | None:
    """Sign, commit and push ``user``'s approval; audited."""
    signed = sign_record(record, NS_APPROVAL, ctx.credentials.signing_key)
    commit = state.commit_change(
        lambda root: [approvals.write_approval(root, signed)],
        f"approve {promotion.app} to {promotion.target}: {image.digest}\n\n"
        f"Approved-by: {user} ({ctx.ci.provider})\n", author=(user, f"{user}@ci"))
    audit(ctx, "approve", target=f"{promotion.target}/{promotion.app}", result="done",
          digest=image.digest or "", commit=commit.sha if commit else "")
    return commit
