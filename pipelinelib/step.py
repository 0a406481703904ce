"""The step contract, as a decorator.

A step is a plain function ``fn(ctx, ...) -> StepResult``. ``@step("name")`` binds
the step name into every log line, logs start and result, and times the run.
Errors propagate unchanged (fail fast); the job records them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import structlog

from pipelinelib.result import StepResult

P = ParamSpec("P")
R = TypeVar("R", bound=StepResult)


def step(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare a step function; see the module docstring."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            log = structlog.get_logger("pipelinelib.step")
            started = time.monotonic()
            with structlog.contextvars.bound_contextvars(step=name):
                log.debug("step started")
                result = fn(*args, **kwargs)
                result.duration_s = round(time.monotonic() - started, 3)
                log.info(
                    result.summary or str(result.status),
                    status=str(result.status),
                    dry_run=result.dry_run or None,
                    duration_s=result.duration_s,
                )
            return result

        run.step_name = name  # type: ignore[attr-defined]
        return run

    return decorate


def step_name(fn: Callable[..., Any]) -> str:
    """The declared name of a step function (its ``__name__`` if undeclared)."""
    return getattr(fn, "step_name", getattr(fn, "__name__", "step"))
