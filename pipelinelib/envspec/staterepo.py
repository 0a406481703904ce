"""The env-state repository (GitPython): read specs, and commit + push changes safely.

Writes never happen in a user's working copy: ``EnvStateRepo.checkout(origin, branch)``
makes a private clone. ``commit_change(edit, message)`` applies ``edit`` (a function of the
checkout returning the paths it wrote) on top of the freshest origin branch, commits and
pushes; when another writer pushed first the push is rejected, and we fetch, redo the edit
on the new head and push again (bounded), so concurrent promotions serialize without lost
updates and without a lock server.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelinelib.errors import BadInput, StepFailed, Unreachable

_REJECTED = ("[rejected]", "fetch first", "non-fast-forward", "failed to push some refs",
             "cannot lock ref", "stale info")
_UNREACHABLE = ("does not appear to be a git repository", "Could not read from remote",
                "unable to access", "Connection refused", "Could not resolve host")


class PushConflict(StepFailed):
    """The env-state branch kept moving: we gave up after several rebases."""


@dataclass
class Commit:
    """A commit made (or found) in the env-state repo."""

    sha: str
    message: str
    pushed: bool


def _git_error(exc: Any, what: str) -> Exception:
    text = " ".join(f"{getattr(exc, 'stderr', '')}".split())[:400]
    if any(m in text for m in _UNREACHABLE):
        return Unreachable(f"env-state repository: {what} failed", cause=text,
                           hint="check the origin URL, network and credentials")
    return StepFailed(f"env-state repository: {what} failed", cause=text)


class EnvStateRepo:
    """A clone of the env-state repository on one branch."""

    def __init__(self, repo: Any, branch: str):
        self.repo = repo
        self.branch = branch

    @property
    def root(self) -> Path:
        return Path(self.repo.working_tree_dir)

    @classmethod
    def open(cls, path: str | os.PathLike[str], branch: str | None = None) -> EnvStateRepo:
        """Open an existing clone (for reading); ``BadInput`` when it is none."""
        import git

        try:
            repo = git.Repo(path, search_parent_directories=False)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise BadInput("not a git repository", source=str(path), field="--repo",
                           expected="a clone of the env-state repository") from exc
        if branch is None:
            try:
                branch = repo.active_branch.name
            except TypeError:
                branch = "main"
        return cls(repo, branch)

    @classmethod
    def checkout(cls, origin: str, branch: str, workdir: str | None = None) -> EnvStateRepo:
        """A private clone of ``origin`` at ``branch`` (for writing)."""
        import git

        target = workdir or tempfile.mkdtemp(prefix="pipelinelib-envstate-")
        try:
            repo = git.Repo.clone_from(origin, target, branch=branch, depth=None,
                                       env={"GIT_TERMINAL_PROMPT": "0"})
        except git.GitCommandError as exc:
            if "Remote branch" in str(exc.stderr) and "not found" in str(exc.stderr):
                raise BadInput(f"the env-state repository has no branch {branch!r}",
                               source=origin, field="--branch",
                               expected="an existing branch") from exc
            raise _git_error(exc, f"clone of {origin}") from exc
        _ensure_identity(repo)
        return cls(repo, branch)

    def origin_url(self) -> str | None:
        """The origin's URL, or None without an origin."""
        try:
            return self.repo.remotes.origin.url
        except (AttributeError, IndexError):
            return None

    def head(self) -> str:
        return self.repo.head.commit.hexsha

    def detach_at(self, commit: str) -> None:
        """Put the work tree at ``commit`` (detached): read the specs as that commit left
        them."""
        import git

        try:
            self.repo.git.checkout("--detach", commit)
        except git.GitCommandError as exc:
            raise _git_error(exc, f"checkout of {commit[:12]}") from exc

    def refresh(self) -> None:
        """Move the clone to the origin's newest ``branch`` (discarding local work)."""
        import git

        try:
            self.repo.git.fetch("origin", f"+refs/heads/{self.branch}:"
                                f"refs/remotes/origin/{self.branch}")
            self.repo.git.checkout("-B", self.branch, f"origin/{self.branch}")
            self.repo.git.reset("--hard", f"origin/{self.branch}")
        except git.GitCommandError as exc:
            raise _git_error(exc, "fetch") from exc

    def commit_change(self, edit: Callable[[Path], list[str]], message: str, *,
                      author: tuple[str, str] | None = None, push: bool = True,
                      attempts: int = 8) -> Commit | None:
        """Apply ``edit`` on the freshest branch, commit and push; None when nothing changed."""
        import git

        for attempt in range(1, attempts + 1):
            if push and self.origin_url():
                self.refresh()
            paths = edit(self.root)
            if not paths:
                return None
            self.repo.git.add("--", *paths)
            if not self.repo.is_dirty(index=True, working_tree=False, untracked_files=False):
                return None
            actor = git.Actor(*author) if author else None
            commit = self.repo.index.commit(message, author=actor,
                                            committer=git.Actor("pipelinelib",
                                                                "pipelinelib@localhost"))
            if not (push and self.origin_url()):
                return Commit(commit.hexsha, message, pushed=False)
            try:
                self.repo.git.push("--porcelain", "origin", f"HEAD:refs/heads/{self.branch}",
                                   env={"GIT_TERMINAL_PROMPT": "0"})
                return Commit(commit.hexsha, message, pushed=True)
            except git.GitCommandError as exc:
                text = f"{exc.stderr} {exc.stdout}"
                if not any(m in text for m in _REJECTED):
                    raise _git_error(exc, "push") from exc
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))  # noqa: S311
        raise PushConflict(f"env-state branch {self.branch} kept moving: gave up after "
                           f"{attempts} attempts", hint="run the promotion again")

    def read(self, relpath: str, rev: str | None = None) -> str | None:
        """A file's text in the work tree (or at ``rev``); None when absent."""
        import git

        if rev is None:
            path = self.root / relpath
            return path.read_text(encoding="utf-8") if path.is_file() else None
        try:
            return self.repo.git.show(f"{rev}:{relpath}")
        except git.GitCommandError:
            return None

    def changed_files(self, commit: str) -> list[str]:
        """Paths a commit changed (against its first parent; all files for a root commit)."""
        import git

        try:
            sha = self.repo.git.rev_parse("--verify", f"{commit}^{{commit}}")
        except git.GitCommandError as exc:
            raise BadInput(f"unknown commit {commit!r}", field="--commit",
                           expected="a commit of the env-state repository") from exc
        obj = self.repo.commit(sha)
        if not obj.parents:
            return sorted(str(p) for p in obj.stats.files)
        return sorted({d.a_path for d in obj.parents[0].diff(obj)} |
                      {d.b_path for d in obj.parents[0].diff(obj)})

    def files_differing_from(self, branch: str) -> list[str]:
        """Paths that differ between the origin's ``branch`` and this checkout's head."""
        import git

        try:
            self.repo.git.fetch("origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
            out = self.repo.git.diff("--name-only", f"origin/{branch}", self.head())
        except git.GitCommandError as exc:
            raise _git_error(exc, f"diff against {branch}") from exc
        return [f for f in out.split() if f]

    def last_commit(self, relpath: str) -> dict[str, Any] | None:
        """Who changed ``relpath`` last, when, and the message."""
        commits = list(self.repo.iter_commits(paths=relpath, max_count=1))
        if not commits:
            return None
        c = commits[0]
        return {"sha": c.hexsha, "author": c.author.name, "time": c.committed_datetime
                .isoformat(), "message": c.message}

    def log(self, relpath: str, max_count: int = 50) -> list[Any]:
        """Commits that changed ``relpath``, newest first."""
        return list(self.repo.iter_commits(paths=relpath, max_count=max_count))


def origin_of(repo: str) -> str:
    """``repo`` itself (an origin URL or a bare repository), or the origin of the clone it
    names: the env-state repository is always written through its origin."""
    path = Path(repo)
    if path.is_dir() and (path / ".git").exists():
        import git

        clone = git.Repo(repo)
        if "origin" in [r.name for r in clone.remotes]:
            return str(clone.remotes.origin.url)
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


def _ensure_identity(repo: Any) -> None:
    reader = repo.config_reader()
    if not reader.get_value("user", "email", ""):
        with repo.config_writer() as writer:
            writer.set_value("user", "name", "pipelinelib")
            writer.set_value("user", "email", "pipelinelib@localhost")
