"""The release checklist (seed 000/001): five marks, each an automated check with evidence.

1. built and tested: the build's JUnit XML exists, has tests and no failures/errors, and
   the build is stable (``--build-result`` SUCCESS when the CI server passes it).
2. migrations occur before deployment: no migration is pending in the target database
   (``pipeline migrate`` runs earlier in the same pipeline; the gate refuses otherwise).
3. old and new versions co-exist: the migration lint (expand/contract rules) passes.
4. breaking interface changes only in major releases: the OpenAPI (or JSON Schema) diff
   against the deployed version; breaking changes need a semver major bump.
5. auditing kept in step: for every broken call, the app's declared audit index mapping
   for that call changed in this release.

Each check returns a ``Mark``; nothing here writes anything.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelinelib.errors import BadInput
from pipelinelib.gate.openapi_diff import ApiChange, breaking_calls, diff_openapi, diff_schema
from pipelinelib.report import checklist

if TYPE_CHECKING:
    from pipelinelib.context import Context

TITLES = {
    1: "built and tested: tests pass and the build is stable",
    2: "migrations occur before the deployment",
    3: "old and new versions can co-exist (migration lint)",
    4: "breaking interface changes only in a major release",
    5: "audit index mapping updated for every broken call",
}


@dataclass
class Mark:
    number: int
    ok: bool
    evidence: list[str] = field(default_factory=list)
    skipped: bool = False
    overridden: str = ""  # the override reason when a privileged user overrode it
    reason: str = ""  # why it failed, in one line (default: its first ✗ or evidence line)

    @property
    def title(self) -> str:
        return TITLES[self.number]

    @property
    def passed(self) -> bool:
        return self.ok or self.skipped or bool(self.overridden)

    def symbol(self) -> str:
        return checklist.symbol(self.ok, skipped=self.skipped, overridden=bool(self.overridden))

    def lines(self) -> list[str]:
        note = " (not configured)" if self.skipped else ""
        note += f" (OVERRIDDEN: {self.overridden})" if self.overridden else ""
        return checklist.item(self.symbol(), f"{self.number}. {self.title}{note}", self.evidence)

    def why(self) -> str:
        """One line saying why this mark failed."""
        return (self.reason or checklist.first_failure(self.evidence)
                or next(iter(self.evidence), self.title))

    def to_dict(self) -> dict[str, Any]:
        return {"mark": self.number, "title": self.title, "ok": self.ok,
                "skipped": self.skipped, "overridden": self.overridden,
                "evidence": self.evidence}


# -- mark 1 --------------------------------------------------------------------------------------
def check_tests(reports: list[Path], build_result: str | None = None) -> Mark:
    """Mark 1 from JUnit XML files (any of Jenkins' and pytest's shapes)."""
    if not reports:
        return Mark(1, False, ["no test report found: the build must publish JUnit XML"])
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    evidence, failed_cases = [], []
    for path in reports:
        try:
            root = ET.parse(path).getroot()  # noqa: S314 (our build's report; expat>=2.4)
        except (ET.ParseError, OSError) as exc:
            raise BadInput(f"test report is not JUnit XML: {exc}", source=str(path)) from exc
        suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
        if root.tag not in ("testsuite", "testsuites"):
            raise BadInput("test report is not JUnit XML", source=str(path),
                           expected="<testsuites> or <testsuite>")
        counts = dict.fromkeys(totals, 0)
        for suite in suites:
            cases = suite.iter("testcase")
            for case in cases:
                counts["tests"] += 1
                if case.find("failure") is not None:
                    counts["failures"] += 1
                    failed_cases.append(f"{case.get('classname', '')}.{case.get('name')}")
                elif case.find("error") is not None:
                    counts["errors"] += 1
                    failed_cases.append(f"{case.get('classname', '')}.{case.get('name')}")
                elif case.find("skipped") is not None:
                    counts["skipped"] += 1
        for key in totals:
            totals[key] += counts[key]
        evidence.append(f"{path}: {counts['tests']} tests, {counts['failures']} failures, "
                        f"{counts['errors']} errors, {counts['skipped']} skipped")
    evidence += [f"failed: {name}" for name in failed_cases[:10]]
    ok = totals["tests"] > 0 and not totals["failures"] and not totals["errors"]
    if totals["tests"] == 0:
        evidence.append("the reports hold no test cases")
    if build_result is not None:
        stable = build_result.upper() == "SUCCESS"
        evidence.append(f"build result: {build_result.upper()}"
                        + ("" if stable else " (the build must be stable)"))
        ok = ok and stable
    return Mark(1, ok, evidence)


# -- marks 2 and 3 (pipelinelib.migrate) -----------------------------------------------------
def check_pending(ctx: Context, dsn: str | None, directory: Path,
                  migrate_next: bool = False) -> Mark:
    """Mark 2: nothing pending in the target database.

    ``migrate_next``: this gate runs before the pipeline's migrate stage, so pending
    migrations are expected; they must still apply cleanly (no edited or missing applied
    migration), and a second ``--marks 2`` gate right before the rollout refuses it if
    any is still pending.
    """
    from pipelinelib.migrate import load_migrations, pending_migrations

    if not dsn:
        return Mark(2, False, ["no database to check: pass --database-dsn (or "
                               "PIPELINE_DB_DSN) for the target environment"])
    load_migrations(directory)  # bad files fail before connecting
    with ctx.database(dsn, application_name="pipelinelib gate") as db:
        pending = pending_migrations(db, directory)
    names = ", ".join(m.path.name for m in pending)
    if pending and migrate_next:
        return Mark(2, True, [f"{len(pending)} migration(s) to apply next: {names}",
                              "the pipeline runs `pipeline migrate` before the rollout"])
    if pending:
        return Mark(2, False, [f"{len(pending)} migration(s) pending: {names}",
                               "run `pipeline migrate` before the rollout"])
    return Mark(2, True, [f"no pending migrations in {directory}"])


def check_lint(ctx: Context, directory: Path, dsn: str | None = None,
               contract_guard: Callable[[Path], tuple[bool, str]] | None = None) -> Mark:
    """Mark 3: the expand/contract lint of the migrations this release will run.

    With the target database, only the pending migrations are linted (a destructive
    migration applied long ago is history, not today's risk); without one, all of them.
    A contract-phase file (``-- pipelinelib:contract reason: ...``) is accepted only when
    ``contract_guard(file)`` says the app version before it runs nowhere any more.
    """
    from pipelinelib.migrate import lint_migrations, load_migrations, pending_migrations

    if dsn:
        from pipelinelib.migrate.lint import version_of

        load_migrations(directory)  # bad files fail before connecting
        with ctx.database(dsn, application_name="pipelinelib gate") as db:
            pending = pending_migrations(db, directory)
            pg_version = version_of(db)
        findings = lint_migrations(directory, [m.key for m in pending],
                                   pg_version=pg_version or None)
        scope = (f"{len(pending)} pending migration(s) linted" if pending
                 else "no pending migrations to lint")
    else:
        findings = lint_migrations(directory)
        scope = "every migration linted (no target database given to tell the pending ones)"
    refused = [f for f in findings if not f.allowed]
    evidence = [f.one_line() for f in refused] or [f"lint clean: {directory} ({scope})"]
    warn_only = [f for f in findings if f.allowed and f.reason == "warns only"]
    evidence += [f.one_line() for f in findings if f.allowed and f not in warn_only]
    if warn_only:
        counts: dict[str, int] = {}
        for f in warn_only:
            counts[f.rule] = counts.get(f.rule, 0) + 1
        evidence.append(f"{len(warn_only)} squawk warning(s), none blocking: "
                        + ", ".join(f"{rule} x{n}" for rule, n in sorted(counts.items())))
    ok = not refused
    for file in sorted({f.file for f in findings if f.allowed and f.contract}):
        fine, why = (contract_guard(Path(file)) if contract_guard else
                     (False, "no deployment records to tell where older versions run"))
        ok = ok and fine
        evidence.append(f"{checklist.symbol(fine)} contract phase {Path(file).name}: {why}")
    return Mark(3, ok, evidence)


# -- marks 4 and 5 -------------------------------------------------------------------------------
def interface_changes(old: dict[str, Any], new: dict[str, Any], *,
                      levels: dict[str, str] | None = None,
                      sources: tuple[str, str] = ("deployed", "current")) -> list[ApiChange]:
    """OpenAPI when the documents are OpenAPI, else both are JSON Schemas of a response.

    Both are checked for the shape oasdiff needs before it runs (BadInput naming the
    document and the field otherwise)."""
    if "openapi" in new or "swagger" in new or "paths" in new:
        for doc, source in ((old, sources[0]), (new, sources[1])):
            _check_openapi(doc, source)
        return diff_openapi(old, new, levels=levels, sources=sources)
    return diff_schema(old, new, levels=levels)


def _check_openapi(doc: dict[str, Any], source: str) -> None:
    version = doc.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        raise BadInput(f"openapi is {version!r}", source=source, field="openapi",
                       expected="an OpenAPI 3 document (openapi: 3.0.x or 3.1.x)")
    for key, kind in (("info", dict), ("paths", dict)):
        if not isinstance(doc.get(key), kind):
            raise BadInput(f"{key} is missing or not a mapping", source=source, field=key,
                           expected="a mapping")
    for path, item in doc["paths"].items():
        if not isinstance(item, dict):
            raise BadInput("a path item must be a mapping", source=source,
                           field=f"paths.{path}", expected="a mapping of operations")


def check_semver(changes: list[ApiChange], old_version: str, new_version: str) -> Mark:
    """Mark 4: breaking changes require a major bump."""
    from packaging.version import InvalidVersion, Version

    try:
        before, after = Version(old_version), Version(new_version)
    except InvalidVersion as exc:
        raise BadInput(f"not a semantic version: {exc}", field="version",
                       expected="MAJOR.MINOR.PATCH") from exc
    breaking = [c for c in changes if c.breaking]
    major = after.major > before.major
    head = f"version {before} -> {after}" + (" (major)" if major else "")
    warned = [c for c in changes if c.level == "WARN"]
    evidence = [head, f"{len(breaking)} breaking change(s) (oasdiff ERR), {len(warned)} "
                f"warning(s) (WARN), {len(changes) - len(breaking) - len(warned)} compatible"]
    evidence += [c.line() for c in breaking[:25]]
    evidence += [c.line() for c in warned[:25]]
    reason = ""
    if breaking and not major:
        evidence.append(f"breaking changes need version {before.major + 1}.0.0 or later")
        reason = (f"{len(breaking)} breaking change(s) in {before} -> {after} (first: "
                  f"{breaking[0].line()}); needs {before.major + 1}.0.0")
    if after < before:
        evidence.append("the new version is lower than the deployed one")
        return Mark(4, False, evidence, reason=f"version {after} is lower than {before}")
    return Mark(4, major or not breaking, evidence, reason=reason)


def check_audit_mapping(changes: list[ApiChange], old_map: dict[str, Any],
                        new_map: dict[str, Any]) -> Mark:
    """Mark 5: each broken call's audit mapping (by operationId or ``METHOD /path``) changed."""
    broken = breaking_calls(changes)
    if not broken:
        return Mark(5, True, ["no call changed incompatibly"])
    evidence, ok = [], True
    for call, items in sorted(broken.items()):
        op_id = items[0].operation_id
        key = next((k for k in (op_id, call) if k and (k in new_map or k in old_map)), "")
        name = f"{call} ({op_id})" if op_id else call
        if all(c.removes_operation for c in items):
            evidence.append(f"✓ {name}: removed; its mapping may stay for old events")
            continue
        if not key:
            ok = False
            evidence.append(f"✗ {name}: no audit mapping declared for this call")
        elif json.dumps(old_map.get(key), sort_keys=True) == json.dumps(new_map.get(key),
                                                                         sort_keys=True):
            ok = False
            evidence.append(f"✗ {name}: audit mapping {key!r} unchanged although the call "
                            f"broke ({items[0].kind}: {items[0].detail})")
        else:
            evidence.append(f"✓ {name}: audit mapping {key!r} updated")
    return Mark(5, ok, evidence)
