"""The annotate step writes the outcome into the Jenkins build running the job.

Jenkins is met through `responses` with its JSON API payloads (crumb issuer, build info,
submitDescription); git and the audit file are real.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

import responses

from pipelinelib.context import Context
from pipelinelib.records.audit import read_jsonl
from pipelinelib.steps.annotate import annotate_deployment
from tests.helpers.git import clone, git, make_origin
from tests.helpers.jenkins_api import respond_as_build

JENKINS = "https://ci.example.org/"
BUILD = JENKINS + "job/apps/job/hello/23/"
DIGEST = "sha256:" + "7e" * 32


@responses.activate
def test_failed_deployment_sets_the_jenkins_build_description(tmp_path: Path) -> None:
    origin, shas = make_origin(tmp_path)
    repo = clone(tmp_path, origin, "work")
    env = {"JENKINS_URL": JENKINS, "BUILD_URL": BUILD, "JOB_NAME": "apps/hello",
           "BUILD_NUMBER": "23", "BUILD_USER_ID": "rita",
           "PIPELINELIB_JENKINS_USER": "deploy-bot", "PIPELINELIB_JENKINS_TOKEN": "jt-secret-77",
           "PIPELINE_AUDIT_FILE": str(tmp_path / "audit.jsonl"),
           "PIPELINE_AUDIT_SPOOL": str(tmp_path / "spool")}
    ctx = Context.from_env(env, app="hello", environment="live", revision=shas[-1])
    respond_as_build(JENKINS, BUILD, 23, "configSubmit")

    result = annotate_deployment(ctx, repo=repo, digest=DIGEST, job_failed=True,
                                 reason="rollout timed out")

    post = next(c.request for c in responses.calls if c.request.method == "POST")
    form = json.loads(parse_qs(post.body)["json"][0])
    assert form == {"description": "Failed Deployment to live", "displayName": "#23 ✗ hello → live"}
    assert "jenkins: Failed Deployment to live" in result.actions
    [event] = read_jsonl(env["PIPELINE_AUDIT_FILE"])
    assert (event["user"], event["provider"], event["build_url"]) == ("rita", "jenkins", BUILD)
    assert event["result"] == "failure" and "jt-secret-77" in ctx.secrets
    note = git(origin, "notes", "--ref", "refs/notes/pipelinelib-state", "show", shas[-1])
    assert "annotation: Failed Deployment" in note and f"build_url: {BUILD}" in note
