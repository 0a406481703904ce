"""Database migrations: versioned SQL files, a history table, an advisory lock, and lint.

Public API for other parts of pipelinelib (the release gate):

- ``pending_migrations(db, directory) -> list[Migration]``: what a run would apply, on an
  open session ``db`` (``with ctx.database(dsn) as db``; BadInput when an applied migration
  was edited or is missing). Gate mark 2: a rollout with pending migrations is refused.
- ``lint_migrations(directory, versions=None) -> list[Finding]``: expand/contract lint
  (gate mark 3): findings with ``allowed=False`` fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipelinelib.migrate.files import Migration, load_migrations
from pipelinelib.migrate.lint import Finding, lint_migrations

if TYPE_CHECKING:
    from pipelinelib.adapters.protocols import Database

__all__ = ["Finding", "Migration", "lint_migrations", "load_migrations", "pending_migrations"]


def pending_migrations(db: Database, directory: str | Path, *,
                       table: str | None = None) -> list[Migration]:
    """The migrations a run would apply now on the session ``db`` (from
    ``ctx.database(dsn)``; read-only: no lock, no write). Load the files first
    (``load_migrations``) so bad files fail before connecting."""
    from pipelinelib.migrate.history import DEFAULT_TABLE
    from pipelinelib.migrate.runner import RunOptions, read_plan

    return read_plan(db, directory, RunOptions(table=table or DEFAULT_TABLE)).pending
