"""The release gate: check the five marks of the release checklist, with evidence.

Procedure: read the app's gate config and every input (bad input -> exit 2) -> check
each configured mark -> apply a privileged override (mandatory reason, audited) -> record
the checklist against the image digest (attestation ``gate``) -> fail when a mark failed.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelinelib.context import Context
from pipelinelib.errors import BadInput, GateFailed, Refused
from pipelinelib.gate import checklist as marks
from pipelinelib.gate.config import GateConfig, read_audit_mapping, read_current, read_deployed
from pipelinelib.result import StepResult
from pipelinelib.step import step


def deployed_release(ctx: Context, app_dir: Path, environment: str
                     ) -> tuple[str | None, str]:
    """The git revision deployed in ``environment`` by our records, and how we know.

    None (with the reason) when the records hold no successful deployment there yet.
    """
    from pipelinelib.records.metrics import deployed_in

    current = deployed_in(ctx.git(app_dir), environment)
    if current is None:
        return None, f"first deployment to {environment}: nothing to compare"
    label = current.tag or current.deployment_id or "a deployment record"
    return current.commit, f"deployed in {environment}: {current.commit[:12]} ({label})"


def contract_guard(ctx: Context, app_dir: Path) -> Callable[[Path], tuple[bool, str]]:
    """Whether a contract-phase migration may run: the app version before it runs nowhere.

    The version before it is the newest revision our deployment records ever deployed
    that precedes the commit adding the file (HEAD while uncommitted); every environment
    with a deployment must run it or a newer revision. Records are read on first use.
    """
    state: dict[str, Any] = {}

    def guard(path: Path) -> tuple[bool, str]:
        from pipelinelib.records.metrics import collect

        if not state:
            try:
                repo = ctx.git(app_dir)
            except BadInput:
                return False, f"{app_dir} is not a git repository: no deployment records"
            done = [d for d in collect(repo) if d.result == "success"]
            state.update(repo=repo, done=done, running={d.environment: d for d in done})
        repo, done, running = state["repo"], state["done"], state["running"]
        if not running:
            return True, "the app is deployed nowhere yet"
        added = repo.added_in(path)
        base = repo.ref_sha(f"{added}^") if added else repo.resolve("HEAD")
        before = {d.commit for d in done if base and repo.is_ancestor(d.commit, base)}
        if not before:
            return True, "no deployed version precedes it"
        times = repo.commit_times(before)
        previous = max(before, key=lambda sha: times.get(sha, 0))
        for sha in before:  # the newest by ancestry (commit times may tie)
            if sha != previous and repo.is_ancestor(previous, sha):
                previous = sha
        stale = [f"{env} runs {d.commit[:12]} ({d.tag or d.deployment_id or 'a record'})"
                 for env, d in sorted(running.items())
                 if not repo.is_ancestor(previous, d.commit)]
        if stale:
            return False, (f"an app version older than {previous[:12]} (the release before "
                           f"it) still runs: {', '.join(stale)}")
        return True, (f"every environment runs {previous[:12]} or newer: "
                      f"{', '.join(sorted(running))}")

    return guard


def check_marks(ctx: Context, cfg: GateConfig, *, deployed_dir: str | None = None,
                deployed_rev: str | None = None, dsn: str | None = None,
                build_result: str | None = None, environment: str | None = None,
                only: set[int] | None = None, migrate_next: bool = False
                ) -> list[marks.Mark]:
    """Every mark, in order; marks the app did not configure are ``skipped``.

    The deployed release to compare with (marks 4 and 5) is ``deployed_dir``,
    ``deployed_rev``, or what our records say runs in ``environment``. ``only`` narrows
    the configured marks (e.g. ``{2}`` right before the rollout).
    """
    app = cfg.app_dir
    result = []
    changes: list[Any] | None = None
    first, deployed_note = False, ""
    wanted = set(cfg.marks) & (only or set(cfg.marks))
    if environment and not (deployed_dir or deployed_rev) and {4, 5} & wanted:
        deployed_rev, deployed_note = deployed_release(ctx, app, environment)
        first = deployed_rev is None
    for number in (1, 2, 3, 4, 5):
        if number not in cfg.marks or (only and number not in only):
            result.append(marks.Mark(number, True, skipped=True))
            continue
        if number == 1:
            found = sorted({Path(p) for g in cfg.test_reports for p in glob.glob(str(app / g))})
            result.append(marks.check_tests(found, build_result))
        elif number in (2, 3):
            if not cfg.migrations:
                result.append(marks.Mark(number, False, ["no `migrations` directory in "
                                                         f"{cfg.source or 'gate.yaml'}"]))
            elif number == 2:
                result.append(marks.check_pending(ctx, dsn, app / cfg.migrations,
                                                  migrate_next))
            else:
                result.append(marks.check_lint(ctx, app / cfg.migrations, dsn,
                                               contract_guard(ctx, app)))
        elif number == 4:
            if not cfg.openapi:
                result.append(marks.Mark(4, False, ["no `openapi` document configured"]))
                continue
            if first:
                result.append(marks.Mark(4, True, [deployed_note]))
                changes = []
                continue
            new = read_current(app, cfg.openapi)
            old = read_deployed(ctx, app, cfg.openapi, deployed_dir=deployed_dir,
                                deployed_rev=deployed_rev)
            if old is None:
                result.append(marks.Mark(4, True, ["first release of this interface"]))
                changes = []
                continue
            changes = marks.interface_changes(
                old, new, levels=cfg.openapi_levels,
                sources=(f"{cfg.openapi} (deployed)", str(app / cfg.openapi)))
            mark = marks.check_semver(changes, _version(old, cfg.openapi),
                                      _version(new, cfg.openapi))
            mark.evidence[:0] = [deployed_note] if deployed_note else []
            result.append(mark)
        else:
            if first:
                result.append(marks.Mark(5, True, [deployed_note]))
            elif changes is None:
                result.append(marks.Mark(5, False, ["mark 5 needs mark 4's interface diff"]))
            elif not cfg.audit_mapping:
                result.append(marks.check_audit_mapping(changes, {}, {}))
            else:
                new_map = read_audit_mapping(app, cfg.audit_mapping)
                old_map = read_deployed(ctx, app, cfg.audit_mapping, deployed_dir=deployed_dir,
                                        deployed_rev=deployed_rev) or {}
                result.append(marks.check_audit_mapping(changes, old_map, new_map))
    return result


def _version(doc: dict[str, Any], source: str) -> str:
    version = (doc.get("info") or {}).get("version") or doc.get("version")
    if not version:
        raise BadInput("no version", source=source, field="info.version",
                       expected="the semantic version of this interface")
    return str(version)


def parse_marks(text: str, field: str) -> set[int]:
    """``"4,5"`` as {4, 5}; BadInput naming ``field`` otherwise."""
    try:
        numbers = {int(x) for x in text.split(",") if x.strip()}
    except ValueError as exc:
        raise BadInput(f"bad mark list {text!r}", field=field, expected="e.g. 4,5") from exc
    if not numbers or not numbers <= {1, 2, 3, 4, 5}:
        raise BadInput(f"no such mark in {text!r}", field=field, expected="1 to 5")
    return numbers


def parse_override(text: str | None, reason: str | None) -> tuple[set[int], str]:
    if not text:
        return set(), ""
    numbers = parse_marks(text, "--override")
    if not (reason or "").strip():
        raise BadInput("an override needs a reason", field="--reason",
                       expected="why this release may go out anyway")
    return numbers, (reason or "").strip()


@step("gate")
def release_gate(ctx: Context, cfg: GateConfig, checked: list[marks.Mark], *,
                 override: set[int] | None = None, reason: str = "", image: str = "",
                 digest: str = "") -> StepResult:
    """Apply the override (privileged, audited), record the checklist, fail on a ✗."""
    override = override or set()
    actions: list[str] = []
    failing = [m for m in checked if not m.passed]
    if override:
        user = ctx.ci.user
        if not user or user not in cfg.overriders:
            raise Refused(f"{user or 'an unknown user'} may not override the release gate",
                          field="--override",
                          hint=f"overriders in {cfg.source or 'gate.yaml'}: "
                               f"{', '.join(cfg.overriders) or 'none'}")
        used = [m for m in failing if m.number in override]
        for mark in used:
            mark.overridden = reason
        if used and not ctx.dry_run:
            from pipelinelib.records import audit

            event = audit.record(ctx, "gate-override", target=image or ctx.app or "release",
                                 result="overridden", reason=reason,
                                 marks=[m.number for m in used], digest=digest,
                                 evidence=[line for m in used for line in m.evidence][:20])
            actions.append(f"audit override of mark(s) {', '.join(str(m.number) for m in used)}"
                           f" by {user} (event {event.id})")
    lines = [line for m in checked for line in m.lines()]
    passed = all(m.passed for m in checked)
    if image and digest:
        from pipelinelib.attest import write_attestation

        payload = {"kind": "gate", "digest": digest, "app": ctx.app, "revision": ctx.revision,
                   "passed": passed, "marks": [m.to_dict() for m in checked]}
        written = write_attestation(ctx, image, digest, "gate", payload)
        if written["changed"]:
            actions.append(f"record gate result as {written['reference']}")
    if not passed:
        bad = [f"✗ {m.number}: {m.why()}" for m in checked if not m.passed]
        raise GateFailed(f"release gate failed: {'; '.join(bad)}"[:600],
                         hint="fix the evidence below, or have a privileged user override "
                              "with --override MARKS --reason TEXT",
                         evidence=lines)
    summary = "release checklist: " + " ".join(f"{m.number}{m.symbol()}" for m in checked)
    return StepResult.of("gate", actions, dry_run=ctx.dry_run, summary=summary,
                         checklist=lines, passed=True)
