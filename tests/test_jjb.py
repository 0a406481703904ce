"""jenkins/jobs/*.yaml: the release managers' jobs render offline with Jenkins Job Builder.

`jenkins-jobs test` (the dev extra's jenkins-job-builder) turns the YAML into the config.xml
Jenkins stores; these tests read that XML: parameters, the permission matrix (only the
release-managers group may build), and the pipeline script each job runs from this repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "jenkins" / "jobs"
PLUGINS = ROOT / "jenkins" / "plugins-info.yaml"
BUILD = "hudson.model.Item.Build"


def _jenkins_jobs() -> list[str]:
    found = shutil.which("jenkins-jobs") or str(Path(sys.executable).with_name("jenkins-jobs"))
    if not Path(found).exists():
        pytest.fail("jenkins-jobs missing: install the dev extra (pip install -e '.[dev]')")
    return [found]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ET.Element]:
    out = tmp_path_factory.mktemp("jjb")
    result = subprocess.run(
        [*_jenkins_jobs(), "--conf", "/dev/null", "test", "--config-xml", "-p", str(PLUGINS),
         str(JOBS), "-o", str(out)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {str(p.parent.relative_to(out)): ET.parse(p).getroot()
            for p in sorted(out.rglob("config.xml"))}


def parameters(job: ET.Element) -> dict[str, ET.Element]:
    defs = job.find("properties/hudson.model.ParametersDefinitionProperty/parameterDefinitions")
    assert defs is not None
    return {d.findtext("name"): d for d in defs}


def choices(param: ET.Element) -> list[str]:
    return [s.text or "" for s in param.iter("string")]


def permissions(job: ET.Element) -> list[tuple[str, str, str]]:
    matrix = job.find("properties/hudson.security.AuthorizationMatrixProperty")
    if matrix is None:
        matrix = job.find(
            "properties/com.cloudbees.hudson.plugins.folder.properties.AuthorizationMatrixProperty")
    assert matrix is not None, "no permission matrix"
    rows = []
    for p in matrix.findall("permission"):
        kind, permission, who = (p.text or "").split(":", 2)
        rows.append((kind, permission, who))
    return rows


def test_the_folder_and_three_release_jobs_render(rendered: dict[str, ET.Element]) -> None:
    assert sorted(k for k in rendered if k.startswith("release")) == [
        "release", "release/hotfix", "release/promote", "release/swap"]
    assert rendered["release"].tag == "com.cloudbees.hudson.plugins.folder.Folder"
    for name in ("promote", "swap", "hotfix"):
        assert rendered[f"release/{name}"].tag == "flow-definition"


def test_only_release_managers_may_build_and_nothing_is_inherited(
        rendered: dict[str, ET.Element]) -> None:
    for name in ("promote", "swap", "hotfix"):
        job = rendered[f"release/{name}"]
        rows = permissions(job)
        builders = {(kind, who) for kind, permission, who in rows if permission == BUILD}
        assert builders == {("GROUP", "release-managers")}, name
        assert ("GROUP", "hudson.model.Item.Read", "authenticated") in rows
        strategy = job.find("properties/hudson.security.AuthorizationMatrixProperty/"
                            "inheritanceStrategy")
        assert strategy is not None
        assert strategy.get("class", "").endswith("NonInheritingStrategy"), name
        assert job.find("properties/org.jenkinsci.plugins.workflow.job.properties."
                        "DisableConcurrentBuildsJobProperty") is not None
    assert all(permission != BUILD for _, permission, _ in permissions(rendered["release"]))


def test_promote_job_parameters(rendered: dict[str, ET.Element]) -> None:
    params = parameters(rendered["release/promote"])
    assert list(params) == ["APP", "FROM_ENV", "TO_ENV", "APPROVE_ONLY"]
    assert params["APP"].tag == "hudson.model.ChoiceParameterDefinition"
    assert "hello" in choices(params["APP"])
    assert "live" in choices(params["TO_ENV"]) and "staging" in choices(params["FROM_ENV"])
    assert params["APPROVE_ONLY"].tag == "hudson.model.BooleanParameterDefinition"
    assert params["APPROVE_ONLY"].findtext("defaultValue") == "false"
    # no identity parameter: who promotes is the build's cause
    assert not {"USER", "BUILD_USER_ID", "PIPELINE_TRIGGERED_BY"} & set(params)


def test_swap_job_parameters(rendered: dict[str, ET.Element]) -> None:
    params = parameters(rendered["release/swap"])
    assert list(params) == ["APP", "ENVIRONMENT", "COLOUR"]
    assert choices(params["COLOUR"]) == ["toggle", "blue", "green"]
    # the swap is by environment (`pipeline swap --env`): namespace, cluster and the policy's
    # swap role come from the env-state repository, not from a free namespace
    assert params["ENVIRONMENT"].tag == "hudson.model.ChoiceParameterDefinition"
    assert choices(params["ENVIRONMENT"])[0] == "live"
    promote_to = choices(parameters(rendered["release/promote"])["TO_ENV"])
    assert set(choices(params["ENVIRONMENT"])) <= set(promote_to)
    assert not {"NAMESPACE", "USER", "BUILD_USER_ID", "PIPELINE_TRIGGERED_BY"} & set(params)
    script = (ROOT / "jenkins" / "jobs" / "swap.Jenkinsfile").read_text()
    assert "environment: params.ENV" in script and "envRepo: env.PIPELINE_ENV_REPO" in script
    assert "namespace:" not in script


def test_hotfix_job_requires_a_digest_and_a_reason(rendered: dict[str, ET.Element]) -> None:
    import re

    params = parameters(rendered["release/hotfix"])
    assert list(params) == ["APP", "TO_ENV", "IMAGE", "REASON"]
    validating = "hudson.plugins.validating__string__parameter.ValidatingStringParameterDefinition"
    digest, reason = params["IMAGE"], params["REASON"]
    assert digest.tag == reason.tag == validating
    digest_re, reason_re = digest.findtext("regex") or "", reason.findtext("regex") or ""
    assert re.fullmatch(digest_re, "littleman-co/docs-nginx@sha256:" + "a" * 64)
    assert not re.fullmatch(digest_re, "littleman-co/docs-nginx:latest")
    assert not re.fullmatch(digest_re, "sha256:" + "a" * 64)
    assert re.fullmatch(reason_re, "CVE-2024-1234 in the login form")
    assert not re.fullmatch(reason_re, "")
    assert not re.fullmatch(reason_re, "   ")
    assert "reason" in (reason.findtext("failedValidationMessage") or "")


def test_each_job_runs_its_tested_jenkinsfile_from_this_repository(
        rendered: dict[str, ET.Element]) -> None:
    for name in ("promote", "swap", "hotfix"):
        definition = rendered[f"release/{name}"].find("definition")
        assert definition is not None
        assert definition.get("class") == "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition"
        script = definition.findtext("scriptPath")
        assert script == f"jenkins/jobs/{name}.Jenkinsfile"
        text = (ROOT / script).read_text()
        assert "@Library('pipelinelib')" in text
        assert definition.findtext("sandbox") == "true"
        assert definition.findtext("scm/branches/hudson.plugins.git.BranchSpec/name") == "*/main"
