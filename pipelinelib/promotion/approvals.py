"""Four eyes: a second person approves one exact promotion (app, digest, resulting spec).

An approval lives in the env-state repo as ``approvals/<env>/<app>.yaml`` and names the
fingerprint of the target app's spec *after* the promotion. If the digest or the spec
changes afterwards, the fingerprint no longer matches: the approval is stale. The
promotion that uses it deletes it in the same commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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
    data = yaml.safe_load(path.read_text()) or {}
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
