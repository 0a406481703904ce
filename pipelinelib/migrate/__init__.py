"""Database migrations: versioned SQL files, a history table, an advisory lock, and lint.

Public API for other parts of pipelinelib (the release gate):

- ``pending_migrations(dsn, directory) -> list[Migration]``: what a run would apply
  (BadInput when an applied migration was edited or is missing; Unreachable when the
  database does not answer). Gate mark 2: a rollout with pending migrations is refused.
- ``lint_migrations(directory, versions=None) -> list[Finding]``: expand/contract lint
  (gate mark 3): findings with ``allowed=False`` fail.
"""

from __future__ import annotations

from pathlib import Path

from pipelinelib.migrate.files import Migration, load_migrations
from pipelinelib.migrate.lint import Finding, lint_migrations
from pipelinelib.secrets import Secrets

__all__ = ["Finding", "Migration", "lint_migrations", "load_migrations", "pending_migrations"]


def pending_migrations(dsn: str, directory: str | Path, *, table: str | None = None,
                       secrets: Secrets | None = None) -> list[Migration]:
    """The migrations a run would apply now (read-only: no lock, no write)."""
    from pipelinelib.adapters.postgres import Postgres
    from pipelinelib.migrate.history import DEFAULT_TABLE
    from pipelinelib.migrate.runner import RunOptions, read_plan

    load_migrations(directory)  # bad files fail before connecting
    with Postgres.connect(dsn, secrets=secrets, application_name="pipelinelib gate") as db:
        return read_plan(db, directory, RunOptions(table=table or DEFAULT_TABLE)).pending
