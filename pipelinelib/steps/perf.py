"""The performance budget (seed 003: lighthouse, coach): read reports, check the budget."""

from __future__ import annotations

from pathlib import Path

from pipelinelib.context import Context
from pipelinelib.errors import GateFailed
from pipelinelib.perf.lighthouse import Budget, Measured, check
from pipelinelib.result import StepResult
from pipelinelib.step import step


@step("perf")
def perf_budget(ctx: Context, reports: list[tuple[str | Path, Measured]],
                budget: Budget) -> StepResult:
    """Fail when any report misses the budget; the evidence lists every line checked."""
    evidence: list[str] = []
    failed = 0
    for path, measured in reports:
        checks = check(measured, budget)
        failed += sum(not c.ok for c in checks)
        evidence.append(f"{measured.tool} {measured.url or path}:")
        evidence += [f"  {c.line}" for c in checks]
    for line in evidence:
        ctx.log.info(line)
    if failed:
        raise GateFailed(f"performance budget missed: {failed} check(s) failed",
                         hint=f"see the evidence; the budget is {budget.source}",
                         evidence=evidence)
    return StepResult.of("perf", [], summary=f"performance budget met ({len(reports)} "
                         f"report(s))", checklist=evidence)
