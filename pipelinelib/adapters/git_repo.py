"""Git adapter (GitPython): revisions, tags, notes and explicit-refspec fetch/push.

Thin on purpose: the records package decides *what* to write; this module only talks
to git and translates its errors. Pushes are compare-and-swap
(``--force-with-lease=<ref>:<expected>``, empty expected = "must not exist yet"), so
two writers racing for the same ref never clobber each other: the loser gets
``PushRejected`` and re-reads. An origin that does not answer raises ``Unreachable``
(transient network faults are retried first).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import git
from gitdb.base import IStream

from pipelinelib.adapters import process
from pipelinelib.errors import BadInput, StepFailed, TransientError, Unreachable
from pipelinelib.retry import transient_retry

# Tags and notes commits need an identity; a CI agent often has none configured.
_FALLBACK_IDENTITY = {"GIT_COMMITTER_NAME": "pipelinelib",
                      "GIT_COMMITTER_EMAIL": "pipelinelib@localhost",
                      "GIT_AUTHOR_NAME": "pipelinelib", "GIT_AUTHOR_EMAIL": "pipelinelib@localhost"}
_UNREACHABLE = ("does not appear to be a git repository", "No such file or directory",
                "Repository not found", "Authentication failed", "Permission denied")
_TRANSIENT = ("Could not read from remote repository", "unable to access",
              "Could not resolve host", "Connection refused", "Connection timed out",
              "Connection reset", "early EOF", "remote end hung up", "returned error: 5")
# A compare-and-swap push that lost a race: the lease failed locally ("stale info",
# "[rejected]") or the remote found the ref already moved while locking it.
_LOST_RACE = ("[rejected]", "stale info", "atomic push failed", "reference already exists",
              "cannot lock ref", "atomic transaction failed", "failed to update ref")
_SEP = "\x1f"


class PushRejected(StepFailed):
    """The remote refused a compare-and-swap push: another writer moved the ref first."""


class NoSuchBranch(BadInput):
    """A clone asked for a branch the remote does not have."""


@dataclass(frozen=True)
class RefInfo:
    """One ref from ``for-each-ref``: name, object, peeled commit and (tag) message."""

    name: str
    sha: str
    commit: str
    message: str


@dataclass(frozen=True)
class CommitInfo:
    """One commit as ``GitRepo.log`` lists it."""

    sha: str
    author_name: str
    author_email: str
    committed_iso: str  # committer time, ISO 8601 with its offset
    message: str


class GitRepo:
    """One local clone and (optionally) its remote; see the module docstring."""

    def __init__(self, repo: git.Repo, remote: str | None = "origin"):
        self.repo = repo
        names = {r.name for r in repo.remotes}
        self.remote = remote if remote in names else None
        self._env = {} if self._has_identity() else dict(_FALLBACK_IDENTITY)

    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".", remote: str | None = "origin", *,
             search_parents: bool = True) -> GitRepo:
        """Open the repository at (or, with ``search_parents``, above) ``path``; BadInput
        when there is none."""
        try:
            repo = git.Repo(path, search_parent_directories=search_parents)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise BadInput("not a git repository", field="--repo", source=str(path),
                           expected="a git clone") from exc
        return cls(repo, remote)

    @classmethod
    def clone(cls, url: str, target: str | os.PathLike[str], branch: str | None = None, *,
              checkout: bool = True) -> GitRepo:
        """A full clone of ``url`` (at ``branch``, else the remote's default branch; without
        a work tree when ``checkout`` is false) into ``target`` (remote ``origin``), with a
        fallback identity configured when none is; ``NoSuchBranch`` when ``url`` lacks
        ``branch``, ``Unreachable`` when it does not answer."""
        options: dict[str, Any] = {"branch": branch} if branch else {}
        if not checkout:
            options["no_checkout"] = True
        try:
            repo = git.Repo.clone_from(url, target, env={"GIT_TERMINAL_PROMPT": "0"},
                                       **options)
        except git.GitCommandError as exc:
            text = _stderr(exc)
            if "Remote branch" in text and "not found" in text:
                raise NoSuchBranch(f"{url} has no branch {branch!r}", source=url,
                                   field="--branch", expected="an existing branch") from exc
            raise _translate("clone", url, exc) from exc
        cloned = cls(repo, "origin")
        if cloned._env:
            cloned.set_identity("pipelinelib", "pipelinelib@localhost")
        return cloned

    def set_identity(self, name: str, email: str) -> None:
        """Commit as ``name <email>`` in this clone (``user.name``/``user.email``)."""
        with self.repo.config_writer() as writer:
            writer.set_value("user", "name", name)
            writer.set_value("user", "email", email)
        self._env = {}

    @property
    def path(self) -> Path:
        return Path(self.repo.working_tree_dir or self.repo.git_dir)

    def _has_identity(self) -> bool:
        reader = self.repo.config_reader()
        return bool(reader.get_value("user", "email", "")) and bool(
            reader.get_value("user", "name", ""))

    # -- local reads -----------------------------------------------------------------------
    def _git(self, *args: str, **kwargs: Any) -> str:
        try:
            return str(self.repo.git.execute(["git", *args], env=self._env, **kwargs))
        except git.GitCommandError as exc:
            raise StepFailed(f"git {args[0]} failed", cause=_stderr(exc)) from exc

    def plumbing(self, *args: str, cwd: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None) -> process.Finished:
        """``git ARGS`` in this clone (or ``cwd``, one of its worktrees), for plumbing a
        caller composes itself (the queue's rebases, worktrees and lock commits): never a
        prompt, ``env`` on top of this process's; the exit code is the caller's to judge."""
        full = {**os.environ, **self._env, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
        full.pop("GIT_DIR", None)
        full.pop("GIT_WORK_TREE", None)
        try:
            return process.run(["git", *args], cwd=Path(cwd) if cwd else self.path, env=full)
        except process.CannotRun as exc:
            raise StepFailed(f"git {args[0] if args else ''} failed", cause=str(exc)) from exc

    def resolve(self, rev: str, field: str = "revision") -> str:
        """The full SHA of the commit ``rev`` names; BadInput when it names none."""
        if not rev or rev.startswith("-"):
            raise BadInput("empty or option-like revision", field=field, expected="a commit")
        try:
            return str(self.repo.git.rev_parse("--verify", "--quiet", "--end-of-options",
                                               f"{rev}^{{commit}}"))
        except git.GitCommandError as exc:
            raise BadInput(f"unknown revision {rev!r}", field=field,
                           expected="a commit in the repository") from exc

    def file_at(self, rev: str, path: str | os.PathLike[str]) -> bytes | None:
        """``path`` (in the work tree, or relative to the repository root) as ``rev`` has
        it; None when ``rev`` has no such file. BadInput when ``rev`` names no commit."""
        sha = self.resolve(rev)
        target = Path(path)
        if target.is_absolute():
            target = target.resolve().relative_to(self.path.resolve())
        try:
            blob = self.repo.commit(sha).tree / target.as_posix()
        except KeyError:
            return None
        data: bytes = blob.data_stream.read()
        return data

    def is_dirty(self, path: str | os.PathLike[str]) -> bool:
        """Uncommitted changes under ``path`` (untracked files count)."""
        return bool(self.repo.is_dirty(untracked_files=True, path=str(path)))

    def tags_at(self, commit: str) -> list[str]:
        """The names of the tags that point at ``commit`` (annotated ones peeled)."""
        return self._git("tag", "--points-at", commit).split()

    def branch(self) -> str:
        """The checked-out branch; empty on a detached HEAD."""
        return "" if self.repo.head.is_detached else str(self.repo.active_branch.name)

    def remote_url(self) -> str:
        """The first URL of the first remote as configured (may carry credentials)."""
        remotes = self.repo.remotes
        return str(next(iter(remotes[0].urls), "")) if remotes else ""

    def ref_sha(self, ref: str) -> str | None:
        """The object a ref points at, or None when it does not exist."""
        try:
            return str(self.repo.git.rev_parse("--verify", "--quiet", ref))
        except git.GitCommandError:
            return None

    def update_ref(self, ref: str, sha: str | None) -> None:
        """Point ``ref`` at ``sha`` (None deletes it)."""
        if sha is None:
            if self.ref_sha(ref) is not None:
                self._git("update-ref", "-d", ref)
        else:
            self._git("update-ref", ref, sha)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when ``ancestor`` is reachable from ``descendant``."""
        status, _, err = self.repo.git.execute(
            ["git", "merge-base", "--is-ancestor", ancestor, descendant],
            with_extended_output=True, with_exceptions=False)
        if status not in (0, 1):
            raise StepFailed("git merge-base failed", cause=err.strip()[:300])
        return status == 0

    def added_in(self, path: str | os.PathLike[str]) -> str | None:
        """The commit that first added ``path`` (None while it is not committed)."""
        shas = self._git("log", "--diff-filter=A", "--format=%H", "--", str(path)).split()
        return shas[-1] if shas else None

    def commit_times(self, shas: Iterable[str]) -> dict[str, int]:
        """Committer times (unix seconds) of commits, read through one cat-file process."""
        times: dict[str, int] = {}
        for sha in set(shas):
            try:
                times[sha] = self.repo.commit(sha).committed_date
            except (ValueError, git.BadName, git.BadObject):
                continue
        return times

    def head_commit(self) -> str | None:
        """The commit checked out (HEAD), or None while the repository has no commit."""
        try:
            return str(self.repo.head.commit.hexsha)
        except ValueError:
            return None

    def log(self, paths: Sequence[str] = (), max_count: int = 50) -> list[CommitInfo]:
        """Commits from HEAD that changed any of ``paths`` (relative to the repository
        root; all commits when empty), newest first; empty while there is no commit."""
        try:
            commits = list(self.repo.iter_commits(paths=list(paths), max_count=max_count)
                           if paths else self.repo.iter_commits(max_count=max_count))
        except ValueError:
            return []
        except git.GitCommandError as exc:
            if self.head_commit() is None:
                return []
            raise StepFailed("git log failed", cause=_stderr(exc)) from exc
        return [CommitInfo(c.hexsha, str(c.author.name or ""), str(c.author.email or ""),
                           c.committed_datetime.isoformat(), str(c.message))
                for c in commits]

    def files_at(self, commit: str, paths: Iterable[str]) -> dict[str, bytes]:
        """``{path: content}`` of those of ``paths`` (relative to the repository root) that
        ``commit`` has, read in process (cheap across many commits)."""
        try:
            tree = self.repo.commit(commit).tree
        except (ValueError, git.BadName, git.BadObject) as exc:
            raise BadInput(f"unknown commit {commit!r}", field="commit",
                           expected="a commit in the repository") from exc
        found: dict[str, bytes] = {}
        for path in paths:
            try:
                blob = tree / path
            except KeyError:
                continue
            found[path] = blob.data_stream.read()
        return found

    def changed_files(self, commit: str) -> list[str]:
        """Paths ``commit`` changed against its first parent (every file of a root
        commit); BadInput when ``commit`` names no commit."""
        obj = self.repo.commit(self.resolve(commit, field="commit"))
        if not obj.parents:
            return sorted(str(p) for p in obj.stats.files)
        diffs = obj.parents[0].diff(obj)
        return sorted({str(d.a_path) for d in diffs if d.a_path} |
                      {str(d.b_path) for d in diffs if d.b_path})

    def diff_names(self, old: str, new: str) -> list[str]:
        """Paths that differ between the commits ``old`` and ``new``."""
        return [f for f in self._git("diff", "--name-only", old, new).split() if f]

    def refs(self, pattern: str) -> list[RefInfo]:
        """Refs matching ``pattern`` with their peeled commit and message, in one call."""
        fmt = _SEP.join(("%(refname)", "%(objectname)", "%(*objectname)", "%(contents)")) + "\x1e"
        out = self._git("for-each-ref", f"--format={fmt}", pattern, strip_newline_in_stdout=False)
        result = []
        for record in out.split("\x1e"):
            fields = record.lstrip("\n").split(_SEP)
            if len(fields) == 4:
                name, sha, peeled, message = fields
                result.append(RefInfo(name, sha, peeled or sha, message))
        return result

    # -- local writes ----------------------------------------------------------------------
    def checkout_detached(self, commit: str) -> None:
        """Put the work tree at ``commit`` (detached HEAD)."""
        self._git("checkout", "--detach", commit)

    def reset_branch(self, branch: str, start: str) -> None:
        """Check ``branch`` out at ``start``, discarding local changes (checkout -B, reset
        --hard)."""
        self._git("checkout", "-B", branch, start)
        self._git("reset", "--hard", start)

    def add(self, paths: Sequence[str]) -> None:
        """Stage ``paths`` (relative to the work tree)."""
        self._git("add", "--", *paths)

    def has_staged_changes(self) -> bool:
        """True when the index differs from HEAD."""
        return bool(self.repo.is_dirty(index=True, working_tree=False, untracked_files=False))

    def commit(self, message: str, author: tuple[str, str] | None = None) -> str:
        """Commit the index with ``message`` (author ``(name, email)``, else the configured
        identity; committer pipelinelib); returns the new commit's SHA."""
        actor = git.Actor(*author) if author else (
            git.Actor("pipelinelib", "pipelinelib@localhost") if self._env else None)
        made = self.repo.index.commit(message, author=actor,
                                      committer=git.Actor("pipelinelib",
                                                          "pipelinelib@localhost"))
        return str(made.hexsha)

    def create_tag(self, name: str, target: str, message: str) -> None:
        """Create the annotated tag ``name`` on ``target`` locally (never forced)."""
        self._git("tag", "--annotate", "--cleanup=verbatim", f"--message={message}",
                  name, target)

    def delete_local_ref(self, ref: str) -> None:
        """Delete a local ref if it exists (a tag that lost a race)."""
        self.update_ref(ref, None)

    def write_blob(self, data: bytes) -> str:
        """Store ``data`` as a blob; returns its SHA."""
        sha = self.repo.odb.store(IStream(b"blob", len(data), BytesIO(data))).hexsha
        return sha.decode() if isinstance(sha, bytes) else sha

    def read_blob(self, sha: str) -> bytes:
        """The content of a blob (persistent cat-file process: cheap to call often)."""
        data: bytes = self.repo.odb.stream(bytes.fromhex(sha)).read()
        return data

    def notes_list(self, ref: str) -> dict[str, str]:
        """``{commit: note blob}`` of every note under ``ref`` (empty when ref is absent)."""
        if self.ref_sha(ref) is None:
            return {}
        out = self._git("notes", f"--ref={ref}", "list")
        pairs = (line.split() for line in out.splitlines() if line.strip())
        return {commit: blob for blob, commit in pairs}

    def note(self, ref: str, commit: str) -> str | None:
        """The note text on ``commit`` under ``ref``, or None."""
        try:
            blob = self.repo.git.notes(f"--ref={ref}", "list", commit)
        except git.GitCommandError:
            return None
        return self.read_blob(blob.strip()).decode("utf-8", "replace")

    def set_note(self, ref: str, commit: str, text: str) -> str:
        """Write ``text`` verbatim as the note on ``commit``; returns the new notes commit."""
        blob = self.write_blob(text.encode())
        self._git("notes", f"--ref={ref}", "add", "--force", "-C", blob, commit)
        return self.ref_sha(ref) or ""

    # -- remote ----------------------------------------------------------------------------
    def fetch(self, refspecs: Sequence[str], prune: bool = True) -> None:
        """Fetch explicit refspecs from the remote (no-op without a remote)."""
        if self.remote is None:
            return
        args = ["fetch", "--no-tags", "--quiet", *(["--prune"] if prune else []), self.remote]
        self._remote(*args, *refspecs)

    def ls_remote(self, *patterns: str) -> dict[str, str]:
        """``{ref: sha}`` on the remote for refs matching ``patterns``."""
        if self.remote is None:
            return {}
        out = self._remote("ls-remote", "--refs", self.remote, *patterns)
        return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines())}

    def push_cas(self, updates: Sequence[tuple[str, str, str | None]]) -> None:
        """Push ``(local, remote_ref, expected)`` atomically, each only if the remote ref
        still points at ``expected`` (None: must not exist yet). ``PushRejected`` if not."""
        if self.remote is None:
            return
        leases = [f"--force-with-lease={dst}:{expected or ''}" for _, dst, expected in updates]
        specs = [f"{src}:{dst}" for src, dst, _ in updates]
        self._remote("push", "--porcelain", "--atomic", *leases, self.remote, *specs)

    def _remote(self, *args: str) -> str:
        try:
            return self._remote_retried(*args)
        except TransientError as exc:
            raise Unreachable(f"git remote {self.remote!r} did not answer", cause=str(exc),
                              hint="check the remote URL, network and credentials") from exc

    @transient_retry(attempts=4, max_delay_s=20.0, max_wait_s=4.0)
    def _remote_retried(self, *args: str) -> str:
        try:
            return self.repo.git.execute(["git", *args], env={**self._env,
                                         "GIT_TERMINAL_PROMPT": "0"})
        except git.GitCommandError as exc:
            raise _translate(args[0], self.remote or "", exc) from exc


def _stderr(exc: git.GitCommandError) -> str:
    text = f"{exc.stderr or ''} {exc.stdout or ''}".replace("stderr:", "").replace("stdout:", "")
    return " ".join(text.split())[:400]


def _translate(command: str, remote: str, exc: git.GitCommandError) -> Exception:
    """A GitCommandError from a remote command as one of ours."""
    text = _stderr(exc)
    if any(marker in text for marker in _LOST_RACE):
        return PushRejected(f"git push to {remote} rejected: the ref moved", cause=text)
    if "[remote rejected]" in text:
        return StepFailed(f"git push to {remote} refused by the remote", cause=text,
                          hint="check the remote's hooks and branch/tag protection")
    if any(marker in text for marker in _UNREACHABLE):
        return Unreachable(f"git remote {remote!r} is unreachable", cause=text,
                           hint="check the remote URL and credentials")
    if any(marker in text for marker in _TRANSIENT):
        return TransientError(text)
    return StepFailed(f"git {command} failed", cause=text)
