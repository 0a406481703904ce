"""jenkins/jobs/*.yaml: the release managers' jobs render offline with Jenkins Job Builder.

`jenkins-jobs test` (the dev extra's jenkins-job-builder) turns the YAML into the config.xml
Jenkins stores; these tests read that XML: parameters, the permission matrix (only the
release-managers group may build), and the pipeline script each job runs from this repository.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

JOBS = ROOT / "jenkins" / "jobs"
PLUGINS = ROOT / "jenkins" / "plugins-info.yaml"
PARAMETERS = JOBS / "release-parameters.yaml"
ENV_STATE = ROOT / "examples" / "env-state"
BUILD = "hudson.model.Item.Build"
RELEASE_JOBS = ("promote", "swap", "hotfix", "rollback")


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


def test_the_folder_and_four_release_jobs_render(rendered: dict[str, ET.Element]) -> None:
    assert sorted(k for k in rendered if k.startswith("release")) == [
        "release", "release/hotfix", "release/promote", "release/rollback", "release/swap"]
    assert rendered["release"].tag == "com.cloudbees.hudson.plugins.folder.Folder"
    for name in RELEASE_JOBS:
        assert rendered[f"release/{name}"].tag == "flow-definition"


def test_only_release_managers_may_build_and_nothing_is_inherited(
        rendered: dict[str, ET.Element]) -> None:
    for name in RELEASE_JOBS:
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
    assert choices(params["APP"]) == ["patient-portal", "records-api", "uro"]
    # promotion order: seed 004's int-test -> qa -> preprod -> prod, then seed 002's live
    assert choices(params["FROM_ENV"]) == ["int-test", "qa", "preprod", "staging"]
    assert choices(params["TO_ENV"]) == ["qa", "preprod", "prod", "live"]
    assert params["APPROVE_ONLY"].tag == "hudson.model.BooleanParameterDefinition"
    assert params["APPROVE_ONLY"].findtext("defaultValue") == "false"
    # no identity parameter: who promotes is the build's cause
    assert not {"USER", "BUILD_USER_ID", "PIPELINE_TRIGGERED_BY"} & set(params)


def test_every_offered_environment_and_app_exists_in_the_env_state_repository(
        rendered: dict[str, ET.Element]) -> None:
    """The defect: `inttest` offered (the environment is int-test) and no qa, so seed 004's
    chain could not be run from the jobs."""
    from pipelinelib.envspec.load import environment_path, list_environments, load_environment

    envs = {n: load_environment(environment_path(ENV_STATE, n), root=ENV_STATE)
            for n in list_environments(ENV_STATE)}
    apps = {a for e in envs.values() for a in e.apps}
    for job in RELEASE_JOBS:
        params = parameters(rendered[f"release/{job}"])
        assert set(choices(params["APP"])) == apps, job
        for name in ("FROM_ENV", "TO_ENV", "ENVIRONMENT"):
            if name in params:
                assert set(choices(params[name])) <= set(envs), (job, name)
    promote = parameters(rendered["release/promote"])
    for target, env in envs.items():  # every promotion the repository allows can be chosen
        for source in env.promote_from:
            assert source in choices(promote["FROM_ENV"]), source
            assert target in choices(promote["TO_ENV"]), target


def test_the_parameters_file_is_what_the_env_state_repository_generates() -> None:
    check = subprocess.run([sys.executable, "-m", "pipelinelib.ci.release_jobs",
                            "examples/env-state", "--check", str(PARAMETERS)], cwd=ROOT,
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def test_a_new_environment_makes_the_parameters_file_out_of_date(tmp_path: Path) -> None:
    state = tmp_path / "env-state"
    shutil.copytree(ENV_STATE, state)
    qa = (state / "environments" / "qa.yaml").read_text()
    (state / "environments" / "qa2.yaml").write_text(
        qa.replace("name: qa", "name: qa2").replace("ehealth-qa", "ehealth-qa2")
        .replace("from: [int-test]", "from: [qa]"))
    check = subprocess.run([sys.executable, "-m", "pipelinelib.ci.release_jobs", str(state),
                            "--check", str(PARAMETERS)], cwd=ROOT, capture_output=True,
                           text=True, check=False)
    assert check.returncode == 1 and "out of date" in check.stderr
    fresh = subprocess.run([sys.executable, "-m", "pipelinelib.ci.release_jobs", str(state)],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout
    to_env = fresh.split("name: TO_ENV", 1)[1].split("description:", 1)[0]
    assert [line.strip("- ").strip() for line in to_env.splitlines() if "- " in line] == [
        "qa", "preprod", "prod", "qa2", "live"]  # a branch after the chain it leaves


def test_swap_job_parameters(rendered: dict[str, ET.Element]) -> None:
    params = parameters(rendered["release/swap"])
    assert list(params) == ["APP", "ENVIRONMENT", "COLOUR"]
    assert choices(params["COLOUR"]) == ["toggle", "blue", "green"]
    # the swap is by environment (`pipeline swap --env`): namespace, cluster and the policy's
    # swap role come from the env-state repository, not from a free namespace; offered are
    # the environments with a blue/green app
    assert params["ENVIRONMENT"].tag == "hudson.model.ChoiceParameterDefinition"
    assert choices(params["ENVIRONMENT"]) == ["staging"]
    assert not {"NAMESPACE", "USER", "BUILD_USER_ID", "PIPELINE_TRIGGERED_BY"} & set(params)
    script = (ROOT / "jenkins" / "jobs" / "swap.Jenkinsfile").read_text()
    assert "environment: params.ENV" in script and "envRepo: env.PIPELINE_ENV_REPO" in script
    assert "namespace:" not in script


def test_rollback_job_parameters(rendered: dict[str, ET.Element]) -> None:
    params = parameters(rendered["release/rollback"])
    assert list(params) == ["APP", "ENVIRONMENT", "TO_GIT_REVISION"]
    # every environment, in promotion order: a rollback may be needed anywhere
    assert choices(params["ENVIRONMENT"])[:4] == ["int-test", "qa", "preprod", "prod"]
    revision = params["TO_GIT_REVISION"]
    revision_re = revision.findtext("regex") or ""
    assert re.fullmatch(revision_re, "") and re.fullmatch(revision_re, "0123abc")
    assert not re.fullmatch(revision_re, "HEAD; rm -rf /")
    # by environment (`pipeline rollback --env`): namespace, cluster and policy come from the
    # env-state repository; the parameters reach the shell as environment variables only
    script = (ROOT / "jenkins" / "jobs" / "rollback.Jenkinsfile").read_text()
    assert '--env "$PIPELINE_ENVIRONMENT"' in script and "requireUser: true" in script
    assert "${params." not in script.split("script:")[1].split("kubeconfig")[0]


def test_hotfix_job_requires_a_digest_and_a_reason(rendered: dict[str, ET.Element]) -> None:
    params = parameters(rendered["release/hotfix"])
    assert list(params) == ["APP", "TO_ENV", "IMAGE", "REASON"]
    assert choices(params["TO_ENV"]) == ["prod"]  # where policy.yaml names who may hot-fix
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
    for name in RELEASE_JOBS:
        definition = rendered[f"release/{name}"].find("definition")
        assert definition is not None
        assert definition.get("class") == "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition"
        script = definition.findtext("scriptPath")
        assert script == f"jenkins/jobs/{name}.Jenkinsfile"
        text = (ROOT / script).read_text()
        assert "@Library('pipelinelib')" in text
        assert definition.findtext("sandbox") == "true"
        assert definition.findtext("scm/branches/hudson.plugins.git.BranchSpec/name") == "*/main"
