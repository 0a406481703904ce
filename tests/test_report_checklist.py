"""The one ✓/✗ checklist renderer that `pipeline gate`, `scan` and `perf` share."""

import pytest

from pipelinelib.context import Context
from pipelinelib.errors import GateFailed
from pipelinelib.gate.checklist import Mark
from pipelinelib.perf.lighthouse import Budget, Measured
from pipelinelib.report import checklist
from pipelinelib.scan.model import Severity
from pipelinelib.scan.policy import ScanPolicy, Verdict
from pipelinelib.steps.perf import perf_budget


def test_a_check_is_its_symbol_and_title_then_its_evidence_indented():
    assert checklist.item(True, "tests pass", ["3 tests"]) == ["✓ tests pass", "    3 tests"]
    assert checklist.item(False, "no finding") == ["✗ no finding"]
    assert checklist.symbol(False, overridden=True) == "✓!"
    assert checklist.symbol(True, skipped=True) == "-"
    assert checklist.first_failure(["✓ a", "    ✗ b: why", "✗ c"]) == "b: why"


def test_gate_scan_and_perf_render_through_it_alike():
    gate = Mark(3, False, ["✗ V3__drop.sql:1 drop-column"]).lines()
    assert gate == checklist.item(False, "3. old and new versions can co-exist (migration lint)",
                                  ["✗ V3__drop.sql:1 drop-column"])
    assert Mark(3, False, ["✗ V3__drop.sql:1 drop-column"]).why() == "V3__drop.sql:1 drop-column"
    scan = Verdict(total=2).checklist(ScanPolicy(fail_on=Severity.HIGH))
    assert scan[0] == "✓ no finding at or above HIGH (0 of 2)"
    assert all(line[0] in "✓✗" or line.startswith(checklist.INDENT) for line in scan)
    measured = Measured(url="http://app/", scores={"performance": 0.5})
    budget = Budget(categories={"performance": 0.9}, source="budget.yaml")
    with pytest.raises(GateFailed) as err:
        perf_budget(Context(app="hello"), [("r.json", measured)], budget)
    assert err.value.evidence == checklist.item(
        False, "lighthouse http://app/", ["✗ category performance: 50 (minimum 90)"])
    assert err.value.message.endswith("1 check(s) failed: category performance: 50 (minimum 90)")
