"""Deployment tags: ``deployment-0001`` (or ``deployment-live-0001``) on each deployed commit.

An annotated tag whose message is a one-line summary, a blank line, then ``key: value``
fields: deployment_id, environment, commit, digest, actor, build_url, time, result.

Numbering when jobs race: fetch the tags, take max+1, create the tag and push it with a
lease that says "must not exist yet". The loser of a race is rejected, drops its local tag,
re-fetches and takes the next number (bounded attempts). Idempotency: when any
tag already carries this deployment id (commit + environment + CI build), nothing is written.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from pipelinelib.adapters.git_repo import PushRejected
from pipelinelib.adapters.protocols import GitRepository, RefRecord
from pipelinelib.errors import StepFailed
from pipelinelib.records import format as fmt

TAG_GLOB = "refs/tags/deployment-*"
TAG_MESSAGE_KEYS = ("deployment_id", "environment", "commit", "digest", "actor", "build_url",
                    "time", "result")
MAX_ATTEMPTS = 12


def deployment_id(commit: str, environment: str, build: str) -> str:
    """The id that makes a re-run of the same deployment recognisable (16 hex digits).

    ``build`` names the CI build (its URL, or job#number); without one, the image digest.
    """
    return hashlib.sha256(f"{commit}\n{environment}\n{build}".encode()).hexdigest()[:16]


def tag_prefix(environment: str | None) -> str:
    """``deployment-`` (numbers per repository) or ``deployment-<env>-`` (per environment)."""
    return f"deployment-{environment}-" if environment else "deployment-"


def tag_number(name: str, prefix: str) -> int | None:
    """The number in ``name`` when it belongs to ``prefix``'s series, else None."""
    match = re.fullmatch(re.escape(prefix) + r"(\d{4,})", name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class DeploymentTag:
    """One deployment tag as read back from git."""

    name: str
    commit: str
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_ref(cls, ref: RefRecord) -> DeploymentTag:
        _, _, body = ref.message.partition("\n\n")
        fields = fmt.load(body) if body.strip() else {}
        return cls(ref.name.removeprefix("refs/tags/"), ref.commit, fields)

    @property
    def environment(self) -> str:
        return str(self.fields.get("environment", ""))

    @property
    def deployment_id(self) -> str:
        return str(self.fields.get("deployment_id", ""))

    def number(self, prefix: str) -> int | None:
        return tag_number(self.name, prefix)


def read_tags(repo: GitRepository) -> list[DeploymentTag]:
    """Every local deployment tag (call ``repo.fetch([TAGS_REFSPEC])`` first)."""
    return [DeploymentTag.from_ref(ref) for ref in repo.refs(TAG_GLOB)
            if ref.name.startswith("refs/tags/deployment-")]


def tag_message(name: str, fields: dict[str, Any]) -> str:
    """The tag message: summary line, blank line, the fields (already cleaned)."""
    summary = f"{fmt.ANNOTATIONS['success']}: {fields.get('environment', '')} ({name})"
    return f"{summary}\n\n{fmt.dump(fields)}"


@dataclass(frozen=True)
class TagOutcome:
    """What ``ensure_deployment_tag`` did (or would do, in a dry run)."""

    name: str
    changed: bool
    attempts: int = 1


def ensure_deployment_tag(repo: GitRepository, fields: dict[str, Any], *,
                          per_environment: bool = False, dry_run: bool = False,
                          attempts: int = MAX_ATTEMPTS) -> TagOutcome:
    """Tag ``fields['commit']`` with the next deployment number and push it (see module doc).

    ``fields`` must already be cleaned (``format.clean``); it holds TAG_MESSAGE_KEYS.
    """
    environment, commit = fields["environment"], fields["commit"]
    if not fields.get("deployment_id"):
        raise ValueError("fields need a deployment_id")
    prefix = tag_prefix(environment if per_environment else None)
    for attempt in range(1, attempts + 1):
        repo.fetch([fmt.TAGS_REFSPEC])
        tags = read_tags(repo)
        done = [t for t in tags if t.deployment_id == fields["deployment_id"]]
        if done:  # a re-run of a deployment that is already tagged
            return TagOutcome(done[0].name, changed=False, attempts=attempt)
        number = max((n for t in tags if (n := t.number(prefix)) is not None), default=0) + 1
        name = f"{prefix}{number:04d}"
        if dry_run:
            return TagOutcome(name, changed=True, attempts=attempt)
        ref = f"refs/tags/{name}"
        repo.create_tag(name, commit, tag_message(name, fields))
        try:
            repo.push_cas([(ref, ref, None)])
        except PushRejected:
            repo.delete_local_ref(ref)  # another job took this number: re-read, take the next
            fmt.backoff(attempt)
            continue
        return TagOutcome(name, changed=True, attempts=attempt)
    raise StepFailed(f"could not allocate a deployment number after {attempts} attempts",
                     cause="other jobs kept taking the next number first",
                     hint="re-run the job; it converges once the race is over")
