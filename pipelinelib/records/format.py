"""The small ``key: value`` documents records are written as (tag messages, notes).

Everything that leaves the process here passes ``clean``: secret values are masked
(``Secrets.redact``), credentials in URLs are dropped, and secret-looking query
parameters are masked.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import time
from typing import Any

import yaml

from pipelinelib import yamlsafe
from pipelinelib.errors import BadInput
from pipelinelib.secrets import Secrets, clean_url

NOTES_REF = "refs/notes/pipelinelib-state"
# The remote's notes are fetched into a tracking ref; the local notes ref is rebuilt on top.
NOTES_TRACKING_REF = "refs/pipelinelib/remote/notes-state"
# (a one-ref pattern: fetching a ref the remote does not have yet is then no error)
NOTES_REFSPEC = f"+{NOTES_REF}*:{NOTES_TRACKING_REF}*"
# Deployment tags are mirrored exactly (pruned: a local tag that lost a race disappears).
TAGS_REFSPEC = "+refs/tags/deployment-*:refs/tags/deployment-*"
ENVIRONMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
RESULTS = ("success", "failure")
ANNOTATIONS = {"success": "Successfully Deployed", "failure": "Failed Deployment"}


def utc_now() -> str:
    """Now, as an ISO-8601 UTC timestamp with seconds (``2026-11-22T10:00:00Z``)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO timestamp (as written by ``utc_now``) as an aware datetime, or None."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def clean(fields: dict[str, Any], secrets: Secrets) -> dict[str, Any]:
    """``fields`` fit to be written anywhere: URLs cleaned, secrets masked."""
    out = {k: clean_url(v) if k.endswith("url") and isinstance(v, str) else v
           for k, v in fields.items()}
    return secrets.redact(out)


def dump(fields: dict[str, Any]) -> str:
    """Fields as a YAML block, in insertion order (so ``state:`` can be the first line)."""
    return yaml.safe_dump(fields, sort_keys=False, default_flow_style=False,
                          allow_unicode=True, width=1000)


def load(text: str) -> dict[str, Any]:
    """Parse a YAML block written by ``dump``; hand-written ``key: value`` lines also work."""
    try:
        data = yamlsafe.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        return {str(k): v for k, v in data.items()}
    fields: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            fields.setdefault(key.strip(), value.split("//")[0].strip())
    return fields


def check_environment(environment: str, field: str = "--env") -> str:
    """The environment name, or BadInput."""
    if not ENVIRONMENT.match(environment or ""):
        raise BadInput(f"invalid environment {environment!r}", field=field,
                       expected="lower-case letters, digits and '-', e.g. live")
    return environment


def check_digest(digest: str, field: str = "--image-digest") -> str:
    """The image digest (may be empty), or BadInput."""
    if digest and not DIGEST.match(digest):
        raise BadInput("invalid image digest", field=field, expected="sha256:<64 hex digits>")
    return digest


def backoff(attempt: int, base: float = 0.05, cap: float = 1.0) -> None:
    """Sleep a little before retrying a lost compare-and-swap race (jittered)."""
    time.sleep(random.uniform(0, min(cap, base * 2 ** attempt)))  # noqa: S311
