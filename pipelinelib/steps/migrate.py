"""Migrations before rollout: the built-in SQL runner, its lint, and the app's own
migration command as a Kubernetes Job from the same image digest.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

from pipelinelib.context import Context
from pipelinelib.errors import BadInput, GateFailed, StepFailed
from pipelinelib.kube import health
from pipelinelib.kube.labels import ANN_IMAGE, APP_LABEL, MANAGED_BY, MANAGER, PURPOSE_LABEL
from pipelinelib.kube.wait import wait_for
from pipelinelib.result import StepResult
from pipelinelib.step import step


def application_name(ctx: Context) -> str:
    """``pipelinelib migrate USER BUILD_URL``: what a waiting runner sees of the lock holder."""
    parts = ["pipelinelib migrate", ctx.ci.user or "unknown", ctx.ci.build_url]
    return ctx.secrets.redact_text(" ".join(p for p in parts if p))


def applied_by(ctx: Context) -> str:
    who = ctx.ci.user or "unknown"
    return ctx.secrets.redact_text(f"{who} {ctx.ci.build_url}".strip())


@step("migrate-lint")
def lint_pending(ctx: Context, directory: str | Path, versions: list[str] | None,
                 pg_version: str | None = None) -> StepResult:
    """Expand/contract lint of the pending migrations (every file when ``versions`` is None,
    each on its own) for the target server's ``pg_version`` (squawk's ``--pg-version``;
    None: squawk's default, the newest); GateFailed on an unallowed finding."""
    from pipelinelib.migrate.lint import lint_migrations

    findings = lint_migrations(directory, versions, pg_version=pg_version or None)
    for finding in findings:
        ctx.log.warning("lint finding", finding=finding.one_line())
    refused = [f for f in findings if not f.allowed]
    if refused:
        raise GateFailed(
            f"{len(refused)} migration change(s) would break the app version still "
            f"running (first: {refused[0].one_line()})",
            hint="split into expand/contract releases, or mark the file "
                 "`-- pipelinelib:allow RULE reason: ...` / `-- pipelinelib:contract reason: ...`",
            evidence=[f.one_line() for f in refused])
    return StepResult(
        "migrate-lint", status=_unchanged(), dry_run=ctx.dry_run,
        summary=("all migrations" if versions is None else f"{len(versions)} pending migration(s)")
                + (f" linted for PostgreSQL {pg_version}" if pg_version else " linted")
                + f"; {len(findings)} allowed finding(s)",
        outputs={"findings": [f.to_dict() for f in findings], "pg_version": pg_version or None})


def _unchanged() -> Any:
    from pipelinelib.result import Status

    return Status.UNCHANGED


@step("migrate")
def migrate_database(ctx: Context, dsn: str, directory: str | Path, *,
                     table: str | None = None, lock_wait_s: float = 300.0,
                     lock_timeout: str | None = None, out_of_order: bool = False,
                     allow_missing: bool = False, lint: bool = True, job: Any = None
                     ) -> StepResult:
    """Apply the pending migrations of ``directory`` (see pipelinelib.migrate.runner)."""
    from pipelinelib.adapters.postgres import dsn_parts
    from pipelinelib.migrate import history, runner

    ctx.secrets.add(dsn_parts(dsn).get("password"))
    options = runner.RunOptions(
        table=table or history.DEFAULT_TABLE, applied_by=applied_by(ctx),
        lock_wait_s=lock_wait_s, lock_timeout=lock_timeout, out_of_order=out_of_order,
        allow_missing=allow_missing, dry_run=ctx.dry_run)
    history.table_name(options.table)

    def on_wait(holder: Any, waited: float) -> None:
        ctx.log.warning("waiting for the migration lock", waited_s=round(waited, 1),
                        holder=holder.describe() if holder else "released just now",
                        max_wait_s=lock_wait_s)

    def on_apply(mig: Any) -> None:
        ctx.log.info(f"applying {mig.name}", transactional=mig.transactional,
                     why_no_transaction=mig.no_transaction_reason or None)

    options.on_wait, options.on_apply = on_wait, on_apply
    with ctx.database(dsn, application_name=application_name(ctx)) as db:
        planned = runner.read_plan(db, directory, options)
        if lint and planned.pending:
            from pipelinelib.migrate.lint import version_of

            lint_step = job.run if job is not None else (lambda fn, *a: fn(*a))
            lint_step(lint_pending, ctx, directory, [m.key for m in planned.pending],
                      version_of(db))
        outcome = runner.run(db, directory, options)
    pending = [m.name for m in outcome.plan.pending]
    actions = [runner.describe(m) for m in outcome.plan.pending] if ctx.dry_run \
        else [f"applied {name}" for name in outcome.applied]
    return StepResult.of("migrate", actions, dry_run=ctx.dry_run, pending=pending,
                         applied=list(outcome.applied),
                         lock_waited_s=round(outcome.lock_waited_s, 2),
                         history=len(outcome.plan.applied) + len(outcome.applied))


# --- (b) the app's own migration command as a Kubernetes Job ---------------------------------

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def job_name(app: str, image: str, command: list[str]) -> str:
    """``APP-migrate-HASH``: the same image digest and command give the same Job."""
    digest = hashlib.sha256(json.dumps([image, command]).encode()).hexdigest()[:10]
    base = re.sub(r"[^a-z0-9-]+", "-", (app or "app").lower()).strip("-")[:40] or "app"
    return f"{base}-migrate-{digest}"


def job_manifest(name: str, namespace: str, app: str, image: str, command: list[str], *,
                 env: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
                 timeout_s: int = 600, secret_env: dict[str, tuple[str, str]] | None = None,
                 pod_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Job: one pod, no retries, bounded by ``activeDeadlineSeconds``; ``pod_spec``
    adds pod fields (nodeSelector, tolerations, hostNetwork...)."""
    env_list: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in (env or {}).items()]
    env_list += [{"name": k, "valueFrom": {"secretKeyRef": {"name": s, "key": key}}}
                 for k, (s, key) in (secret_env or {}).items()]
    labels = {MANAGED_BY: MANAGER, APP_LABEL: app or "app", PURPOSE_LABEL: "migrate"}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "annotations": {ANN_IMAGE: image}},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(timeout_s),
            "template": {
                "metadata": {"labels": labels, "annotations": dict(annotations or {})},
                "spec": {"restartPolicy": "Never", "containers": [
                    {"name": "migrate", "image": image, "command": list(command),
                     "env": env_list}], **(pod_spec or {})},
            },
        },
    }


def job_state(job: dict[str, Any]) -> str:
    """``succeeded``, ``failed`` or ``running``: the Job's health rule (``kube.health``)."""
    state = health.job(job, []).state
    return {health.READY: "succeeded", health.FAILED: "failed"}.get(state, "running")


@step("migrate-job")
def run_migration_job(ctx: Context, namespace: str, image: str, command: list[str], *,
                      env: dict[str, str] | None = None,
                      annotations: dict[str, str] | None = None,
                      secret_env: dict[str, tuple[str, str]] | None = None,
                      timeout_s: int = 600,
                      pod_spec: dict[str, Any] | None = None) -> StepResult:
    """Run the app's migration command as a Job from ``image`` (pinned by digest) and wait.

    A Job with the same name that succeeded: unchanged. One that failed is replaced
    (a re-run retries). On failure: StepFailed with the pods' logs and the events.
    """
    if not DIGEST.search(image):
        raise BadInput(f"migration image {image} is not pinned by digest", field="--job-image",
                       expected="REPOSITORY@sha256:<64 hex> (the digest the rollout deploys)")
    if not command:
        raise BadInput("no migration command", field="--job-command",
                       expected="the app's migration command, e.g. ./manage.py migrate")
    name = job_name(ctx.app, image, command)
    kube = ctx.kube
    live = kube.get("Job", name, namespace)
    state = job_state(live) if live else "absent"
    if state == "succeeded":
        return StepResult.of("migrate-job", [], dry_run=ctx.dry_run, job=name, state=state)
    actions = {"absent": [f"create Job {namespace}/{name}"],
               "failed": [f"replace failed Job {namespace}/{name}"],
               "running": [f"wait for running Job {namespace}/{name}"]}[state]
    if ctx.dry_run:
        return StepResult.of("migrate-job", actions, dry_run=True, job=name, state=state)
    if state == "failed":
        kube.delete("Job", name, namespace, propagation="Foreground")
        _wait_gone(ctx, name, namespace)
    if state != "running":
        manifest = job_manifest(name, namespace, ctx.app, image, command, env=env,
                                annotations=annotations, timeout_s=timeout_s,
                                secret_env=secret_env, pod_spec=pod_spec)
        kube.create(manifest, namespace, ok=(409,))
    # the rollout's waiter: the Job's health rule, its watch, its evidence
    outcome = wait_for(kube, namespace, [("Job", name)], timeout_s + 30,
                       ctx.log.bind(job=name))
    if not outcome.ok:
        evidence = [ctx.secrets.redact_text(line) for line in outcome.evidence]
        still = outcome.reason == "ReadinessTimeout"
        raise StepFailed(f"migration Job {namespace}/{name} " +
                         (f"still running after {timeout_s + 30:.0f}s" if still else "failed"),
                         cause=ctx.secrets.redact_text(outcome.message),
                         hint="read the migration's output below; fix and re-run (the failed "
                              "Job is replaced)",
                         evidence=evidence)
    return StepResult.of("migrate-job", actions, job=name, state="succeeded")


def _wait_gone(ctx: Context, name: str, namespace: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while ctx.kube.get("Job", name, namespace) is not None:
        if time.monotonic() > deadline:
            raise StepFailed(f"the failed Job {namespace}/{name} was not deleted in "
                             f"{timeout_s:.0f}s")
        time.sleep(0.5)
