"""Four eyes: a second person approves one exact promotion (app, digest, resulting spec).

An approval lives in the env-state repo as ``approvals/<env>/<app>.yaml`` and names the
fingerprint of the target app's spec *after* the promotion. If the digest or the spec
changes afterwards, the fingerprint no longer matches: the approval is stale. The
promotion that uses it deletes it in the same commit. A whole-environment promotion is
approved once for its whole set: ``approvals/<env>/_set.yaml`` (``SetApproval``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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


def approval_path(env: str, app: str) -> str:
    return f"{APPROVALS_DIR}/{env}/{app}.yaml"


def read_approval(root: Path, env: str, app: str) -> Approval | None:
    path = root / approval_path(env, app)
    if not path.is_file():
        return None
    data = yamlsafe.safe_load(path, mapping=True) or {}
    try:
        return Approval(**{k: str(v) for k, v in data.items()})
    except TypeError:
        return None


def write_approval(root: Path, approval: Approval) -> str:
    rel = approval_path(approval.env, approval.app)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(approval.__dict__, sort_keys=True))
    return rel


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
    members: dict[str, dict[str, str]]  # app -> {digest, fingerprint}
    approved_by: str
    at: str
    build_url: str = ""


def set_approval_path(env: str) -> str:
    return f"{APPROVALS_DIR}/{env}/{SET_FILE}"


def read_set_approval(root: Path, env: str) -> SetApproval | None:
    path = root / set_approval_path(env)
    if not path.is_file():
        return None
    data = yamlsafe.safe_load(path, mapping=True) or {}
    try:
        members = {str(app): {"digest": str(m["digest"]), "fingerprint": str(m["fingerprint"])}
                   for app, m in (data.pop("members") or {}).items()}
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
