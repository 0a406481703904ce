"""Migration lint: squawk finds the problems, the expand/contract phase rules decide.

While a release rolls out, the old and the new app version run against the same schema.
squawk (``pipelinelib.adapters.squawk``, every rule it has) reports what each statement
risks; ``PHASE_RULES`` says, per squawk rule id, whether a finding **blocks** or only
**warns** in the *expand* phase (the default: the old version still runs) and in the
*contract* phase (a file marked ``-- pipelinelib:contract reason: ...``, accepted only
once the previous app version runs nowhere; the gate checks that).

Two more facts decide, read with PostgreSQL's own parser (pglast, what the running
database will read): a table created earlier in the same release is empty and unused by
the running version, so locking and breaking rules on it only warn; and
``-- pipelinelib:allow RULE reason: ...`` accepts one rule in one file.
Each finding names file, line, squawk's rule id, the statement's subject and squawk's fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelinelib.migrate.files import Migration, Statement, load_migrations

BLOCK, WARN = "block", "warn"
EXPAND, CONTRACT = "expand", "contract"

# squawk rule id -> (in the expand phase, in the contract phase, why)
PHASE_RULES: dict[str, tuple[str, str, str]] = {
    # break the running (old) version: fine only once it runs nowhere
    "ban-drop-column": (BLOCK, WARN, "the old version may still read the column"),
    "ban-drop-table": (BLOCK, WARN, "the old version may still use the table"),
    "renaming-column": (BLOCK, WARN, "the old version uses the old name"),
    "renaming-table": (BLOCK, WARN, "the old version uses the old name"),
    "ban-drop-not-null": (BLOCK, WARN, "the old version may not expect NULLs"),
    "adding-not-nullable-field": (BLOCK, WARN, "the old version's INSERTs without the column "
                                               "fail"),
    # lock or rewrite a busy table, or fail outright, whichever version runs
    "adding-required-field": (BLOCK, BLOCK, "fails on a non-empty table; old INSERTs fail"),
    "require-concurrent-index-creation": (BLOCK, BLOCK, "blocks writes while the index builds"),
    "require-concurrent-index-deletion": (BLOCK, BLOCK, "blocks reads and writes"),
    "require-concurrent-reindex": (BLOCK, BLOCK, "blocks writes while it rebuilds"),
    "require-concurrent-partition-detach": (BLOCK, BLOCK, "blocks the parent table"),
    "constraint-missing-not-valid": (BLOCK, BLOCK, "scans the table under a lock"),
    "adding-foreign-key-constraint": (BLOCK, BLOCK, "locks both tables while it validates"),
    "adding-field-with-default": (BLOCK, BLOCK, "a volatile default rewrites the table"),
    "adding-serial-primary-key-field": (BLOCK, BLOCK, "rewrites and locks the table"),
    "changing-column-type": (BLOCK, BLOCK, "rewrites the table; may narrow values"),
    "disallowed-unique-constraint": (BLOCK, BLOCK, "builds an index under a lock"),
    "ban-create-domain-with-constraint": (BLOCK, BLOCK, "checks every column of the domain"),
    "ban-alter-domain-with-add-constraint": (BLOCK, BLOCK, "checks every column of the domain"),
    "ban-truncate-cascade": (BLOCK, BLOCK, "empties tables beyond the one named"),
    "ban-drop-database": (BLOCK, BLOCK, "drops every table"),
    "prefer-repack": (BLOCK, BLOCK, "rewrites the table under an ACCESS EXCLUSIVE lock"),
    "identifier-too-long": (BLOCK, BLOCK, "PostgreSQL truncates the name the app uses"),
    "ban-duplicate-column-assignments": (BLOCK, BLOCK, "PostgreSQL refuses the statement"),
    "ban-concurrent-index-creation-in-transaction": (BLOCK, BLOCK, "PostgreSQL refuses it in "
                                                                   "a transaction"),
    "transaction-nesting": (BLOCK, BLOCK, "the runner already wraps the file in a transaction"),
    "ban-uncommitted-transaction": (BLOCK, BLOCK, "leaves a transaction open"),
    # good practice: reported, never blocking
    "prefer-robust-stmts": (WARN, WARN, "a re-run after a partial failure fails"),
    "prefer-bigint-over-int": (WARN, WARN, "32-bit ids run out"),
    "prefer-bigint-over-smallint": (WARN, WARN, "16-bit ids run out"),
    "prefer-identity": (WARN, WARN, "serial has ownership pitfalls"),
    "prefer-text-field": (WARN, WARN, "varchar(n) limits need a rewrite to change"),
    "prefer-timestamp-tz": (WARN, WARN, "timestamps without a time zone"),
    "ban-char-field": (WARN, WARN, "char(n) pads values"),
    "require-enum-value-ordering": (WARN, WARN, "the new value's position is implicit"),
    "require-lock-timeout": (WARN, WARN, "a waiting lock queues every query behind it; "
                                         "pipeline migrate --lock-timeout sets one"),
    "require-statement-timeout": (WARN, WARN, "a slow statement holds its locks"),
    "require-table-schema": (WARN, WARN, "the table's schema depends on search_path"),
    "syntax-error": (WARN, WARN, "squawk's parser disagrees with PostgreSQL's"),
}
OPT_IN = ("require-table-schema",)  # squawk runs these only when included
# our earlier rule names, still accepted in allow markers
LEGACY = {"drop-column": "ban-drop-column", "drop-table": "ban-drop-table",
          "rename-column": "renaming-column", "rename-table": "renaming-table",
          "alter-column-type": "changing-column-type",
          "add-column-not-null": "adding-required-field",
          "set-not-null": "adding-not-nullable-field",
          "non-concurrent-index": "require-concurrent-index-creation"}
# rules that only matter because the table has rows or the running version uses it
NEW_TABLE_EXEMPT = {rule for rule, (expand, _, _) in PHASE_RULES.items()
                    if expand == BLOCK} - {"ban-drop-database", "identifier-too-long",
                                           "ban-duplicate-column-assignments",
                                           "ban-concurrent-index-creation-in-transaction",
                                           "transaction-nesting", "ban-uncommitted-transaction",
                                           "ban-truncate-cascade"}


@dataclass(frozen=True)
class Finding:
    """One lint finding; ``allowed`` (it only warns) or it blocks the release."""

    file: str
    line: int
    rule: str
    message: str
    statement: str
    allowed: bool = False
    reason: str = ""
    contract: bool = False  # accepted because the file is a contract-phase migration
    fix: str = ""  # what squawk suggests
    phase: str = EXPAND

    @property
    def blocks(self) -> bool:
        return not self.allowed

    def one_line(self) -> str:
        tail = f" (allowed: {self.reason})" if self.allowed else ""
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{self.file}:{self.line} {self.rule}: {self.message}{fix}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lint(migrations: Iterable[Migration], *, pg_version: str | None = None,
         each_on_its_own: bool = False) -> list[Finding]:
    """Lint the migrations of one release in order (a table created earlier in it counts
    as new, unless ``each_on_its_own``)."""
    from pipelinelib.adapters.squawk import lint_files

    migrations = list(migrations)
    by_file = {str(m.path): m for m in migrations}
    violations = []
    for transactional in (True, False):
        files = [str(m.path) for m in migrations if m.transactional is transactional]
        violations += lint_files(files, in_transaction=transactional, pg_version=pg_version,
                                 include=OPT_IN)
    created: dict[str, set[str]] = {}  # file -> tables created by earlier files of the release
    new: set[str] = set()
    for mig in migrations:
        created[str(mig.path)] = set() if each_on_its_own else set(new)
        new |= _created(mig)
    findings = []
    for v in sorted(violations, key=lambda v: (list(by_file).index(v.file)
                                               if v.file in by_file else -1, v.line, v.rule)):
        found = by_file.get(v.file)
        if found is None:
            continue
        findings.append(_decide(found, v, created[v.file]))
    return findings


def _decide(mig: Migration, v: Any, new_before: set[str]) -> Finding:
    stmt = _statement_at(mig, v.line)
    phase = CONTRACT if mig.marker("contract") else EXPAND
    expand, contract, why = PHASE_RULES.get(v.rule, (WARN, WARN, "a squawk rule this version "
                                                                 "of pipelinelib does not "
                                                                 "classify yet"))
    action = contract if phase == CONTRACT else expand
    subject = _subject(stmt) if stmt else ""
    message = f"{subject}: {v.message}" if subject else v.message
    message += f" ({why})"
    reason = ""
    is_contract = False
    if action == WARN:
        reason = "contract phase: " + mig.marker("contract")[0].reason if (
            phase == CONTRACT and expand == BLOCK) else "warns only"
        is_contract = phase == CONTRACT and expand == BLOCK
    else:
        new_here = new_before | _created_before(mig, stmt)
        allows = {LEGACY.get(rule, rule): m.reason for m in mig.marker("allow")
                  for rule in m.args}
        if v.rule in allows or "all" in allows:
            reason = allows.get(v.rule) or allows["all"]
        elif v.rule in NEW_TABLE_EXEMPT and stmt and _tables(stmt) and \
                _tables(stmt) <= new_here:
            reason = "table created in this release: empty, and no running version uses it"
    return Finding(str(mig.path), v.line, v.rule, message,
                   stmt.sql.splitlines()[0][:120] if stmt else "", allowed=bool(reason),
                   reason=reason, contract=is_contract, fix=v.help, phase=phase)


def lint_migrations(directory: str | Path, versions: Iterable[str] | None = None, *,
                    pg_version: str | None = None) -> list[Finding]:
    """Lint the migrations in ``directory`` (only the keys in ``versions`` when given,
    e.g. the pending ones from ``pending_migrations``). Findings with ``allowed=False``
    fail the gate. BadInput when a file cannot be read or parsed.

    Without ``versions`` each file is linted on its own: only tables created in the same
    file count as new.
    """
    migrations = load_migrations(directory)
    if versions is None:
        return lint(migrations, pg_version=pg_version, each_on_its_own=True)
    wanted = {str(v) for v in versions}
    return lint([m for m in migrations if m.key in wanted or m.name in wanted],
                pg_version=pg_version)


def version_of(db: Any) -> str:
    """The PostgreSQL version of an open session (``ctx.database(dsn)``) as squawk's
    ``--pg-version`` reads it."""
    import re

    text = str(db.scalar("show server_version"))
    match = re.match(r"\d+(?:\.\d+)?", text)  # "16.4 (Debian ...)", "17beta1" -> 16.4, 17
    return match.group(0) if match else ""


# -- what pglast reads ------------------------------------------------------------------------
def _statement_at(mig: Migration, line: int) -> Statement | None:
    """The statement that covers ``line`` (the last one starting at or before it)."""
    found = None
    for stmt in mig.statements:
        if stmt.line <= line:
            found = stmt
    return found


def _name(rel: Any) -> str:
    if rel is None:
        return ""
    schema = getattr(rel, "schemaname", None)
    return f"{schema}.{rel.relname}" if schema else str(rel.relname)


def _tables(stmt: Statement) -> set[str]:
    node, kind = stmt.node, type(stmt.node).__name__
    if kind in ("AlterTableStmt", "IndexStmt", "RenameStmt", "ReindexStmt"):
        rel = getattr(node, "relation", None)
        return {_name(rel)} if rel is not None else set()
    if kind == "DropStmt":
        return {".".join(getattr(p, "sval", str(p)) for p in obj)
                for obj in node.objects or () if isinstance(obj, (list, tuple))}
    return set()


def _subject(stmt: Statement) -> str:
    """``table.column`` (or the table) a statement changes, for the finding's message."""
    from pglast.enums import AlterTableType

    node, kind = stmt.node, type(stmt.node).__name__
    if kind == "AlterTableStmt":
        table = _name(node.relation)
        cmds = list(node.cmds or ())
        if len(cmds) == 1:
            cmd = cmds[0]
            column = None
            if cmd.subtype != AlterTableType.AT_AddConstraint:
                column = cmd.name or getattr(cmd.def_, "colname", None)
            return f"{table}.{column}" if column else table
        return table
    if kind == "RenameStmt" and node.relation is not None:
        table = _name(node.relation)
        return f"{table}.{node.subname} -> {node.newname}" if node.subname else \
            f"{table} -> {node.newname}"
    tables = _tables(stmt)
    return ", ".join(sorted(tables))


def _created(mig: Migration) -> set[str]:
    return _created_before(mig, None)


def _created_before(mig: Migration, stop: Statement | None) -> set[str]:
    names = set()
    for s in mig.statements:
        if stop is not None and s.line >= stop.line:
            break
        kind = type(s.node).__name__
        if kind == "CreateStmt":
            names.add(_name(s.node.relation))
        elif kind == "CreateTableAsStmt" and s.node.into is not None:
            names.add(_name(s.node.into.rel))
    return names
