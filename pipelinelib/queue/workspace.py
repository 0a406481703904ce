"""The queue's private clone of the app repository: refspecs, deterministic rebases, pushes.

Everything the queue writes to the remote goes through ``push`` as one atomic
compare-and-swap push (``GitRepo.push_cas``): a branch moves only if it still is where we
read it (a developer's concurrent push is never overwritten), and a deployment's master
move, tag and note land together or not at all.

Rebases are deterministic (committer ``pipelinelib queue``, committer date = author
date): the same refspec rebased onto the same master gives the same commit, so a re-run
after a kill recognises the work it already pushed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelinelib.errors import BadInput, StepFailed, TransientError, Unreachable
from pipelinelib.records import format as fmt
from pipelinelib.records import states

if TYPE_CHECKING:
    from pipelinelib.adapters.process import Finished
    from pipelinelib.adapters.protocols import GitRepository
    from pipelinelib.context import Context

HEADS_REFSPEC = "+refs/heads/*:refs/remotes/origin/*"
# the committer of rebased commits (authors are kept); notes commits use the clone's config
IDENTITY = {"GIT_COMMITTER_NAME": "pipelinelib queue",
            "GIT_COMMITTER_EMAIL": "queue@pipelinelib.invalid"}


@dataclass(frozen=True)
class Rebased:
    """A rebase's outcome: the new tip, or the files that conflict."""

    commit: str = ""
    conflicts: tuple[str, ...] = ()
    changed: bool = False

    @property
    def ok(self) -> bool:
        return not self.conflicts


@dataclass
class Workspace:
    """A clone in ``path`` whose origin is the app repository."""

    path: Path
    url: str
    repo: GitRepository

    @classmethod
    def clone(cls, ctx: Context, url: str, path: str | os.PathLike[str]) -> Workspace:
        """Clone ``url`` into ``path`` (no work tree); then the repository adapter comes
        from ``ctx.git``."""
        from pipelinelib.adapters.git_repo import GitRepo

        path = Path(path)
        try:
            GitRepo.clone(url, path, checkout=False)
        except Unreachable as exc:
            raise BadInput("cannot clone the app repository", field="--repo",
                           source=url.rsplit("@", 1)[-1], expected="a reachable git URL"
                           ) from exc
        except TransientError as exc:
            raise StepFailed("git clone failed", cause=str(exc)[:300]) from exc
        ws = cls(path, url, ctx.git(path))
        ws.repo.set_identity(IDENTITY["GIT_COMMITTER_NAME"], IDENTITY["GIT_COMMITTER_EMAIL"])
        return ws

    # -- plumbing -----------------------------------------------------------------------------
    def git(self, *args: str, cwd: Path | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> Finished:
        proc = self.repo.plumbing(*args, cwd=cwd, env={**IDENTITY, **(env or {})})
        if check and proc.returncode != 0:
            raise StepFailed(f"git {args[0]} failed",
                             cause=" ".join((proc.stderr or proc.stdout).split())[:400])
        return proc

    def out(self, *args: str) -> str:
        return self.git(*args).stdout.strip()

    def refresh(self) -> None:
        """Fetch every branch, the state notes and the deployment tags from origin."""
        self.repo.fetch([HEADS_REFSPEC, fmt.TAGS_REFSPEC])
        states.fetch_notes(self.repo)

    def branches(self) -> dict[str, str]:
        """``{branch: tip}`` on origin as last fetched."""
        out = self.out("for-each-ref", "--format=%(refname:strip=3) %(objectname)",
                       "refs/remotes/origin/")
        pairs = (line.split(" ", 1) for line in out.splitlines() if line.strip())
        return {name: sha for name, sha in pairs if name != "HEAD"}

    def tip(self, branch: str) -> str | None:
        return self.repo.ref_sha(f"refs/remotes/origin/{branch}")

    def author(self, commit: str) -> str:
        return self.out("log", "-1", "--format=%an <%ae>", commit)

    def show(self, commit: str, path: str) -> bytes | None:
        """``path`` as ``commit`` has it; None when it has no such file (or no commit)."""
        try:
            return self.repo.file_at(commit, path)
        except BadInput:
            return None

    # -- rebase -------------------------------------------------------------------------------
    def rebase(self, commit: str, onto: str) -> Rebased:
        """``commit``'s own commits replayed onto ``onto`` (deterministic; see module doc)."""
        if self.repo.is_ancestor(onto, commit):
            return Rebased(commit, changed=False)
        work = self.worktree(f"rebase-{commit[:12]}", commit)
        try:
            proc = self.git("rebase", "--quiet", "--committer-date-is-author-date",
                            "--no-autosquash", onto, cwd=work, check=False)
            if proc.returncode != 0:
                files = self.git("diff", "--name-only", "--diff-filter=U", cwd=work,
                                 check=False).stdout.split()
                self.git("rebase", "--abort", cwd=work, check=False)
                if not files:
                    raise StepFailed("git rebase failed",
                                     cause=" ".join((proc.stderr or proc.stdout).split())[:400])
                return Rebased(conflicts=tuple(sorted(set(files))))
            new = self.out("-C", str(work), "rev-parse", "HEAD")
            return Rebased(new, changed=new != commit)
        finally:
            self.remove_worktree(work)

    def worktree(self, name: str, commit: str) -> Path:
        """A detached checkout of ``commit`` (for a rebase or a candidate's stages)."""
        path = self.path.parent / "worktrees" / name
        if path.exists():
            self.remove_worktree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.git("worktree", "add", "--force", "--detach", str(path), commit)
        return path

    def remove_worktree(self, path: Path) -> None:
        self.git("worktree", "remove", "--force", str(path), check=False)
        if path.exists():
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        self.git("worktree", "prune", check=False)

    # -- writes -------------------------------------------------------------------------------
    def note_text(self, commit: str, entry: dict[str, object], *, carry_from: str = "") -> str:
        """The note for ``commit``: ``entry`` on top of the history of ``commit``'s note
        (or of ``carry_from``'s: a rebased refspec keeps its history)."""
        previous = states.read_note(self.repo, carry_from or commit)
        return states.render(previous, entry)

    def stage_note(self, commit: str, text: str) -> None:
        """Write the note locally (pushed by ``push`` together with the refs it belongs to)."""
        self.repo.set_note(states.NOTES_REF, commit, text)

    def push(self, updates: Sequence[tuple[str, str, str | None]]) -> None:
        """One atomic compare-and-swap push; ``PushRejected`` when any ref moved."""
        self.repo.push_cas(updates)

    def reset_notes(self, remote_sha: str | None) -> None:
        """Drop local note writes that were not pushed (keep local == remote)."""
        self.repo.update_ref(states.NOTES_REF, remote_sha)

