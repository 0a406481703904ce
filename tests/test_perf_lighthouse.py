"""Real Lighthouse (npm) in Debian's headless Chromium against examples/hello, then the budget.

testbed/tools/lighthouse installs Lighthouse once with npm into
${PIPELINELIB_CACHE}/lighthouse/<version>/ and Chromium with apt-get when missing; the run
itself takes ~12 s at idle (the test makes three).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from tests.helpers.cli import run_pipeline
from tests.helpers.paths import ROOT
from tests.helpers.tools import tool_exports

VERSION = "12.8.2"


@pytest.fixture(scope="session")
def lighthouse() -> tuple[str, str]:
    """(lighthouse cli, chromium) — testbed/tools/lighthouse installs them on first use."""
    exports = tool_exports("lighthouse")
    return exports["PIPELINELIB_LIGHTHOUSE"], exports["PIPELINELIB_CHROMIUM"]


@pytest.fixture
def hello_url():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(ROOT / "examples" / "hello" / "public"))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_real_lighthouse_runs_of_the_hello_app_meet_its_budget_on_the_median_run(
        lighthouse, hello_url, tmp_path):
    """Three real runs, as the example pipelines make them: one run alone failed this test
    on a machine at load 12 on 2 cores (TBT 596 ms, performance 85; Lighthouse warned of a
    slower CPU than it expects) — the median run is what the budget judges."""
    cli, chromium = lighthouse
    for number in (1, 2, 3):
        run = subprocess.run(
            [cli, hello_url, "--output", "json", "--output-path",
             str(tmp_path / f"lighthouse-{number}.json"), "--quiet",
             "--chrome-flags=--headless=new --no-sandbox --disable-gpu"],
            capture_output=True, text=True, timeout=180, check=False,
            env={**os.environ, "CHROME_PATH": chromium},
        )
        assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads((tmp_path / "lighthouse-1.json").read_text())
    assert doc["lighthouseVersion"] == VERSION and doc["finalDisplayedUrl"] == hello_url
    reports = str(tmp_path / "lighthouse-*.json")
    out = run_pipeline("perf", "--report", reports, "--budget",
                       str(ROOT / "tests" / "fixtures" / "perf" / "budget.yaml"))
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert f"✓ lighthouse {hello_url} (median of 3 valid run(s) of 3: run " in out.stdout
    assert "✓ category performance:" in out.stdout and "✓ total-byte-weight:" in out.stdout
    assert out.stdout.count("← judged (median run)") == 1
    tight = tmp_path / "tight.yaml"
    tight.write_text("metrics:\n  total-byte-weight: 100B\n")
    out = run_pipeline("perf", "--report", reports, "--budget", str(tight))
    assert out.returncode == 1 and "✗ total-byte-weight:" in out.stdout


MEDIAN_JS = """
import {readFileSync} from 'node:fs';
const [lib, sets] = process.argv.slice(2);
const {computeMedianRun, filterToValidRuns} = await import(lib);
const picks = JSON.parse(readFileSync(sets, 'utf8')).map(files => {
  const runs = files.map(f => JSON.parse(readFileSync(f, 'utf8')));
  return runs.indexOf(computeMedianRun(filterToValidRuns(runs))) + 1;
});
console.log(JSON.stringify(picks));
"""


def test_the_median_run_is_the_one_lighthouses_own_compute_median_run_picks(lighthouse,
                                                                           tmp_path):
    """perf.runs against core/lib/median-run.js of the pinned Lighthouse, on every ordered
    choice of 2-4 of the real runs (and the NO_FCP run in the middle)."""
    import itertools

    from pipelinelib.perf.lighthouse import read_report
    from pipelinelib.perf.runs import pages

    cli, _ = lighthouse
    lib = (Path(os.path.realpath(cli)).parent.parent / "core" / "lib" / "median-run.js")
    fixtures = ROOT / "tests" / "fixtures" / "perf"
    runs = sorted(str(p) for p in fixtures.glob("lighthouse-run-*.json"))
    assert len(runs) == 5
    sets = [[*chosen[:1], str(fixtures / "lighthouse-error.json"), *chosen[1:]]
            for size in (2, 3, 4) for chosen in itertools.permutations(runs, size)]
    (tmp_path / "sets.json").write_text(json.dumps(sets))
    (tmp_path / "median.mjs").write_text(MEDIAN_JS)
    node = subprocess.run(["node", str(tmp_path / "median.mjs"), str(lib),
                           str(tmp_path / "sets.json")], capture_output=True, text=True,
                          timeout=120, check=False)
    assert node.returncode == 0, node.stderr[-2000:]
    theirs = json.loads(node.stdout)
    ours = []
    for files in sets:
        [page] = pages([(f, read_report(f)) for f in files])
        assert page.judged is not None and list(page.dropped) == [2]
        ours.append(page.judged.number)
    assert len(sets) == 200 and ours == theirs
    assert len(set(ours)) > 2  # not one position every time
