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

ROOT = Path(__file__).resolve().parents[1]


def test_the_queue_jobs_render_with_jenkins_job_builder(tmp_path: Path) -> None:
    jjb = Path(sys.executable).with_name("jenkins-jobs")
    out = subprocess.run([str(jjb) if jjb.exists() else "jenkins-jobs", "--conf", "/dev/null",
                          "test", "--config-xml", "-p", str(ROOT / "jenkins/plugins-info.yaml"),
                          str(ROOT / "jenkins/jobs"), "-o", str(tmp_path)],
                         capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    for name, command in (("deploy", "pipeline queue"),
                          ("promote-preprod", "pipeline promote --to preprod --via-pull-request")):
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
