"""Plan and apply migrations against one database.

Order of a run: read the files (BadInput on bad names/SQL) -> connect -> take the
advisory lock (bounded wait naming the holder) -> read the history -> validate
(edited applied migrations, missing files, out-of-order versions: BadInput before
any write) -> create the history table if missing -> apply each pending migration:
a transactional one in its own transaction together with its history row; a
non-transactional one statement by statement in autocommit, then its row
(``transactional = false``). A failure records a ``success = false`` row for a
non-transactional migration (its earlier statements stayed applied) and is retried
on the next run; a transactional failure leaves nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelinelib.errors import BadInput
from pipelinelib.migrate import history
from pipelinelib.migrate.files import Migration, Version, load_migrations


@dataclass
class Plan:
    """What a run would do."""

    pending: list[Migration] = field(default_factory=list)
    applied: list[history.Applied] = field(default_factory=list)
    retries: list[str] = field(default_factory=list)  # keys of failed rows to retry
    ignored_missing: list[str] = field(default_factory=list)

    @property
    def actions(self) -> list[str]:
        return [describe(m) for m in self.pending]


def describe(mig: Migration) -> str:
    what = f"apply {mig.name}" if not mig.repeatable else f"(re)apply {mig.name}"
    return what + ("" if mig.transactional else " (no transaction)")


def plan(migrations: list[Migration], applied: list[history.Applied], *, directory: str,
         out_of_order: bool = False, allow_missing: bool = False) -> Plan:
    """Compare files with history; BadInput for edits, missing files and out-of-order."""
    by_key = {m.key: m for m in migrations}
    done: dict[str, history.Applied] = {}
    failed: dict[str, history.Applied] = {}
    for row in applied:
        (done if row.success else failed)[row.key] = row
    result = Plan(applied=list(done.values()))
    for key, row in done.items():
        mig = by_key.get(key)
        if row.type == "repeatable":
            continue
        if mig is None:
            if allow_missing:
                result.ignored_missing.append(key)
                continue
            raise BadInput(f"version {key} ({row.script}) was applied on {row.applied_at:%Y-%m-%d} "
                           "but its file is missing", source=directory,
                           hint="restore the file, or pass --allow-missing")
        if mig.checksum != row.checksum:
            raise BadInput(f"applied migration was edited: applied checksum {row.checksum}, "
                           f"file checksum {mig.checksum}", source=str(mig.path),
                           hint="never edit an applied migration; add a new version instead")
    highest = max((Version(k) for k, r in done.items() if r.type == "versioned"), default=None)
    for mig in migrations:
        if mig.repeatable:
            last = done.get(mig.key)
            if last is None or last.checksum != mig.checksum:
                result.pending.append(mig)
            continue
        if mig.key in done:
            continue
        if highest is not None and mig.version < highest and not out_of_order:  # type: ignore[operator]
            raise BadInput(f"version {mig.key} is older than the newest applied version "
                           f"{highest} and was never applied", source=str(mig.path),
                           hint="renumber it above the newest version, or pass --out-of-order")
        if mig.key in failed:
            result.retries.append(mig.key)
        result.pending.append(mig)
    return result


@dataclass
class RunOptions:
    table: str = history.DEFAULT_TABLE
    applied_by: str = ""
    lock_wait_s: float = 300.0
    lock_timeout: str | None = None  # SET lock_timeout for each migration (e.g. "10s")
    out_of_order: bool = False
    allow_missing: bool = False
    dry_run: bool = False
    on_wait: Callable[[Any, float], None] | None = None
    on_apply: Callable[[Migration], None] | None = None


@dataclass
class MigrationOutcome:
    plan: Plan
    applied: list[str] = field(default_factory=list)
    lock_waited_s: float = 0.0


def read_plan(db: Any, directory: str | Path, options: RunOptions) -> Plan:
    """Files vs history without the lock and without writing (for --dry-run and the gate)."""
    migrations = load_migrations(directory)
    return plan(migrations, history.read(db, options.table), directory=str(directory),
                out_of_order=options.out_of_order, allow_missing=options.allow_missing)


def run(db: Any, directory: str | Path, options: RunOptions) -> MigrationOutcome:
    """Apply what is pending under the advisory lock (see the module docstring)."""
    from pipelinelib.migrate import lock

    history.table_name(options.table)
    migrations = load_migrations(directory)
    if options.dry_run:
        return MigrationOutcome(read_plan(db, directory, options))
    watch_client(db)
    key = lock.lock_key(options.table)
    waited = lock.acquire(db, key, wait_s=options.lock_wait_s, on_wait=options.on_wait)
    try:
        current = plan(migrations, history.read(db, options.table), directory=str(directory),
                       out_of_order=options.out_of_order, allow_missing=options.allow_missing)
        outcome = MigrationOutcome(current, lock_waited_s=waited)
        if not current.pending:
            return outcome
        history.create(db, options.table)
        for mig in current.pending:
            if options.on_apply:
                options.on_apply(mig)
            apply_one(db, mig, options, retry=mig.key in current.retries)
            outcome.applied.append(mig.name)
        return outcome
    finally:
        if not db.conn.closed:
            lock.release(db, key)


def watch_client(db: Any, interval_ms: int = 1000) -> None:
    """Have the server check the client every second while a statement runs (PostgreSQL 14+):
    a killed runner's session then ends within a second, releasing its lock and rolling
    back its transaction, instead of lingering until the statement finishes."""
    if int(db.conn.info.server_version) >= 140000:
        db.execute("select set_config('client_connection_check_interval', %s, false)",
                   [str(interval_ms)])


def apply_one(db: Any, mig: Migration, options: RunOptions, *, retry: bool = False) -> None:
    """Apply one migration and record it (see the module docstring)."""
    row: dict[str, Any] = {"key": mig.key, "description": mig.description,
           "type_": "repeatable" if mig.repeatable else "versioned", "script": mig.name,
           "checksum": mig.checksum, "applied_by": options.applied_by or "unknown",
           "transactional": mig.transactional}
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    if mig.transactional:
        with db.transaction():
            if options.lock_timeout:
                db.execute("select set_config('lock_timeout', %s, true)", [options.lock_timeout])
            if retry or mig.repeatable:
                history.forget_failed(db, options.table, mig.key)
            for stmt in mig.statements:
                db.execute(stmt.sql, what=f"{mig.path}:{stmt.line}")
            history.record(db, options.table, duration_ms=elapsed(), success=True, **row)
        return
    if options.lock_timeout:
        db.execute("select set_config('lock_timeout', %s, false)", [options.lock_timeout])
    if retry:
        history.forget_failed(db, options.table, mig.key)
    try:
        for stmt in mig.statements:
            db.execute(stmt.sql, what=f"{mig.path}:{stmt.line} (outside a transaction)")
    except Exception:
        if not db.conn.closed:
            history.record(db, options.table, duration_ms=elapsed(), success=False, **row)
        raise
    finally:
        if options.lock_timeout and not db.conn.closed:
            db.execute("reset lock_timeout")
    history.record(db, options.table, duration_ms=elapsed(), success=True, **row)
