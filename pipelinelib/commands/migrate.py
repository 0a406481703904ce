"""``pipeline migrate``: apply database migrations before rollout."""

from __future__ import annotations

import argparse
import os
import shlex

from pipelinelib.context import Context

DESCRIPTION = """\
Apply database migrations before rollout, in one of two forms.

(a) Built-in runner for a directory of SQL files (default ./migrations):
  V<version>__<description>.sql   versioned, applied once, in version order
  R__<description>.sql            repeatable, re-applied when its content changes
The DSN comes from the environment variable named by --dsn-env (default
PIPELINE_DB_DSN; never pass a password on the command line). Each run takes a
PostgreSQL session advisory lock (concurrent runs apply each migration once; a
waiting run names the holder; a killed runner's lock is released by the server),
records every migration in the history table (checksum, who, when, how long,
transactional or not) and refuses an edited, already-applied migration before
writing anything. Statements that cannot run in a transaction (CREATE INDEX
CONCURRENTLY ...) or a `-- pipelinelib:no-transaction` marker make a migration run
outside a transaction. Pending migrations are linted first (expand/contract):
destructive changes fail unless the file says
`-- pipelinelib:allow RULE reason: ...` or `-- pipelinelib:contract reason: ...`.

(b) --job-image IMAGE@sha256:... --job-command "CMD ARGS": run the app's own
migration command as a Kubernetes Job from the same image digest, wait for it,
and show its logs and events on failure. The same digest and command give the
same Job: a Job that already succeeded is not run again.

--dry-run lists what is pending. docs/migrate.md has the details.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app", default=os.environ.get("PIPELINE_APP", ""),
                        help="the app (names the Job; default $PIPELINE_APP)")
    parser.add_argument("--dir", default="migrations",
                        help="directory of migration files (default: migrations)")
    parser.add_argument("--dsn-env", default="PIPELINE_DB_DSN",
                        help="environment variable holding the PostgreSQL DSN "
                             "(default PIPELINE_DB_DSN)")
    parser.add_argument("--history-table", default="pipelinelib_schema_history",
                        help="[schema.]table of the history (default pipelinelib_schema_history)")
    parser.add_argument("--lock-wait", type=float, default=300.0, metavar="SECONDS",
                        help="how long to wait for another run's lock (default 300)")
    parser.add_argument("--lock-timeout", metavar="DURATION",
                        help="PostgreSQL lock_timeout for each migration, e.g. 10s "
                             "(fail instead of queueing behind app traffic)")
    parser.add_argument("--out-of-order", action="store_true",
                        help="apply a version older than the newest applied one")
    parser.add_argument("--allow-missing", action="store_true",
                        help="tolerate applied versions whose file is gone")
    parser.add_argument("--no-lint", action="store_true",
                        help="skip the expand/contract lint of pending migrations")
    parser.add_argument("--lint-only", action="store_true",
                        help="lint every migration file; connect to nothing")
    job = parser.add_argument_group("Kubernetes Job form")
    job.add_argument("--job-image", help="the app image pinned by digest (REPO@sha256:...)")
    job.add_argument("--job-command", help="the app's migration command (split like a shell "
                                           "would, never run by one)")
    job.add_argument("--namespace", default="default", help="namespace of the Job")
    job.add_argument("--job-timeout", type=int, default=600, metavar="SECONDS",
                     help="deadline of the Job (default 600)")
    job.add_argument("--job-env", action="append", default=[], metavar="NAME=VALUE",
                     help="environment variable for the Job's container (repeatable)")
    job.add_argument("--job-secret-env", action="append", default=[],
                     metavar="NAME=SECRET:KEY",
                     help="environment variable from a Kubernetes Secret (repeatable)")
    job.add_argument("--job-annotation", action="append", default=[], metavar="KEY=VALUE",
                     help="annotation on the Job's pod template (repeatable)")


def _pairs(values: list[str], option: str) -> dict[str, str]:
    from pipelinelib.errors import BadInput

    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise BadInput(f"bad value {value!r}", field=option, expected="NAME=VALUE")
        out[key] = val
    return out


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.errors import BadInput
    from pipelinelib.job import Job

    if args.app:
        ctx.app = args.app
    with Job("migrate", ctx, args.report_dir) as job:
        if args.lint_only:
            from pipelinelib.steps.migrate import lint_pending

            job.run(lint_pending, ctx, args.dir, None)
        elif args.job_image or args.job_command:
            from pipelinelib.steps.migrate import run_migration_job

            secret_env = {}
            for name, ref in _pairs(args.job_secret_env, "--job-secret-env").items():
                secret, sep, key = ref.partition(":")
                if not sep or not secret or not key:
                    raise BadInput(f"bad value {name}={ref}", field="--job-secret-env",
                                   expected="NAME=SECRET:KEY")
                secret_env[name] = (secret, key)
            job.run(run_migration_job, ctx, args.namespace, args.job_image or "",
                    shlex.split(args.job_command or ""),
                    env=_pairs(args.job_env, "--job-env"),
                    annotations=_pairs(args.job_annotation, "--job-annotation"),
                    secret_env=secret_env, timeout_s=args.job_timeout)
        else:
            from pipelinelib.steps.migrate import migrate_database

            dsn = os.environ.get(args.dsn_env, "")
            if not dsn:
                raise BadInput(f"environment variable {args.dsn_env} is empty", field="--dsn-env",
                               expected="a PostgreSQL DSN, e.g. postgresql://user:pw@host/db")
            job.run(migrate_database, ctx, dsn, args.dir, table=args.history_table,
                    lock_wait_s=args.lock_wait, lock_timeout=args.lock_timeout,
                    out_of_order=args.out_of_order, allow_missing=args.allow_missing,
                    lint=not args.no_lint, job=job)
    return job.exit_code
