"""Migration files: ``V3__add_email.sql`` (versioned) and ``R__views.sql`` (repeatable).

A file is read once: its checksum (sha256 of the text, line endings normalised),
its statements (split by PostgreSQL's own parser, pglast, with line numbers) and its
markers::

    -- pipelinelib:no-transaction                     run outside a transaction
    -- pipelinelib:allow drop-column reason: ...      accept one lint rule (lint.py)
    -- pipelinelib:contract reason: ...               a contract-phase migration

Statements that PostgreSQL refuses inside a transaction block (``CREATE INDEX
CONCURRENTLY``, ``VACUUM``, ``ALTER SYSTEM`` ...) make the file non-transactional
without the marker. A bad file name or unparsable SQL is ``BadInput`` naming file and line.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import total_ordering
from pathlib import Path
from typing import Any

from pipelinelib.errors import BadInput

NAME = re.compile(
    r"^(?:V(?P<version>\d+(?:[._]\d+)*)|(?P<repeatable>R))__(?P<desc>[A-Za-z0-9_.-]+)\.sql$"
)
MARKER = re.compile(r"^\s*--\s*pipelinelib:(?P<name>[a-z-]+)(?P<rest>.*)$", re.MULTILINE)
KNOWN_MARKERS = ("no-transaction", "allow", "contract")


@total_ordering
@dataclass(frozen=True)
class Version:
    """A migration version compared part by part (``1.10`` > ``1.9``)."""

    text: str

    @property
    def parts(self) -> tuple[int, ...]:
        return tuple(int(p) for p in re.split(r"[._]", self.text))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.parts < other.parts

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.parts == other.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __str__(self) -> str:
        return ".".join(str(p) for p in self.parts)


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a file and the line it starts on."""

    sql: str
    line: int
    node: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Marker:
    """A ``-- pipelinelib:NAME ...`` comment: its arguments and reason."""

    name: str
    args: tuple[str, ...]
    reason: str
    line: int


@dataclass(frozen=True)
class Migration:
    """One migration file, parsed."""

    path: Path
    version: Version | None  # None for repeatable migrations
    description: str
    checksum: str
    statements: tuple[Statement, ...]
    transactional: bool
    markers: tuple[Marker, ...]
    no_transaction_reason: str = ""

    @property
    def repeatable(self) -> bool:
        return self.version is None

    @property
    def key(self) -> str:
        """The history key: the version, or ``R:description``."""
        return f"R:{self.description}" if self.version is None else str(self.version)

    @property
    def name(self) -> str:
        return self.path.name

    def marker(self, name: str) -> list[Marker]:
        return [m for m in self.markers if m.name == name]


NON_TRANSACTIONAL = {
    # statement node -> test on the node; PostgreSQL refuses these in a transaction block
    "IndexStmt": lambda n: bool(n.concurrent),
    "DropStmt": lambda n: bool(n.concurrent),
    "ReindexStmt": lambda n: any(getattr(getattr(o, "defname", None), "lower", lambda: "")()
                                 == "concurrently" for o in (n.params or ())),
    "VacuumStmt": lambda n: bool(n.is_vacuumcmd),
    "AlterSystemStmt": lambda n: True,
    "CreatedbStmt": lambda n: True,
    "DropdbStmt": lambda n: True,
    "CreateTableSpaceStmt": lambda n: True,
    "DropTableSpaceStmt": lambda n: True,
}


def checksum(text: str) -> str:
    """sha256 of the text with line endings normalised, as ``sha256:HEX``."""
    normal = text.replace("\r\n", "\n").replace("\r", "\n")
    return "sha256:" + hashlib.sha256(normal.encode()).hexdigest()


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def parse_statements(text: str, source: str) -> tuple[Statement, ...]:
    """Split ``text`` into statements with PostgreSQL's parser; BadInput on a syntax error."""
    import pglast
    from pglast import parser

    try:
        tree = pglast.parse_sql(text)
    except parser.ParseError as exc:
        location = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        if location is None and "end of input" in str(exc.args[0]):
            location = len(text.rstrip())  # cut off inside a statement: its last line
        raise BadInput(f"SQL does not parse: {exc.args[0]}", source=source,
                       line=line_of(text, location) if location is not None else None,
                       expected="PostgreSQL SQL") from exc
    encoded = text.encode()
    statements = []
    for raw in tree:
        start = raw.stmt_location or 0
        length = raw.stmt_len or (len(encoded) - start)
        chunk = encoded[start:start + length].decode()
        # the parser's location includes leading comments/blank lines: start at the SQL
        lead = len(chunk) - len(chunk.lstrip())
        body = chunk.strip()
        first = line_of(encoded[:start].decode() + chunk[:lead], len(encoded[:start].decode())
                        + lead)
        statements.append(Statement(body, first, raw.stmt))
    return tuple(statements)


def parse_markers(text: str, source: str) -> tuple[Marker, ...]:
    markers = []
    for match in MARKER.finditer(text):
        name, rest = match["name"], match["rest"].strip()
        line = line_of(text, match.start())
        if name not in KNOWN_MARKERS:
            known = ", ".join(f"pipelinelib:{m}" for m in KNOWN_MARKERS)
            raise BadInput(f"unknown marker pipelinelib:{name}", source=source, line=line,
                           expected=f"one of {known}")
        head, _, reason = rest.partition("reason:")
        args = tuple(a for a in re.split(r"[\s,]+", head.strip()) if a)
        if name in ("allow", "contract") and not reason.strip():
            raise BadInput(f"pipelinelib:{name} needs a reason", source=source, line=line,
                           expected=f"-- pipelinelib:{name}{' RULE' if name == 'allow' else ''} "
                                    "reason: WHY")
        if name == "allow" and not args:
            raise BadInput("pipelinelib:allow names no rule", source=source, line=line,
                           expected="-- pipelinelib:allow RULE[,RULE] reason: WHY")
        markers.append(Marker(name, args, reason.strip(), line))
    return tuple(markers)


def load_migration(path: Path, source: str | None = None) -> Migration:
    """Parse one migration file; BadInput for a bad name, bad SQL or bad markers."""
    source = source or str(path)
    match = NAME.match(path.name)
    if not match:
        raise BadInput(f"bad migration file name {path.name!r}", source=source,
                       expected="V<version>__<description>.sql (e.g. V3__add_email.sql) "
                                "or R__<description>.sql")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput.not_utf8(exc, source=source, expected="SQL in UTF-8") from None
    except OSError as exc:
        raise BadInput(f"cannot read migration: {exc}", source=source) from exc
    statements = parse_statements(text, source)
    if not statements:
        raise BadInput("migration has no SQL statement", source=source, expected="SQL")
    markers = parse_markers(text, source)
    reason = ""
    if any(m.name == "no-transaction" for m in markers):
        reason = "marker pipelinelib:no-transaction"
    for stmt in statements:
        test = NON_TRANSACTIONAL.get(type(stmt.node).__name__)
        if test and test(stmt.node) and not reason:
            reason = f"line {stmt.line}: {stmt.sql.split(chr(10))[0][:60]}"
    version = Version(match["version"]) if match["version"] else None
    return Migration(path, version, match["desc"].replace("_", " "), checksum(text), statements,
                     transactional=not reason, markers=markers, no_transaction_reason=reason)


def load_migrations(directory: str | Path) -> list[Migration]:
    """Every migration in ``directory``: versioned ones by version, then repeatables by name.

    BadInput for a missing directory, a ``.sql`` file with a bad name, or two files
    with the same version.
    """
    root = Path(directory)
    if not root.is_dir():
        raise BadInput("migrations directory not found", source=str(root),
                       expected="a directory of V<version>__<description>.sql files")
    found = [load_migration(p) for p in sorted(root.iterdir()) if p.suffix == ".sql"]
    seen: dict[str, Migration] = {}
    for mig in found:
        if mig.key in seen:
            raise BadInput(f"version {mig.key} also used by {seen[mig.key].name}",
                           source=str(mig.path), field="version",
                           expected="one file per version")
        seen[mig.key] = mig
    versioned = sorted((m for m in found if m.version is not None),
                       key=lambda m: m.version.parts)  # type: ignore[union-attr]
    repeatable = sorted((m for m in found if m.version is None), key=lambda m: m.name)
    return versioned + repeatable
