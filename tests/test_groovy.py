"""The Jenkins shared library (vars/) and the Jenkinsfiles, tested with JenkinsPipelineUnit.

Runs Maven in tests/groovy so the README's single test command covers the Groovy too. The
first run downloads JenkinsPipelineUnit from Maven Central into ~/.m2; later runs are
offline. A missing JDK/Maven is installed (tests/groovy/ensure-tools) or the test fails: it
never skips.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers.groovy import maven
from tests.helpers.paths import GROOVY, ROOT


def _mvn(mvn: str, build_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAVEN_OPTS": os.environ.get("MAVEN_OPTS", "-Xmx512m")}
    return subprocess.run([mvn, "-B", "-q", f"-Dgroovy.build.dir={build_dir}", *args, "test"],
                          cwd=GROOVY, env=env, capture_output=True, text=True, check=False,
                          timeout=900)


@pytest.mark.timeout(900)
def test_groovy_vars_and_jenkinsfiles_pass_jenkins_pipeline_unit(tmp_path: Path) -> None:
    """All JenkinsPipelineUnit tests pass: stage order, failures, no values in sh text."""
    mvn = maven()
    reports = tmp_path / "surefire-reports"
    result = _mvn(mvn, tmp_path, "-o")
    if result.returncode != 0 and "offline" in (result.stdout + result.stderr):
        result = _mvn(mvn, tmp_path)  # first run: fetch the plugins and JenkinsPipelineUnit
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


# -- the vars' shell text, run by a real POSIX shell --------------------------------------------

HOSTILE = "x'; rm -rf / #\"$(id)`id` ${HOME} *"
_SCRIPT = re.compile(r"script:\s*((?:'[^']*'\s*\+?\s*)+)")
_VARIABLE = re.compile(r"\$\{?(PIPELINE_[A-Z0-9_]+)")


def var_scripts() -> dict[str, str]:
    """Each var's constant sh text, joined from its single-quoted Groovy literals."""
    scripts = {}
    for path in sorted((ROOT / "vars").glob("pipeline*.groovy")):
        match = _SCRIPT.search(path.read_text())
        if match:
            scripts[path.stem] = "".join(re.findall(r"'([^']*)'", match.group(1)))
    return scripts


def run_sh(script: str, env: dict[str, str], tmp_path: Path) -> list[str]:
    """Run ``script`` with /bin/sh (as Jenkins' sh step does) and a `pipeline` that records argv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "pipeline"
    fake.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    "open(os.environ['ARGV_OUT'], 'w').write(json.dumps(sys.argv[1:]))\n")
    fake.chmod(0o755)
    out = tmp_path / "argv.json"
    full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "ARGV_OUT": str(out), **env}
    subprocess.run(["/bin/sh", "-e", "-c", script], env=full_env, check=True, timeout=30)
    return json.loads(out.read_text())


def test_every_var_runs_the_pipeline_cli_through_constant_shell_text() -> None:
    scripts = var_scripts()
    assert set(scripts) == {"pipelineBuild", "pipelineScan", "pipelineGate", "pipelineMigrate",
                            "pipelineDeploy", "pipelinePromote", "pipelineSwap",
                            "pipelineHotfix", "pipelineAnnotate", "pipelinePlan",
                            "pipelineApply", "pipelinePerf", "pipelineRollback"}
    for name, script in scripts.items():
        assert script.startswith('pipeline --report-dir "$PIPELINE_REPORT_DIR" '), name
        # every expansion is quoted: "$VAR" or inside ${VAR:+... "$VAR"}
        assert not re.search(r'(?<!")\$PIPELINE_[A-Z0-9_]+(?!")', script.replace(
            "${", "{")), name


def test_hostile_values_reach_pipeline_as_single_unchanged_arguments(tmp_path: Path) -> None:
    for name, script in var_scripts().items():
        names = sorted(set(_VARIABLE.findall(script)))
        env = {n: f"{n.lower()}-{HOSTILE}" for n in names}
        argv = run_sh(script, env, tmp_path)
        for n, value in env.items():
            if f'"${n}"' in script:  # a value; flags like ${PIPELINE_APPROVE:+--approve} are not
                assert argv.count(value) == 1, (name, n, argv)
        assert not any("rm -rf" in a and a not in env.values() for a in argv), (name, argv)
        # unset optional values drop their option instead of passing an empty argument
        minimal = run_sh(script, {"PIPELINE_REPORT_DIR": "reports/x", "PIPELINE_APP": "web",
                                  "PIPELINE_MANIFESTS": "k8s", "PIPELINE_PERF_REPORT": "lh.json",
                                  "PIPELINE_BUDGET": "budget.yaml",
                                  "PIPELINE_APP_DIR": ".", "PIPELINE_ENV": "staging",
                                  "PIPELINE_TO": "live", "PIPELINE_DIGEST": "",
                                  "PIPELINE_REASON": "r", "PIPELINE_RESULT": "SUCCESS",
                                  "PIPELINE_MIGRATIONS_DIR": "db"}, tmp_path)
        assert "" not in minimal or name == "pipelineHotfix", (name, minimal)


def test_var_command_lines_parse_with_the_real_cli(tmp_path: Path) -> None:
    """Where the `pipeline` command exists already, the var's command line is accepted."""
    import importlib.util

    from pipelinelib.cli import COMMANDS, build_parser

    checked = []
    for name, script in var_scripts().items():
        samples = {"PIPELINE_DIGEST": "sha256:" + "a" * 64, "PIPELINE_RESULT": "success",
                   "PIPELINE_COLOUR": "green", "PIPELINE_FAIL_ON": "high",
                   "PIPELINE_BUILD_RESULT": "SUCCESS", "PIPELINE_OVERRIDE": "4",
                   "PIPELINE_TO_REVISION": "3", "PIPELINE_MARKS": "2",
                   "PIPELINE_PERF_RUNS": "3"}
        env = {n: samples.get(n, "value") for n in set(_VARIABLE.findall(script))}
        env["PIPELINE_REPORT_DIR"] = str(tmp_path / "reports")
        argv = run_sh(script, env, tmp_path)
        command = argv[2]
        assert command in COMMANDS, (name, command)
        if importlib.util.find_spec(f"pipelinelib.commands.{COMMANDS[command][0]}"):
            build_parser(argv).parse_args(argv)
            checked.append(name)
    assert {"pipelineBuild", "pipelinePromote", "pipelineHotfix", "pipelinePlan",
            "pipelineApply", "pipelineScan", "pipelineDeploy", "pipelineSwap",
            "pipelineAnnotate", "pipelineMigrate", "pipelineGate", "pipelinePerf",
            "pipelineRollback"} == set(checked)


def test_swap_by_environment_and_by_namespace_command_lines(tmp_path: Path) -> None:
    """pipelineSwap's one text gives `--env ENV --repo REPO` (the policy-checked form) or
    `--namespace NS`, never both, and the real CLI reads what it meant."""
    from pipelinelib.cli import build_parser

    script = var_scripts()["pipelineSwap"]
    base = {"PIPELINE_REPORT_DIR": "reports/swap", "PIPELINE_APP": "web"}
    by_env = run_sh(script, {**base, "PIPELINE_ENV": "live", "PIPELINE_ENV_REPO": "/srv/env",
                             "PIPELINE_NAMESPACE": "", "PIPELINE_COLOUR": ""}, tmp_path)
    assert by_env == ["--report-dir", "reports/swap", "swap", "--app", "web", "--env", "live",
                      "--repo", "/srv/env"]
    branch = run_sh(script, {**base, "PIPELINE_ENV": "live", "PIPELINE_ENV_REPO": "/srv/env",
                             "PIPELINE_ENV_BRANCH": "release", "PIPELINE_COLOUR": "blue"},
                    tmp_path)
    assert branch[5:] == ["--env", "live", "--repo", "/srv/env", "--branch", "release",
                          "--to", "blue"]
    by_namespace = run_sh(script, {**base, "PIPELINE_NAMESPACE": "web-live", "PIPELINE_ENV": "",
                                   "PIPELINE_ENV_REPO": ""}, tmp_path)
    assert by_namespace[3:] == ["--app", "web", "--namespace", "web-live"]

    parsed = build_parser(branch).parse_args(branch)
    assert (parsed.environment, parsed.repo, parsed.branch, parsed.namespace, parsed.to) == (
        "live", "/srv/env", "release", None, "blue")
    parsed = build_parser(by_namespace).parse_args(by_namespace)
    assert (parsed.environment, parsed.namespace) == (None, "web-live")
