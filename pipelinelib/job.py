"""A job: runs steps in order, stops at the first failure, reports, returns an exit code.

::

    with Job("build", ctx, report_dir="reports") as job:
        built = job.run(steps.build_image, ctx, spec)
        job.run(steps.push_image, ctx, spec, built.outputs["image_id"])
    sys.exit(job.exit_code)

``job.always(fn, ...)`` registers a step that runs at the end even after a failure
(e.g. annotating "Failed Deployment").

Exit codes come from the error tree (``pipelinelib.errors``), and one rule lives here for
every pipeline: a job that succeeded while a step left blue/green apps ready on the idle
colour (a result whose ``awaiting_promotion`` output is not empty, outside a dry run)
exits 5, awaiting promotion, so CI pauses for a person.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from pipelinelib.context import Context
from pipelinelib.errors import (
    EXIT_AWAITING_PROMOTION,
    EXIT_FAILED,
    EXIT_OK,
    PipelineError,
    StepFailed,
)
from pipelinelib.result import Status, StepResult
from pipelinelib.step import step_name


class Job:
    """Runs a sequence of steps for one CI stage; see the module docstring."""

    def __init__(self, name: str, ctx: Context, report_dir: str | Path | None = None):
        self.name = name
        self.ctx = ctx
        self.report_dir = report_dir
        self.results: list[StepResult] = []
        self.exit_code: int = EXIT_OK
        self.error: PipelineError | None = None
        self.started = dt.datetime.now(dt.timezone.utc)
        self._always: list[tuple[Callable[..., StepResult], tuple[Any, ...], dict[str, Any]]] = []
        self.log = structlog.get_logger("pipelinelib.job").bind(job=name)

    def run(self, fn: Callable[..., StepResult], *args: Any, **kwargs: Any) -> StepResult:
        """Run one step and record its result; a failure is recorded and re-raised."""
        started = time.monotonic()
        try:
            result = fn(*args, **kwargs)
        except PipelineError as exc:
            self._record_failure(step_name(fn), exc, time.monotonic() - started)
            raise
        except Exception as exc:  # a bug or an untranslated outside error: still report it
            wrapped = StepFailed(
                f"{step_name(fn)}: unexpected {type(exc).__name__}",
                cause=self.ctx.secrets.redact_text(str(exc))[:500],
            )
            self._record_failure(step_name(fn), wrapped, time.monotonic() - started)
            self.log.exception("unexpected error", step=step_name(fn))
            raise wrapped from exc
        self.results.append(result)
        return result

    def always(self, fn: Callable[..., StepResult], *args: Any, **kwargs: Any) -> None:
        """Register a step to run when the job ends, whether it failed or not.

        The callable may accept ``job_failed=`` as a keyword: it receives whether
        an earlier step failed.
        """
        self._always.append((fn, args, kwargs))

    def _record_failure(self, name: str, exc: PipelineError, duration: float) -> None:
        evidence = list(getattr(exc, "evidence", []))
        self.results.append(
            StepResult(
                name,
                Status.FAILED,
                summary=exc.message,
                duration_s=round(duration, 3),
                error=exc.one_line(),
                evidence=evidence,
                dry_run=self.ctx.dry_run,
            )
        )

    def __enter__(self) -> Job:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if isinstance(exc, PipelineError):
            self.error = exc
            self.exit_code = exc.exit_code
        elif exc is not None and not isinstance(exc, Exception):
            return False  # KeyboardInterrupt / SystemExit pass through
        elif exc is not None:
            self.error = StepFailed(f"unexpected {type(exc).__name__}", cause=str(exc))
            self.exit_code = EXIT_FAILED
        self._run_always()
        self._finish()
        if self.exit_code == EXIT_OK and self.awaiting_promotion:
            self.exit_code = EXIT_AWAITING_PROMOTION  # reports above say the job succeeded
        return exc is None or isinstance(exc, Exception)

    @property
    def awaiting_promotion(self) -> bool:
        """A step (not a dry run) left apps ready on the idle colour, awaiting a swap."""
        return any(r.outputs.get("awaiting_promotion") and not r.dry_run for r in self.results)

    def _run_always(self) -> None:
        for fn, args, kwargs in self._always:
            try:
                self.run(fn, *args, **{**kwargs, "job_failed": self.error is not None})
            except PipelineError as exc:
                if self.error is None:
                    self.error, self.exit_code = exc, exc.exit_code

    def _finish(self) -> None:
        secrets = self.ctx.secrets
        if self.report_dir:
            from pipelinelib.report import write_reports  # a job without reports skips it

            meta = {
                "app": self.ctx.app,
                "environment": self.ctx.environment,
                "revision": self.ctx.revision,
                "user": self.ctx.ci.user,
                "build_url": self.ctx.ci.build_url,
                "error": self.error.one_line() if self.error else None,
            }
            write_reports(
                self.report_dir,
                self.name,
                self.results,
                self.exit_code,
                self.started,
                secrets,
                meta,
            )
        changed = sum(r.status is Status.CHANGED for r in self.results)
        if self.error is None:
            self.log.info(
                f"{self.name} succeeded",
                steps=len(self.results),
                changed=changed,
                exit_code=self.exit_code,
            )
        else:
            self.log.error(
                f"{self.name} failed: {secrets.redact_text(self.error.one_line())}",
                exit_code=self.exit_code,
            )
