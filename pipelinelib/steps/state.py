"""Read and set a commit's refspec state (git note in ``refs/notes/pipelinelib-state``).

Setting a state checks the state machine (``pipelinelib.records.states``) against what
origin has now, pushes the note with compare-and-swap, and audits the change.
``--force`` skips the transition check for an operator repairing a record: that is
audited as an ``override``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipelinelib.context import Context
from pipelinelib.result import StepResult
from pipelinelib.step import step


@step("state-get")
def get_state(ctx: Context, *, repo: str | os.PathLike[str] = ".",
              revision: str = "HEAD") -> StepResult:
    """The state of ``revision`` (``development`` without a note), with its latest fields."""
    from pipelinelib.records import states

    git_repo = ctx.git(Path(repo))
    commit = git_repo.resolve(revision, "--revision")
    states.fetch_notes(git_repo)
    note = states.read_note(git_repo, commit)
    fields: dict[str, Any] = note.entry
    return StepResult.of("state-get", [], summary=f"{commit[:12]} is {note.state}",
                         commit=commit, state=note.state, fields=fields,
                         history=note.history, noted=bool(note.fields))


@step("state-set")
def set_state(ctx: Context, *, state: str, repo: str | os.PathLike[str] = ".",
              revision: str = "HEAD", reason: str = "", digest: str = "",
              force: bool = False) -> StepResult:
    """Set ``revision``'s state; Refused for an illegal transition (unless ``force``)."""
    from pipelinelib.errors import Refused
    from pipelinelib.records import format as fmt
    from pipelinelib.records import states
    from pipelinelib.records.audit import record

    states.check_state(state)
    fmt.check_digest(digest, "--digest")
    if ctx.environment:
        fmt.check_environment(ctx.environment)
    if force and not reason:
        raise Refused("--force needs a --reason (it is audited as an override)",
                      field="--reason", expected="why the state machine is bypassed")
    git_repo = ctx.git(Path(repo))
    commit = git_repo.resolve(revision, "--revision")
    entry = fmt.clean({"state": state, "environment": ctx.environment, "digest": digest,
                       "time": fmt.utc_now(), "actor": ctx.ci.user or "unknown",
                       "build_url": ctx.ci.build_url, "reason": reason}, ctx.secrets)
    try:
        outcome = states.set_state(git_repo, commit, entry, force=force, dry_run=ctx.dry_run)
    except Refused as exc:
        if not ctx.dry_run:
            record(ctx, "refusal", target=commit, result="refused", reason=exc.message,
                   state=state, revision=commit)
        raise
    actions = ([f"note {commit[:12]} state {outcome.before} -> {outcome.after}"]
               if outcome.changed else [])
    warnings: list[str] = []
    if actions and not ctx.dry_run:
        moved: dict[str, Any] = {"from": outcome.before, "to": outcome.after}
        event = record(ctx, "override" if force else "state", target=commit,
                       result="overridden" if force else "success", reason=reason,
                       state=state, revision=commit, **moved)
        warnings = event.warnings
    summary = "; ".join(actions) or f"{commit[:12]} is already {state}"
    if warnings:
        summary += "; WARNING: " + "; ".join(warnings)
    return StepResult.of("state-set", actions, dry_run=ctx.dry_run, summary=summary,
                         commit=commit, before=outcome.before, state=outcome.after,
                         warnings=warnings)
