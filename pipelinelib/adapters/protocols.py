"""The seams between steps and the outside systems: small Protocols, one per system.

Steps, pipelines and the concept packages type what they reach through the context
(``ctx.kube``, ``ctx.engine``, ``ctx.registry(host)``, ``ctx.git(path)``,
``ctx.database(dsn)``, ``ctx.ci_server``, ``ctx.audit_sinks``, ``ctx.helm``,
``ctx.scanner(name)``, ``ctx.http``) with these Protocols, never with a concrete adapter
class or a third-party type. Each Protocol lists only the methods callers use; the adapters
in this package satisfy them structurally (no inheritance), and a test may pass any object
that does too.

Every method raises only pipelinelib's own errors (``pipelinelib.errors``): adapters
translate third-party exceptions at this boundary.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pipelinelib.adapters.process import Finished

__all__ = [
    "AuditSink", "CIServer", "ClairScanner", "CommitRecord", "Database", "Engine",
    "GitRepository", "Helm", "Http", "Kube", "Lighthouse", "LineSink", "Obj", "OsvScanner",
    "PushResult", "RefRecord", "Registry", "WatchEvent",
]

Obj = dict[str, Any]
"""A Kubernetes object (or any JSON object) as the API sends it."""

LineSink = Callable[[str], None]
"""Where an adapter sends progress lines (build output, push progress, console)."""

WatchEvent = tuple[str, Obj]
"""(``ADDED``/``MODIFIED``/``DELETED``/``BOOKMARK``, object) from a watch."""


@runtime_checkable
class Kube(Protocol):
    """One Kubernetes cluster (``pipelinelib.adapters.kube.KubeClient``).

    ``writes`` counts the mutating requests sent (dry runs excluded): a rollout reports a
    no-op from it."""

    writes: int

    def resource(self, kind: str, api_version: str | None = None) -> tuple[str, str, bool]: ...

    def path(self, kind: str, namespace: str | None = None, name: str | None = None,
             api_version: str | None = None, subresource: str | None = None) -> str: ...

    def request(self, method: str, path: str, query: dict[str, Any] | None = None,
                body: Any = None, content_type: str | None = None,
                ok: tuple[int, ...] = ()) -> Any: ...

    def get(self, kind: str, name: str, namespace: str | None = None,
            api_version: str | None = None) -> Obj | None: ...

    def list(self, kind: str, namespace: str | None = None, selector: str | None = None,
             field_selector: str | None = None, api_version: str | None = None) -> Obj: ...

    def apply(self, obj: Obj, *, dry_run: bool = False, force: bool = True,
              namespace: str | None = None) -> Obj: ...

    def patch(self, kind: str, name: str, namespace: str | None, patch: Obj,
              api_version: str | None = None) -> Obj: ...

    def create(self, obj: Obj, namespace: str | None = None,
               ok: tuple[int, ...] = ()) -> Obj: ...

    def replace(self, obj: Obj, ok: tuple[int, ...] = ()) -> Obj: ...

    def delete(self, kind: str, name: str, namespace: str | None = None,
               api_version: str | None = None, propagation: str = "Background",
               resource_version: str | None = None) -> bool: ...

    def watch(self, kind: str, namespace: str | None, resource_version: str,
              selector: str | None = None, field_selector: str | None = None,
              timeout_s: int = 60) -> Iterator[WatchEvent]: ...

    def pod_logs(self, name: str, namespace: str, container: str | None = None,
                 tail: int = 20, previous: bool = False) -> builtins.list[str]: ...

    def events(self, namespace: str, name: str | None = None, kind: str | None = None,
               limit: int = 10) -> builtins.list[Obj]: ...

    def server_version(self) -> str: ...


class PushResult(Protocol):
    """What the engine reports after a push."""

    @property
    def digest(self) -> str | None: ...

    @property
    def layers_pushed(self) -> int: ...


@runtime_checkable
class Engine(Protocol):
    """A container engine (``pipelinelib.adapters.docker_engine.DockerEngine``)."""

    def build(self, context_dir: str, dockerfile: str, *, tag: str | None = None,
              buildargs: dict[str, str] | None = None, labels: dict[str, str] | None = None,
              network_mode: str | None = None, on_line: LineSink | None = None) -> str: ...

    def inspect_image(self, reference: str) -> Obj | None: ...

    def tag(self, image_id: str, repository: str, tag: str) -> None: ...

    def remove_image(self, reference: str) -> None: ...

    def save(self, reference: str, path: str) -> None: ...

    def push(self, repository: str, tag: str, auth_config: dict[str, str] | None = None,
             on_line: LineSink | None = None,
             on_retry: LineSink | None = None) -> PushResult: ...

    def run_detached(self, image: str, command: list[str] | None, *, network_mode: str,
                     labels: dict[str, str],
                     environment: dict[str, str] | None = None) -> str: ...

    def container_state(self, container_id: str) -> Obj: ...

    def wait(self, container_id: str, timeout: float) -> int: ...

    def logs_tail(self, container_id: str, lines: int = ...) -> list[str]: ...

    def remove_container(self, container_id: str) -> None: ...


@runtime_checkable
class Registry(Protocol):
    """One OCI registry host, credentials bound (``pipelinelib.adapters.registry``)."""

    host: str

    @property
    def auth_config(self) -> dict[str, str] | None: ...

    def ping(self) -> None: ...

    def manifest_digest(self, repository: str, reference: str) -> str | None: ...

    def manifest(self, repository: str, reference: str) -> tuple[Obj, str, bytes]: ...

    def image_config(self, repository: str, reference: str) -> Obj: ...

    def labels(self, repository: str, reference: str) -> dict[str, str]: ...

    def put_manifest(self, repository: str, tag: str, body: bytes, media_type: str) -> str: ...

    def blob_exists(self, repository: str, digest: str) -> bool: ...

    def get_blob(self, repository: str, digest: str) -> bytes: ...

    def upload_blob(self, repository: str, data: bytes) -> str: ...

    def check_uploads(self, repository: str) -> None: ...


class CommitRecord(Protocol):
    """One commit as ``GitRepository.log`` lists it."""

    @property
    def sha(self) -> str: ...

    @property
    def author_name(self) -> str: ...

    @property
    def author_email(self) -> str: ...

    @property
    def committed_iso(self) -> str: ...

    @property
    def message(self) -> str: ...


class RefRecord(Protocol):
    """One ref as ``GitRepository.refs`` lists it."""

    @property
    def name(self) -> str: ...

    @property
    def sha(self) -> str: ...

    @property
    def commit(self) -> str: ...

    @property
    def message(self) -> str: ...


@runtime_checkable
class GitRepository(Protocol):
    """A local git repository and its remote (``pipelinelib.adapters.git_repo.GitRepo``).

    ``remote`` is the remote's name, None when the clone has none (nothing to fetch/push).
    """

    remote: str | None

    @property
    def path(self) -> Path: ...

    def resolve(self, rev: str, field: str = "revision") -> str: ...

    def set_identity(self, name: str, email: str) -> None: ...

    def plumbing(self, *args: str, cwd: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None) -> Finished: ...

    def file_at(self, rev: str, path: str | os.PathLike[str]) -> bytes | None: ...

    def is_dirty(self, path: str | os.PathLike[str]) -> bool: ...

    def tags_at(self, commit: str) -> list[str]: ...

    def branch(self) -> str: ...

    def remote_url(self) -> str: ...

    def ref_sha(self, ref: str) -> str | None: ...

    def update_ref(self, ref: str, sha: str | None) -> None: ...

    def is_ancestor(self, ancestor: str, descendant: str) -> bool: ...

    def added_in(self, path: str | os.PathLike[str]) -> str | None: ...

    def commit_times(self, shas: Iterable[str]) -> dict[str, int]: ...

    def head_commit(self) -> str | None: ...

    def log(self, paths: Sequence[str] = (), max_count: int = 50) -> Sequence[CommitRecord]: ...

    def files_at(self, commit: str, paths: Iterable[str]) -> dict[str, bytes]: ...

    def changed_files(self, commit: str) -> list[str]: ...

    def diff_names(self, old: str, new: str) -> list[str]: ...

    def refs(self, pattern: str) -> Sequence[RefRecord]: ...

    def checkout_detached(self, commit: str) -> None: ...

    def reset_branch(self, branch: str, start: str) -> None: ...

    def add(self, paths: Sequence[str]) -> None: ...

    def has_staged_changes(self) -> bool: ...

    def commit(self, message: str, author: tuple[str, str] | None = None) -> str: ...

    def create_tag(self, name: str, target: str, message: str) -> None: ...

    def delete_local_ref(self, ref: str) -> None: ...

    def write_blob(self, data: bytes) -> str: ...

    def read_blob(self, sha: str) -> bytes: ...

    def notes_list(self, ref: str) -> dict[str, str]: ...

    def note(self, ref: str, commit: str) -> str | None: ...

    def set_note(self, ref: str, commit: str, text: str) -> str: ...

    def fetch(self, refspecs: Sequence[str], prune: bool = True) -> None: ...

    def ls_remote(self, *patterns: str) -> dict[str, str]: ...

    def push_cas(self, updates: Sequence[tuple[str, str, str | None]]) -> None: ...


@runtime_checkable
class Database(Protocol):
    """One open PostgreSQL session (``pipelinelib.adapters.postgres.Postgres``)."""

    @property
    def pid(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Any] | None = None, *,
                what: str = "") -> list[tuple[Any, ...]]: ...

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def close(self) -> None: ...


@runtime_checkable
class CIServer(Protocol):
    """The CI server running this job, as a step talks back to it (Jenkins, GoCD).

    ``where`` names the build written to (for the step's actions)."""

    @property
    def where(self) -> str: ...

    def annotate(self, text: str, title: str | None = None) -> list[str]: ...


@runtime_checkable
class AuditSink(Protocol):
    """Where audit events go. ``key`` names the sink's spool folder; ``write`` raises
    ``pipelinelib.records.audit.SinkError`` on failure."""

    key: str
    name: str

    def write(self, docs: list[Obj]) -> None: ...


@runtime_checkable
class Helm(Protocol):
    """The ``helm`` tool (``pipelinelib.adapters.helm``)."""

    def template(self, release: str, chart: str, version: str | None, namespace: str,
                 values: Obj, *, repo: str | None = None) -> list[Obj]: ...

    def package(self, chart_dir: str | Path, out_dir: str | Path) -> Path: ...

    def index(self, repo_dir: str | Path, url: str) -> None: ...

    def push(self, archive: str | Path, target: str) -> str: ...


@runtime_checkable
class Lighthouse(Protocol):
    """The Lighthouse CLI in headless Chromium (``pipelinelib.adapters.lighthouse``)."""

    def run(self, url: str, output: str | Path, *, timeout: float) -> Path: ...


class OsvScanner(Protocol):
    """OSV-Scanner, its binary bound (``pipelinelib.adapters.osv_scanner``): native JSON."""

    name: str

    def scan_archive(self, archive: str | Path, *, local_db: str | Path | None = None,
                     offline: bool = True, timeout: float = 600) -> Obj: ...

    def scan_lockfile(self, lockfile: str | Path, *, local_db: str | Path | None = None,
                      offline: bool = True, timeout: float = 300) -> Obj: ...


@runtime_checkable
class ClairScanner(Protocol):
    """Clair v4 indexer and matcher (``pipelinelib.adapters.clair``): native JSON."""

    name: str

    def scan(self, manifest_digest: str, layers: list[Obj], **wait: Any) -> Obj: ...

    def scan_image(self, registry: Any, repository: str, reference: str,
                   **wait: Any) -> tuple[str, Obj]: ...


@runtime_checkable
class Http(Protocol):
    """Plain HTTP probes (smoke tests): the status code; ``Unreachable`` (its message names
    the failure) when nothing answers."""

    def status(self, url: str, timeout: float = 2.0) -> int: ...
