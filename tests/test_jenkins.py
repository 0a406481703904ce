"""pipelinelib.adapters.jenkins and jobs/promote_trigger.py against Jenkins' JSON API shapes.

Jenkins itself cannot run here (it is published only to the Jenkins project's repository), so
the HTTP exchanges are `responses` with the payloads current Jenkins (2.4xx LTS) sends, each
from its source:

- crumbIssuer/api/json: ``{"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb",
  "crumbRequestField": "Jenkins-Crumb"}`` (jenkins.io "CSRF Protection Explained"; core
  hudson/security/csrf/CrumbIssuer.java exports crumb and crumbRequestField). python-jenkins
  fetches it before its first request (Jenkins.maybe_add_crumb), a 404 meaning CSRF is off;
- POST job/NAME/buildWithParameters (parameters in the query string, as python-jenkins'
  build_job_url sends them) -> 201 + ``Location: JENKINS/queue/item/N/`` for a new queue item
  (jenkinsci/jenkins PR #5615, JENKINS-66105);
- queue/item/N/api/json: ``Queue$BuildableItem``/``WaitingItem`` with ``why``, then
  ``Queue$LeftItem`` with ``executable {number, url}`` or ``cancelled: true`` (core
  hudson/model/Queue.java, its @Exported fields);
- POST queue/cancelItem?id=N -> 204 No Content (since Jenkins 2.210, jenkinsci/jenkins PR
  #4395, JENKINS-21311; it used to be a 302 to the queue page);
- logText/progressiveText?start=K with X-Text-Size / X-More-Data (core
  hudson/console/AnnotatedLargeText.java);
- job/NAME/N/api/json: WorkflowRun with result (null while building), building, duration ms;
- submitDescription / configSubmit -> 302 to the build page (core hudson/model/Run.java).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import responses
from structlog.testing import capture_logs

from pipelinelib.adapters.jenkins import (
    BuildRef,
    JenkinsClient,
    JenkinsCrumbRejected,
    job_path,
)
from pipelinelib.errors import BadInput, Refused, StepFailed, Unreachable
from pipelinelib.secrets import Secrets
from tests.helpers.fakes import FakeClock
from tests.helpers.paths import ROOT

URL = "https://ci.example.org/"
JOB = "release/promote"
JOB_URL = URL + "job/release/job/promote/"
BUILD_URL = JOB_URL + "42/"
CRUMB = {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": "c0ffee",
         "crumbRequestField": "Jenkins-Crumb"}



def client(**kwargs: object) -> JenkinsClient:
    clock = FakeClock()
    options = {"sleep": clock.sleep, "clock": clock}
    options.update(kwargs)
    return JenkinsClient(URL, "rita", "api-token-123", **options)  # type: ignore[arg-type]


def waiting_item(n: int, why: str) -> dict:
    return {"_class": "hudson.model.Queue$BuildableItem", "actions": [], "blocked": False,
            "buildable": True, "id": n, "inQueueSince": 1700000000000,
            "params": "\nAPP=web\nTO_ENV=live", "stuck": False,
            "task": {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
                     "name": "promote", "url": JOB_URL, "color": "blue"},
            "url": f"queue/item/{n}/", "why": why, "buildableStartMilliseconds": 1700000000100}


def left_item(n: int, number: int = 42) -> dict:
    return {"_class": "hudson.model.Queue$LeftItem", "actions": [], "blocked": False,
            "buildable": False, "id": n, "inQueueSince": 1700000000000, "params": "",
            "stuck": False, "task": {"name": "promote", "url": JOB_URL},
            "url": f"queue/item/{n}/", "why": None, "cancelled": False,
            "executable": {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
                           "number": number, "url": f"{JOB_URL}{number}/"}}


def build_json(result: str | None, building: bool, description: str | None = None,
               display_name: str = "#42") -> dict:
    return {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun", "number": 42,
            "url": BUILD_URL, "result": result, "building": building, "duration": 12500,
            "displayName": display_name, "description": description}


def add_crumb(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, URL + "crumbIssuer/api/json", json=CRUMB)


def add_trigger(rsps: responses.RequestsMock, queue_id: int = 7) -> None:
    rsps.add(responses.POST, JOB_URL + "buildWithParameters", status=201,
             headers={"Location": f"{URL}queue/item/{queue_id}/"})


def add_console(rsps: responses.RequestsMock, chunks: list[str]) -> None:
    offset = 0
    for i, chunk in enumerate(chunks):
        size = offset + len(chunk.encode())
        headers = {"X-Text-Size": str(size)}
        if i < len(chunks) - 1:
            headers["X-More-Data"] = "true"
        rsps.add(responses.GET, BUILD_URL + "logText/progressiveText", body=chunk,
                 headers=headers, match=[responses.matchers.query_param_matcher(
                     {"start": str(offset)})])
        offset = size


@responses.activate
def test_run_triggers_with_crumb_follows_queue_streams_console_and_returns_success() -> None:
    add_crumb(responses.mock)
    add_trigger(responses.mock)
    responses.add(responses.GET, URL + "queue/item/7/api/json",
                  json=waiting_item(7, "Waiting for next available executor"))
    responses.add(responses.GET, URL + "queue/item/7/api/json", json=left_item(7))
    add_console(responses.mock, ["Started by user Rita\n[Pipeline] sta", "ge\nFinished: SUCCESS\n"])
    responses.add(responses.GET, BUILD_URL + "api/json", json=build_json(None, True))
    responses.add(responses.GET, BUILD_URL + "api/json", json=build_json("SUCCESS", False))
    lines: list[str] = []

    outcome = client().run(JOB, {"APP": "web", "TO_ENV": "live"}, lines.append)

    assert outcome.ok and outcome.result == "SUCCESS"
    assert outcome.ref == BuildRef(JOB, 42, BUILD_URL)
    assert outcome.duration_s == 12.5
    assert lines == ["Started by user Rita", "[Pipeline] stage", "Finished: SUCCESS"]
    trigger = next(c.request for c in responses.calls if c.request.method == "POST")
    assert trigger.headers["Jenkins-Crumb"] == "c0ffee"
    assert parse_qs(urlparse(trigger.url).query) == {"APP": ["web"], "TO_ENV": ["live"]}
    assert trigger.headers["Authorization"].startswith("Basic ")


@responses.activate
def test_failed_build_is_reported_with_its_console_tail() -> None:
    add_crumb(responses.mock)
    add_trigger(responses.mock)
    responses.add(responses.GET, URL + "queue/item/7/api/json", json=left_item(7))
    add_console(responses.mock, ["refused: rita may not promote into live\nFinished: FAILURE\n"])
    responses.add(responses.GET, BUILD_URL + "api/json", json=build_json("FAILURE", False))

    outcome = client().run(JOB, {"APP": "web"}, lambda line: None)

    assert not outcome.ok and outcome.result == "FAILURE"
    assert outcome.console_tail[-2:] == ["refused: rita may not promote into live",
                                         "Finished: FAILURE"]


@responses.activate
def test_403_is_refused_naming_the_missing_permission() -> None:
    add_crumb(responses.mock)
    responses.add(responses.POST, JOB_URL + "buildWithParameters", status=403,
                  body="<html><body><h1>Access Denied</h1><p>bob is missing the Job/Build "
                       "permission</p></body></html>",
                  headers={"X-You-Are-Authenticated-As": "bob",
                           "X-Required-Permission": "hudson.model.Item.Build"})

    with pytest.raises(Refused) as caught:
        client().trigger(JOB, {"APP": "web"})

    assert "Jenkins refused bob: missing the Job/Build permission" in str(caught.value)
    assert caught.value.exit_code == 2
    assert len([c for c in responses.calls if c.request.method == "POST"]) == 1  # not retried


@responses.activate
def test_403_without_body_text_uses_the_required_permission_header() -> None:
    responses.add(responses.GET, URL + "crumbIssuer/api/json", status=403,
                  headers={"X-Required-Permission": "hudson.model.Hudson.Read"})

    with pytest.raises(Refused, match=r"missing the hudson\.model\.Hudson\.Read permission"):
        client().trigger(JOB, {"APP": "web"})


@responses.activate
def test_401_is_refused_and_names_the_credentials_to_check() -> None:
    add_crumb(responses.mock)
    responses.add(responses.POST, JOB_URL + "buildWithParameters", status=401,
                  body="Invalid password/token for user: rita")

    with pytest.raises(Refused, match="rejected the credentials of rita") as caught:
        client().trigger(JOB, {"APP": "web"})
    assert "PIPELINELIB_JENKINS_TOKEN" in caught.value.one_line()


@responses.activate
def test_a_rejected_crumb_is_fetched_again_once() -> None:
    responses.add(responses.GET, URL + "crumbIssuer/api/json", json=CRUMB)
    responses.add(responses.GET, URL + "crumbIssuer/api/json", json={**CRUMB, "crumb": "fresh"})
    responses.add(responses.POST, JOB_URL + "buildWithParameters", status=403,
                  body="No valid crumb was included in the request")
    add_trigger(responses.mock, queue_id=9)

    assert client().trigger(JOB, {"APP": "web"}) == 9
    posts = [c.request for c in responses.calls if c.request.method == "POST"]
    assert [p.headers["Jenkins-Crumb"] for p in posts] == ["c0ffee", "fresh"]


@responses.activate
def test_a_crumb_rejected_twice_fails_with_a_crumb_error() -> None:
    add_crumb(responses.mock)
    responses.add(responses.POST, JOB_URL + "buildWithParameters", status=403,
                  body="No valid crumb was included in the request")

    with pytest.raises(JenkinsCrumbRejected, match="rejected the CSRF crumb") as caught:
        client().trigger(JOB, {"APP": "web"})
    assert "API token" in caught.value.one_line()


@responses.activate
def test_crumb_issuer_answering_a_login_page_is_a_crumb_failure() -> None:
    responses.add(responses.GET, URL + "crumbIssuer/api/json", body="<html>Sign in</html>",
                  content_type="text/html")

    with pytest.raises(JenkinsCrumbRejected, match="did not answer with a crumb"):
        client().trigger(JOB, {"APP": "web"})
    assert not [c for c in responses.calls if c.request.method == "POST"]


@responses.activate
def test_no_crumb_issuer_means_csrf_protection_is_off() -> None:
    responses.add(responses.GET, URL + "crumbIssuer/api/json", status=404)
    add_trigger(responses.mock)

    assert client().trigger(JOB, {"APP": "web"}) == 7
    post = next(c.request for c in responses.calls if c.request.method == "POST")
    assert "Jenkins-Crumb" not in post.headers


@responses.activate
def test_a_build_that_never_leaves_the_queue_fails_naming_why_and_is_cancelled() -> None:
    add_crumb(responses.mock)
    responses.add(responses.GET, URL + "queue/item/7/api/json",
                  json=waiting_item(7, "There are no nodes with the label 'release'"))
    responses.add(responses.POST, URL + "queue/cancelItem", status=204)

    with capture_logs() as logs, pytest.raises(StepFailed) as caught:
        client().wait_for_build(JOB, 7, timeout_s=30, poll_s=1)

    message = caught.value.one_line()
    assert "never left the Jenkins queue in 30s" in message
    assert "There are no nodes with the label 'release'" in message
    assert "cancelled" in message
    cancel = next(c.request for c in responses.calls if c.request.method == "POST")
    assert cancel.url.endswith("queue/cancelItem?id=7")
    progress = [e for e in logs if e["event"] == "waiting in the Jenkins queue"]
    assert len(progress) >= 5 and progress[0]["why"].startswith("There are no nodes")


@responses.activate
def test_a_cancelled_queue_item_fails_at_once() -> None:
    add_crumb(responses.mock)
    responses.add(responses.GET, URL + "queue/item/7/api/json",
                  json={**left_item(7), "executable": None, "cancelled": True})

    with pytest.raises(StepFailed, match="cancelled while queued"):
        client().wait_for_build(JOB, 7)


@responses.activate
def test_5xx_is_retried_and_then_succeeds() -> None:
    add_crumb(responses.mock)
    responses.add(responses.POST, JOB_URL + "buildWithParameters", status=503)
    add_trigger(responses.mock, queue_id=11)

    assert client().trigger(JOB, {"APP": "web"}) == 11


@responses.activate
def test_persistent_5xx_is_unreachable() -> None:
    add_crumb(responses.mock)
    responses.add(responses.GET, URL + "queue/item/7/api/json", status=502)

    with pytest.raises(Unreachable, match="kept failing"):
        client().wait_for_build(JOB, 7)
    assert len([c for c in responses.calls if "queue/item" in c.request.url]) == 4


def test_connection_refused_is_unreachable() -> None:
    refused = JenkinsClient("http://127.0.0.1:9/", "rita", "t")
    with pytest.raises(Unreachable, match="unreachable") as caught:
        refused.build_info(BuildRef(JOB, 1))
    assert caught.value.exit_code == 3


@responses.activate
def test_an_unknown_job_is_bad_input() -> None:
    add_crumb(responses.mock)
    responses.add(responses.POST, URL + "job/release/job/nope/buildWithParameters", status=404)

    with pytest.raises(BadInput, match="Jenkins has no job 'release/nope'"):
        client().trigger("release/nope", {"APP": "web"})


@responses.activate
def test_describe_build_sets_description_and_display_name_then_is_a_no_op() -> None:
    add_crumb(responses.mock)
    responses.add(responses.GET, BUILD_URL + "api/json", json=build_json("SUCCESS", False))
    responses.add(responses.POST, BUILD_URL + "configSubmit", status=302,
                  headers={"Location": BUILD_URL})
    responses.add(responses.GET, BUILD_URL, body="build page")
    ref = BuildRef.from_url(BUILD_URL)

    actions = client().describe_build(ref, description="Successfully Deployed web to live",
                                      display_name="#42 web live ✓")

    assert actions == ["set display name of release/promote #42",
                       "set description of release/promote #42"]
    post = next(c.request for c in responses.calls if c.request.method == "POST")
    form = json.loads(parse_qs(post.body)["json"][0])
    assert form == {"displayName": "#42 web live ✓",
                    "description": "Successfully Deployed web to live"}

    responses.replace(responses.GET, BUILD_URL + "api/json",
                      json=build_json("SUCCESS", False, "Successfully Deployed web to live",
                                      "#42 web live ✓"))
    assert client().describe_build(ref, description="Successfully Deployed web to live",
                                   display_name="#42 web live ✓") == []


@responses.activate
def test_describe_build_uses_submit_description_for_the_description_alone() -> None:
    add_crumb(responses.mock)
    responses.add(responses.GET, BUILD_URL + "api/json", json=build_json("FAILURE", False))
    responses.add(responses.POST, BUILD_URL + "submitDescription", status=302,
                  headers={"Location": BUILD_URL})
    responses.add(responses.GET, BUILD_URL, body="build page")

    actions = client().describe_build(BuildRef(JOB, 42, BUILD_URL),
                                      description="Failed Deployment")

    assert actions == ["set description of release/promote #42"]
    post = next(c.request for c in responses.calls if c.request.method == "POST")
    assert parse_qs(post.body) == {"description": ["Failed Deployment"]}


@responses.activate
def test_console_lines_are_redacted() -> None:
    add_console(responses.mock, ["token is api-token-123 here\n"])
    secrets = Secrets(["api-token-123"])
    lines: list[str] = []

    client(redact=secrets.redact_text).stream_console(BuildRef(JOB, 42, BUILD_URL), lines.append)

    assert lines and "api-token-123" not in lines[0]


def test_build_urls_and_job_paths_round_trip_folders() -> None:
    ref = BuildRef.from_url("https://ci.example.org/jenkins/job/team%20a/job/web/17/")
    assert (ref.job, ref.number) == ("team a/web", 17)
    assert job_path("team a/web") == "job/team%20a/job/web/"
    with pytest.raises(BadInput):
        BuildRef.from_url("https://ci.example.org/view/all/")


def test_login_needs_a_url_and_registers_the_token_as_a_secret() -> None:
    from pipelinelib.context import Credentials

    with pytest.raises(BadInput, match="PIPELINELIB_JENKINS_URL"):
        JenkinsClient.login(None, None, None)
    secrets = Secrets()
    login = Credentials.from_env({"JENKINS_URL": URL, "PIPELINELIB_JENKINS_USER": "rita",
                                  "PIPELINELIB_JENKINS_TOKEN": "tok-456"}).jenkins
    built = JenkinsClient.login(login.url, login.user, login.token, secrets=secrets)
    assert built.url == URL and built.username == "rita" and "tok-456" in secrets


# -- jobs/promote_trigger.py -----------------------------------------------------------------

def _trigger_main():
    spec = importlib.util.spec_from_file_location("promote_trigger",
                                                  ROOT / "jobs" / "promote_trigger.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.main


ENV = {"PIPELINELIB_JENKINS_URL": URL, "PIPELINELIB_JENKINS_USER": "rita",
       "PIPELINELIB_JENKINS_TOKEN": "api-token-123"}


@responses.activate
def test_promote_trigger_runs_the_promotion_job_and_exits_with_its_result(tmp_path: Path) -> None:
    add_crumb(responses.mock)
    add_trigger(responses.mock)
    responses.add(responses.GET, URL + "queue/item/7/api/json", json=left_item(7))
    add_console(responses.mock, ["Promoting web to live\nFinished: SUCCESS\n"])
    responses.add(responses.GET, BUILD_URL + "api/json", json=build_json("SUCCESS", False))
    lines: list[str] = []
    clock = FakeClock()

    code = _trigger_main()(["--app", "web", "--from", "staging", "--to", "live",
                            "--report-dir", str(tmp_path)], env=ENV, out=lines.append,
                           sleep=clock.sleep, clock=clock)

    assert code == 0
    assert lines == ["Promoting web to live", "Finished: SUCCESS"]
    post = next(c.request for c in responses.calls if c.request.method == "POST")
    assert parse_qs(urlparse(post.url).query, keep_blank_values=True) == {
        "APP": ["web"], "TO_ENV": ["live"], "FROM_ENV": ["staging"], "APPROVE_ONLY": ["false"]}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "api-token-123" not in json.dumps(summary)


@responses.activate
def test_promote_trigger_exits_1_when_the_promotion_fails(tmp_path: Path) -> None:
    add_crumb(responses.mock)
    add_trigger(responses.mock)
    responses.add(responses.GET, URL + "queue/item/7/api/json", json=left_item(7))
    add_console(responses.mock, ["refused\nFinished: FAILURE\n"])
    responses.add(responses.GET, BUILD_URL + "api/json", json=build_json("FAILURE", False))

    code = _trigger_main()(["--app", "web", "--to", "live", "--report-dir", str(tmp_path)],
                           env=ENV, out=lambda line: None)

    assert code == 1
    assert "FAILURE" in (tmp_path / "summary.md").read_text()


@responses.activate
def test_promote_trigger_exits_2_when_jenkins_refuses() -> None:
    add_crumb(responses.mock)
    responses.add(responses.POST, JOB_URL + "buildWithParameters", status=403,
                  body="bob is missing the Job/Build permission")

    assert _trigger_main()(["--app", "web", "--to", "live"], env=ENV, out=print) == 2


@responses.activate
def test_promote_trigger_validates_before_contacting_jenkins(capsys: pytest.CaptureFixture) -> None:
    main = _trigger_main()
    image = "ns/web@sha256:" + "a" * 64
    assert main(["--app", "web", "--to", "live", "--hotfix", "--image", image], env=ENV) == 2
    assert "a hot-fix needs a reason" in capsys.readouterr().err
    assert main(["--app", "Web App", "--to", "live"], env=ENV) == 2
    assert main(["--app", "web", "--to", "live", "--hotfix", "--image", "ns/web:latest",
                 "--reason", "CVE"], env=ENV) == 2
    assert main(["--app", "web", "--to", "live", "--image", image], env=ENV) == 2
    assert not responses.calls


@responses.activate
def test_promote_trigger_hotfix_uses_the_hotfix_job_with_its_reason() -> None:
    add_crumb(responses.mock)
    responses.add(responses.POST, URL + "job/release/job/hotfix/buildWithParameters", status=201,
                  headers={"Location": URL + "queue/item/8/"})
    responses.add(responses.GET, URL + "queue/item/8/api/json", json=left_item(8, 5))
    hotfix_build = URL + "job/release/job/hotfix/5/"
    responses.add(responses.GET, hotfix_build + "logText/progressiveText", body="ok\n",
                  headers={"X-Text-Size": "3"})
    responses.add(responses.GET, hotfix_build + "api/json",
                  json={**build_json("SUCCESS", False), "number": 5, "url": hotfix_build})

    code = _trigger_main()(["--app", "web", "--to", "live", "--hotfix", "--image",
                            "ns/web@sha256:" + "b" * 64, "--reason", "CVE-2024-1234 in login"],
                           env=ENV, out=lambda line: None)

    assert code == 0
    post = next(c.request for c in responses.calls if c.request.method == "POST")
    assert parse_qs(urlparse(post.url).query) == {"APP": ["web"], "TO_ENV": ["live"],
                                   "IMAGE": ["ns/web@sha256:" + "b" * 64],
                                   "REASON": ["CVE-2024-1234 in login"]}


@responses.activate
def test_a_quiet_running_build_logs_progress_and_times_out_with_its_tail() -> None:
    responses.add(responses.GET, BUILD_URL + "logText/progressiveText", body="deploying\n",
                  headers={"X-Text-Size": "10", "X-More-Data": "true"},
                  match=[responses.matchers.query_param_matcher({"start": "0"})])
    responses.add(responses.GET, BUILD_URL + "logText/progressiveText", body="",
                  headers={"X-Text-Size": "10", "X-More-Data": "true"},
                  match=[responses.matchers.query_param_matcher({"start": "10"})])

    with capture_logs() as logs, pytest.raises(StepFailed, match="still running after 20s") as e:
        client().stream_console(BuildRef(JOB, 42, BUILD_URL), lambda line: None, timeout_s=20)

    assert e.value.evidence == ["deploying"]
    assert [x for x in logs if x["event"] == "build running, no new console output"]


@responses.activate
def test_python_jenkins_is_used_as_designed_with_no_subclass_or_override() -> None:
    """build_job -> get_queue_item -> get_build_info: the library's own URLs (its depth=0
    query), its own crumb handling; the client is python-jenkins' Jenkins itself."""
    import jenkins

    add_crumb(responses.mock)
    add_trigger(responses.mock)
    responses.add(responses.GET, URL + "queue/item/7/api/json", json=left_item(7))
    responses.add(responses.GET, BUILD_URL + "api/json", json=build_json("SUCCESS", False))
    c = client()
    assert type(c.server) is jenkins.Jenkins

    ref = c.wait_for_build(JOB, c.trigger(JOB, {"APP": "web"}))
    outcome = c.build_result(ref)

    assert outcome.result == "SUCCESS"
    urls = [call.request.url for call in responses.calls]
    assert urls[0] == URL + "crumbIssuer/api/json"
    assert urls.count(URL + "crumbIssuer/api/json") == 1  # fetched once, then reused
    assert URL + "queue/item/7/api/json?depth=0" in urls
    assert BUILD_URL + "api/json?depth=0" in urls


@responses.activate
def test_cancel_answers_204_and_a_gone_queue_item_is_a_clear_failure() -> None:
    add_crumb(responses.mock)
    responses.add(responses.POST, URL + "queue/cancelItem", status=204)
    responses.add(responses.GET, URL + "queue/item/9/api/json", status=404)
    c = client()

    with capture_logs() as logs:
        c._cancel_queue_item(7)
    assert [e["event"] for e in logs] == ["cancelled the queued build"]
    with pytest.raises(StepFailed, match="queue item 9 is gone"):
        c.wait_for_build(JOB, 9)
