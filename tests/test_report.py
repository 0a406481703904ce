"""Reports: JUnit XML one testcase per step (as Jenkins' junit reads it), summaries, no secrets."""

import datetime as dt
import json
import xml.etree.ElementTree as ET

from pipelinelib.report import write_reports
from pipelinelib.result import Status, StepResult
from pipelinelib.secrets import Secrets

PLANTED = "planted-report-secret"


def _results():
    return [
        StepResult.of("build", ["build img:abc"], image_id="sha256:1"),
        StepResult.of("push", []),
        StepResult("smoke", Status.FAILED, summary=f"probe failed {PLANTED}",
                   error=f"GET / -> 500 {PLANTED}", evidence=["line 1", f"token={PLANTED}"]),
    ]


def test_junit_has_one_testcase_per_step_and_the_failure(tmp_path):
    write_reports(tmp_path, "build", _results(), 1, dt.datetime.now(dt.timezone.utc),
                  Secrets([PLANTED]))
    root = ET.parse(tmp_path / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert root.tag == "testsuites" and suite.get("tests") == "3" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["build", "push", "smoke"]
    failure = cases[2].find("failure")
    assert failure is not None and "GET / -> 500" in failure.get("message")
    assert "line 1" in failure.text


def test_summaries_are_written_and_secrets_never_reach_any_report(tmp_path):
    write_reports(tmp_path, "build", _results(), 1, dt.datetime.now(dt.timezone.utc),
                  Secrets([PLANTED]), {"app": "web", "note": f"x {PLANTED}"})
    for name in ("junit.xml", "summary.json", "summary.md"):
        assert PLANTED not in (tmp_path / name).read_text(), name
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["result"] == "failure" and [s["status"] for s in data["steps"]] == [
        "changed", "unchanged", "failed"]
    markdown = (tmp_path / "summary.md").read_text()
    assert "| build | ✓ changed" in markdown and "## ✗ smoke" in markdown
