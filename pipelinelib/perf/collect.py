"""Run Lighthouse N times on one page, as lhci ``collect --numberOfRuns N`` does, and measure
again what a starved CPU spoiled.

A run counts toward N when it measured the page: no ``runtimeError``, an FCP and a TTI
(perf.runs.invalid) and a CPU that was not starved (perf.runs.starved: Lighthouse's own
slow-CPU rule, benchmarkIndex at most 1000). Other runs are kept (their reports are
archived and shown) and Lighthouse runs again, up to ``2 x N`` runs in all and within the
deadline. A run that wrote no report (Chromium slow to start on a busy host) is tried
again once; a second crash in a row fails the step. The judge (perf.runs.pages with
``skip_starved``) then takes the median of the good runs, or of every run when all were
starved.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelinelib.adapters.protocols import Lighthouse
from pipelinelib.errors import StepFailed
from pipelinelib.perf.lighthouse import Measured, read_report
from pipelinelib.perf.runs import invalid, starved

ATTEMPTS_PER_RUN = 2  # at most 2 x N Lighthouse runs in all
CRASHES_IN_A_ROW = 2  # Lighthouse runs in a row that wrote no report: not transient


@dataclass
class Collected:
    """The reports written (in order), how many were good, and why collection stopped early."""

    reports: list[tuple[Path, Measured]] = field(default_factory=list)
    good: int = 0
    stopped: str = ""


def collect(lighthouse: Lighthouse, url: str, runs: int, out_dir: Path, *, timeout: float,
            progress: Callable[[str], None]) -> Collected:
    """Measure ``url`` until ``runs`` good runs, ``2 x runs`` attempts or the deadline;
    each report is ``out_dir/lighthouse-<attempt>.json``."""
    deadline = time.monotonic() + timeout
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("lighthouse-*.json"):
        stale.unlink()  # a re-run's reports are this run's only
    done = Collected()
    crashes = 0
    for attempt in range(1, ATTEMPTS_PER_RUN * runs + 1):
        if done.good >= runs:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            done.stopped = f"the deadline ({timeout:.0f}s) passed after {attempt - 1} run(s)"
            break
        progress(f"lighthouse run {done.good + 1}/{runs} (attempt {attempt}) of {url}")
        try:
            path = lighthouse.run(url, out_dir / f"lighthouse-{attempt}.json", timeout=left)
        except StepFailed as crash:
            if done.reports and time.monotonic() >= deadline:
                done.stopped = f"the deadline ({timeout:.0f}s) passed during attempt {attempt}"
                break
            crashes += 1
            # Chromium that did not start in time on a busy host clears by itself; a
            # crash twice in a row (no Chromium, a broken install) does not
            if crashes >= CRASHES_IN_A_ROW or attempt == ATTEMPTS_PER_RUN * runs:
                raise
            progress(f"lighthouse attempt {attempt} wrote no report ({crash.message}); "
                     "measuring again")
            continue
        crashes = 0
        measured = read_report(path)
        done.reports.append((path, measured))
        why = invalid(measured) or starved(measured)
        if why:
            progress(f"lighthouse attempt {attempt} does not count: {why}; measuring again"
                     if attempt < ATTEMPTS_PER_RUN * runs else
                     f"lighthouse attempt {attempt} does not count: {why}")
        else:
            done.good += 1
    if done.good < runs and not done.stopped:
        done.stopped = f"{ATTEMPTS_PER_RUN * runs} attempts made"
    return done


@dataclass(frozen=True)
class Measure:
    """What ``pipeline perf`` measures itself: a static directory it serves (``serve``) or a
    page already up (``url``), ``runs`` good runs, reports into ``out_dir`` (None: a
    temporary directory)."""

    runs: int
    out_dir: Path | None
    timeout: float
    serve: Path | None = None
    url: str | None = None
