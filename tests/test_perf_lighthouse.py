"""Real Lighthouse (npm) in Debian's headless Chromium against examples/hello, then the budget.

Lighthouse is installed once with npm into ${PIPELINELIB_CACHE}/lighthouse/<version>/ and
Chromium with apt-get when missing; the run itself takes ~12 s.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import run_pipeline

ROOT = Path(__file__).resolve().parents[1]
VERSION = "12.8.2"


@pytest.fixture(scope="session")
def lighthouse() -> tuple[str, str]:
    """(lighthouse cli, chromium) — installed on first use."""
    chromium = shutil.which("chromium")
    if not chromium:
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        "chromium"], check=True, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed for Lighthouse"
    cache = Path(os.environ.get("PIPELINELIB_CACHE", Path.home() / ".cache" / "pipelinelib"))
    prefix = cache / "lighthouse" / VERSION
    cli = prefix / "node_modules" / ".bin" / "lighthouse"
    if not cli.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix),
                        f"lighthouse@{VERSION}"], check=True, capture_output=True)
    return str(cli), chromium


@pytest.fixture
def hello_url():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(ROOT / "examples" / "hello" / "public"))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_real_lighthouse_report_of_the_hello_app_meets_its_budget(lighthouse, hello_url,
                                                                  tmp_path):
    cli, chromium = lighthouse
    report = tmp_path / "lighthouse.json"
    run = subprocess.run(
        [cli, hello_url, "--output", "json", "--output-path", str(report), "--quiet",
         "--chrome-flags=--headless=new --no-sandbox --disable-gpu"],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "CHROME_PATH": chromium},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads(report.read_text())
    assert doc["lighthouseVersion"] == VERSION and doc["finalDisplayedUrl"] == hello_url
    out = run_pipeline("perf", "--report", str(report), "--budget",
                       str(ROOT / "tests" / "fixtures" / "perf" / "budget.yaml"))
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "✓ category performance:" in out.stdout and "✓ total-byte-weight:" in out.stdout
    tight = tmp_path / "tight.yaml"
    tight.write_text("metrics:\n  total-byte-weight: 100B\n")
    out = run_pipeline("perf", "--report", str(report), "--budget", str(tight))
    assert out.returncode == 1 and "✗ total-byte-weight:" in out.stdout
