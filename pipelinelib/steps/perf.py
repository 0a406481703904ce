"""The performance budget (seed 003: lighthouse, coach): read reports, check the budget."""

from __future__ import annotations

from pathlib import Path

from pipelinelib.context import Context
from pipelinelib.errors import GateFailed
from pipelinelib.perf.lighthouse import Budget, Measured, check
from pipelinelib.report.checklist import item
from pipelinelib.result import StepResult
from pipelinelib.step import step


@step("perf")
def perf_budget(ctx: Context, reports: list[tuple[str | Path, Measured]],
                budget: Budget, image: str | None = None,
                digest: str | None = None) -> StepResult:
    """Fail when any report misses the budget; the evidence lists every line checked.
    With ``image`` and ``digest`` the verdict is recorded as a signed perf attestation."""
    evidence: list[str] = []
    missed: list[str] = []
    for path, measured in reports:
        checks = check(measured, budget)
        missed += [c.line.removeprefix("✗ ") for c in checks if not c.ok]
        evidence += item(all(c.ok for c in checks), f"{measured.tool} {measured.url or path}",
                         [c.line for c in checks])
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
                         summary=f"performance budget met ({len(reports)} report(s))",
                         checklist=evidence)
