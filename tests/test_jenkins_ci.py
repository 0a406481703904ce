"""pipelinelib.ci.reporter: a deployment's outcome written into the CI server running the job.

Jenkins and GoCD are met through `responses` with their documented payloads; the CI context
comes from the variables each server sets (CIInfo.from_env).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import responses

from pipelinelib.ci.reporter import GoCDReporter, JenkinsReporter, outcome_text
from pipelinelib.context import CIInfo, Context
from pipelinelib.secrets import Secrets
from tests.helpers.jenkins_api import respond_as_build

JENKINS = "https://ci.example.org/"
BUILD = JENKINS + "job/apps/job/hello/17/"
GO = "https://gocd.example.org/go"

JENKINS_ENV = {"JENKINS_URL": JENKINS, "BUILD_URL": BUILD, "JOB_NAME": "apps/hello",
               "BUILD_NUMBER": "17", "PIPELINELIB_JENKINS_USER": "deploy-bot",
               "PIPELINELIB_JENKINS_TOKEN": "jenkins-token-1"}
GOCD_ENV = {"GO_SERVER_URL": GO, "GO_PIPELINE_NAME": "hello", "GO_PIPELINE_COUNTER": "8",
            "GO_PIPELINE_LABEL": "8-abc12345", "GO_TRIGGER_USER": "rita",
            "PIPELINELIB_GOCD_TOKEN": "gocd-token-1"}


def ctx_for(env: dict[str, str], secrets: Secrets | None = None) -> Context:
    """A run of the CI server whose variables are ``env``; its ``ci_server`` is the reporter."""
    return Context.from_env(env, app="hello", environment="staging",
                            secrets=secrets or Secrets())


def test_outcome_texts_are_the_seed_003_annotations() -> None:
    assert outcome_text(True) == "Successfully Deployed"
    assert outcome_text(False, "live") == "Failed Deployment to live"
    assert outcome_text(True, "live", "sha256:ab") == "Successfully Deployed to live (sha256:ab)"


def test_no_reporter_without_a_ci_server_or_credentials() -> None:
    assert ctx_for({}).ci_server is None
    without_token = {k: v for k, v in JENKINS_ENV.items() if k != "PIPELINELIB_JENKINS_TOKEN"}
    assert ctx_for(without_token).ci_server is None
    assert ctx_for({**GOCD_ENV, "PIPELINELIB_GOCD_TOKEN": ""}).ci_server is None


@responses.activate
def test_jenkins_build_description_is_set_once_and_redacted() -> None:
    secrets = Secrets(["hunter2-password"])
    reporter = ctx_for(JENKINS_ENV, secrets).ci_server
    assert isinstance(reporter, JenkinsReporter)
    assert (reporter.build.job, reporter.build.number) == ("apps/hello", 17)
    assert "jenkins-token-1" in secrets
    respond_as_build(JENKINS, BUILD, 17, "submitDescription")

    actions = reporter.annotate("Failed Deployment to staging: login hunter2-password refused")

    assert actions == ["set description of apps/hello #17"]
    post = next(c.request for c in responses.calls if c.request.method == "POST")
    description = parse_qs(post.body)["description"][0]
    assert description.startswith("Failed Deployment to staging")
    assert "hunter2-password" not in description


@responses.activate
def test_gocd_instance_comment_names_the_outcome() -> None:
    reporter = ctx_for(GOCD_ENV).ci_server
    assert isinstance(reporter, GoCDReporter)
    assert (reporter.pipeline, reporter.counter) == ("hello", 8)
    responses.add(responses.GET, f"{GO}/api/pipelines/hello/8",
                  json={"name": "hello", "counter": 8, "label": "8-abc12345", "comment": None,
                        "stages": []})
    responses.add(responses.POST, f"{GO}/api/pipelines/hello/8/comment",
                  json={"message": "Comment successfully updated."})

    assert reporter.annotate(outcome_text(True, "staging")) == ["commented on hello/8"]
    post = next(c.request for c in responses.calls if c.request.method == "POST")
    assert json.loads(post.body) == {"comment": "Successfully Deployed to staging"}


def test_the_identity_the_vars_pass_is_the_one_the_library_reads() -> None:
    """vars/pipelineCli sets BUILD_USER_ID from the build cause (overriding any parameter of
    that name); CIInfo reads exactly that, with Jenkins' own build variables."""
    env = {"JENKINS_URL": JENKINS, "BUILD_URL": BUILD, "JOB_NAME": "apps/hello",
           "BUILD_NUMBER": "17", "GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567",
           "BUILD_USER_ID": "alice", "PIPELINE_TRIGGERED_BY": "alice",
           "PIPELINE_APPROVED_BY": ""}
    ci = CIInfo.from_env(env)
    assert (ci.provider, ci.user, ci.build_url, ci.build_number, ci.job, ci.revision) == (
        "jenkins", "alice", BUILD, "17", "apps/hello", env["GIT_COMMIT"])
    gocd = CIInfo.from_env(GOCD_ENV)
    assert (gocd.provider, gocd.user, gocd.job, gocd.build_number, gocd.counter) == (
        "gocd", "rita", "hello", "8-abc12345", "8")
