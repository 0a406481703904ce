"""A PostgreSQL session-level advisory lock around a migration run.

The lock belongs to the runner's database session: when the runner dies (even by
SIGKILL) the server ends the session and releases it, so no stuck lock row is ever
left behind. A waiting runner polls ``pg_try_advisory_lock`` with a bounded wait and,
every few seconds, names the holder from ``pg_locks`` and ``pg_stat_activity``
(application name, which carries the CI user and build URL, pid, client, since when,
and its current statement).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelinelib.errors import StepFailed


def lock_key(table: str) -> int:
    """A stable signed 64-bit key for the history table (per database)."""
    digest = hashlib.sha256(f"pipelinelib:migrate:{table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class Holder:
    """The session that holds the lock."""

    pid: int
    application_name: str
    user: str
    client: str
    backend_start: str
    state: str
    query: str

    def describe(self) -> str:
        app = self.application_name or "(no application_name)"
        running = f", running: {self.query[:80]}" if self.query and self.state == "active" else ""
        return (f"pid {self.pid} '{app}' as {self.user} from {self.client or 'local socket'} "
                f"since {self.backend_start}{running}")


HOLDER_SQL = """
select a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
       coalesce(host(a.client_addr) || ':' || a.client_port, ''),
       to_char(a.backend_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       coalesce(a.state, ''), coalesce(a.query, '')
from pg_locks l join pg_stat_activity a on a.pid = l.pid
where l.locktype = 'advisory' and l.granted and l.database = (
      select oid from pg_database where datname = current_database())
  and l.classid = %s and l.objid = %s and l.objsubid = 1
"""


def holder(db: Any, key: int) -> Holder | None:
    """Who holds the advisory lock ``key`` now (None when nobody)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    rows = db.execute(HOLDER_SQL, [unsigned >> 32, unsigned & 0xFFFFFFFF])
    return Holder(*rows[0]) if rows else None


def acquire(db: Any, key: int, *, wait_s: float, progress_every_s: float = 5.0,
            on_wait: Callable[[Holder | None, float], None] | None = None,
            poll_s: float = 0.25) -> float:
    """Take the lock, waiting at most ``wait_s``; returns the seconds waited.

    ``on_wait(holder, waited)`` is called at the first miss and then every
    ``progress_every_s``. StepFailed naming the holder when the wait runs out.
    """
    started = time.monotonic()
    next_report = started
    while True:
        if db.scalar("select pg_try_advisory_lock(%s)", [key]):
            return time.monotonic() - started
        now = time.monotonic()
        waited = now - started
        current = holder(db, key)
        if waited >= wait_s:
            who = current.describe() if current else "a session that just ended"
            pid = current.pid if current else "PID"
            raise StepFailed(
                f"migration lock still held after {waited:.0f}s by {who}",
                hint="another migration run is in progress; wait for it, or if that session "
                     f"is stuck end it with select pg_terminate_backend({pid})"
                     " (the server then releases the lock)",
                evidence=[f"lock holder: {who}"])
        if on_wait and now >= next_report:
            on_wait(current, waited)
            next_report = now + progress_every_s
        time.sleep(poll_s)


def release(db: Any, key: int) -> None:
    db.execute("select pg_advisory_unlock(%s)", [key])
