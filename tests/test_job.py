"""pipelinelib.job.Job: the exit code of every pipeline, including the one rule it adds —
a job that succeeded while a step left apps awaiting promotion exits 5."""

from __future__ import annotations

import json

from pipelinelib.context import Context
from pipelinelib.errors import EXIT_AWAITING_PROMOTION, EXIT_BAD_INPUT, EXIT_OK, BadInput
from pipelinelib.job import Job
from pipelinelib.result import StepResult
from pipelinelib.step import step


@step("deploy-colour")
def _leaves_green_waiting(ctx: Context, *, dry_run: bool = False) -> StepResult:
    actions = ["deploy green"]
    if dry_run:
        return StepResult.of("deploy-colour", actions, dry_run=True, awaiting_promotion=[])
    return StepResult.of("deploy-colour", actions, awaiting_promotion=["uro"])


@step("plan-colour")
def _plans_green_waiting(ctx: Context) -> StepResult:
    """A dry-run result that names apps awaiting promotion (as `plan` does)."""
    return StepResult.of("plan-colour", ["deploy green"], dry_run=True,
                         awaiting_promotion=["uro"])


@step("refuse")
def _refuses(ctx: Context) -> StepResult:
    raise BadInput("no such app", field="--app")


@step("noop")
def _noop(ctx: Context) -> StepResult:
    return StepResult.of("noop", [])


def test_any_pipeline_whose_step_leaves_apps_awaiting_promotion_exits_5(tmp_path):
    ctx = Context()
    with Job("any-pipeline", ctx, report_dir=tmp_path) as job:
        job.run(_noop, ctx)
        job.run(_leaves_green_waiting, ctx)
        job.run(_noop, ctx)
    assert job.exit_code == EXIT_AWAITING_PROMOTION
    assert job.awaiting_promotion
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["result"] == "success" and summary["exit_code"] == EXIT_OK, \
        "the report says the job succeeded; only the process exit code says it waits"


def test_a_job_with_nothing_awaiting_exits_0(tmp_path):
    ctx = Context()
    with Job("any-pipeline", ctx) as job:
        job.run(_noop, ctx)
        job.run(_leaves_green_waiting, ctx, dry_run=True)
    assert job.exit_code == EXIT_OK and not job.awaiting_promotion


def test_a_dry_run_result_naming_awaiting_apps_does_not_make_the_job_wait():
    ctx = Context()
    with Job("plan", ctx) as job:
        job.run(_plans_green_waiting, ctx)
    assert job.exit_code == EXIT_OK


def test_a_failure_after_a_step_left_apps_waiting_keeps_the_failure_code():
    ctx = Context()
    with Job("any-pipeline", ctx) as job:
        job.run(_leaves_green_waiting, ctx)
        job.run(_refuses, ctx)
    assert job.exit_code == EXIT_BAD_INPUT
    assert [r.step for r in job.results] == ["deploy-colour", "refuse"]
