"""The history table: one row per applied (or failed) migration.

Columns: installed_rank, version (``3`` or ``R:views``), description, type
(versioned/repeatable), script, checksum, applied_at, applied_by, duration_ms,
success, transactional (false for a migration that ran outside a transaction).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipelinelib.errors import BadInput

DEFAULT_TABLE = "pipelinelib_schema_history"
IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Applied:
    """One history row."""

    rank: int
    key: str
    description: str
    type: str
    script: str
    checksum: str
    applied_at: datetime
    applied_by: str
    duration_ms: int
    success: bool
    transactional: bool


def table_name(name: str) -> tuple[str, str]:
    """(schema, table) from ``table`` or ``schema.table``; BadInput for anything else."""
    schema, _, table = name.rpartition(".")
    schema = schema or "public"
    for part in (schema, table):
        if not IDENT.match(part):
            raise BadInput(f"bad history table name {name!r}", field="--history-table",
                           expected="[schema.]table in lower case letters, digits and _")
    return schema, table


def qualified(name: str) -> str:
    schema, table = table_name(name)
    return f'"{schema}"."{table}"'


def exists(db: Any, name: str) -> bool:
    schema, table = table_name(name)
    return bool(db.scalar("select to_regclass(%s) is not null", [f'"{schema}"."{table}"']))


def create(db: Any, name: str) -> None:
    """Create the table (and schema) if missing."""
    schema, _ = table_name(name)
    db.execute(f'create schema if not exists "{schema}"')
    db.execute(f"""create table if not exists {qualified(name)} (
        installed_rank bigserial primary key,
        version text not null,
        description text not null,
        type text not null check (type in ('versioned', 'repeatable')),
        script text not null,
        checksum text not null,
        applied_at timestamptz not null default now(),
        applied_by text not null,
        duration_ms integer not null,
        success boolean not null,
        transactional boolean not null)""")


def read(db: Any, name: str) -> list[Applied]:
    """Every row, oldest first (empty when the table does not exist)."""
    if not exists(db, name):
        return []
    # the table name is validated by table_name(): no injection
    sql = ("select installed_rank, version, description, type, script, checksum, applied_at, "  # noqa: S608
           f"applied_by, duration_ms, success, transactional from {qualified(name)} "
           "order by installed_rank")
    rows = db.execute(sql)
    return [Applied(*row) for row in rows]


def record(db: Any, name: str, *, key: str, description: str, type_: str, script: str,
           checksum: str, applied_by: str, duration_ms: int, success: bool,
           transactional: bool) -> None:
    db.execute(
        f"insert into {qualified(name)} (version, description, type, script, checksum, "  # noqa: S608
        "applied_by, duration_ms, success, transactional) values (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        [key, description, type_, script, checksum, applied_by, duration_ms, success,
         transactional])


def forget_failed(db: Any, name: str, key: str) -> None:
    """Remove failed rows of ``key`` before it is retried."""
    sql = f"delete from {qualified(name)} where version = %s and not success"  # noqa: S608
    db.execute(sql, [key])
