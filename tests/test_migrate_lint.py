"""Migration lint (squawk + the expand/contract phase rules) and the old app version's queries
after an expand migration."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from pipelinelib.errors import BadInput
from pipelinelib.migrate import lint_migrations
from pipelinelib.migrate.files import load_migrations
from tests.helpers.cli import run_pipeline
from tests.helpers.paths import FIXTURES

FIXTURES = FIXTURES / "migrations"


def write(tmp_path: Path, name: str, sql: str) -> Path:
    d = tmp_path / "m"
    d.mkdir(exist_ok=True)
    (d / name).write_text(sql)
    return d


def blocking(findings):
    return [f for f in findings if f.blocks]


@pytest.mark.parametrize(("sql", "rule", "subject"), [
    ("alter table users drop column name;", "ban-drop-column", "users.name"),
    ("drop table users;", "ban-drop-table", "users"),
    ("alter table users rename column name to full_name;", "renaming-column",
     "users.name -> full_name"),
    ("alter table users rename to people;", "renaming-table", "users -> people"),
    ("alter table users alter column name type varchar(20);", "changing-column-type",
     "users.name"),
    ("alter table users add column tenant text not null;", "adding-required-field",
     "users.tenant"),
    ("alter table users alter column email set not null;", "adding-not-nullable-field",
     "users.email"),
    ("create index users_email on users (email);", "require-concurrent-index-creation",
     "users"),
])
def test_each_destructive_change_blocks_naming_file_line_rule_and_subject(
        tmp_path: Path, sql: str, rule: str, subject: str) -> None:
    found = lint_migrations(write(tmp_path, "V7__change.sql", f"-- a comment\n{sql}\n"))
    assert [(f.rule, f.line) for f in blocking(found)] == [(rule, 2)]
    assert blocking(found)[0].one_line().startswith(
        f"{tmp_path / 'm' / 'V7__change.sql'}:2 {rule}: {subject}: ")


def test_an_identity_column_on_an_existing_table_blocks_it_rewrites_the_table(
        tmp_path: Path) -> None:
    # the earlier hand-written lint passed this; PostgreSQL fills every row: a rewrite
    found = lint_migrations(write(tmp_path, "V7__id.sql",
                                  "alter table users add column id2 bigint generated always "
                                  "as identity;"))
    assert [f.rule for f in blocking(found)] == ["adding-field-with-default"]


def test_a_blocking_finding_carries_the_fix_squawk_suggests(tmp_path: Path) -> None:
    (finding,) = blocking(lint_migrations(write(tmp_path, "V7__i.sql",
                                                "create index i on users (email);")))
    assert finding.fix == "Use `concurrently` to avoid blocking writes."
    assert "Fix: Use `concurrently`" in finding.one_line()


@pytest.mark.parametrize("sql", [
    "alter table users add column email text;",
    "alter table users add column n int not null default 0;",
    "create index concurrently users_email on users (email);",
    "create table t (id int not null);\ncreate index t_id on t (id);\n"
    "alter table t add column x int not null;",
    "-- drop table users; (a comment, not a statement)\nselect 1;",
    "insert into notes (body) values ('drop table users');",
])
def test_expand_changes_pass(tmp_path: Path, sql: str) -> None:
    found = lint_migrations(write(tmp_path, "V7__expand.sql", sql))
    assert blocking(found) == [], [f.one_line() for f in found]


def test_allow_marker_with_reason_accepts_only_its_rule(tmp_path: Path) -> None:
    d = write(tmp_path, "V8__contract.sql",
              "-- pipelinelib:allow drop-column reason: v41 stopped reading legacy\n"
              "alter table users drop column legacy;\nalter table users rename to people;\n")
    found = {f.rule: f for f in lint_migrations(d)}  # drop-column: our earlier name, still read
    assert found["ban-drop-column"].allowed
    assert found["ban-drop-column"].reason.startswith("v41")
    assert not found["renaming-table"].allowed


def test_contract_marker_allows_all_and_is_flagged(tmp_path: Path) -> None:
    d = write(tmp_path, "V9__contract.sql",
              "-- pipelinelib:contract reason: v41 is gone everywhere\n"
              "alter table users drop column legacy;\n")
    (finding,) = [f for f in lint_migrations(d) if f.rule == "ban-drop-column"]
    assert finding.allowed and finding.contract and "v41 is gone" in finding.reason
    assert not blocking(lint_migrations(d))


def test_a_contract_phase_does_not_excuse_a_lock_on_a_busy_table(tmp_path: Path) -> None:
    d = write(tmp_path, "V9__contract.sql",
              "-- pipelinelib:contract reason: v41 is gone everywhere\n"
              "alter table users drop column legacy;\ncreate index i on users (email);\n")
    assert [f.rule for f in blocking(lint_migrations(d))] == ["require-concurrent-index-creation"]


@pytest.mark.parametrize(("text", "message"), [
    ("-- pipelinelib:allow drop-column\nalter table u drop column a;", "needs a reason"),
    ("-- pipelinelib:contract\nalter table u drop column a;", "needs a reason"),
    ("-- pipelinelib:allwo drop-column reason: x\nselect 1;", "unknown marker"),
])
def test_markers_without_reason_or_unknown_are_bad_input(tmp_path: Path, text: str,
                                                         message: str) -> None:
    with pytest.raises(BadInput, match=message):
        lint_migrations(write(tmp_path, "V1__x.sql", text))


def test_table_created_earlier_in_the_release_counts_as_new(tmp_path: Path) -> None:
    d = write(tmp_path, "V1__t.sql", "create table t (id int);")
    write(tmp_path, "V2__i.sql", "create index t_id on t (id);")
    assert blocking(lint_migrations(d, versions=["1", "2"])) == []
    new = [f for f in lint_migrations(d, versions=["1", "2"])
           if f.rule == "require-concurrent-index-creation"]
    assert new and new[0].reason.startswith("table created in this release")
    assert [f.rule for f in blocking(lint_migrations(d, versions=["2"]))] == [
        "require-concurrent-index-creation"]


def test_no_transaction_detected_from_statements(tmp_path: Path) -> None:
    d = write(tmp_path, "V1__a.sql", "create index concurrently i on t (a);")
    write(tmp_path, "V2__b.sql", "-- pipelinelib:no-transaction\nupdate t set a = 1;")
    write(tmp_path, "V3__c.sql", "create index i2 on t (a);\nvacuum t;")
    write(tmp_path, "V4__d.sql", "create index i3 on t (a);")
    flags = {m.name: m.transactional for m in load_migrations(d)}
    assert flags == {"V1__a.sql": False, "V2__b.sql": False, "V3__c.sql": False,
                     "V4__d.sql": True}


def test_migrate_refuses_destructive_pending_migration(postgres_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    name = f"lint_{uuid.uuid4().hex[:10]}"
    admin = postgres_env["PIPELINELIB_PG_DSN"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    dsn = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        d = tmp_path / "m"
        shutil.copytree(FIXTURES / "destructive", d)
        env = {"PIPELINE_DB_DSN": dsn}
        (d / "V2__contract.sql").rename(tmp_path / "V2__contract.sql")
        assert run_pipeline("migrate", "--dir", str(d), env=env).returncode == 0
        shutil.copy(tmp_path / "V2__contract.sql", d / "V2__contract.sql")
        proc = run_pipeline("migrate", "--dir", str(d), env=env)
        assert proc.returncode == 1, proc.stderr
        for rule in ("ban-drop-column", "renaming-column", "adding-required-field",
                     "require-concurrent-index-creation"):
            assert "V2__contract.sql" in proc.stderr and rule in proc.stderr
        with psycopg.connect(dsn) as conn:
            count = conn.execute("select count(*) from pipelinelib_schema_history").fetchone()
            assert count == (1,)
        lint_only = run_pipeline("migrate", "--lint-only", "--dir", str(d))
        assert lint_only.returncode == 1 and "4 migration change(s) would break" in lint_only.stderr
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def test_old_version_queries_still_work_after_expand(postgres_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    """The v1 app's INSERT/SELECT keep working after V2 (expand) and V3 (concurrent index)."""
    name = f"expand_{uuid.uuid4().hex[:10]}"
    admin = postgres_env["PIPELINELIB_PG_DSN"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    dsn = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        d = tmp_path / "m"
        d.mkdir()
        shutil.copy(FIXTURES / "app" / "V1__create_users.sql", d)
        env = {"PIPELINE_DB_DSN": dsn}
        assert run_pipeline("migrate", "--dir", str(d), env=env).returncode == 0
        old_queries = ["insert into users (name) values ('old-writer') returning id",
                       "select id, name from users where name = 'old-writer'"]
        for f in ("V2__add_email.sql", "V3__index_email.sql", "R__user_directory.sql"):
            shutil.copy(FIXTURES / "app" / f, d)
        assert blocking(lint_migrations(d, versions=["2", "3", "R:user directory"])) == []
        assert run_pipeline("migrate", "--dir", str(d), env=env).returncode == 0
        with psycopg.connect(dsn) as conn:
            new_id = conn.execute(old_queries[0]).fetchone()[0]
            assert conn.execute(old_queries[1]).fetchall() == [(new_id, "old-writer")]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def test_squawk_runs_from_the_install_not_from_whatever_is_on_path(tmp_path: Path,
                                                                 monkeypatch) -> None:
    import sys

    from pipelinelib.adapters.squawk import VERSION, find_binary

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("PIPELINELIB_SQUAWK", raising=False)
    binary = find_binary()
    assert Path(binary).parent == Path(sys.executable).parent
    import subprocess

    assert VERSION in subprocess.run([binary, "--version"], capture_output=True, text=True,
                                     check=True).stdout
    found = lint_migrations(write(tmp_path, "V1__t.sql",
                                  "create table t (id serial primary key, n int);\n"))
    assert {"prefer-identity", "prefer-bigint-over-int"} <= {f.rule for f in found}
    assert not blocking(found)


def test_versions_order_numerically_and_repeatables_come_last(tmp_path: Path) -> None:
    d = write(tmp_path, "V1.10__c.sql", "select 1;")
    for name in ("V1.9__b.sql", "V1__a.sql", "R__views.sql", "V2_1__d.sql"):
        write(tmp_path, name, "select 1;")
    assert [m.key for m in load_migrations(d)] == ["1", "1.9", "1.10", "2.1", "R:views"]
    write(tmp_path, "V1_9__dup.sql", "select 1;")
    with pytest.raises(BadInput, match=r"version 1\.9 also used by V1\.9__b\.sql"):
        load_migrations(d)


def test_migrate_lints_for_the_postgresql_version_of_the_database_it_migrates(
        postgres_env: dict[str, str], tmp_path: Path) -> None:
    """`pipeline migrate` hands squawk `--pg-version` of the target server (as gate mark 3
    does): the real squawk runs behind a wrapper that records its arguments."""
    import json
    import sys

    from pipelinelib.adapters.squawk import find_binary
    from pipelinelib.context import Context
    from pipelinelib.migrate.lint import version_of

    name = f"lintver_{uuid.uuid4().hex[:10]}"
    admin = postgres_env["PIPELINELIB_PG_DSN"]
    with Context().database(admin) as session:
        expected = version_of(session)
    assert expected and expected[0].isdigit()
    argv_log = tmp_path / "squawk-argv.jsonl"
    wrapper = tmp_path / "squawk"
    wrapper.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"open({str(argv_log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"os.execv({find_binary()!r}, [{find_binary()!r}, *sys.argv[1:]])\n")
    wrapper.chmod(0o755)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    dsn = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        d = tmp_path / "m"
        d.mkdir()
        shutil.copy(FIXTURES / "app" / "V1__create_users.sql", d)
        proc = run_pipeline("migrate", "--dir", str(d),
                            env={"PIPELINE_DB_DSN": dsn, "PIPELINELIB_SQUAWK": str(wrapper)})
        assert proc.returncode == 0, proc.stderr
        calls = [json.loads(line) for line in argv_log.read_text().splitlines()]
        assert calls, "squawk never ran"
        for argv in calls:
            assert argv[argv.index("--pg-version") + 1] == expected
        assert f"linted for PostgreSQL {expected}" in proc.stderr + proc.stdout
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
