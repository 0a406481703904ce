"""The performance budget (seed 003: lighthouse, coach): measure the page (or read reports
made elsewhere), check the budget.

Several Lighthouse reports of one page are runs of one measurement: the median run
(perf.runs, Lighthouse's own rule) is judged, and the evidence shows every run. When the
step runs Lighthouse itself (perf.collect), a run on a CPU-starved host is measured again
and left out of the median while an unstarved run exists."""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from pathlib import Path

from pipelinelib.context import Context
from pipelinelib.errors import GateFailed
from pipelinelib.perf.collect import Measure, collect
from pipelinelib.perf.lighthouse import Budget, Measured
from pipelinelib.perf.runs import describe, judge, pages, title, warnings
from pipelinelib.perf.serve import serve
from pipelinelib.report.checklist import item
from pipelinelib.result import StepResult
from pipelinelib.step import step


@step("perf")
def perf_budget(ctx: Context, reports: list[tuple[str | Path, Measured]],
                budget: Budget, image: str | None = None,
                digest: str | None = None, measure: Measure | None = None) -> StepResult:
    """Fail when any page misses the budget; the evidence lists every line checked.
    Several reports of one URL are runs: the median run is judged (perf.runs), or each
    check on the value the budget's ``aggregation`` picks.
    ``measure``: run Lighthouse on the page first (perf.collect), starved runs measured again.
    With ``image`` and ``digest`` the verdict is recorded as a signed perf attestation."""
    evidence: list[str] = []
    missed: list[str] = []
    reports = list(reports)
    notes: list[str] = []
    if measure is not None:
        reports, notes = _measure(ctx, measure, reports)
    measured_pages = pages(reports, skip_starved=measure is not None)
    for page in measured_pages:
        runs = describe(page, budget.aggregation)
        if page.all_starved:
            line = (f"⚠ every run of {page.url} was starved of CPU (Lighthouse's slow-CPU "
                    "warning): its blocking time is overstated; judged anyway")
            ctx.log.warning(line)
            runs = [line, *runs]
        runs += notes
        if page.judged is None:
            why = f"no valid run of {page.url} among {len(page.runs)}"
            missed.append(why)
            evidence += item(False, f"lighthouse {page.url}: {why}", runs)
            continue
        judged = page.judged.measured
        checks = judge(page, budget)
        missed += [c.line.removeprefix("✗ ") for c in checks if not c.ok]
        heading = f"{judged.tool} {judged.url or page.judged.path}" + title(
            page, budget.aggregation)
        evidence += item(all(c.ok for c in checks), heading,
                         [*runs, *warnings(page, budget.aggregation), *(c.line for c in checks)])
    actions: list[str] = []
    if image and digest:
        from pipelinelib.attest import write_attestation

        written = write_attestation(ctx, image, digest, "perf", {
            "kind": "perf", "digest": digest, "app": ctx.app, "revision": ctx.revision,
            "passed": not missed, "checks": evidence})
        if written["changed"]:
            actions.append(f"record perf result as {written['reference']}")
    if missed:
        raise GateFailed(f"performance budget missed: {len(missed)} check(s) failed: "
                         + "; ".join(missed[:4]) + ("; …" if len(missed) > 4 else ""),
                         hint=f"see the evidence; the budget is {budget.source}",
                         evidence=evidence)
    return StepResult.of("perf", actions, dry_run=ctx.dry_run,
                         summary=f"performance budget met ({len(measured_pages)} page(s), "
                                 f"{len(reports)} report(s))",
                         checklist=evidence)


def _measure(ctx: Context, measure: Measure, reports: list[tuple[str | Path, Measured]]
             ) -> tuple[list[tuple[str | Path, Measured]], list[str]]:
    """Run Lighthouse on the served directory or the URL; the reports and what stopped it."""
    site = serve(measure.serve) if measure.serve else nullcontext(measure.url or "")
    where = (nullcontext(str(measure.out_dir)) if measure.out_dir
             else tempfile.TemporaryDirectory(prefix="pipeline-perf-"))
    with site as url, where as out_dir:
        done = collect(ctx.lighthouse, url, measure.runs, Path(out_dir),
                       timeout=measure.timeout, progress=ctx.log.info)
    notes = ([f"{done.good} good run(s) of {measure.runs} wanted: {done.stopped}"]
             if done.good < measure.runs else [])
    for note in notes:
        ctx.log.warning(note)
    return [*reports, *done.reports], notes
