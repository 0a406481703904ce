"""The example Jenkinsfile and the vars/ steps, run for real: JenkinsPipelineUnit interprets
the pipeline (tests/groovy, JenkinsfileTestbedTest) with `sh` executing each script on this
machine against the testbed - registry, PostgreSQL, Kubernetes as the deployer - and the
parameters, environment and credentials bound as Jenkins binds them. A wrong variable name,
credential id or object name fails here.

Jenkins itself cannot run here; the part of its API the build calls back (the build
description the annotate step sets) is a loopback stand-in (tests/helpers/jenkins_api.py).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.helpers.git import add_origin, copy_hello, git, init_repo
from tests.helpers.groovy import run_jenkinsfile
from tests.helpers.jenkins_api import JenkinsBuildAPI
from tests.helpers.kube import Cluster
from tests.helpers.paths import ROOT
from tests.helpers.tools import tool_exports

NAMESPACE = "hello-sandbox"  # what examples/jenkins/Jenkinsfile deploys into
TOKEN = "planted-jenkins-token-4c2e"


@pytest.fixture
def sandbox_namespace(kube_env: dict[str, str]):
    """The Jenkinsfile's namespace, fresh, where the deployer may deploy; deleted after."""
    cluster = Cluster(kube_env)
    if cluster.kubectl("get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name"):
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=120s")
    cluster.kubectl("create", "namespace", NAMESPACE)
    cluster.kubectl("-n", NAMESPACE, "create", "rolebinding", "pipelinelib-deployer",
                    "--clusterrole=pipelinelib-deployer",
                    "--serviceaccount=pipelinelib-system:pipelinelib-deployer")
    yield cluster
    cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def workspace(tmp_path: Path) -> tuple[Path, Path]:
    """The job's workspace after `checkout scm`: the app (examples/hello) with an origin."""
    origin, ws = tmp_path / "hello.git", tmp_path / "workspace"
    stamp = f"{int(time.time())}{os.getpid() % 1000:03d}"
    copy_hello(ws / "examples" / "hello", APP_VERSION=f"1.0.0-jenkins.{stamp}")
    init_repo(ws, "hello")
    add_origin(ws, origin)
    return ws, origin


@pytest.mark.timeout(1800)
def test_the_example_jenkinsfile_runs_for_real_against_the_testbed(
        tmp_path: Path, registry_env: dict[str, str], kube_env: dict[str, str],
        postgres_db: str, sandbox_namespace: Cluster) -> None:
    ws, origin = workspace(tmp_path)
    revision = git(ws, "rev-parse", "HEAD")
    lighthouse, scanner = tool_exports("lighthouse"), tool_exports("osv-scanner")
    kubeconfig = tmp_path / "sandbox-kubeconfig"  # a Jenkins "secret file" credential
    kubeconfig.write_text(Path(kube_env["PIPELINELIB_DEPLOYER_KUBECONFIG"]).read_text())
    jenkins = JenkinsBuildAPI("ci-bot", TOKEN, "hello", 42)
    try:
        agent_path = ":".join([str(Path(lighthouse["PIPELINELIB_LIGHTHOUSE"]).parent),
                               os.environ["PATH"]])
        config = {
            "script": "examples/jenkins/Jenkinsfile",
            "workspace": str(ws), "results": str(tmp_path / "results.json"),
            "user": "rm-alice", "inputAnswer": "Aborted by rm-bob",
            "agentEnv": {k: v for k, v in {
                **{k: os.environ.get(k, "") for k in ("HOME", "LANG", "PYTHONPATH")},
                **registry_env, "PATH": agent_path,
                "CHROME_PATH": lighthouse["PIPELINELIB_CHROMIUM"],
                "PIPELINELIB_OSV_SCANNER": scanner["PIPELINELIB_OSV_SCANNER"],
                "PIPELINE_OSV_DB": str(ROOT / "tests" / "fixtures" / "scan" / "osv-db"),
                "PIPELINE_AUDIT_FILE": str(tmp_path / "audit.jsonl"),
                "PIPELINE_LOG_FORMAT": "json"}.items() if v},
            # what Jenkins sets for build #42 of job `hello`
            "jenkinsEnv": {"JENKINS_URL": jenkins.url, "BUILD_URL": jenkins.build_url,
                           "JOB_NAME": "hello", "BUILD_NUMBER": "42", "GIT_COMMIT": revision,
                           "WORKSPACE": str(ws), "CI": "true"},
            "credentials": {"hello-sandbox-dsn": postgres_db,
                            "sandbox-kubeconfig": str(kubeconfig),
                            "pipelinelib-jenkins-api": {"username": "ci-bot",
                                                        "password": TOKEN}},
        }
        results = run_jenkinsfile(config, tmp_path)
    finally:
        jenkins.close()

    calls = [(c["label"] or "", c["command"], c["status"]) for c in results["sh"]]
    report = "\n".join(f"{c['command']} exit={c['status']}\n{c['output'][-1500:]}"
                       for c in results["sh"] if c["status"])
    assert [(cmd, status) for label, cmd, status in calls] == [
        ("build", 0), ("mkdir", 0), ("scan", 0), ("perf", 0), ("gate", 0),
        ("migrate", 0), ("gate", 0), ("rollout", 0), ("annotate", 0)], report
    # nobody approved the promotion: the build stops at the input, after the deployment
    assert results["error"] == "Aborted by rm-bob", results["error"]
    assert "input Promote hello from sandbox to staging?" in results["events"]

    # pipeline perf served the page and ran Lighthouse until 3 good runs (a starved run is
    # measured again, 6 at most); the app's budget is optimistic: each check on its best
    # value of the valid runs (and the evidence shows every run)
    runs = list((ws / "reports" / "perf").glob("lighthouse-*.json"))
    assert 3 <= len(runs) <= 6, runs
    [perf] = json.loads((ws / "reports" / "perf" / "summary.json").read_text())["steps"]
    assert "(optimistic: each check on its best value of " in perf["outputs"]["checklist"][0]
    assert f" valid run(s) of {len(runs)})" in perf["outputs"]["checklist"][0], perf
    build = json.loads((ws / "reports" / "build" / "summary.json").read_text())
    pushed = [s for s in build["steps"] if (s.get("outputs") or {}).get("image")][-1]
    digest = pushed["outputs"]["image"].split("@", 1)[1]
    deployment = sandbox_namespace.json("-n", NAMESPACE, "get", "deployment", "hello")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(digest)
    assert deployment["metadata"]["annotations"][
        "pipelinelib.dev/deployment-status"] == "Successfully Deployed (sandbox)"
    assert git(origin, "tag", "--list", "deployment-*"), "the deployment tag was pushed"
    # the build's own record in Jenkins, written with the API token credential
    assert "Successfully Deployed" in (jenkins.build["description"] or "")
    dsn_password = re.sub(r"^.*://[^:]*:([^@]*)@.*$", r"\1", postgres_db)
    for c in results["sh"]:
        assert TOKEN not in c["output"] and dsn_password not in c["output"], c["command"]
