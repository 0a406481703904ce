"""Image references: the immutable name scheme and the docker reference grammar.

Seed 003 names every image
``{container-namespace}/{project-namespace}-{container-name}:{git-hash}``,
e.g. ``littleman-co/git-littleman-co-nginx:a4945f8``, optionally behind a registry
host (``127.0.0.1:5001/littleman-co/...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelinelib.errors import BadInput

# distribution/reference grammar (lower-case path components, tags, digests)
COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?")
MAX_NAME = 255


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference: ``[registry/]repository[:tag][@digest]``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository`` (or just the repository without a registry)."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    def with_digest(self, digest: str) -> ImageRef:
        return ImageRef(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse(reference: str, source: str = "image reference") -> ImageRef:
    """Parse and validate ``reference``; ``BadInput`` says what part is wrong."""

    def bad(message: str, expected: str) -> BadInput:
        return BadInput(f"{reference!r}: {message}", source=source, expected=expected)

    rest, digest = reference, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not DIGEST.fullmatch(digest):
            raise bad("invalid digest", "sha256: and 64 lower-case hex digits")
    tag = None
    slash = rest.rfind("/")
    if ":" in rest[slash + 1 :]:
        rest, tag = rest.rsplit(":", 1)
        if not TAG.fullmatch(tag):
            raise bad(
                f"invalid tag {tag!r}", "up to 128 of A-Z a-z 0-9 _ . - not starting with . or -"
            )
    parts = rest.split("/")
    registry = ""
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry = parts.pop(0)
        if not HOST.fullmatch(registry):
            raise bad(f"invalid registry host {registry!r}", "host[:port]")
    if not parts or not all(COMPONENT.fullmatch(p) for p in parts):
        raise bad(
            "invalid repository name", "lower-case path components of a-z 0-9 separated by . _ __ -"
        )
    repository = "/".join(parts)
    if len(repository) > MAX_NAME:
        raise bad("repository name too long", f"at most {MAX_NAME} characters")
    return ImageRef(registry, repository, tag, digest)


@dataclass(frozen=True)
class ImageName:
    """The seed-003 naming scheme's parts, validated on construction."""

    container_namespace: str
    project_namespace: str
    container_name: str
    registry: str = ""
    source: str = "image name"

    def __post_init__(self) -> None:
        for field, value in (
            ("CONTAINER_NAMESPACE", self.container_namespace),
            ("PROJECT_NAMESPACE", self.project_namespace),
            ("CONTAINER_NAME", self.container_name),
        ):
            if not value or not COMPONENT.fullmatch(value):
                raise BadInput(
                    f"{value!r} cannot be part of an image name",
                    source=self.source,
                    field=field,
                    expected="lower-case letters and digits, separated by . _ or -",
                )
        if self.registry and not HOST.fullmatch(self.registry):
            raise BadInput(
                f"{self.registry!r} is not a registry address",
                source=self.source,
                field="REGISTRY",
                expected="host[:port], e.g. 127.0.0.1:5001",
            )

    @property
    def repository(self) -> str:
        """``{container-namespace}/{project-namespace}-{container-name}``."""
        return f"{self.container_namespace}/{self.project_namespace}-{self.container_name}"

    def ref(self, tag: str) -> ImageRef:
        """The full reference for ``tag``, validated."""
        if not TAG.fullmatch(tag):
            raise BadInput(
                f"{tag!r} is not a valid image tag",
                source=self.source,
                field="tag",
                expected="up to 128 of A-Z a-z 0-9 _ . - not starting with . or -",
            )
        return ImageRef(self.registry, self.repository, tag)


def tag_for_branch(branch: str) -> str:
    """A valid tag for a branch name (``feature/Login`` -> ``feature-login``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", branch).strip(".-").lower()
    return cleaned[:128] or "branch"
