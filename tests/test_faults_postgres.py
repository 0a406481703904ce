"""`pipeline migrate` against a PostgreSQL of the session's own, with faults: Toxiproxy
between the runner and the server, the server restarted mid-migration, and the runner
killed right after each of its committed writes (read from the server's statement log).
A migration is never applied twice nor half-recorded; the lock never stays taken."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pipelinelib.testing.faults import (
    PrivatePostgres,
    Proxy,
    clear_reason,
    count_retries,
    dsn_via,
    host_port,
)
from pipelinelib.testing.kill import KillHarness, PostgresWrites, Trial
from tests.helpers.cli import run_pipeline
from tests.helpers.paths import FIXTURES
from tests.helpers.wait import wait_until

FIXTURES = FIXTURES / "migrations" / "app"
HISTORY = "pipelinelib_schema_history"  # a constant: the f-strings below are safe


@pytest.fixture
def database(private_postgres: PrivatePostgres) -> Iterator[tuple[str, str]]:
    """(DSN, name) of a fresh database on the private server; dropped afterwards."""
    name = f"flt_{uuid.uuid4().hex[:10]}"
    admin = private_postgres.dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    yield admin.rsplit("/", 1)[0] + f"/{name}", name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(FIXTURES, target)
    return target


def rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def migrate(dsn: str, mig: Path) -> tuple[Any, float]:
    started = time.monotonic()
    out = run_pipeline("migrate", "--dir", str(mig), "--lock-wait", "30",
                       env={"PIPELINE_DB_DSN": dsn})
    return out, round(time.monotonic() - started, 2)


def assert_applied_once(dsn: str, mig: Path) -> None:
    """Every versioned migration recorded exactly once and successfully; no lock held."""
    versions = sorted(p.name.split("__")[0][1:] for p in mig.glob("V*.sql"))
    history = rows(dsn, f"select version, success from {HISTORY} "  # noqa: S608
                        "where version not like 'R:%' order by installed_rank")
    assert sorted(v for v, _ in history) == versions, history
    assert all(ok for _, ok in history), history
    assert rows(dsn, "select count(*) from pg_locks where locktype = 'advisory'") == [(0,)]


FAULTS: dict[str, tuple[Callable[[Proxy], Any], int]] = {
    "latency 50 ms each way": (lambda p: (p.add("latency", latency=50),
                                          p.add("latency", latency=50, stream="upstream")), 0),
    "slicer: 16-byte slices": (lambda p: p.add("slicer", average_size=16, size_variation=8,
                                               delay=200), 0),
    "PostgreSQL down (proxy disabled)": (lambda p: p.set_enabled(False), 3),
    "reset_peer: every connection reset": (lambda p: p.add("reset_peer", timeout=0), 3),
    "timeout: every connection silent, closed after 1 s": (
        lambda p: p.add("timeout", timeout=1000), 3),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_migrate_through_a_postgres_fault(private_postgres, database, migrations, fault_proxy,
                                          scenario, fault):
    row = scenario("migrate", fault, "postgres")
    dsn, _name = database
    proxy = fault_proxy("postgres", host_port(private_postgres.dsn))
    add, code = FAULTS[fault]
    add(proxy)
    out, row.seconds = migrate(dsn_via(dsn, proxy), migrations)
    row.retries = count_retries(out.stderr)
    assert out.returncode == code, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    if code:
        reason = clear_reason(out.stderr)
        row.outcome = f"exit {code}: {reason}"
        assert "postgres" in reason.lower() or "database" in reason.lower(), reason
    else:
        row.outcome = "survived" + (f" ({row.retries} retries)" if row.retries else "")
        assert_applied_once(dsn, migrations)
    proxy.clear()
    rerun, _ = migrate(dsn_via(dsn, proxy), migrations)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_applied_once(dsn, migrations)
    row.rerun = "converged" if code else "unchanged (converged on the first run)"
    row.passed = True


def test_postgres_restarted_mid_migration_then_rerun_applies_it_once(
        private_postgres, database, migrations, scenario):
    row = scenario("migrate", "PostgreSQL restarted mid-migration", "postgres")
    dsn, name = database
    (migrations / "V4__slow.sql").write_text(
        "create table slow (id int);\ninsert into slow values (1);\nselect pg_sleep(3);\n")
    log = PostgresWrites(private_postgres.log, name)
    log.mark()
    restarted: list[bool] = []

    def v4_runs() -> bool:
        with psycopg.connect(private_postgres.dsn, autocommit=True) as conn:
            return bool(conn.execute(
                "select count(*) from pg_stat_activity where datname = %s "
                "and query like %s and state = 'active'", [name, "%pg_sleep(3)%"]
            ).fetchone()[0])

    def restart_when_v4_runs() -> None:
        wait_until(v4_runs, 120, "V4 to run", interval=0.05)
        private_postgres.restart()
        restarted.append(True)

    watcher = threading.Thread(target=restart_when_v4_runs, daemon=True)
    watcher.start()
    out, row.seconds = migrate(dsn, migrations)
    watcher.join(120)
    assert restarted == [True], "the server was restarted while V4 ran"
    row.retries = count_retries(out.stderr)
    reason = clear_reason(out.stderr)
    row.outcome = f"exit {out.returncode}: {reason}"
    assert out.returncode == 3, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert rows(dsn, "select to_regclass('slow')") == [(None,)], "V4 rolled back whole"
    assert rows(dsn, f"select count(*) from {HISTORY} where version = '4'") == [(0,)]  # noqa: S608
    rerun, _ = migrate(dsn, migrations)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_applied_once(dsn, migrations)
    assert rows(dsn, "select count(*) from slow") == [(1,)], "V4's data once"
    row.rerun = "converged"
    row.passed = True


def test_migrate_killed_after_every_committed_write_converges(
        private_postgres, migrations, fault_proxy, scenario, tmp_path):
    proxy = fault_proxy("postgres", host_port(private_postgres.dsn))
    proxy.add("latency", latency=150)
    admin = private_postgres.dsn
    state: dict[str, str] = {}

    def fresh(_k: int) -> None:
        name = f"kill_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        state["name"], state["dsn"] = name, admin.rsplit("/", 1)[0] + f"/{name}"
        harness.env = {**os.environ, "PIPELINE_LOG_FORMAT": "json",
                       "PIPELINE_DB_DSN": dsn_via(state["dsn"], proxy)}
        harness.sources = [PostgresWrites(private_postgres.log, name)]

    harness = KillHarness([sys.executable, "-m", "pipelinelib", "migrate", "--dir",
                           str(migrations), "--lock-wait", "30"], {}, [])
    fresh(0)
    done, writes = harness.record()
    assert done.returncode == 0, done.stderr[-3000:]
    assert writes, "the server's log shows the runner's commits"
    assert_applied_once(state["dsn"], migrations)

    def check(k: int, trial: Trial) -> None:
        row = scenario("migrate", f"SIGKILL after write {k}/{len(writes)} "
                       f"({writes[k - 1].what})", "postgres")
        row.outcome = f"killed after {trial.landed} write(s)"
        assert trial.killed and trial.landed == k, (k, [w.what for w in trial.writes])
        started = time.monotonic()
        rerun = run_pipeline("migrate", "--dir", str(migrations), "--lock-wait", "30",
                             env={"PIPELINE_DB_DSN": state["dsn"]})
        row.seconds = round(time.monotonic() - started, 2)
        row.retries = count_retries(rerun.stderr)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert_applied_once(state["dsn"], migrations)
        row.rerun = "converged"
        row.passed = True

    try:
        harness.kill_at_every_write(len(writes), fresh, check)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for (name,) in conn.execute("select datname from pg_database "
                                        "where datname like 'kill_%'").fetchall():
                conn.execute(f'drop database if exists "{name}" with (force)')
