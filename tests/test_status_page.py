"""The status page, rendered in headless Chromium (the testbed's, testbed/tools/lighthouse):
the test reads the DOM the browser built - computed colours, cell order, markers - and saves
a screenshot in the report directory (reports/status-page/, $PIPELINELIB_REPORT_DIR).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from pipelinelib.envspec.order import promotion_lines
from pipelinelib.report.status_page import status_page
from tests.helpers.paths import ROOT

REPORTS = Path(os.environ.get("PIPELINELIB_REPORT_DIR", ROOT / "reports")) / "status-page"
SOURCES = {"int-test": [], "qa": ["int-test"], "preprod": ["qa"], "prod": ["preprod"],
           "sandbox": [], "staging": [], "live": ["staging"]}
APPS = {"int-test": ["records-api", "patient-portal"], "qa": ["records-api", "patient-portal"],
        "preprod": ["records-api", "patient-portal"], "prod": ["records-api", "patient-portal"],
        "sandbox": ["uro"], "staging": ["uro"], "live": ["uro"]}
A, B, C = ("sha256:" + c * 64 for c in "abc")

# In the browser: what each cell looks like, read from the DOM it built (computed styles).
PROBE = """<script>
const cells = [...document.querySelectorAll('td.cell')].map(td => ({
  env: td.dataset.environment || null, app: td.dataset.app || null,
  health: td.dataset.health || null, sync: td.dataset.sync || null,
  differs: td.dataset.differs === 'true', hotfix: td.dataset.hotfix || null,
  absent: td.dataset.absent === 'true',
  background: getComputedStyle(td).backgroundColor,
  marker: !!td.querySelector('.differs'),
  flag: td.querySelector('.hotfix')
    ? getComputedStyle(td.querySelector('.hotfix')).backgroundColor : null,
  text: td.innerText.replace(/\\s+/g, ' ').trim(),
  row: td.parentElement.dataset.app}));
const heads = [...document.querySelectorAll('thead tr:nth-child(2) th[data-environment]')]
  .map(th => th.dataset.environment);
const out = document.createElement('pre');
out.id = 'probe';
out.textContent = JSON.stringify({heads, cells, scripts: document.scripts.length});
document.body.appendChild(out);
</script>"""


def row(env: str, app: str, digest: str, version: str, **extra: Any) -> dict[str, Any]:
    return {"environment": env, "app": app, "deployed": True, "live_digest": digest,
            "digest": digest, "tag": version, "version": version, "health": "healthy",
            "in_sync": True, "drift": False, "hotfix": False, "hotfix_back_merged": None,
            "live_color": None, **extra}


def rows() -> list[dict[str, Any]]:
    return [
        row("int-test", "records-api", B, "1.3.0"),
        row("qa", "records-api", B, "1.3.0", drift=True, in_sync=False),
        row("preprod", "records-api", A, "1.2.0"),
        row("prod", "records-api", A, "1.2.0", hotfix=True, hotfix_back_merged=False),
        row("int-test", "patient-portal", C, "2.0.0", health="degraded (0/1 ready)"),
        {**row("qa", "patient-portal", "", ""), "deployed": False, "health": "missing",
         "tag": "0.1.0", "in_sync": False},
        row("preprod", "patient-portal", C, "2.0.0"),
        row("prod", "patient-portal", C, "2.0.0"),
        row("sandbox", "uro", A, "0.9.0"),
        row("staging", "uro", B, "1.0.0", live_color="green"),
        row("live", "uro", B, "1.0.0", live_color="green"),
    ]


def headless(chromium: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                           "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                           "--virtual-time-budget=3000", *args],
                          capture_output=True, text=True, timeout=180, check=False)


def test_the_status_page_in_chromium_apps_by_environments_in_promotion_order(
        chromium: str, tmp_path: Path) -> None:
    lines = promotion_lines(SOURCES, APPS)
    page = status_page(rows(), lines, "2026-11-28T08:00:00+00:00")
    assert "<script" not in page and "<link" not in page and "src=" not in page
    REPORTS.mkdir(parents=True, exist_ok=True)
    html_path = REPORTS / "status.html"
    html_path.write_text(page, encoding="utf-8")
    probe_path = tmp_path / "probe.html"
    probe_path.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")

    dom = headless(chromium, "--dump-dom", probe_path.as_uri(), tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stdout[-2000:]
    data = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")
                      .replace("&lt;", "<").replace("&gt;", ">"))

    assert data["heads"] == ["int-test", "qa", "preprod", "prod", "sandbox", "staging", "live"]
    assert data["scripts"] == 1  # the probe alone: the page itself runs nothing
    cells = {(c["row"], c["env"]): c for c in data["cells"] if not c["absent"]}
    green, orange, grey = "rgb(227, 246, 232)", "rgb(253, 236, 210)", "rgb(236, 238, 242)"
    assert cells[("records-api", "int-test")]["background"] == green
    assert cells[("patient-portal", "int-test")]["background"] == orange
    not_deployed = cells[("patient-portal", "qa")]
    assert not_deployed["background"] == grey and not_deployed["health"] == "not-deployed"
    assert "not deployed" in not_deployed["text"] and "wants 0.1.0" in not_deployed["text"]
    assert cells[("records-api", "qa")]["sync"] == "drift" and "drift" in cells[
        ("records-api", "qa")]["text"]
    # the digest changes between qa and preprod, and between sandbox and staging: marked;
    # the same digest further along the line is not
    marked = sorted((c["row"], c["env"]) for c in data["cells"] if c["marker"])
    assert marked == [("records-api", "preprod"), ("uro", "staging")]
    assert all(c["differs"] == c["marker"] for c in data["cells"])
    # portal in preprod: compared with int-test (qa has nothing running), same digest
    assert not cells[("patient-portal", "preprod")]["marker"]
    hotfix = cells[("records-api", "prod")]
    assert hotfix["hotfix"] == "open" and "HOT-FIX not merged back" in hotfix["text"]
    assert hotfix["flag"] == "rgb(214, 69, 69)"
    assert "1.2.0" in hotfix["text"] and "aaaaaaaaaaaa" in hotfix["text"]
    # apps that an environment does not run get an empty cell, not a made-up version
    absent = [c for c in data["cells"] if c["absent"]]
    assert len(absent) == 2 * 3 + 4  # uro in the 4 ehealth envs, the two apps in 3 uro envs

    shot = REPORTS / "status.png"
    shot.unlink(missing_ok=True)
    taken = headless(chromium, f"--screenshot={shot}", "--window-size=1500,560",
                     html_path.as_uri(), tmp_path=tmp_path)
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
