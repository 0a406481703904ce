"""Performance budgets over Lighthouse reports (a real Lighthouse 12.8 run against
examples/hello, reduced to the parts we read) and coach advice."""

from __future__ import annotations

import pytest

from pipelinelib.errors import BadInput
from pipelinelib.perf.lighthouse import Budget, check, load_budget, quantity, read_report
from tests.helpers.cli import run_pipeline
from tests.helpers.paths import FIXTURES

FIX = FIXTURES / "perf"


def test_the_real_hello_report_meets_the_budget():
    measured = read_report(FIX / "lighthouse-hello.json")
    assert measured.scores["performance"] == 1 and measured.scores["best-practices"] == 0.89
    assert measured.values["total-byte-weight"] == 1660
    checks = check(measured, load_budget(FIX / "budget.yaml"))
    assert all(c.ok for c in checks) and len(checks) == 6
    assert any(c.line == "✓ largest-contentful-paint: 754 ms (budget 2500 ms)" for c in checks)


def test_a_slow_page_fails_each_missed_line_with_the_numbers():
    checks = check(read_report(FIX / "lighthouse-slow.json"), load_budget(FIX / "budget.yaml"))
    failed = {c.name: c.line for c in checks if not c.ok}
    assert set(failed) == {"performance", "largest-contentful-paint", "total-blocking-time",
                           "total-byte-weight"}
    assert failed["performance"] == "✗ category performance: 62 (minimum 90)"
    assert failed["total-byte-weight"] == "✗ total-byte-weight: 2806.8 KiB (budget 500.0 KiB)"


def test_a_report_that_could_not_measure_never_passes():
    checks = check(read_report(FIX / "lighthouse-error.json"), load_budget(FIX / "budget.yaml"))
    lines = [c.line for c in checks if not c.ok]
    assert lines[0].startswith("✗ lighthouse runtime error NO_FCP")
    assert "✗ category performance: not measured (score null)" in lines
    assert "✗ largest-contentful-paint: not in the report" in lines


def test_coach_advice_scores_are_budgeted_as_coach_categories():
    measured = read_report(FIX / "coach.json")
    assert measured.tool == "coach" and measured.scores["coach-performance"] == 0.71
    checks = check(measured, Budget(categories={"coach-performance": 0.8, "coach": 0.8}))
    assert [c.ok for c in checks] == [False, True]


def test_quantities_accept_units():
    assert quantity("2.5s", "x", "") == 2500 and quantity("200ms", "x", "") == 200
    assert quantity("500KiB", "x", "") == 512000 and quantity(0.1, "x", "") == 0.1
    with pytest.raises(BadInput, match="bad quantity 'fast'"):
        load_budget(FIX / "budget-bad.yaml")


def test_pipeline_perf_exits_1_on_a_missed_budget_and_2_on_unreadable_input(tmp_path):
    ok = run_pipeline("--report-dir", str(tmp_path / "ok"), "perf", "--report",
                      str(FIX / "lighthouse-hello.json"), "--budget", str(FIX / "budget.yaml"))
    assert ok.returncode == 0 and "✓ category performance: 100" in ok.stdout
    markdown = (tmp_path / "ok" / "summary.md").read_text()
    assert "## ✓ perf" in markdown and "✓ category performance: 100" in markdown
    slow = run_pipeline("--report-dir", str(tmp_path), "perf", "--report",
                        str(FIX / "lighthouse-slow.json"), "--budget", str(FIX / "budget.yaml"))
    assert slow.returncode == 1 and "✗ total-blocking-time: 612 ms" in slow.stdout
    assert "performance budget missed: 4 check(s) failed" in (tmp_path / "junit.xml").read_text()
    truncated = tmp_path / "lh.json"
    truncated.write_text((FIX / "lighthouse-hello.json").read_text()[:500])
    bad = run_pipeline("perf", "--report", str(truncated), "--budget", str(FIX / "budget.yaml"))
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr
