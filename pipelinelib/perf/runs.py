"""Several Lighthouse runs of one page, and the median run that is judged.

One Lighthouse run is a noisy sample: a host whose CPU is busy (parallel builds, pods)
makes the main-thread tasks Lighthouse observes longer, and the simulated throttling
multiplies them (``cpuSlowdownMultiplier``), so TBT, TTI and the performance score swing.
Lighthouse's answer (docs/variability.md; lhci ``numberOfRuns``) is to run it several
times and judge the median run, chosen as Lighthouse's own ``computeMedianRun``
(core/lib/median-run.js) chooses it:

- runs without a finite first-contentful-paint and interactive (``filterToValidRuns``,
  where a value of 0 counts as missing, as ``numericValue || NaN`` does), and runs with a
  ``runtimeError``, are dropped;
- the median run is the one closest (Euclidean distance) to the median FCP and the median
  TTI of the valid runs; ties go to the lower TTI, then to the earlier run.

Reports are grouped by the URL they requested; a page measured once is judged as it is.

A run on a CPU-starved host is not a sample of the page: Lighthouse itself warns ("The
tested device appears to have a slower CPU than Lighthouse expects", runWarnings) when its
``benchmarkIndex`` is at most 1000 (``SLOW_CPU_BENCHMARK_INDEX_THRESHOLD``,
core/gather/driver/environment.js in 12.8.2). When the step runs Lighthouse itself
(``pipeline perf --serve/--url``) such runs are measured again (perf.collect) and, as long
as one unstarved run exists, left out of the median (``skip_starved``); when every run was
starved they are all judged, and ``Page.all_starved`` says so.

The budget's ``aggregation`` (lhci's aggregationMethod) says which value each check judges:
the median run's (``median-run``, the default), or each value's best, worst or median over
the page's valid runs (``optimistic``, ``pessimistic``, ``median``) — ``judge`` names the
run each best or worst value came from.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from pipelinelib.perf.lighthouse import Budget, Check, Measured, check

FCP, TTI = "first-contentful-paint", "interactive"
SLOW_CPU_INDEX = 1000  # Lighthouse's SLOW_CPU_BENCHMARK_INDEX_THRESHOLD
SLOW_CPU_WARNING = "The tested device appears to have a slower CPU than Lighthouse expects."
SHOWN = (("performance", "performance"), (FCP, "FCP"), (TTI, "TTI"),
         ("largest-contentful-paint", "LCP"), ("total-blocking-time", "TBT"))


@dataclass(frozen=True)
class Run:
    """One report: its number among the page's runs (1-based), file and what it measured."""

    number: int
    path: str
    measured: Measured


@dataclass
class Page:
    """Every run of one URL, the runs dropped (and why) and the run that is judged."""

    url: str
    runs: list[Run] = field(default_factory=list)
    dropped: dict[int, str] = field(default_factory=dict)
    judged: Run | None = None
    all_starved: bool = False  # every valid run was starved of CPU (judged anyway)


def invalid(measured: Measured) -> str | None:
    """Why a run cannot take part in the median (None when it can)."""
    if measured.errors:
        return measured.errors[0].split(":")[0]  # "lighthouse runtime error NO_FCP"
    for audit in (FCP, TTI):
        value = measured.values.get(audit) or math.nan  # Lighthouse: numericValue || NaN
        if not math.isfinite(value):
            return f"no {audit} value"
    return None


def starved(measured: Measured) -> str | None:
    """Why a run was starved of CPU (Lighthouse's slow-CPU rule), None when it was not."""
    index = measured.benchmark_index
    if SLOW_CPU_WARNING in measured.warnings or (index is not None and index <= SLOW_CPU_INDEX):
        shown = "unknown" if index is None else f"{index:.0f}"
        return f"CPU starved (benchmarkIndex {shown}, Lighthouse expects over {SLOW_CPU_INDEX})"
    return None


def median_run(runs: list[Run]) -> Run:
    """Lighthouse's computeMedianRun over valid runs (at least one)."""
    if not runs:
        raise ValueError("no runs")
    median_fcp = statistics.median(r.measured.values[FCP] for r in runs)
    median_tti = statistics.median(r.measured.values[TTI] for r in runs)

    def distance(run: Run) -> tuple[float, float, int]:
        fcp, tti = run.measured.values[FCP], run.measured.values[TTI]
        d_fcp, d_tti = median_fcp - fcp, median_tti - tti  # the same float steps as Lighthouse
        return (d_fcp * d_fcp + d_tti * d_tti, tti, run.number)

    return min(runs, key=distance)


def valid(page: Page) -> list[Run]:
    """The runs that take part in the judgement (not dropped)."""
    return [r for r in page.runs if r.number not in page.dropped]


def pages(reports: list[tuple[str | Path, Measured]], *,
          skip_starved: bool = False) -> list[Page]:
    """Group reports by the URL they measured (in order) and pick each page's judged run.
    ``skip_starved``: starved runs are dropped while the page has an unstarved valid run."""
    by_url: dict[str, Page] = {}
    for path, measured in reports:
        # runs of one page share its URL; coach reports are each judged on their own
        key = f"lighthouse {measured.url}" if measured.tool == "lighthouse" and measured.url \
            else f"{measured.tool} {path}"
        page = by_url.setdefault(key, Page(measured.url or str(path)))
        page.runs.append(Run(len(page.runs) + 1, str(path), measured))
    for page in by_url.values():
        if len(page.runs) == 1:
            page.judged = page.runs[0]
            page.all_starved = skip_starved and starved(page.judged.measured) is not None
            continue
        for run in page.runs:
            why = invalid(run.measured)
            if why:
                page.dropped[run.number] = why
        kept = valid(page)
        if skip_starved and kept:
            fed = [r for r in kept if not starved(r.measured)]
            page.all_starved = not fed
            for run in kept if fed else []:
                why = starved(run.measured)
                if why:
                    page.dropped[run.number] = why
        kept = valid(page)
        page.judged = median_run(kept) if kept else None
    return list(by_url.values())


def per_check(page: Page, aggregation: str) -> bool:
    """Whether each check picks its own value among the runs (not all from the median run)."""
    return aggregation != "median-run" and len(valid(page)) > 1


def judge(page: Page, budget: Budget) -> list[Check]:
    """The budget's checks on the page, each on the value its aggregation picks."""
    if page.judged is None:
        raise ValueError("no valid run")
    if not per_check(page, budget.aggregation):
        return check(page.judged.measured, budget)
    runs = valid(page)
    combined = Measured(url=page.url)
    source: dict[str, str] = {}  # check name -> where its value came from
    for name in budget.categories:
        scores = [(s, r) for r in runs if (s := r.measured.scores.get(name)) is not None]
        if scores:
            combined.scores[name], source[name] = _pick(scores, budget.aggregation, higher=True)
        elif any(name in r.measured.scores for r in runs):
            combined.scores[name] = None  # in the reports, never measured
    for name in budget.metrics:
        values = [(r.measured.values[name], r) for r in runs if name in r.measured.values]
        if values:
            combined.values[name], source[name] = _pick(values, budget.aggregation, higher=False)
            combined.units[name] = values[0][1].measured.units.get(name, "")
    return [Check(c.name, c.ok, f"{c.line} — {source[c.name]}" if c.name in source else c.line)
            for c in check(combined, budget)]


def _pick(values: list[tuple[float, Run]], aggregation: str, *,
          higher: bool) -> tuple[float, str]:
    """The value an aggregation judges (``higher``: a higher value is better), and whence."""
    if aggregation == "median":
        return statistics.median(v for v, _ in values), f"median of {len(values)} runs"
    best = max if higher else min
    worst = min if higher else max
    value, run = (best if aggregation == "optimistic" else worst)(values, key=lambda p: p[0])
    return value, f"run {run.number}"


def title(page: Page, aggregation: str) -> str:
    """How the page's runs were judged, for the checklist's title line."""
    kept, total = len(valid(page)), len(page.runs)
    if total < 2:
        return ""
    if not per_check(page, aggregation):
        return f" (median of {kept} valid run(s) of {total}: run {page.judged.number})" \
            if page.judged else ""
    what = {"optimistic": "best", "pessimistic": "worst", "median": "median"}[aggregation]
    return f" ({aggregation}: each check on its {what} value of {kept} valid run(s) of {total})"


def describe(page: Page, aggregation: str = "median-run") -> list[str]:
    """One line per run: its values, and which run was judged or dropped (and why)."""
    if len(page.runs) == 1:
        return []
    lines = []
    for run in page.runs:
        values = []
        for key, label in SHOWN:
            if key == "performance":
                score = run.measured.scores.get(key)
                values.append(f"{label} {'-' if score is None else round(score * 100)}")
            elif key in run.measured.values:
                values.append(f"{label} {run.measured.values[key]:.0f} ms")
        if run.measured.benchmark_index is not None:
            values.append(f"benchmarkIndex {run.measured.benchmark_index:.0f}")
        mark = ("← judged (median run)" if run is page.judged and not per_check(page, aggregation)
                else f"dropped: {page.dropped[run.number]}" if run.number in page.dropped
                else "")
        lines.append(f"run {run.number} ({Path(run.path).name}): " + ", ".join(values)
                     + (f"  {mark}" if mark else ""))
    return lines


def warnings(page: Page, aggregation: str = "median-run") -> list[str]:
    """What Lighthouse warned about the judged run (a slow or busy CPU, say); with values
    picked from several runs, about each of them, naming the run."""
    if not per_check(page, aggregation):
        return [f"Lighthouse warned: {w}" for w in (page.judged.measured.warnings
                                                    if page.judged else [])]
    return [f"Lighthouse warned about run {run.number}: {w}"
            for run in valid(page) for w in run.measured.warnings]
