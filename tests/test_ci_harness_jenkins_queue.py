"""The queue's Jenkinsfile (jenkins/jobs/deploy.Jenkinsfile, job ``queue/deploy``) run for
real by the Jenkins harness (JenkinsPipelineUnit, tests/groovy JenkinsfileTestbedTest): its
``sh`` runs ``pipeline queue`` on this machine against the real Gitea, with the credentials
(``gitea-token`` string, ``deployer-kubeconfig`` file) and environment Jenkins would bind.
A wrong credential id or variable name fails here."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tests.fixtures.gitea import gitea_env  # noqa: F401
from tests.test_ci_harness_jenkins import run_jenkinsfile
from tests.test_queue import deployment_tags
from tests.test_queue_kill import converged, make_world


def test_the_queue_jenkinsfile_runs_the_speculative_queue_on_the_real_git_server(
        gitea_env, kube_env, tmp_path: Path):  # noqa: F811
    w = make_world(gitea_env, tmp_path / "world")
    token_name = f"jenkins-{uuid.uuid4().hex[:8]}"
    token = w.client.create_token(token_name)
    try:
        ws = tmp_path / "workspace"
        ws.mkdir()
        config = {
            "script": "jenkins/jobs/deploy.Jenkinsfile",
            "workspace": str(ws), "results": str(tmp_path / "results.json"),
            "user": "", "inputAnswer": "",
            "agentEnv": {k: v for k, v in {
                **{k: os.environ.get(k, "") for k in ("HOME", "LANG", "PYTHONPATH", "PATH")},
                "PIPELINELIB_GITEA_URL": gitea_env["PIPELINELIB_GITEA_URL"],
                "PIPELINE_LOG_FORMAT": "json"}.items() if v},
            # what Jenkins sets for build #7 of job queue/deploy (JJB: the job's environment)
            "jenkinsEnv": {"JENKINS_URL": "http://jenkins.example/",
                           "BUILD_URL": "http://jenkins.example/job/queue/job/deploy/7/",
                           "JOB_NAME": "queue/deploy", "BUILD_NUMBER": "7",
                           "WORKSPACE": str(ws), "CI": "true",
                           "APP_REPO_URL": w.url, "QUEUE_WINDOW": "2"},
            "credentials": {"gitea-token": token,
                            "deployer-kubeconfig": kube_env["PIPELINELIB_DEPLOYER_KUBECONFIG"]},
        }
        results = run_jenkinsfile(config, tmp_path)
        calls = [(c["command"], c["status"]) for c in results["sh"]]
        report = "\n".join(c["output"][-3000:] for c in results["sh"])
        assert calls == [("queue", 0)], report
        assert results["error"] is None, results["error"]
        assert {"PIPELINELIB_GITEA_TOKEN", "KUBECONFIG", "PIPELINE_APP_REPO",
                "PIPELINE_QUEUE_WINDOW"} <= set(results["sh"][0]["envKeys"])
        converged(w)
        assert len(deployment_tags(w)) == 2
        assert token not in results["sh"][0]["output"]
    finally:
        w.client.delete_token(token_name)
        w.delete()
