"""`pipeline migrate` no-op budget (needs PIPELINELIB_PG_DSN from testbed/postgres/up):

- a no-op run over 100 applied migrations (read files, parse, connect, lock, compare
  checksums, unlock) vs. the floor any runner pays: `psql -c 'select 1'` (process start +
  connection), measured in the same run; and the in-process no-op (no interpreter start).
- goal: the CLI no-op within 1 s; the in-process no-op under 150 ms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _timing import best_of, report  # noqa: E402


def main() -> None:
    import psycopg

    admin = os.environ["PIPELINELIB_PG_DSN"]
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    dsn = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            (d / "V1__t0.sql").write_text("create table t0 (id bigserial primary key);\n")
            for i in range(1, 100):
                (d / f"V{i + 1}__c{i}.sql").write_text(
                    f"alter table t0 add column c{i} text;\n"
                    f"create index concurrently t0_c{i} on t0 (c{i});\n" if i % 10 == 0 else
                    f"alter table t0 add column c{i} text;\n")
            env = {**os.environ, "PIPELINE_DB_DSN": dsn}
            cli = [sys.executable, "-m", "pipelinelib", "--log-level", "warning", "migrate",
                   "--dir", str(d), "--no-lint"]
            start = time.perf_counter()
            subprocess.run(cli, env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            first = time.perf_counter() - start
            print(f"first run, 100 migrations applied: {first * 1000:.0f} ms")

            def noop() -> None:
                subprocess.run(cli, env=env, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)

            def psql() -> None:
                subprocess.run(["psql", dsn, "-Atqc", "select 1"], check=True,
                               stdout=subprocess.DEVNULL)

            from pipelinelib.adapters.postgres import Postgres
            from pipelinelib.migrate.runner import RunOptions, run

            def in_process() -> None:
                with Postgres.connect(dsn) as db:
                    outcome = run(db, d, RunOptions())
                    assert not outcome.applied

            ours, peer = best_of(5, noop), best_of(5, psql)
            report("migrate no-op (CLI, 100 applied)", ours, "psql -c 'select 1'", peer,
                   "within 1 s")
            inproc = best_of(5, in_process)
            report("migrate no-op (in process, 100 applied)", inproc, "psql -c 'select 1'",
                   peer, "< 150 ms")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


if __name__ == "__main__":
    main()
