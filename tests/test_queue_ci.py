"""The CI side of the queue and the preprod pull-request promotion: the JJB jobs render
(jenkins-jobs test) and the GoCD pipelines' task lines parse with the real `pipeline` CLI."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from pipelinelib.cli import build_parser
from tests.helpers.git import git
from tests.helpers.gitea import GiteaWorld, admin_client
from tests.helpers.paths import ROOT


def test_the_queue_jobs_render_with_jenkins_job_builder(tmp_path: Path) -> None:
    jjb = Path(sys.executable).with_name("jenkins-jobs")
    out = subprocess.run([str(jjb) if jjb.exists() else "jenkins-jobs", "--conf", "/dev/null",
                          "test", "--config-xml", "-p", str(ROOT / "jenkins/plugins-info.yaml"),
                          str(ROOT / "jenkins/jobs"), "-o", str(tmp_path)],
                         capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    cli = 'pipeline --report-dir "$PIPELINE_REPORT_DIR" '
    for name, command in (("deploy", cli + "queue"),
                          ("promote-preprod", cli + "promote --to preprod --via-pull-request")):
        job = ET.parse(tmp_path / "queue" / name / "config.xml").getroot()
        assert job.find("properties/org.jenkinsci.plugins.workflow.job.properties."
                        "DisableConcurrentBuildsJobProperty") is not None, "one build at a time"
        timer = job.find("properties/org.jenkinsci.plugins.workflow.job.properties."
                         "PipelineTriggersJobProperty/triggers/hudson.triggers.TimerTrigger/spec")
        assert timer is not None and timer.text == "H/5 * * * *"
        script = job.findtext("definition/scriptPath")
        jenkinsfile = (ROOT / script).read_text()
        assert command in jenkinsfile
        # values reach the shell as environment variables, never as Groovy interpolation
        for call in re.findall(r"script: '([^']*)'", jenkinsfile):
            assert "${" not in call


def test_the_gocd_pipelines_run_the_queue_and_the_pull_request_promotion() -> None:
    config = yaml.safe_load((ROOT / "gocd" / "queue.gocd.yaml").read_text())
    seen = []
    for pipeline in config["pipelines"].values():
        assert pipeline["lock_behavior"] == "unlockWhenFinished"
        assert pipeline["timer"]["spec"]
        for stage in pipeline["stages"]:
            (body,) = stage.values()
            for job in body["jobs"].values():
                for task in job["tasks"]:
                    argv = task["exec"]["arguments"]
                    args = build_parser(argv).parse_args(argv)
                    seen.append(args.command)
                    if args.command == "promote":
                        assert args.via_pull_request and args.target == "preprod"
                    else:
                        assert args.speculative == 4
    assert seen == ["queue", "promote"]


def test_the_gocd_queue_pipeline_runs_the_queue_on_an_agent(
        gitea_env, tmp_path: Path) -> None:
    """gocd/queue.gocd.yaml's hello-queue, run by the GoCD agent harness
    (tests/helpers/gocd_agent.py) against the real git server: the material is checked out,
    the task runs `pipeline queue` with the repository from PIPELINE_APP_REPO and the token
    from the secret store."""
    from tests.helpers.gocd_agent import GoCDAgent, load_pipelines, pipeline_env_for_test
    from tests.helpers.queue import branch, deployment_tags, mark, queue_config

    w = GiteaWorld.create(gitea_env, tmp_path / "repo", "gocd")
    try:
        (w.clone / ".pipeline").mkdir()
        (w.clone / ".pipeline" / "queue.yaml").write_text(yaml.safe_dump(
            queue_config(tmp_path / "deploys.log")))
        (w.clone / "release.env").write_text("APP=hello\n")
        git(w.clone, "add", "-A")
        git(w.clone, "commit", "-q", "-m", "base")
        git(w.clone, "push", "-q", "origin", "master")
        mark(w, branch(w, "feature", {"feature.txt": "f\n"}), "deployable")
        token = admin_client(gitea_env).create_token(f"gocd-{w.name}")
        w.token_name = f"gocd-{w.name}"  # type: ignore[attr-defined]
        pipeline = load_pipelines(ROOT / "gocd" / "queue.gocd.yaml")["hello-queue"]
        # the harness checks materials out from local origins: a mirror of the repository
        mirror = tmp_path / "material.git"
        git(tmp_path, "clone", "-q", "--bare", w.url, str(mirror))
        agent = GoCDAgent(
            root=tmp_path / "agent",
            agent_env=pipeline_env_for_test({"PIPELINE_AUDIT_FILE": str(tmp_path / "a.jsonl")}),
            git_urls={"https://git.example.org/apps/hello.git": str(mirror)},
            secrets={("pipelinelib", "gitea_token"): token,
                     ("pipelinelib", "gocd_token"): "planted-gocd-token"},
            site={"PIPELINE_APP_REPO": w.url,
                  "PIPELINELIB_GITEA_URL": gitea_env["PIPELINELIB_GITEA_URL"]})
        run = agent.run("hello-queue", pipeline, trigger_user="timer")
        assert [(s.name, s.result) for s in run.stages] == [("queue", "Passed")], \
            run.console()[-4000:]
        assert list(deployment_tags(w)) == ["deployment-0001"]
        assert token not in run.console()
        feature = w.remote_sha("refs/heads/feature")
        assert w.client.statuses(w.owner, w.name, feature)["pipelinelib/queue"].state == \
            "success"
    finally:
        if getattr(w, "token_name", ""):
            admin_client(gitea_env).delete_token(w.token_name)  # type: ignore[attr-defined]
        w.delete()
