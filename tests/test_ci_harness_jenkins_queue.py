"""The queue's Jenkinsfiles (jenkins/jobs/deploy.Jenkinsfile, job ``queue/deploy``, and
promote-preprod.Jenkinsfile, job ``queue/promote-preprod``) run for real by the Jenkins
harness (JenkinsPipelineUnit, tests/groovy JenkinsfileTestbedTest): its
``sh`` runs ``pipeline queue`` / ``pipeline promote --via-pull-request`` on this machine against
the real Gitea (and control plane), with the credentials (``gitea-token`` string, the
kubeconfig file) and environment Jenkins would bind.
A wrong credential id or variable name fails here."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tests.helpers.groovy import run_jenkinsfile
from tests.helpers.pull_request import (
    change_master,
    deployed_image,
    drop_world,
    make_pr_world,
    open_pr,
    spec_digest,
)
from tests.helpers.queue import converged, deployment_tags, make_kill_world


def test_the_queue_jenkinsfile_runs_the_speculative_queue_on_the_real_git_server(
        gitea_env, kube_env, tmp_path: Path):
    w = make_kill_world(gitea_env, tmp_path / "world")
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


def _promote_build(w, server: dict, kube_env, token: str, tmp_path: Path, user: str,
                   number: int) -> dict:
    ws, build = tmp_path / f"workspace-{number}", tmp_path / f"build-{number}"
    ws.mkdir()
    build.mkdir()
    return run_jenkinsfile({
        "script": "jenkins/jobs/promote-preprod.Jenkinsfile",
        "workspace": str(ws), "results": str(tmp_path / f"results-{number}.json"),
        "user": user, "inputAnswer": "",
        "agentEnv": {k: v for k, v in {
            **{k: os.environ.get(k, "") for k in ("HOME", "LANG", "PYTHONPATH", "PATH")},
            "PIPELINELIB_GITEA_URL": server["PIPELINELIB_GITEA_URL"],
            "PIPELINE_LOG_FORMAT": "json"}.items() if v},
        "jenkinsEnv": {"JENKINS_URL": "http://jenkins.example/",
                       "BUILD_URL": f"http://jenkins.example/job/queue/job/promote-preprod/"
                                    f"{number}/",
                       "JOB_NAME": "queue/promote-preprod", "BUILD_NUMBER": str(number),
                       "WORKSPACE": str(ws), "CI": "true", "ENV_STATE_REPO_URL": w.url},
        "credentials": {"gitea-token": token,
                        "preprod-kubeconfig": kube_env["PIPELINELIB_DEPLOYER_KUBECONFIG"]},
    }, build)


def test_the_promote_preprod_jenkinsfile_opens_merges_applies_and_reports_back(
        gitea_env, kube_env, tmp_path: Path):
    w = make_pr_world(gitea_env, kube_env, tmp_path / "world", prefix="jenkinspr")
    token_name = f"jenkins-{uuid.uuid4().hex[:8]}"
    token = w.client.create_token(token_name)
    try:
        change_master(w, "1.1")
        first = _promote_build(w, gitea_env, kube_env, token, tmp_path, "alice", 1)
        assert [(c["command"], c["status"]) for c in first["sh"]] == [("promote", 0)], \
            first["sh"][0]["output"][-3000:]
        pr = open_pr(w)
        assert pr is not None and "Requested by: alice" in pr.body
        w.client.as_user("bob").review(w.owner, w.name, pr.number, "APPROVED", "ok",
                                       commit=pr.head_sha)
        second = _promote_build(w, gitea_env, kube_env, token, tmp_path, "", 2)
        assert [(c["command"], c["status"]) for c in second["sh"]] == [("promote", 0)], \
            second["sh"][0]["output"][-3000:]
        merged = w.client.pull_request(w.owner, w.name, pr.number)
        assert merged.merged
        digest = spec_digest("1.1")
        assert digest in (deployed_image(w) or "")
        status = w.client.statuses(w.owner, w.name, merged.merge_commit)["pipelinelib/preprod"]
        assert status.state == "success" and "approved by bob" in status.description
        assert {"PIPELINELIB_GITEA_TOKEN", "KUBECONFIG", "PIPELINE_ENV_REPO"} <= set(
            second["sh"][0]["envKeys"])
        assert all(token not in c["output"] for c in first["sh"] + second["sh"])
    finally:
        w.client.delete_token(token_name)
        drop_world(w)
