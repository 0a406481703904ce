"""Jenkins over its JSON API (python-jenkins): trigger, follow, stream, describe.

The release managers' promotion is a parameterized Jenkins job. From outside Jenkins we:

1. ``trigger``: POST ``job/NAME/buildWithParameters`` (with the CSRF crumb from
   ``crumbIssuer/api/json``) -> 201 and ``Location: .../queue/item/N/``;
2. ``wait_for_build``: poll ``queue/item/N/api/json`` until it has an ``executable``
   (the build) -- bounded, logging Jenkins' own ``why`` while it waits, and cancelling
   the item when it never leaves the queue (a promotion must not fire hours later);
3. ``stream_console``: ``logText/progressiveText?start=K`` while ``X-More-Data: true``,
   the next offset in ``X-Text-Size``;
4. ``build_result``: ``job/NAME/N/api/json`` until ``building`` is false.

``describe_build`` sets a build's description / display name (the "Successfully Deployed" /
"Failed Deployment" annotation) and is a no-op when they already say that.

Errors: 401 -> ``Refused`` (credentials); 403 -> ``Refused`` naming the missing permission
(Jenkins' ``X-Required-Permission`` header or its "is missing the X permission" text); a
rejected crumb is fetched again once, then ``JenkinsCrumbRejected``; 404 job -> ``BadInput``;
connection errors, 5xx, 429 and 409 are retried (pipelinelib.retry) and then ``Unreachable``.
python-jenkins provides the session, authentication and URL rules; we read the status codes
ourselves (its own errors fold 401, 403 and 500 into one exception).
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlparse

import requests
import structlog

from pipelinelib.errors import BadInput, Refused, StepFailed, TransientError, Unreachable
from pipelinelib.retry import TRANSIENT_STATUS, HTTPStatusError, transient_retry

CRUMB_PATH = "crumbIssuer/api/json"
BUILD_TREE = "number,url,result,building,duration,displayName,description"
_MISSING_PERMISSION = re.compile(r"is missing the ([\w/ ]+?) permission")
_CRUMB_REJECTED = "No valid crumb"
_ANSI_HTML = re.compile(r"<[^>]+>")


class JenkinsCrumbRejected(StepFailed):
    """Jenkins rejected our CSRF crumb, even a fresh one."""


class JenkinsHTTPError(HTTPStatusError):
    """Internal: a Jenkins answer with an error status (carries ``status`` for the retry policy)."""

    def __init__(self, response: requests.Response):
        super().__init__(response, f"HTTP {response.status_code} from {response.request.method} "
                                   f"{_path_of(response.url)}")


@dataclass(frozen=True)
class BuildRef:
    """One build of a job: ``job`` is the full name with folders (``release/promote``)."""

    job: str
    number: int
    url: str = ""

    @classmethod
    def from_url(cls, build_url: str) -> BuildRef:
        """Parse a ``BUILD_URL`` such as ``https://ci/job/release/job/promote/42/``."""
        parts = [p for p in urlparse(build_url).path.split("/") if p]
        names = [unquote(parts[i + 1]) for i, p in enumerate(parts[:-1]) if p == "job"]
        if not names or not parts[-1].isdigit():
            raise BadInput("not a Jenkins build URL", field="BUILD_URL",
                           expected="https://HOST/job/NAME/NUMBER/")
        return cls("/".join(names), int(parts[-1]), build_url)


@dataclass(frozen=True)
class BuildOutcome:
    """How a build ended."""

    ref: BuildRef
    result: str
    duration_s: float = 0.0
    console_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.result == "SUCCESS"


def job_path(name: str) -> str:
    """``release/promote`` -> ``job/release/job/promote/`` (each part URL-quoted)."""
    parts = [p for p in name.strip("/").split("/") if p]
    if not parts:
        raise BadInput("empty Jenkins job name", field="job", expected="NAME or FOLDER/NAME")
    return "".join(f"job/{quote(p, safe='')}/" for p in parts)


def _path_of(url: str) -> str:
    return urlparse(url).path


def _status_keeping(base: type) -> type:
    """python-jenkins' client, minus its error folding (it turns 401, 403 and 500 into one
    exception): we keep its session, authentication and headers and read statuses ourselves."""

    class StatusKeepingJenkins(base):  # type: ignore[misc, valid-type]
        def _response_handler(self, response: requests.Response) -> requests.Response:
            return response

    return StatusKeepingJenkins


class JenkinsClient:
    """A Jenkins server reached with a user's API token (never a password in code or logs).

    ``sleep`` and ``clock`` are injectable so waits can be tested without waiting.
    """

    def __init__(
        self,
        url: str,
        username: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 15.0,
        redact: Callable[[str], str] = lambda text: text,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        progress_every_s: float = 5.0,
    ):
        import jenkins  # python-jenkins: imported on first use (start-up time)

        self.url = url.rstrip("/") + "/"
        self.username = username or "anonymous"
        self._server = _status_keeping(jenkins.Jenkins)(
            self.url, username=username, password=token, timeout=timeout, retries=0)
        self._crumb: dict[str, str] | None = None
        self._crumb_known = False
        self.redact = redact
        self.sleep, self.clock = sleep, clock
        self.progress_every_s = progress_every_s
        self.log = structlog.get_logger("pipelinelib.jenkins").bind(jenkins=self.url)

    @classmethod
    def from_env(cls, env: Mapping[str, str], secrets: Any = None, **kwargs: Any) -> JenkinsClient:
        """From ``PIPELINELIB_JENKINS_URL`` (or Jenkins' own ``JENKINS_URL``),
        ``PIPELINELIB_JENKINS_USER`` and ``PIPELINELIB_JENKINS_TOKEN`` (an API token)."""
        url = env.get("PIPELINELIB_JENKINS_URL") or env.get("JENKINS_URL")
        if not url:
            raise BadInput("no Jenkins server configured", field="PIPELINELIB_JENKINS_URL",
                           expected="the Jenkins URL, e.g. https://ci.example.org/")
        token = env.get("PIPELINELIB_JENKINS_TOKEN") or None
        if secrets is not None and token:
            secrets.add(token)
            kwargs.setdefault("redact", secrets.redact_text)
        return cls(url, env.get("PIPELINELIB_JENKINS_USER") or None, token, **kwargs)

    # -- trigger and follow ------------------------------------------------------------------
    def trigger(self, job: str, parameters: Mapping[str, str] | None = None) -> int:
        """Queue a build of ``job``; returns the queue item id."""
        path = job_path(job) + ("buildWithParameters" if parameters else "build")
        response = self._call("POST", path, data=dict(parameters or {}), what=f"job {job}",
                              not_found=lambda: BadInput(
                                  f"Jenkins has no job {job!r} (or you may not see it)",
                                  field="job", expected="an existing job name"))
        location = response.headers.get("Location", "")
        match = re.search(r"/queue/item/(\d+)/?$", location)
        if not match:
            raise StepFailed(f"Jenkins queued {job} but did not say where",
                             cause=f"HTTP {response.status_code}, Location: {location or '-'}",
                             hint="Jenkins 1.x answers buildWithParameters without a queue "
                                  "item; use Jenkins 2.x")
        queue_id = int(match.group(1))
        self.log.info("build queued", job=job, queue_item=queue_id)
        return queue_id

    def wait_for_build(self, job: str, queue_id: int, timeout_s: float = 300.0,
                       poll_s: float = 1.0) -> BuildRef:
        """Follow queue item ``queue_id`` to its build; cancel it if it never starts."""
        started = self.clock()
        next_progress = started + self.progress_every_s
        why = ""
        while True:
            item = self._json(f"queue/item/{queue_id}/api/json", what=f"queue item {queue_id}",
                              not_found=lambda: StepFailed(
                                  f"Jenkins queue item {queue_id} is gone",
                                  hint="Jenkins forgets finished queue items after ~5 minutes; "
                                       "look for the build in the job's history"))
            executable = item.get("executable")
            if executable and executable.get("number") is not None:
                ref = BuildRef(job, int(executable["number"]), executable.get("url", ""))
                self.log.info("build started", job=job, build=ref.number, url=ref.url,
                              queued_s=round(self.clock() - started, 1))
                return ref
            if item.get("cancelled"):
                raise StepFailed(f"the {job} build was cancelled while queued",
                                 cause=f"queue item {queue_id} cancelled in Jenkins",
                                 hint="trigger it again")
            why = item.get("why") or why
            now = self.clock()
            if now - started >= timeout_s:
                self._cancel_queue_item(queue_id)
                raise StepFailed(
                    f"the {job} build never left the Jenkins queue in {timeout_s:.0f}s",
                    cause=f"Jenkins says: {why or 'no reason given'}",
                    hint="free an executor or bring up an agent with the job's label, then "
                         "trigger again; the queued item was cancelled so it cannot start later",
                )
            if now >= next_progress:
                self.log.info("waiting in the Jenkins queue", job=job, queue_item=queue_id,
                              why=why, waited_s=round(now - started, 1))
                next_progress = now + self.progress_every_s
            self.sleep(poll_s)

    def stream_console(self, ref: BuildRef, out: Callable[[str], None],
                       timeout_s: float = 3600.0, poll_s: float = 1.0,
                       tail_lines: int = 30) -> list[str]:
        """Send each console line of ``ref`` to ``out`` (redacted) until the log ends.

        Returns the last ``tail_lines`` lines (the evidence for a failure).
        """
        started = self.clock()
        quiet_since = started
        offset, pending = 0, ""
        tail: deque[str] = deque(maxlen=tail_lines)
        path = f"{job_path(ref.job)}{ref.number}/logText/progressiveText"
        while True:
            response = self._call("GET", path, params={"start": offset},
                                  what=f"{ref.job} #{ref.number} console")
            text = pending + response.text
            *lines, pending = text.split("\n")
            for line in lines:
                clean = self.redact(line.rstrip("\r"))
                tail.append(clean)
                out(clean)
            offset = int(response.headers.get("X-Text-Size", offset + len(response.content)))
            if response.headers.get("X-More-Data", "").lower() != "true":
                break
            now = self.clock()
            if lines:
                quiet_since = now
            elif now - quiet_since >= self.progress_every_s:
                self.log.info("build running, no new console output", job=ref.job,
                              build=ref.number, quiet_s=round(now - quiet_since, 1))
                quiet_since = now
            if now - started >= timeout_s:
                raise StepFailed(
                    f"{ref.job} #{ref.number} still running after {timeout_s:.0f}s",
                    hint=f"follow or stop it at {ref.url or self.url + path}",
                    evidence=list(tail))
            self.sleep(poll_s)
        if pending:
            clean = self.redact(pending)
            tail.append(clean)
            out(clean)
        return list(tail)

    def build_info(self, ref: BuildRef) -> dict[str, Any]:
        """The build's JSON (result, building, duration, displayName, description)."""
        return self._json(f"{job_path(ref.job)}{ref.number}/api/json", params={"tree": BUILD_TREE},
                          what=f"{ref.job} #{ref.number}")

    def build_result(self, ref: BuildRef, timeout_s: float = 120.0,
                     poll_s: float = 1.0) -> BuildOutcome:
        """Wait until the build is no longer building; return how it ended."""
        started = self.clock()
        while True:
            info = self.build_info(ref)
            if not info.get("building") and info.get("result"):
                return BuildOutcome(ref, str(info["result"]),
                                    round(float(info.get("duration") or 0) / 1000, 3))
            if self.clock() - started >= timeout_s:
                raise StepFailed(f"{ref.job} #{ref.number} has no result after {timeout_s:.0f}s",
                                 hint=f"see {ref.url or self.url}")
            self.sleep(poll_s)

    def run(self, job: str, parameters: Mapping[str, str], out: Callable[[str], None],
            queue_timeout_s: float = 300.0, build_timeout_s: float = 3600.0,
            poll_s: float = 1.0) -> BuildOutcome:
        """Trigger ``job``, follow it to its build, stream the console, return the outcome."""
        queue_id = self.trigger(job, parameters)
        ref = self.wait_for_build(job, queue_id, timeout_s=queue_timeout_s, poll_s=poll_s)
        tail = self.stream_console(ref, out, timeout_s=build_timeout_s, poll_s=poll_s)
        outcome = self.build_result(ref, poll_s=poll_s)
        return BuildOutcome(ref, outcome.result, outcome.duration_s, tail)

    # -- describe ------------------------------------------------------------------------------
    def describe_build(self, ref: BuildRef, description: str | None = None,
                       display_name: str | None = None) -> list[str]:
        """Set the description and/or display name; returns the actions (empty: unchanged)."""
        info = self.build_info(ref)
        actions: list[str] = []
        base = f"{job_path(ref.job)}{ref.number}/"
        current_description = info.get("description") or ""
        if description is not None:
            description = self.redact(description)
        if display_name is not None:
            display_name = self.redact(display_name)
        if display_name is not None and display_name != info.get("displayName"):
            form = {"displayName": display_name,
                    "description": current_description if description is None else description}
            self._call("POST", base + "configSubmit", data={"json": json.dumps(form)},
                       what=f"{ref.job} #{ref.number}")
            actions.append(f"set display name of {ref.job} #{ref.number}")
            if description is not None and description != current_description:
                actions.append(f"set description of {ref.job} #{ref.number}")
            return actions
        if description is not None and description != current_description:
            self._call("POST", base + "submitDescription", data={"description": description},
                       what=f"{ref.job} #{ref.number}")
            actions.append(f"set description of {ref.job} #{ref.number}")
        return actions

    # -- transport -----------------------------------------------------------------------------
    def _json(self, path: str, *, what: str, params: dict[str, Any] | None = None,
              not_found: Callable[[], Exception] | None = None) -> dict[str, Any]:
        response = self._call("GET", path, params=params, what=what, not_found=not_found)
        try:
            return response.json()
        except ValueError as exc:
            raise StepFailed(f"Jenkins answered {what} with something that is not JSON",
                             cause=response.text[:200],
                             hint="check the Jenkins URL (a proxy or login page?)") from exc

    def _call(self, method: str, path: str, *, what: str,
              not_found: Callable[[], Exception] | None = None, **kwargs: Any
              ) -> requests.Response:
        """One request: crumb added to POSTs, transient faults retried, errors translated."""
        try:
            try:
                return self._retried(method, path, **kwargs)
            except JenkinsHTTPError as exc:
                if exc.status == 403 and method == "POST" and _CRUMB_REJECTED in exc.response.text:
                    self.log.warning("crumb rejected; fetching a fresh one", path=path)
                    self._crumb_known = False
                    try:
                        return self._retried(method, path, **kwargs)
                    except JenkinsHTTPError as again:
                        if again.status == 403 and _CRUMB_REJECTED in again.response.text:
                            raise JenkinsCrumbRejected(
                                f"Jenkins rejected the CSRF crumb for {what}",
                                cause="No valid crumb was included in the request",
                                hint="use an API token (crumbs are bound to a web session), "
                                     "and keep proxies from dropping the session cookie",
                            ) from again
                        raise
                raise
        except JenkinsHTTPError as exc:
            raise self._translate(exc, what, not_found) from exc
        except TransientError as exc:
            raise Unreachable(f"Jenkins at {self.url} is unreachable or failing ({what})",
                              cause=str(exc), hint="check the URL and that Jenkins is up") from exc
        except requests.RequestException as exc:
            raise Unreachable(f"Jenkins at {self.url} is unreachable ({what})",
                              cause=self.redact(str(exc))[:300],
                              hint="check the URL and that Jenkins is up") from exc

    @transient_retry(attempts=4, max_delay_s=30)
    def _retried(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if method == "POST":
            headers.update(self._crumb_header())
        response = self._raw(requests.Request(method, self.url + path, headers=headers, **kwargs))
        if response.status_code >= 400:
            raise JenkinsHTTPError(response)  # 5xx/409/429 are retried: it carries .status
        return response

    def _crumb_header(self) -> dict[str, str]:
        if not self._crumb_known:
            self._crumb = self._fetch_crumb()
            self._crumb_known = True
        if not self._crumb:
            return {}
        return {self._crumb["crumbRequestField"]: self._crumb["crumb"]}

    def _fetch_crumb(self) -> dict[str, str] | None:
        """The CSRF crumb, or None when Jenkins has CSRF protection off (404)."""
        request = requests.Request("GET", self.url + CRUMB_PATH)
        response = self._raw(request)
        if response.status_code == 404:
            return None
        if response.status_code in TRANSIENT_STATUS:
            raise TransientError(f"crumb issuer answered HTTP {response.status_code}",
                                 status=response.status_code)
        if response.status_code >= 400:
            raise JenkinsHTTPError(response)
        try:
            crumb = response.json()
            return {"crumbRequestField": str(crumb["crumbRequestField"]),
                    "crumb": str(crumb["crumb"])}
        except (ValueError, KeyError, TypeError) as exc:
            raise JenkinsCrumbRejected(
                "Jenkins' crumb issuer did not answer with a crumb",
                cause=response.text[:200],
                hint="check the Jenkins URL (a proxy or login page in between?)") from exc

    def _raw(self, request: requests.Request) -> requests.Response:
        """Send with python-jenkins' session and auth; the status is left to us."""
        import jenkins

        try:
            return self._server.jenkins_request(request, add_crumb=False)
        except jenkins.TimeoutException as exc:
            raise TransientError(f"timeout: {exc}") from exc

    def _translate(self, exc: JenkinsHTTPError, what: str,
                   not_found: Callable[[], Exception] | None) -> Exception:
        response, status = exc.response, exc.status
        if status == 404 and not_found is not None:
            return not_found()
        if status == 401:
            return Refused(f"Jenkins rejected the credentials of {self.username} ({what})",
                           hint="check PIPELINELIB_JENKINS_USER and PIPELINELIB_JENKINS_TOKEN "
                                "(an API token from the user's Security page)")
        if status == 403:
            who = response.headers.get("X-You-Are-Authenticated-As") or self.username
            permission = response.headers.get("X-Required-Permission") or ""
            match = _MISSING_PERMISSION.search(_ANSI_HTML.sub(" ", response.text))
            if match:
                permission = match.group(1).strip()
            permission = permission or "required"
            return Refused(f"Jenkins refused {who}: missing the {permission} permission ({what})",
                           hint="ask a Jenkins admin for it; promotion jobs allow only the "
                                "release-managers group (jenkins/jobs/release-jobs.yaml)")
        if status in TRANSIENT_STATUS:
            return Unreachable(f"Jenkins at {self.url} kept failing ({what}): HTTP {status}",
                               hint="retried with back-off; check Jenkins' health")
        if status == 400:
            return BadInput(f"Jenkins rejected the request for {what}: "
                            f"{self.redact(_ANSI_HTML.sub(' ', response.text))[:200].strip()}",
                            field="parameters", expected="the job's declared parameters")
        return StepFailed(f"Jenkins answered HTTP {status} for {what}",
                          cause=self.redact(_ANSI_HTML.sub(" ", response.text))[:200].strip())

    def _cancel_queue_item(self, queue_id: int) -> None:
        try:
            self._call("POST", "queue/cancelItem", params={"id": queue_id},
                       what=f"cancel queue item {queue_id}")
            self.log.warning("cancelled the queued build", queue_item=queue_id)
        except (StepFailed, Unreachable, Refused) as exc:
            self.log.warning("could not cancel the queued build", queue_item=queue_id,
                             error=exc.one_line())
