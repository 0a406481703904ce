"""Four eyes: a second person approves one exact promotion (app, digest, resulting spec).

An approval lives in the env-state repo as ``approvals/<env>/<app>.yaml`` and names the
fingerprint of the target app's spec *after* the promotion. If the digest or the spec
changes afterwards, the fingerprint no longer matches: the approval is stale. It stays in
the repository after the promotion: the deploy (``promotion.enforce``) checks it again. A
whole-environment promotion is approved once for its whole set:
``approvals/<env>/_set.yaml`` (``SetApproval``).

Each record carries an SSH ``signature`` (``promotion.trust``) over every other field
(``signed_bytes``): an approval by the approver's own key, a promotion record
(``promotions/<env>/<app>.yaml``, ``PromotionRecord``) by the promoter's key or the CI
server's. Writers of the repository can copy records but not make or alter one.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from pipelinelib import yamlsafe

APPROVALS_DIR = "approvals"


@dataclass
class Approval:
    app: str
    env: str
    digest: str
    fingerprint: str
    approved_by: str
    at: str
    build_url: str = ""
    content: str = ""  # hash of the app's local chart/manifests files (enforce.content_hash)
    signature: str = ""


def signed_bytes(record: Any) -> bytes:
    """What a record's signature covers: every field but the signature, canonical JSON."""
    data = {k: v for k, v in asdict(record).items() if k != "signature"}
    data["kind"] = type(record).__name__
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def approval_path(env: str, app: str) -> str:
    return f"{APPROVALS_DIR}/{env}/{app}.yaml"


def read_approval(root: Path, env: str, app: str) -> Approval | None:
    path = root / approval_path(env, app)
    if not path.is_file():
        return None
    data = yamlsafe.safe_load(path, mapping=True) or {}
    try:
        return Approval(**{k: str(v) for k, v in data.items()})
    except (TypeError, AttributeError):
        return None


def write_approval(root: Path, approval: Approval) -> str:
    rel = approval_path(approval.env, approval.app)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(approval.__dict__, sort_keys=True))
    return rel


def now() -> str:
    """Now, UTC, to the second (ISO 8601): when a record was made."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def new_approval(ctx: Any, env: str, app: str, digest: str, fingerprint: str) -> Approval:
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    return Approval(app, env, digest, fingerprint, ctx.ci.user, now, ctx.ci.build_url)


# A whole-environment promotion (several apps at once) is approved as one set: one file per
# target environment naming every member's digest and resulting spec fingerprint. If any
# member changes (digest, spec, or the set itself), the approval is stale.
SET_FILE = "_set.yaml"  # app names are DNS labels: no app can be called "_set"


@dataclass
class SetApproval:
    env: str
    source: str
    members: dict[str, dict[str, str]]  # app -> {digest, fingerprint[, content]}
    approved_by: str
    at: str
    build_url: str = ""
    signature: str = ""


def set_approval_path(env: str) -> str:
    return f"{APPROVALS_DIR}/{env}/{SET_FILE}"


def read_set_approval(root: Path, env: str) -> SetApproval | None:
    path = root / set_approval_path(env)
    if not path.is_file():
        return None
    data = yamlsafe.safe_load(path, mapping=True) or {}
    try:
        members = {str(app): {str(k): str(v) for k, v in m.items()}
                   for app, m in (data.pop("members") or {}).items()}
        if any("digest" not in m or "fingerprint" not in m for m in members.values()):
            return None
        return SetApproval(members=members, **{k: str(v) for k, v in data.items()})
    except (TypeError, KeyError, AttributeError):
        return None


def write_set_approval(root: Path, approval: SetApproval) -> str:
    rel = set_approval_path(approval.env)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(approval.__dict__, sort_keys=True))
    return rel


def new_set_approval(ctx: Any, env: str, source: str,
                     members: dict[str, dict[str, str]]) -> SetApproval:
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    return SetApproval(env, source, members, ctx.ci.user, now, ctx.ci.build_url)


# The promotion itself, signed: who made this change (the "author" four eyes compares the
# approver with). Written by `pipeline promote` in the promotion commit.
PROMOTIONS_DIR = "promotions"


@dataclass
class PromotionRecord:
    env: str
    app: str
    digest: str
    fingerprint: str
    promoted_by: str
    at: str
    build_url: str = ""
    content: str = ""
    signature: str = ""


def promotion_path(env: str, app: str) -> str:
    return f"{PROMOTIONS_DIR}/{env}/{app}.yaml"


def read_promotion(root: Path, env: str, app: str) -> PromotionRecord | None:
    path = root / promotion_path(env, app)
    if not path.is_file():
        return None
    data = yamlsafe.safe_load(path, mapping=True) or {}
    try:
        return PromotionRecord(**{k: str(v) for k, v in data.items()})
    except (TypeError, AttributeError):
        return None


def write_promotion(root: Path, record: PromotionRecord) -> str:
    rel = promotion_path(record.env, record.app)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(asdict(record), sort_keys=True))
    return rel
