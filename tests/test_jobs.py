"""jobs/: one entry per job. The release jobs the CI servers run (promote, swap, hot-fix,
rollback) call
the `pipeline` CLI and nothing else; the job scripts in jobs/ that run a command's composition
(build.py, deploy.py) parse with that command's own parser, and the ones composing several steps
(autoroll.py, branch_deploy.py) read only the environment variables the CLI reads."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid

import pytest
import yaml

from pipelinelib.cli import COMMANDS
from tests.helpers.cli import run_pipeline
from tests.helpers.git import commit_all
from tests.helpers.paths import ROOT

JOBS = ROOT / "jobs"
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def job_script(name: str, *args: str, env: dict[str, str] | None = None):
    import os

    full = {**os.environ, "PIPELINE_LOG_FORMAT": "json", **(env or {})}
    return subprocess.run([sys.executable, str(JOBS / f"{name}.py"), *args], env=full,
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize(("script", "command"), [
    ("build", "build"), ("deploy", "rollout"), ("autoroll", "autoroll"),
    ("branch_deploy", "branch-deploy")])
def test_a_job_script_takes_exactly_its_commands_options(script, command):
    job = job_script(script, "--help")
    cli = run_pipeline(command, "--help")
    assert job.returncode == 0 and cli.returncode == 0, job.stderr + cli.stderr
    job_options, cli_options = set(OPTION.findall(job.stdout)), set(OPTION.findall(cli.stdout))
    assert "--report-dir" in job_options and "--dry-run" in job_options
    assert job_options == cli_options, job_options ^ cli_options


def _release_commands() -> dict[str, set[str]]:
    """release/<job> -> the `pipeline` commands its Jenkinsfile runs through vars/ steps."""
    docs = yaml.safe_load((ROOT / "jenkins" / "jobs" / "release-jobs.yaml").read_text())
    project = next(d["project"] for d in docs if "project" in d)
    names = [j["release/{job-name}"]["job-name"] for j in project["jobs"]]
    found: dict[str, set[str]] = {}
    for name in names:
        script = (ROOT / "jenkins" / "jobs" / f"{name}.Jenkinsfile").read_text()
        steps = set(re.findall(r"\b(pipeline[A-Z]\w*)\(", script))
        assert steps or "pipelineCli(" in script, f"{name}.Jenkinsfile runs no pipelinelib step"
        texts = [script] + [(ROOT / "vars" / f"{step}.groovy").read_text() for step in steps]
        commands = set()
        for text in texts:
            for line in re.findall(r"script: '(pipeline [^']*)'", text):
                words = [w.strip('"') for w in line.split()]
                commands |= {next(w for w in words[1:] if w in COMMANDS)}
        found[name] = commands
    return found


def test_the_release_jobs_call_the_cli_and_no_job_script_duplicates_them():
    commands = _release_commands()
    assert commands == {"promote": {"promote"}, "swap": {"swap"}, "hotfix": {"promote"},
                        "rollback": {"rollback"}}
    for command in set().union(*commands.values()):
        assert not (JOBS / f"{command}.py").exists(), f"jobs/{command}.py is a second entry"
    release_only = {"--swap", "--hotfix", "--approve", "--to"}
    for script in sorted(JOBS.glob("*.py")):
        if script.stem == "promote_trigger":  # the release manager's client: starts release/*
            continue
        if script.stem == "deploy":  # `pipeline rollout`'s parser: --to is not among them
            continue
        out = job_script(script.stem, "--help")
        assert out.returncode == 0, out.stderr
        assert not release_only & set(OPTION.findall(out.stdout)), script.name


def test_gocd_tasks_run_the_cli_or_a_composing_job_script():
    seen = set()
    for path in sorted((ROOT / "gocd").glob("*.gocd.yaml")):
        doc = yaml.safe_load(path.read_text())
        for pipeline in (doc.get("pipelines") or {}).values():
            for stage in pipeline.get("stages") or []:
                for job in (next(iter(stage.values())).get("jobs") or {}).values():
                    for task in job.get("tasks") or []:
                        exec_ = task.get("exec")
                        if not exec_:
                            continue
                        args = [str(a) for a in exec_.get("arguments") or []]
                        text = " ".join([exec_["command"], *args])
                        for script in re.findall(r"jobs/(\w+)\.py", text):
                            assert script not in COMMANDS or script == "build", text
                            assert (JOBS / f"{script}.py").exists(), text
                        if exec_["command"] == "pipeline":
                            seen.add(next(a for a in args if a in COMMANDS))
    assert "swap" in seen, "gocd's swap-live stage runs `pipeline swap`"


CLI_SOURCES = [ROOT / "pipelinelib" / "cli.py", *(ROOT / "pipelinelib" / "commands").glob("*.py")]
CI_SERVER_VARIABLES = re.compile(r"^(GIT_\w+|GO_\w+|BRANCH_NAME)$")


def test_job_scripts_read_no_environment_variable_the_cli_does_not():
    def read(paths) -> set[str]:
        names: set[str] = set()
        for path in paths:
            names |= set(re.findall(r"""env(?:iron)?\.get\(\s*["'](\w+)["']""",
                                    path.read_text()))
        return names

    cli = read(CLI_SOURCES)
    assert {"PIPELINE_ENV_REPO", "PIPELINE_ENV_BRANCH", "APP"} <= cli
    for script in sorted(JOBS.glob("*.py")):
        if script.stem == "promote_trigger":  # the person's own Jenkins token, not a job's
            continue
        extra = {v for v in read([script]) - cli if not CI_SERVER_VARIABLES.match(v)}
        assert not extra, f"{script.name} re-declares options under {sorted(extra)}"


def test_the_deploy_job_refuses_bad_parameters_before_any_cluster_call(tmp_path):
    env = {"KUBECONFIG": str(tmp_path / "none"), "APP": "web"}
    missing = job_script("deploy", "--report-dir", str(tmp_path / "r"), env=env)
    assert missing.returncode == 2 and "MANIFESTS" in missing.stderr, missing.stderr
    undo = job_script("deploy", str(tmp_path), "--undo", env=env)
    assert undo.returncode == 2 and "pipeline rollback" in undo.stderr, undo.stderr
    for out in (missing, undo):
        assert "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists(), "nothing written"


def test_the_build_job_is_the_same_composition_as_pipeline_build(hello_repo, registry_env,
                                                                  tmp_path):
    env_file = hello_repo / "release.env"
    env_file.write_text(env_file.read_text().replace(
        "PROJECT_NAMESPACE=hello-example-org", f"PROJECT_NAMESPACE=t{uuid.uuid4().hex[:10]}"))
    commit_all(hello_repo, "unique namespace")
    registry = registry_env["PIPELINELIB_REGISTRY"]
    job = job_script("build", "--app-dir", str(hello_repo), "--registry", registry,
                     "--report-dir", str(tmp_path / "job"), env=registry_env)
    assert job.returncode == 0, job.stderr[-3000:]
    first = {s["step"]: s for s in json.loads((tmp_path / "job" / "summary.json").read_text())
             ["steps"]}
    assert first["push"]["status"] == "changed" and first["smoke"]["status"]
    cli = run_pipeline("--report-dir", str(tmp_path / "cli"), "build", "--app-dir",
                       str(hello_repo), "--registry", registry, env=registry_env)
    assert cli.returncode == 0, cli.stderr[-3000:]
    again = {s["step"]: s for s in json.loads((tmp_path / "cli" / "summary.json").read_text())
             ["steps"]}
    assert again["push"]["status"] == "unchanged", "the CLI sees the job's push as its own"
    assert again["push"]["outputs"]["digest"] == first["push"]["outputs"]["digest"]
