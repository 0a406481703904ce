"""Refspec states as git notes: ``state: deployed`` on a commit (``refs/notes/pipelinelib-state``).

A note is a small YAML document. Its first line is ``state: <state>`` (the seed's format,
readable with ``git notes --ref=pipelinelib-state show <commit>``), then the fields of the
latest change (environment, digest, time, actor, build_url, annotation ...) and a
``history`` list of every change, oldest first::

    state: deployed
    environment: live
    digest: sha256:...
    time: '2026-11-23T01:00:00Z'
    actor: release-rita
    build_url: https://ci.example.org/job/deploy/42/
    annotation: Successfully Deployed
    history:
    - {state: staged, environment: staging, ...}
    - {state: deployed, environment: live, ...}

State machine (a commit without a note is ``development``)::

    development -> staged, deployable, deployed, broken
    staged      -> development, deployable, deployed, broken
    deployable  -> development, staged, deployed, broken
    deployed    -> deployed (another environment), broken       never back to development,
                                                                 staged or deployable
    broken      -> development, staged, deployable, deployed (a fixed redeploy)

Racing writers: the notes ref is fetched with an explicit refspec into a tracking ref,
the local notes ref is reset to it, the transition is checked against what the remote
has *now*, and the new notes commit is pushed with a lease on the fetched value
(compare-and-swap). A writer that loses the race re-fetches, re-checks the transition and
retries, so no write is lost and no illegal transition slips in through a race. A push
that cannot reach the remote restores the local ref: local and remote never diverge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelinelib.adapters.git_repo import PushRejected
from pipelinelib.adapters.protocols import GitRepository
from pipelinelib.errors import BadInput, PipelineError, Refused, StepFailed
from pipelinelib.records import format as fmt

STATES = ("development", "staged", "deployable", "deployed", "broken")
DEFAULT_STATE = "development"
NOTES_REF = fmt.NOTES_REF
TRANSITIONS: dict[str, frozenset[str]] = {
    "development": frozenset({"development", "staged", "deployable", "deployed", "broken"}),
    "staged": frozenset({"development", "staged", "deployable", "deployed", "broken"}),
    "deployable": frozenset({"development", "staged", "deployable", "deployed", "broken"}),
    "deployed": frozenset({"deployed", "broken"}),
    "broken": frozenset({"development", "staged", "deployable", "deployed", "broken"}),
}
ENTRY_KEYS = ("state", "environment", "digest", "time", "actor", "build_url", "annotation",
              "deployment_id", "tag", "reason")
MAX_ATTEMPTS = 12


def check_state(state: str, field: str = "--state") -> str:
    """``state`` if it is one of STATES, else BadInput."""
    if state not in STATES:
        raise BadInput(f"unknown state {state!r}", field=field, expected=" | ".join(STATES))
    return state


def check_transition(current: str, new: str) -> None:
    """Refused when the state machine does not allow ``current -> new``."""
    if new not in TRANSITIONS.get(current, frozenset()):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ())))
        raise Refused(f"illegal state transition {current} -> {new}",
                      expected=f"from {current}: {allowed}",
                      hint="a deployed commit is never touched again; mark it broken if it is")


@dataclass(frozen=True)
class Note:
    """The state note on one commit (``fields`` is the whole parsed document)."""

    commit: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        value = str(self.fields.get("state") or DEFAULT_STATE).strip()
        return value if value in STATES else DEFAULT_STATE

    @property
    def history(self) -> list[dict[str, Any]]:
        history = self.fields.get("history")
        if isinstance(history, list):
            return [h for h in history if isinstance(h, dict)]
        return [self.entry] if self.fields else []

    @property
    def entry(self) -> dict[str, Any]:
        """The latest change's fields (without the history)."""
        return {k: v for k, v in self.fields.items() if k != "history"}

    @classmethod
    def parse(cls, commit: str, text: str | None) -> Note:
        return cls(commit, fmt.load(text) if text and text.strip() else {})


def render(previous: Note, entry: dict[str, Any]) -> str:
    """The new note text: ``entry`` on top (``state:`` first), history appended."""
    top = {k: entry[k] for k in ENTRY_KEYS if entry.get(k) not in (None, "")}
    history = [*previous.history, top]
    return fmt.dump({**top, "history": history})


def fetch_notes(repo: GitRepository) -> str | None:
    """Fetch the remote notes ref and reset the local one to it; returns its SHA (or None)."""
    if repo.remote is None:
        return repo.ref_sha(NOTES_REF)
    repo.fetch([fmt.NOTES_REFSPEC])
    remote_sha = repo.ref_sha(fmt.NOTES_TRACKING_REF)
    repo.update_ref(NOTES_REF, remote_sha)
    return remote_sha


def read_note(repo: GitRepository, commit: str) -> Note:
    """The state note on ``commit`` as the local notes ref has it (fetch first)."""
    return Note.parse(commit, repo.note(NOTES_REF, commit))


def read_all(repo: GitRepository) -> dict[str, Note]:
    """Every state note, by commit (fetch first)."""
    return {commit: Note.parse(commit, repo.read_blob(blob).decode("utf-8", "replace"))
            for commit, blob in repo.notes_list(NOTES_REF).items()}


@dataclass(frozen=True)
class StateOutcome:
    """What ``set_state`` did: the state before and after, and whether it wrote."""

    commit: str
    before: str
    after: str
    changed: bool
    attempts: int = 1


def _same(note: Note, entry: dict[str, Any]) -> bool:
    """True when ``entry`` repeats the note's latest change (a re-run: nothing to write)."""
    if not note.fields:
        return False
    keys = ("state", "environment", "digest", "deployment_id", "annotation")
    return all(str(note.fields.get(k) or "") == str(entry.get(k) or "") for k in keys)


def set_state(repo: GitRepository, commit: str, entry: dict[str, Any], *, force: bool = False,
              dry_run: bool = False, attempts: int = MAX_ATTEMPTS) -> StateOutcome:
    """Write ``entry`` (cleaned fields, with ``state``) as the note on ``commit``.

    Checks the transition against the remote's current note (``force`` skips the check:
    for an operator repairing a record; the change is audited by the caller).
    """
    new = check_state(str(entry.get("state", "")), "state")
    for attempt in range(1, attempts + 1):
        remote_sha = fetch_notes(repo)
        note = read_note(repo, commit)
        if not force:
            check_transition(note.state, new)
        if _same(note, entry):
            return StateOutcome(commit, note.state, new, changed=False, attempts=attempt)
        if dry_run:
            return StateOutcome(commit, note.state, new, changed=True, attempts=attempt)
        repo.set_note(NOTES_REF, commit, render(note, entry))
        try:
            repo.push_cas([(NOTES_REF, NOTES_REF, remote_sha)])
        except PushRejected:
            fmt.backoff(attempt)  # another writer pushed first: re-read and re-check
            continue
        except PipelineError:
            repo.update_ref(NOTES_REF, remote_sha)  # keep local == remote
            raise
        return StateOutcome(commit, note.state, new, changed=True, attempts=attempt)
    raise StepFailed(f"could not write the state note after {attempts} attempts",
                     cause="other writers kept changing the notes ref first",
                     hint="re-run; the write converges once the race is over")
