"""Maven + JDK for the Groovy tests (tests/groovy, JenkinsPipelineUnit), and the example
Jenkinsfile run for real through it (JenkinsfileTestbedTest)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.paths import GROOVY


def maven() -> str:
    """The ``mvn`` binary; a missing JDK/Maven is installed (tests/groovy/ensure-tools) or the
    test fails: it never skips."""
    if not (shutil.which("mvn") and shutil.which("java")):
        result = subprocess.run([str(GROOVY / "ensure-tools")], capture_output=True, text=True,
                                check=False)
        if result.returncode != 0 or not shutil.which("mvn"):
            pytest.fail(f"Maven/JDK missing and could not be installed: {result.stderr[-2000:]}")
    return shutil.which("mvn") or "mvn"


def run_jenkinsfile(config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Run JenkinsfileTestbedTest with ``config`` (script, workspace, env, credentials...);
    the results file it writes, parsed."""
    mvn = maven()
    path = tmp_path / "testbed-config.json"
    path.write_text(json.dumps(config))
    args = [mvn, "-B", "-q", f"-Dgroovy.build.dir={tmp_path / 'groovy-build'}",
            "-Dtest=JenkinsfileTestbedTest", f"-Dpipelinelib.testbed.config={path}", "test"]
    env = {**os.environ, "MAVEN_OPTS": os.environ.get("MAVEN_OPTS", "-Xmx512m")}
    out = subprocess.run([args[0], "-o", *args[1:]], cwd=GROOVY, env=env, capture_output=True,
                         text=True, timeout=1500, check=False)
    if out.returncode != 0 and "offline" in out.stdout + out.stderr:
        out = subprocess.run(args, cwd=GROOVY, env=env, capture_output=True, text=True,
                             timeout=1500, check=False)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    result: dict[str, Any] = json.loads(Path(config["results"]).read_text())
    return result
