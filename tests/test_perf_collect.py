"""`pipeline perf --serve/--url` measures the page itself (perf.collect, lhci collect's
numberOfRuns): a run on a CPU-starved host (Lighthouse's own slow-CPU warning,
benchmarkIndex at most 1000) or with a runtime error does not count and is measured again.

The Lighthouse seam (adapters.protocols.Lighthouse) is fed the real recorded runs of
tests/fixtures/perf (README there: idle and starved runs of examples/hello on this machine);
the real Lighthouse runs in test_perf_lighthouse.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelinelib.context import Context
from pipelinelib.errors import GateFailed, StepFailed
from pipelinelib.perf.collect import Measure, collect
from pipelinelib.perf.lighthouse import load_budget, read_report
from pipelinelib.perf.runs import pages, starved
from pipelinelib.steps.perf import perf_budget
from tests.helpers.cli import run_pipeline
from tests.helpers.paths import FIXTURES, ROOT

FIX = FIXTURES / "perf"
HELLO = ROOT / "examples" / "hello" / "public"


class Recorded:
    """Lighthouse as recorded: each run writes the next recorded report."""

    def __init__(self, *names: str):
        self.names = list(names)
        self.urls: list[str] = []

    def run(self, url: str, output: str | Path, *, timeout: float) -> Path:
        self.urls.append(url)
        if self.names[0] == "crash":  # what LighthouseTool raises when no report was written
            self.names.pop(0)
            raise StepFailed("lighthouse exited 1 without a report",
                             evidence=["Runtime error encountered: Unable to connect to Chrome"])
        shutil.copyfile(FIX / f"lighthouse-{self.names.pop(0)}.json", output)
        return Path(output)


def test_lighthouses_slow_cpu_rule_marks_the_starved_runs_and_only_those():
    for name in ("run-starved-1", "run-starved-2"):
        why = starved(read_report(FIX / f"lighthouse-{name}.json"))
        assert why is not None and why.startswith("CPU starved (benchmarkIndex ")
    for name in ("run-idle-1", "run-idle-2", "run-idle-3", "hello", "error"):
        assert starved(read_report(FIX / f"lighthouse-{name}.json")) is None


def test_starved_and_failed_runs_are_measured_again_until_n_good_runs(tmp_path):
    lighthouse = Recorded("run-starved-2", "run-idle-1", "error", "run-starved-1",
                          "run-idle-2", "run-idle-3", "run-idle-1")
    progress: list[str] = []
    done = collect(lighthouse, "http://127.0.0.1:1/", 3, tmp_path, timeout=600,
                   progress=progress.append)
    assert done.good == 3 and not done.stopped
    assert [p.name for p, _ in done.reports] == [f"lighthouse-{n}.json" for n in range(1, 7)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"lighthouse-{n}.json" for n in range(1, 7)], "every run archived, no 7th run"
    assert lighthouse.names == ["run-idle-1"]
    assert progress[0] == "lighthouse run 1/3 (attempt 1) of http://127.0.0.1:1/"
    assert progress[1].startswith("lighthouse attempt 1 does not count: CPU starved "
                                  "(benchmarkIndex 434")
    assert "lighthouse run 3/3 (attempt 6) of http://127.0.0.1:1/" in progress
    assert sum("does not count" in line for line in progress) == 3
    [page] = pages(done.reports, skip_starved=True)
    assert set(page.dropped) == {1, 3, 4} and not page.all_starved
    assert page.judged is not None and page.judged.number in (2, 5, 6)


def test_a_run_that_wrote_no_report_is_tried_again_once_and_twice_in_a_row_fails(tmp_path):
    lighthouse = Recorded("run-idle-1", "crash", "run-idle-2")
    progress: list[str] = []
    done = collect(lighthouse, "http://127.0.0.1:1/", 2, tmp_path, timeout=600,
                   progress=progress.append)
    assert done.good == 2 and not done.stopped
    assert [p.name for p, _ in done.reports] == ["lighthouse-1.json", "lighthouse-3.json"]
    assert any("attempt 2 wrote no report (lighthouse exited 1" in p for p in progress)
    crashing = Recorded("run-idle-1", "crash", "crash", "run-idle-2")
    with pytest.raises(StepFailed, match="without a report") as failed:
        collect(crashing, "http://127.0.0.1:1/", 2, tmp_path, timeout=600,
                progress=progress.append)
    assert "Unable to connect to Chrome" in failed.value.evidence[0]
    assert crashing.names == ["run-idle-2"], "no third attempt after two crashes in a row"


def test_attempts_are_bounded_at_twice_n_and_the_good_runs_are_judged(tmp_path):
    lighthouse = Recorded("run-starved-1", "run-starved-2", "run-idle-2", "run-starved-1",
                          "run-starved-2", "run-starved-1", "run-idle-1")
    done = collect(lighthouse, "http://127.0.0.1:1/", 3, tmp_path, timeout=600,
                   progress=lambda line: None)
    assert len(done.reports) == 6 and done.good == 1 and done.stopped == "6 attempts made"
    [page] = pages(done.reports, skip_starved=True)
    assert page.judged is not None and page.judged.number == 3 and not page.all_starved
    # reports made elsewhere (--report) keep Lighthouse's computeMedianRun over every run
    [elsewhere] = pages(done.reports)
    assert not elsewhere.dropped and elsewhere.judged is not None


def test_the_step_judges_the_median_of_the_good_runs_and_shows_the_starved_ones(tmp_path):
    budget = load_budget(FIX / "budget.yaml")
    lighthouse = Recorded("run-starved-2", "run-starved-1", "run-idle-1", "run-idle-2",
                          "run-idle-3")
    ctx = Context(app="hello", adapters={"lighthouse": lighthouse})
    result = perf_budget(ctx, [], budget, measure=Measure(runs=3, out_dir=tmp_path,
                                                          timeout=600, serve=HELLO))
    evidence = result.outputs["checklist"]
    assert evidence[0].startswith("✓ lighthouse http://127.0.0.1:18765/ (median of 3 valid "
                                  "run(s) of 5: run ")
    assert any("run 1 (lighthouse-1.json): performance 77" in line
               and "dropped: CPU starved (benchmarkIndex 434" in line for line in evidence)
    assert sum("dropped: CPU starved" in line for line in evidence) == 2
    assert len(set(lighthouse.urls)) == 1 and lighthouse.urls[0].startswith("http://127.0.0.1:")
    assert not any("every run" in line for line in evidence)


def test_when_every_run_was_starved_all_are_judged_and_the_evidence_says_so(tmp_path):
    budget = load_budget(FIX / "budget.yaml")
    lighthouse = Recorded(*["run-starved-1", "run-starved-2"] * 3)
    ctx = Context(app="hello", adapters={"lighthouse": lighthouse})
    with pytest.raises(GateFailed) as failed:
        perf_budget(ctx, [], budget, measure=Measure(runs=3, out_dir=tmp_path, timeout=600,
                                                     url="http://127.0.0.1:18765/"))
    evidence = failed.value.evidence
    assert evidence[0].startswith("✗ lighthouse http://127.0.0.1:18765/ (median of 6 valid "
                                  "run(s) of 6: run ")
    assert evidence[1] == ("    ⚠ every run of http://127.0.0.1:18765/ was starved of CPU "
                           "(Lighthouse's slow-CPU warning): its blocking time is "
                           "overstated; judged anyway")
    assert "    0 good run(s) of 3 wanted: 6 attempts made" in evidence
    assert lighthouse.names == []


def test_bad_measure_parameters_are_all_reported_before_anything_runs(tmp_path):
    budget = str(FIX / "budget.yaml")
    out = run_pipeline("--report-dir", str(tmp_path / "r"), "perf", "--serve",
                       str(tmp_path / "nothing"), "--runs", "0", "--timeout", "-1",
                       "--budget", budget)
    assert out.returncode == 2, out.stdout + out.stderr[-2000:]
    for problem in ("no index.html there", "--runs 0: expected 1 to 20",
                    "--timeout -1: expected seconds"):
        assert problem in out.stderr
    assert "Traceback" not in out.stderr
    assert not list((tmp_path / "r").glob("lighthouse-*.json"))
    url = run_pipeline("perf", "--url", "file:///etc/passwd", "--budget", budget)
    assert url.returncode == 2 and "expected an http:// or https:// URL" in url.stderr
    planted = run_pipeline("perf", "--url", "http://ci:planted-s3cret@127.0.0.1:1/",
                           "--budget", budget)
    assert planted.returncode == 2 and "no user or password in the URL" in planted.stderr
    assert "planted-s3cret" not in planted.stdout + planted.stderr
    both = run_pipeline("perf", "--url", "http://127.0.0.1:1/", "--report", "x.json",
                        "--budget", budget)
    assert both.returncode == 2 and "--url and --report given (expected one of --serve DIR, " \
        "--url URL or --report FILE)" in both.stderr, both.stderr[-2000:]
    missing = run_pipeline("perf", "--serve", str(HELLO), "--budget", budget,
                           env={"PIPELINELIB_LIGHTHOUSE": str(tmp_path / "no-lighthouse"),
                                "PATH": "/usr/bin:/bin"})
    assert missing.returncode == 2 and "lighthouse not found" in missing.stderr, \
        missing.stderr[-2000:]
