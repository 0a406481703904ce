"""What to build: an app directory, its env file and git revision, validated up front.

The env file is the single source of the app's variable information (seed 003).
Keys pipelinelib reads from it:

=====================  =====================================================  ==============
key                    meaning                                                default
=====================  =====================================================  ==============
CONTAINER_NAMESPACE    vendor name all containers are part of                 (required)
PROJECT_NAMESPACE      unique name of the application, usually the FQDN       (required)
CONTAINER_NAME         the container's name within the project                (required)
REGISTRY               registry host[:port] to push to                        (none: local)
APP_VERSION            semantic version of this release                       git tag vX.Y.Z
HASH_LENGTH            length of the git-hash tag                             7
DOCKERFILE             Dockerfile path relative to the app directory          Dockerfile
BUILD_NETWORK          network for RUN steps (``none``, ``host``)              engine default
ASSETS_DIR             static assets to fingerprint (cache busting)           (none)
ASSETS_OUT             where fingerprinted assets and the manifest go         build/ + dir
ASSETS_ENTRYPOINTS     files copied unhashed, with references rewritten       index.html
SMOKE_HTTP_PORT        port the container serves on (host network)            (no HTTP probe)
SMOKE_HTTP_PATH        path probed for a 2xx answer                           /
SMOKE_COMMAND          a command run in the image that must exit 0            (none)
=====================  =====================================================  ==============
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipelinelib.envfile import EnvFile
from pipelinelib.errors import BadInput
from pipelinelib.imageref import ImageName, ImageRef, tag_for_branch
from pipelinelib.secrets import clean_url

if TYPE_CHECKING:
    from pipelinelib.context import Context

SEMVER_TAG = re.compile(r"v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)")
OCI = "org.opencontainers.image."


@dataclass(frozen=True)
class SmokeProbe:
    """How to check a freshly built image works before it is pushed."""

    http_port: int | None = None
    http_path: str = "/"
    command: list[str] = field(default_factory=list)
    timeout_s: float = 30.0

    @property
    def enabled(self) -> bool:
        return self.http_port is not None or bool(self.command)


@dataclass(frozen=True)
class AssetSpec:
    """Static assets to fingerprint: source dir, output dir, unhashed entry points."""

    source: Path
    output: Path
    entrypoints: tuple[str, ...]


@dataclass(frozen=True)
class BuildSpec:
    """Everything the build, tag, push and smoke steps need, already validated."""

    app_dir: Path
    env: EnvFile
    name: ImageName
    revision: str
    hash_tag: str
    version: str
    dockerfile: str
    extra_tags: tuple[str, ...] = ()
    mutable_tags: tuple[str, ...] = ()
    source_url: str = ""
    network_mode: str | None = None
    assets: AssetSpec | None = None
    smoke: SmokeProbe = SmokeProbe()

    @property
    def ref(self) -> ImageRef:
        """The immutable reference: ``{ns}/{project}-{container}:{git-hash}``."""
        return self.name.ref(self.hash_tag)

    @property
    def all_tags(self) -> tuple[str, ...]:
        return (self.hash_tag, *self.extra_tags, *self.mutable_tags)

    def labels(self, created: str) -> dict[str, str]:
        """OCI labels plus the env file's non-secret values."""
        labels = self.env.labels()
        labels.update(
            {
                f"{OCI}revision": self.revision,
                f"{OCI}source": self.source_url,
                f"{OCI}created": created,
                f"{OCI}version": self.version,
                f"{OCI}title": self.name.container_name,
                "io.pipelinelib.image": self.name.repository,
            }
        )
        return {k: v for k, v in labels.items() if v}

    def build_args(self) -> dict[str, str]:
        """Build args: non-secret env values only (build args are visible in image history)."""
        return {**self.env.public(), "GIT_REVISION": self.revision, "APP_VERSION": self.version}


def load(
    ctx: Context,
    app_dir: str | Path,
    *,
    env_file: str | None = None,
    revision: str | None = None,
    registry: str | None = None,
    hash_length: int | None = None,
    branch_tag: bool = False,
    allow_dirty: bool = False,
) -> BuildSpec:
    """Read and validate everything about a build; raise ``BadInput`` before any write."""
    app = Path(app_dir)
    if not app.is_dir():
        raise BadInput("app directory not found", source=str(app), expected="a directory")
    env = EnvFile.load(env_file or app / "release.env")
    source = env.path
    name = ImageName(
        env.require("CONTAINER_NAMESPACE", "the vendor namespace, e.g. littleman-co"),
        env.require("PROJECT_NAMESPACE", "the project's name, e.g. docs-littleman-co"),
        env.require("CONTAINER_NAME", "the container's name, e.g. nginx"),
        registry if registry is not None else env.get("REGISTRY", "") or "",
        source,
    )
    length = hash_length or _int(env, "HASH_LENGTH", 7)
    if not 7 <= length <= 40:
        raise BadInput(
            f"hash length {length} out of range",
            source=source,
            field="HASH_LENGTH",
            expected="7 to 40",
        )
    dockerfile = env.get("DOCKERFILE", "Dockerfile") or "Dockerfile"
    if not (app / dockerfile).is_file():
        raise BadInput(
            f"{app / dockerfile} not found",
            source=source,
            field="DOCKERFILE",
            expected="a Dockerfile in the app directory",
        )
    git = _git_facts(ctx, app, revision, allow_dirty)
    version = env.get("APP_VERSION") or git.semver or git.revision[:length]
    extra = (version,) if (env.get("APP_VERSION") or git.semver) else ()
    mutable = (tag_for_branch(git.branch),) if branch_tag and git.branch else ()
    for tag in (*extra, *mutable):
        name.ref(tag)  # validates the tag
    return BuildSpec(
        app_dir=app,
        env=env,
        name=name,
        revision=git.revision,
        hash_tag=git.revision[:length],
        version=version,
        dockerfile=dockerfile,
        extra_tags=extra,
        mutable_tags=mutable,
        source_url=git.source_url,
        network_mode=env.get("BUILD_NETWORK") or None,
        assets=_assets(app, env),
        smoke=_smoke(env),
    )


@dataclass(frozen=True)
class _GitFacts:
    revision: str
    semver: str = ""
    branch: str = ""
    source_url: str = ""


def _git_facts(ctx: Context, app: Path, revision: str | None, allow_dirty: bool) -> _GitFacts:
    try:
        repo = ctx.git(app, remote=None)
    except BadInput:
        raise BadInput(
            "not inside a git repository",
            source=str(app),
            expected="an app directory in a git work tree (the tag is its commit hash)",
        ) from None
    try:
        commit = repo.resolve(revision or "HEAD")
    except BadInput:
        raise BadInput(
            f"unknown revision {revision or 'HEAD'!r}",
            source=str(app),
            field="revision",
            expected="a commit in this repository",
        ) from None
    if not allow_dirty and revision is None and repo.is_dirty(app):
        raise BadInput(
            "uncommitted changes under the app directory",
            source=str(app),
            expected="a clean work tree, so the image matches its git hash",
            hint="commit or stash them, or pass --allow-dirty",
        )
    semver = ""
    for tag in sorted(repo.tags_at(commit)):
        match = SEMVER_TAG.fullmatch(tag)
        if match:
            semver = match.group(1)
    url = clean_url(repo.remote_url())
    return _GitFacts(commit, semver, repo.branch(), url)


def _int(env: EnvFile, key: str, default: int) -> int:
    raw = env.get(key)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        line = env.entries[key].line
        raise BadInput(
            f"{raw!r} is not a number", source=env.path, line=line, field=key, expected="an integer"
        ) from None


def _assets(app: Path, env: EnvFile) -> AssetSpec | None:
    source = env.get("ASSETS_DIR")
    if not source:
        return None
    src = app / source
    if not src.is_dir():
        raise BadInput(
            "assets directory not found",
            source=env.path,
            field="ASSETS_DIR",
            expected=f"a directory {src}",
        )
    output = app / (env.get("ASSETS_OUT") or f"build/{source}")
    entry = tuple((env.get("ASSETS_ENTRYPOINTS") or "index.html").split(","))
    return AssetSpec(src, output, tuple(e.strip() for e in entry if e.strip()))


def _smoke(env: EnvFile) -> SmokeProbe:
    port = _int(env, "SMOKE_HTTP_PORT", 0) or None
    if port is not None and not 1 <= port <= 65535:
        raise BadInput(
            f"port {port} out of range",
            source=env.path,
            field="SMOKE_HTTP_PORT",
            expected="1 to 65535",
        )
    path = env.get("SMOKE_HTTP_PATH") or "/"
    if not path.startswith("/"):
        raise BadInput(
            f"{path!r} is not a path",
            source=env.path,
            field="SMOKE_HTTP_PATH",
            expected="a path starting with /",
        )
    command = shlex.split(env.get("SMOKE_COMMAND") or "")
    return SmokeProbe(port, path, command, float(_int(env, "SMOKE_TIMEOUT", 30)))
