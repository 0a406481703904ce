"""Run a candidate's stages: the app's pipeline, each stage a ``pipeline`` subcommand.

A ``pipeline`` stage runs ``python -m pipelinelib --report-dir DIR COMMAND ARGS`` — the
same composition a CI stage runs (build, scan, gate, migrate, rollout) — in the
candidate's checkout, with ``GIT_COMMIT`` set to the candidate. Argument lists only.

Outcome by exit code: 0 passes; 3 (a system did not answer) is nobody's fault, so the
queue stops and the refspec keeps its place; anything else fails the candidate.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelinelib.adapters import process
from pipelinelib.errors import EXIT_UNREACHABLE
from pipelinelib.queue.config import Stage

TAIL_LINES = 15


@dataclass(frozen=True)
class StagesOutcome:
    """How a candidate's stages went: all passed, or which one failed and how."""

    ok: bool
    stage: str = ""
    exit_code: int = 0
    tail: tuple[str, ...] = ()
    durations: dict[str, float] = field(default_factory=dict)

    @property
    def unreachable(self) -> bool:
        return not self.ok and self.exit_code == EXIT_UNREACHABLE

    def reason(self) -> str:
        return "" if self.ok else f"stage {self.stage} exited {self.exit_code}"


def run_stages(stages: Sequence[Stage], *, workdir: Path, commit: str, branch: str,
               reports: Path, redact: Callable[[str], str] = str, log: Any = None,
               timeout_s: float = 3600.0) -> StagesOutcome:
    """Run ``stages`` in order in ``workdir``; stop at the first that fails."""
    durations: dict[str, float] = {}
    for index, stage in enumerate(stages):
        report_dir = reports / f"{index:02d}-{stage.name}"
        values = {"workdir": str(workdir), "commit": commit, "short": commit[:7],
                  "branch": branch, "reports": str(report_dir)}
        argv = stage.render(values)
        if stage.pipeline:
            argv = [sys.executable, "-m", "pipelinelib", "--report-dir", str(report_dir), *argv]
        env = {**os.environ, "GIT_COMMIT": commit, "PIPELINE_QUEUE_BRANCH": branch}
        started = time.monotonic()
        if log is not None:
            log.info("stage", stage=stage.name, commit=commit[:12], branch=branch)
        try:
            proc = process.run(argv, cwd=workdir, env=env, timeout=timeout_s)
            code, output = proc.returncode, proc.stdout + proc.stderr
        except process.TimedOut as exc:
            code, output = 124, f"timed out after {timeout_s:.0f}s: {exc.__cause__}"
        except process.CannotRun as exc:
            code, output = 127, str(exc)
        durations[stage.name] = round(time.monotonic() - started, 3)
        if code != 0:
            tail = tuple(redact(line)[:300] for line in output.splitlines()[-TAIL_LINES:])
            return StagesOutcome(False, stage.name, code, tail, durations)
    return StagesOutcome(True, durations=durations)
