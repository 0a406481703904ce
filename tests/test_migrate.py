"""pipeline migrate against the real PostgreSQL of the testbed: each test its own database."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from pipelinelib.context import Context
from pipelinelib.migrate import pending_migrations
from tests.helpers.cli import run_pipeline
from tests.helpers.paths import FIXTURES
from tests.helpers.wait import wait_until

FIXTURES = FIXTURES / "migrations"


@pytest.fixture
def db(postgres_db: str) -> str:
    """A fresh database (the plugin's ``postgres_db``); its DSN."""
    return postgres_db


@pytest.fixture
def mig_dir(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(FIXTURES / "app", target)
    return target


def migrate(dsn: str, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return run_pipeline("migrate", *args, env={"PIPELINE_DB_DSN": dsn, **(env or {})})


def rows(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def events(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    out = []
    for line in proc.stderr.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_applies_all_then_rerun_is_unchanged(db: str, mig_dir: Path, tmp_path: Path) -> None:
    first = migrate(db, "--dir", str(mig_dir), "--report-dir", str(tmp_path / "r1"))
    assert first.returncode == 0, first.stderr
    history = rows(db, "select version, script, success, transactional, applied_by, "
                       "duration_ms >= 0, checksum like 'sha256:%' "
                       "from pipelinelib_schema_history order by installed_rank")
    assert [(h[0], h[2], h[3]) for h in history] == [
        ("1", True, True), ("2", True, True), ("3", True, False),
        ("R:user directory", True, True)]
    assert all(h[4] and h[5] and h[6] for h in history)
    assert rows(db, "select indexname from pg_indexes where indexname = 'users_email_idx'")
    summary = json.loads((tmp_path / "r1" / "summary.json").read_text())
    assert "changed" in json.dumps(summary)

    again = migrate(db, "--dir", str(mig_dir))
    assert again.returncode == 0, again.stderr
    step = [e for e in events(again) if e.get("step") == "migrate" and "status" in e]
    assert step[-1]["status"] == "unchanged"
    assert rows(db, "select count(*) from pipelinelib_schema_history")[0][0] == 4


def test_dry_run_lists_pending_and_writes_nothing(db: str, mig_dir: Path) -> None:
    proc = migrate(db, "--dir", str(mig_dir), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "apply V3__index_email.sql (no transaction)" in proc.stderr
    assert rows(db, "select to_regclass('pipelinelib_schema_history')")[0][0] is None
    with Context().database(db) as session:
        pending = pending_migrations(session, mig_dir)
    assert [m.name for m in pending] == [
        "V1__create_users.sql", "V2__add_email.sql", "V3__index_email.sql",
        "R__user_directory.sql"]


def test_edited_applied_migration_is_refused_before_any_write(db: str, mig_dir: Path) -> None:
    assert migrate(db, "--dir", str(mig_dir)).returncode == 0
    v2 = mig_dir / "V2__add_email.sql"
    v2.write_text(v2.read_text() + "alter table users add column edited int;\n")
    (mig_dir / "V4__more.sql").write_text("create table more (id int);\n")
    proc = migrate(db, "--dir", str(mig_dir))
    assert proc.returncode == 2, proc.stderr
    line = next(e["event"] for e in events(proc) if "edited" in e.get("event", ""))
    assert "V2__add_email.sql" in line and line.count("sha256:") == 2
    assert rows(db, "select to_regclass('more')")[0][0] is None
    assert rows(db, "select count(*) from pipelinelib_schema_history")[0][0] == 4
    assert "edited" not in [r[0] for r in rows(
        db, "select column_name from information_schema.columns where table_name='users'")]


def test_out_of_order_and_missing_versions_are_explained(db: str, mig_dir: Path) -> None:
    assert migrate(db, "--dir", str(mig_dir)).returncode == 0
    (mig_dir / "V2.5__late.sql").write_text("create table late (id int);\n")
    proc = migrate(db, "--dir", str(mig_dir))
    assert proc.returncode == 2
    assert "older than the newest applied version 3" in proc.stderr
    assert migrate(db, "--dir", str(mig_dir), "--out-of-order").returncode == 0
    assert rows(db, "select to_regclass('late') is not null")[0][0]
    (mig_dir / "V2__add_email.sql").unlink()
    proc = migrate(db, "--dir", str(mig_dir))
    assert proc.returncode == 2 and "its file is missing" in proc.stderr


def test_bad_file_names_and_bad_sql_exit_2(db: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "3_add_email.sql").write_text("select 1;")
    proc = migrate(db, "--dir", str(bad))
    assert proc.returncode == 2 and "bad migration file name '3_add_email.sql'" in proc.stderr
    (bad / "3_add_email.sql").unlink()
    (bad / "V1__x.sql").write_text("select 1;\nselec 2;\n")
    proc = migrate(db, "--dir", str(bad))
    assert proc.returncode == 2 and "V1__x.sql:2: SQL does not parse" in proc.stderr


def test_failed_transactional_migration_leaves_nothing(db: str, mig_dir: Path) -> None:
    (mig_dir / "V4__broken.sql").write_text(
        "create table half (id int);\ninsert into nowhere values (1);\n")
    proc = migrate(db, "--dir", str(mig_dir))
    assert proc.returncode == 1
    assert "V4__broken.sql:2" in proc.stderr and "nowhere" in proc.stderr
    assert rows(db, "select to_regclass('half')")[0][0] is None
    assert rows(db, "select count(*) from pipelinelib_schema_history where version='4'")[0][0] == 0
    (mig_dir / "V4__broken.sql").write_text("create table half (id int);\n")
    assert migrate(db, "--dir", str(mig_dir)).returncode == 0


def test_no_transaction_marker_and_failed_row_then_retry(db: str, mig_dir: Path) -> None:
    (mig_dir / "V4__outside.sql").write_text(
        "-- pipelinelib:no-transaction\ncreate table if not exists a (id int);\n"
        "insert into nowhere values (1);\n")
    assert migrate(db, "--dir", str(mig_dir)).returncode == 1
    assert rows(db, "select to_regclass('a') is not null")[0][0]  # stayed: no transaction
    assert rows(db, "select success, transactional from pipelinelib_schema_history "
                    "where version='4'") == [(False, False)]
    (mig_dir / "V4__outside.sql").write_text(
        "-- pipelinelib:no-transaction\ncreate table if not exists a (id int);\n")
    assert migrate(db, "--dir", str(mig_dir)).returncode == 0
    assert rows(db, "select success, transactional from pipelinelib_schema_history "
                    "where version='4'") == [(True, False)]


def test_repeatable_migration_reapplied_when_changed(db: str, mig_dir: Path) -> None:
    assert migrate(db, "--dir", str(mig_dir)).returncode == 0
    (mig_dir / "R__user_directory.sql").write_text(
        "create or replace view user_directory as select id, name, email, created_at "
        "from users;\n")
    assert migrate(db, "--dir", str(mig_dir)).returncode == 0
    cols = rows(db, "select column_name from information_schema.columns "
                    "where table_name = 'user_directory'")
    assert ("created_at",) in cols
    assert rows(db, "select count(*) from pipelinelib_schema_history "
                    "where version = 'R:user directory'")[0][0] == 2


def test_concurrent_runs_apply_each_migration_once(db: str, mig_dir: Path) -> None:
    (mig_dir / "V4__slow.sql").write_text(
        "create table counter (n int);\ninsert into counter values (1);\n"
        "select pg_sleep(1.5);\n")
    env = {**os.environ, "PIPELINE_DB_DSN": db, "PIPELINE_LOG_FORMAT": "json"}
    procs = [subprocess.Popen([sys.executable, "-m", "pipelinelib", "migrate", "--dir",
                               str(mig_dir)], env={**env, "BUILD_USER_ID": f"user{i}",
                                                   "JENKINS_URL": "https://ci.example.org/",
                                                   "BUILD_URL": f"https://ci.example.org/b/{i}",
                                                   "JOB_NAME": "app"},
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    outputs = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert rows(db, "select count(*) from counter")[0][0] == 1
    assert rows(db, "select count(*) from pipelinelib_schema_history")[0][0] == 5
    waited = "".join(outputs)
    assert "waiting for the migration lock" in waited
    assert "pipelinelib migrate user" in waited and "https://ci.example.org/b/" in waited


def test_lock_wait_is_bounded_and_names_the_holder(db: str, mig_dir: Path) -> None:
    from pipelinelib.migrate.lock import lock_key

    with psycopg.connect(db, autocommit=True,
                         application_name="pipelinelib migrate alice https://ci/b/7") as holder:
        holder.execute("select pg_advisory_lock(%s)", [lock_key("pipelinelib_schema_history")])
        proc = migrate(db, "--dir", str(mig_dir), "--lock-wait", "2")
    assert proc.returncode == 1
    assert "migration lock still held after 2s by pid" in proc.stderr
    assert "alice https://ci/b/7" in proc.stderr
    assert rows(db, "select to_regclass('users')")[0][0] is None


def test_killed_runner_releases_lock_and_rerun_converges(db: str, mig_dir: Path) -> None:
    (mig_dir / "V4__slow.sql").write_text(
        "create table slow (id int);\nselect pg_sleep(30);\n")
    env = {**os.environ, "PIPELINE_DB_DSN": db, "PIPELINE_LOG_FORMAT": "json"}
    proc = subprocess.Popen([sys.executable, "-m", "pipelinelib", "migrate", "--dir",
                             str(mig_dir)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: rows(db, "select count(*) from pg_stat_activity where query like "
                                    "'%pg_sleep(30)%' and pid <> pg_backend_pid() and "
                                    "state = 'active'")[0][0], 120, "the runner to reach V4")
    except AssertionError:
        proc.kill()
        raise
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    # the runner's session checks its client every second: the server ends the session,
    # rolls V4's transaction back and releases the advisory lock (V4 is not recorded and its
    # table is gone: checked below). The deadline only keeps a broken server from hanging us.
    wait_until(lambda: not rows(db, "select count(*) from pg_locks "
                                    "where locktype = 'advisory'")[0][0],
               60, "the advisory lock to go with the killed runner", interval=0.2)
    assert rows(db, "select to_regclass('slow')")[0][0] is None
    assert rows(db, "select count(*) from pipelinelib_schema_history where version = '4'"
                )[0][0] == 0
    (mig_dir / "V4__slow.sql").write_text("create table slow (id int);\nselect pg_sleep(0.1);\n")
    rerun = migrate(db, "--dir", str(mig_dir), "--lock-wait", "60")
    assert rerun.returncode == 0, rerun.stderr
    assert rows(db, "select to_regclass('slow') is not null")[0][0]
    assert rows(db, "select version, success from pipelinelib_schema_history "
                    "where version = '4'") == [("4", True)]


def test_dsn_password_never_reaches_logs_or_reports(postgres_env: dict[str, str],
                                                    tmp_path: Path) -> None:
    planted = f"Planted-{uuid.uuid4().hex}"
    role, name = f"r_{uuid.uuid4().hex[:10]}", f"sec_{uuid.uuid4().hex[:10]}"
    admin = postgres_env["PIPELINELIB_PG_DSN"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"create role {role} login password '{planted}'")
        conn.execute(f'create database "{name}" owner {role}')
    host, port = postgres_env["PIPELINELIB_PG_HOST"], postgres_env["PIPELINELIB_PG_PORT"]
    dsn = f"postgresql://{role}:{planted}@{host}:{port}/{name}"
    try:
        d = tmp_path / "m"
        d.mkdir()
        (d / "V1__leak.sql").write_text(f"select '{planted}'::int;\n")
        reports = tmp_path / "reports"
        proc = migrate(dsn, "--dir", str(d), "--report-dir", str(reports))
        assert proc.returncode == 1
        assert "invalid input syntax for type integer" in proc.stderr
        assert planted not in proc.stderr + proc.stdout
        assert "***" in proc.stderr
        for report in reports.rglob("*"):
            if report.is_file():
                assert planted not in report.read_text(errors="replace"), report
        wrong = migrate(dsn.replace(planted, planted + "x"), "--dir", str(d))
        assert wrong.returncode == 2 and "refused the login" in wrong.stderr
        assert planted not in wrong.stderr
        unreachable = migrate(f"postgresql://{role}:{planted}@127.0.0.1:1/{name}",
                              "--dir", str(d))
        assert unreachable.returncode == 3 and planted not in unreachable.stderr
        # the server answers "database does not exist": bad input at once, never retried
        absent = migrate(dsn.replace(f"/{name}", f"/{name}_absent"), "--dir", str(d))
        assert absent.returncode == 2, absent.stderr[-2000:]
        assert f"has no database '{name}_absent'" in absent.stderr, absent.stderr[-2000:]
        assert "retrying" not in absent.stderr and planted not in absent.stderr
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
            conn.execute(f"drop role if exists {role}")
