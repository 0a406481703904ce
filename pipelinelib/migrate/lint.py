"""Expand/contract lint: changes the running (old) app version may not survive.

While a release rolls out, the old and the new app version run against the same
schema. These changes break the old version (or lock a busy table) and are
findings unless the migration allows them with a reason:

    drop-column, drop-table            the old version still reads them
    rename-column, rename-table        the old version uses the old name
    alter-column-type                  rewrites the table; may narrow values
    add-column-not-null                ADD COLUMN ... NOT NULL without DEFAULT: old INSERTs fail
    set-not-null                       old INSERTs without the column fail; full-table scan
    non-concurrent-index               CREATE INDEX without CONCURRENTLY blocks writes on an
                                       existing table (a table created in the same release is fine)

Allow in the file: ``-- pipelinelib:allow drop-column reason: v41 no longer reads it``, or
mark the whole file a contract-phase migration: ``-- pipelinelib:contract reason: ...``
(allowed only once the previous app version runs nowhere; the gate checks that).
SQL is read with PostgreSQL's own parser (pglast), never with regular expressions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelinelib.migrate.files import Migration, Statement, load_migrations

RULES = {
    "drop-column": "drops a column the old app version may still read",
    "drop-table": "drops a table the old app version may still use",
    "rename-column": "renames a column the old app version uses by its old name",
    "rename-table": "renames a table the old app version uses by its old name",
    "alter-column-type": "changes a column's type (table rewrite; may narrow values)",
    "add-column-not-null": "adds a NOT NULL column without DEFAULT: the old version's INSERTs "
                           "fail",
    "set-not-null": "sets NOT NULL: the old version's INSERTs without the column fail",
    "non-concurrent-index": "creates an index without CONCURRENTLY on an existing table "
                            "(blocks writes while it builds)",
}


@dataclass(frozen=True)
class Finding:
    """One lint finding; ``allowed`` when a marker with a reason accepts it."""

    file: str
    line: int
    rule: str
    message: str
    statement: str
    allowed: bool = False
    reason: str = ""
    contract: bool = False  # accepted because the file is a contract-phase migration

    def one_line(self) -> str:
        tail = f" (allowed: {self.reason})" if self.allowed else ""
        return f"{self.file}:{self.line} {self.rule}: {self.message}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _name(rel: Any) -> str:
    if rel is None:
        return ""
    schema = getattr(rel, "schemaname", None)
    return f"{schema}.{rel.relname}" if schema else str(rel.relname)


def _constraints(coldef: Any) -> list[str]:
    return [c.contype.name for c in (getattr(coldef, "constraints", None) or ())]


def statement_rules(stmt: Statement, new_tables: set[str]) -> list[tuple[str, str]]:
    """(rule, subject) pairs a statement breaks."""
    from pglast.enums import AlterTableType, ObjectType

    node, kind = stmt.node, type(stmt.node).__name__
    found: list[tuple[str, str]] = []
    if kind == "AlterTableStmt":
        table = _name(node.relation)
        if table in new_tables:
            return []
        for cmd in node.cmds or ():
            sub = cmd.subtype
            if sub == AlterTableType.AT_DropColumn:
                found.append(("drop-column", f"{table}.{cmd.name}"))
            elif sub == AlterTableType.AT_AlterColumnType:
                found.append(("alter-column-type", f"{table}.{cmd.name}"))
            elif sub == AlterTableType.AT_SetNotNull:
                found.append(("set-not-null", f"{table}.{cmd.name}"))
            elif sub == AlterTableType.AT_AddColumn:
                cons = _constraints(cmd.def_)
                generated = getattr(cmd.def_, "identity", "\x00") not in ("\x00", "", None) or \
                    getattr(cmd.def_, "generated", "\x00") not in ("\x00", "", None)
                has_default = any(c in ("CONSTR_DEFAULT", "CONSTR_IDENTITY", "CONSTR_GENERATED")
                                  for c in cons)
                not_null = "CONSTR_NOTNULL" in cons or "CONSTR_PRIMARY" in cons or \
                    bool(getattr(cmd.def_, "is_not_null", False))
                if not_null and not has_default and not generated:
                    found.append(("add-column-not-null", f"{table}.{cmd.def_.colname}"))
    elif kind == "DropStmt" and node.removeType == ObjectType.OBJECT_TABLE:
        for obj in node.objects or ():
            name = ".".join(getattr(p, "sval", str(p)) for p in obj)
            if name not in new_tables:
                found.append(("drop-table", name))
    elif kind == "RenameStmt":
        table = _name(node.relation)
        if node.renameType == ObjectType.OBJECT_COLUMN and table not in new_tables:
            found.append(("rename-column", f"{table}.{node.subname} -> {node.newname}"))
        elif node.renameType == ObjectType.OBJECT_TABLE and table not in new_tables:
            found.append(("rename-table", f"{table} -> {node.newname}"))
    elif kind == "IndexStmt" and not node.concurrent:
        table = _name(node.relation)
        if table not in new_tables:
            found.append(("non-concurrent-index", table))
    return found


def _created(mig: Migration) -> set[str]:
    names = set()
    for s in mig.statements:
        kind = type(s.node).__name__
        if kind == "CreateStmt":
            names.add(_name(s.node.relation))
        elif kind == "CreateTableAsStmt" and s.node.into is not None:
            names.add(_name(s.node.into.rel))
    return names


def lint_migration(mig: Migration, new_tables: set[str] | None = None) -> list[Finding]:
    """Findings of one migration; tables in ``new_tables`` (created in this release) are new."""
    new = set(new_tables or ()) | _created(mig)
    allows = {rule: m.reason for m in mig.marker("allow") for rule in m.args}
    contract = mig.marker("contract")
    findings = []
    for stmt in mig.statements:
        for rule, subject in statement_rules(stmt, new):
            reason = allows.get(rule) or allows.get("all") or ""
            is_contract = not reason and bool(contract)
            if is_contract:
                reason = f"contract phase: {contract[0].reason}"
            findings.append(Finding(str(mig.path), stmt.line, rule, f"{subject}: {RULES[rule]}",
                                    stmt.sql.splitlines()[0][:120], allowed=bool(reason),
                                    reason=reason, contract=is_contract))
    return findings


def lint(migrations: Iterable[Migration]) -> list[Finding]:
    """Lint migrations of one release in order: a table created earlier in it counts as new."""
    new: set[str] = set()
    findings: list[Finding] = []
    for mig in migrations:
        findings.extend(lint_migration(mig, new))
        new |= _created(mig)
    return findings


def lint_migrations(directory: str | Path, versions: Iterable[str] | None = None
                    ) -> list[Finding]:
    """Lint the migrations in ``directory`` (only the keys in ``versions`` when given,
    e.g. the pending ones from ``pending_migrations``). Findings with ``allowed=False``
    fail the gate. BadInput when a file cannot be read or parsed.

    Without ``versions`` each file is linted on its own: only tables created in the same
    file count as new.
    """
    migrations = load_migrations(directory)
    if versions is None:
        return [f for mig in migrations for f in lint_migration(mig)]
    wanted = {str(v) for v in versions}
    return lint(m for m in migrations if m.key in wanted or m.name in wanted)


# squawk (squawk-cli from PyPI) as a second opinion: its findings are advisory ------------

SQUAWK_EXCLUDED = (
    # covered by our own rules (which know about allow markers and new tables)
    "adding-required-field", "require-concurrent-index-creation", "renaming-column",
    "renaming-table", "changing-column-type", "adding-not-nullable-field",
    "ban-drop-column", "ban-drop-table",
    # the runner handles these itself
    "require-lock-timeout", "require-statement-timeout", "transaction-nesting",
)


def squawk_findings(migrations: Iterable[Migration], binary: str | None = None
                    ) -> list[Finding]:
    """Advisory findings from squawk (``allowed=True``, reason ``advisory (squawk)``).

    Empty when squawk is not installed. Rules our own lint covers are excluded; files
    the runner wraps in a transaction are linted with ``--assume-in-transaction``.
    """
    import shutil

    binary = binary or shutil.which("squawk")
    migrations = list(migrations)
    if not binary or not migrations:
        return []
    found: list[Finding] = []
    for transactional in (True, False):
        files = [str(m.path) for m in migrations if m.transactional is transactional]
        if files:
            found += _squawk(binary, files, transactional)
    return found


def _squawk(binary: str, files: list[str], in_transaction: bool) -> list[Finding]:
    import json
    import subprocess

    flag = "--assume-in-transaction" if in_transaction else "--no-assume-in-transaction"
    proc = subprocess.run([binary, "--reporter", "json", flag, "--exclude",
                           ",".join(SQUAWK_EXCLUDED), *files],
                          capture_output=True, text=True, check=False, timeout=60)
    try:
        items = json.loads(proc.stdout or "[]")
    except ValueError:
        return []
    return [Finding(str(item.get("file", "")), int(item.get("line", 0)) + 1,
                    f"squawk:{item.get('rule_name', '?')}",
                    f"{item.get('message', '')} {item.get('help') or ''}".strip(), "",
                    allowed=True, reason="advisory (squawk)")
            for item in items if isinstance(item, dict)]
