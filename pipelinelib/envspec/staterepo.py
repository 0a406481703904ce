"""The env-state repository: read specs, and commit + push changes safely.

Writes never happen in a user's working copy: ``EnvStateRepo.checkout(origin, branch)``
makes a private clone. ``commit_change(edit, message)`` applies ``edit`` (a function of the
checkout returning the paths it wrote) on top of the freshest origin branch, commits and
pushes it compare-and-swap; when another writer pushed first the push is rejected, and we
fetch, redo the edit on the new head and push again (bounded), so concurrent promotions
serialize without lost updates and without a lock server. Git itself is reached through
``pipelinelib.adapters.git_repo.GitRepo`` only.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelinelib.adapters.git_repo import GitRepo, NoSuchBranch, PushRejected
from pipelinelib.adapters.protocols import CommitRecord
from pipelinelib.errors import BadInput, StepFailed, Unreachable


class PushConflict(StepFailed):
    """The env-state branch kept moving: we gave up after several rebases."""


@dataclass
class Commit:
    """A commit made (or found) in the env-state repo."""

    sha: str
    message: str
    pushed: bool


@contextlib.contextmanager
def _doing(what: str) -> Iterator[None]:
    """Name the env-state repository and ``what`` in a git failure."""
    try:
        yield
    except Unreachable as exc:
        raise Unreachable(f"env-state repository: {what} failed",
                          cause=exc.cause or exc.message,
                          hint="check the origin URL, network and credentials") from exc
    except PushRejected:
        raise
    except StepFailed as exc:
        raise StepFailed(f"env-state repository: {what} failed",
                         cause=exc.cause or exc.message) from exc


class EnvStateRepo:
    """A clone of the env-state repository on one branch."""

    def __init__(self, repo: GitRepo, branch: str):
        self.repo = repo
        self.branch = branch

    @property
    def root(self) -> Path:
        return self.repo.path

    @classmethod
    def open(cls, path: str | os.PathLike[str], branch: str | None = None) -> EnvStateRepo:
        """Open an existing clone (for reading); ``BadInput`` when it is none."""
        try:
            repo = GitRepo.open(path, search_parents=False)
        except BadInput as exc:
            raise BadInput("not a git repository", source=str(path), field="--repo",
                           expected="a clone of the env-state repository") from exc
        return cls(repo, branch or repo.branch() or "main")

    @classmethod
    def checkout(cls, origin: str, branch: str, workdir: str | None = None) -> EnvStateRepo:
        """A private clone of ``origin`` at ``branch`` (for writing)."""
        target = workdir or tempfile.mkdtemp(prefix="pipelinelib-envstate-")
        try:
            with _doing(f"clone of {origin}"):
                repo = GitRepo.clone(origin, target, branch)
        except NoSuchBranch as exc:
            raise BadInput(f"the env-state repository has no branch {branch!r}",
                           source=origin, field="--branch",
                           expected="an existing branch") from exc
        return cls(repo, branch)

    def origin_url(self) -> str | None:
        """The origin's URL, or None without an origin."""
        return (self.repo.remote_url() or None) if self.repo.remote == "origin" else None

    def head(self) -> str:
        return self.repo.head_commit() or ""

    def detach_at(self, commit: str) -> None:
        """Put the work tree at ``commit`` (detached): read the specs as that commit left
        them."""
        with _doing(f"checkout of {commit[:12]}"):
            self.repo.checkout_detached(commit)

    def refresh(self) -> None:
        """Move the clone to the origin's newest ``branch`` (discarding local work)."""
        with _doing("fetch"):
            self.repo.fetch([f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}"],
                            prune=False)
            self.repo.reset_branch(self.branch, f"origin/{self.branch}")

    def commit_change(self, edit: Callable[[Path], list[str]], message: str, *,
                      author: tuple[str, str] | None = None, push: bool = True,
                      attempts: int = 8) -> Commit | None:
        """Apply ``edit`` on the freshest branch, commit and push; None when nothing changed."""
        for attempt in range(1, attempts + 1):
            if push and self.origin_url():
                self.refresh()
            base = self.repo.ref_sha(f"refs/remotes/origin/{self.branch}")
            paths = edit(self.root)
            if not paths:
                return None
            with _doing("commit"):
                self.repo.add(paths)
                if not self.repo.has_staged_changes():
                    return None
                sha = self.repo.commit(message, author)
            if not (push and self.origin_url()):
                return Commit(sha, message, pushed=False)
            try:
                with _doing("push"):
                    self.repo.push_cas([("HEAD", f"refs/heads/{self.branch}", base)])
                return Commit(sha, message, pushed=True)
            except PushRejected:
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))  # noqa: S311
        raise PushConflict(f"env-state branch {self.branch} kept moving: gave up after "
                           f"{attempts} attempts", hint="run the promotion again")

    def read(self, relpath: str, rev: str | None = None) -> str | None:
        """A file's text in the work tree (or at ``rev``); None when absent."""
        if rev is None:
            path = self.root / relpath
            return path.read_text(encoding="utf-8") if path.is_file() else None
        try:
            data = self.repo.file_at(rev, relpath)
        except BadInput:
            return None
        return None if data is None else data.decode("utf-8").removesuffix("\n")

    def changed_files(self, commit: str) -> list[str]:
        """Paths a commit changed (against its first parent; all files for a root commit)."""
        try:
            return self.repo.changed_files(commit)
        except BadInput as exc:
            raise BadInput(f"unknown commit {commit!r}", field="--commit",
                           expected="a commit of the env-state repository") from exc

    def files_differing_from(self, branch: str) -> list[str]:
        """Paths that differ between the origin's ``branch`` and this checkout's head."""
        with _doing(f"diff against {branch}"):
            self.repo.fetch([f"+refs/heads/{branch}:refs/remotes/origin/{branch}"],
                            prune=False)
            return self.repo.diff_names(f"origin/{branch}", self.head())

    def last_commit(self, relpath: str) -> dict[str, Any] | None:
        """Who changed ``relpath`` last, when, and the message."""
        commits = self.repo.log([relpath], max_count=1)
        if not commits:
            return None
        c = commits[0]
        return {"sha": c.sha, "author": c.author_name, "time": c.committed_iso,
                "message": c.message}

    def log(self, relpath: str, max_count: int = 50) -> Sequence[CommitRecord]:
        """Commits that changed ``relpath``, newest first."""
        return self.repo.log([relpath], max_count=max_count)


def origin_of(repo: str) -> str:
    """``repo`` itself (an origin URL or a bare repository), or the origin of the clone it
    names: the env-state repository is always written through its origin."""
    path = Path(repo)
    if path.is_dir() and (path / ".git").exists():
        clone = GitRepo.open(path, search_parents=False)
        if clone.remote == "origin":
            return clone.remote_url()
    return repo


@contextlib.contextmanager
def scratch_checkout(repo: str, branch: str = "main", *, prefix: str = "pipelinelib-envstate-",
                     name: str = "repo", workdir: str | None = None) -> Iterator[EnvStateRepo]:
    """A private clone of ``repo``'s origin (see ``origin_of``) at ``branch``, removed when
    the block ends: the one place a job checks the env-state repository out to work in."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=workdir) as scratch:
        yield EnvStateRepo.checkout(origin_of(repo), branch, f"{scratch}/{name}")


@contextlib.contextmanager
def readable_root(repo: str, branch: str = "main") -> Iterator[Path]:
    """A readable env-state checkout: ``repo`` itself when it is one (it has
    ``environments/``), else a scratch clone of it removed afterwards."""
    path = Path(repo)
    if path.is_dir() and (path / "environments").is_dir():
        yield path
        return
    with scratch_checkout(repo, branch, prefix="pipelinelib-envstate-read-") as state:
        yield state.root

