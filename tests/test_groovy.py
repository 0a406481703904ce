"""The Jenkins shared library (vars/) and the Jenkinsfiles, tested with JenkinsPipelineUnit.

Runs Maven in tests/groovy so the README's single test command covers the Groovy too. The
first run downloads JenkinsPipelineUnit from Maven Central into ~/.m2; later runs are
offline. A missing JDK/Maven is installed (tests/groovy/ensure-tools) or the test fails: it
never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GROOVY = ROOT / "tests" / "groovy"


def _tools() -> str:
    if not (shutil.which("mvn") and shutil.which("java")):
        result = subprocess.run([str(GROOVY / "ensure-tools")], capture_output=True, text=True,
                                check=False)
        if result.returncode != 0 or not shutil.which("mvn"):
            pytest.fail(f"Maven/JDK missing and could not be installed: {result.stderr[-2000:]}")
    return shutil.which("mvn") or "mvn"


def _mvn(mvn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAVEN_OPTS": os.environ.get("MAVEN_OPTS", "-Xmx512m")}
    return subprocess.run([mvn, "-B", "-q", *args, "test"], cwd=GROOVY, env=env,
                          capture_output=True, text=True, check=False, timeout=900)


@pytest.mark.timeout(900)
def test_groovy_vars_and_jenkinsfiles_pass_jenkins_pipeline_unit() -> None:
    """All JenkinsPipelineUnit tests pass: stage order, failures, no values in sh text."""
    mvn = _tools()
    reports = GROOVY / "target" / "surefire-reports"
    shutil.rmtree(reports, ignore_errors=True)
    result = _mvn(mvn, "-o")
    if result.returncode != 0 and "offline" in (result.stdout + result.stderr):
        result = _mvn(mvn)  # first run: fetch the plugins and JenkinsPipelineUnit once
    output = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, f"mvn test failed:\n{output}"

    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suites = sorted(reports.glob("TEST-*.xml"))
    assert suites, "no surefire reports: the Groovy tests did not run"
    for suite in suites:
        root = ET.parse(suite).getroot()
        for key in totals:
            totals[key] += int(root.get(key, "0"))
    assert totals["tests"] >= 20, totals
    assert totals["failures"] == totals["errors"] == totals["skipped"] == 0, totals
    assert {s.name for s in suites} >= {"TEST-pipelinelib.VarsTest.xml",
                                        "TEST-pipelinelib.JenkinsfileTest.xml"}
