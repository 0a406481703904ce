"""Jenkins over its JSON API with python-jenkins: trigger, follow, stream, describe.

The release managers' promotion is a parameterized Jenkins job. From outside Jenkins we use
python-jenkins as designed:

1. ``trigger``: ``Jenkins.build_job`` (POST ``job/NAME/buildWithParameters``, the CSRF crumb
   from ``crumbIssuer/api/json`` added by python-jenkins) -> the queue item number it reads
   from ``Location: .../queue/item/N/``;
2. ``wait_for_build``: ``Jenkins.get_queue_item(N)`` until it has an ``executable`` (the
   build) -- bounded, logging Jenkins' own ``why`` while it waits, and ``cancel_queue`` when
   it never leaves the queue (a promotion must not fire hours later);
3. ``build_result``: ``Jenkins.get_build_info`` until ``building`` is false; its ``result``.

Only what python-jenkins lacks goes through its public ``jenkins_request`` (its session,
authentication and crumb): the progressive console (``logText/progressiveText?start=K``
while ``X-More-Data: true``) and a build's description / display name
(``submitDescription`` / ``configSubmit``; ``describe_build`` is a no-op when they already
say that).

Errors: python-jenkins folds 401, 403 and 500 into ``JenkinsException`` (and 404 into
``NotFoundException``); the HTTP response is still on the exception chain, so we translate
by status: 401 -> ``Refused`` (credentials); 403 -> ``Refused`` naming the missing
permission (``X-Required-Permission`` or Jenkins' "is missing the X permission" text); a
rejected crumb is fetched again once, then ``JenkinsCrumbRejected``; 404 job -> ``BadInput``;
connection errors, 5xx, 429 and 409 are retried (pipelinelib.retry) and then ``Unreachable``.
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


def _response_of(exc: BaseException | None) -> requests.Response | None:
    """The HTTP response behind a python-jenkins or requests error (on its context chain)."""
    seen = 0
    while exc is not None and seen < 5:
        response = getattr(exc, "response", None)
        if isinstance(response, requests.Response):
            return response
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


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
        self.server = jenkins.Jenkins(self.url, username=username, password=token,
                                      timeout=timeout, retries=0)
        self.redact = redact
        self.sleep, self.clock = sleep, clock
        self.progress_every_s = progress_every_s
        self.log = structlog.get_logger("pipelinelib.jenkins").bind(jenkins=self.url)

    @classmethod
    def login(cls, url: str | None, user: str | None, token: str | None, *,
              secrets: Any = None, **kwargs: Any) -> JenkinsClient:
        """Logged in to ``url`` as ``user`` with an API token (the context's
        ``Credentials.jenkins``: ``PIPELINELIB_JENKINS_URL`` or Jenkins' own
        ``JENKINS_URL``, ``PIPELINELIB_JENKINS_USER``, ``PIPELINELIB_JENKINS_TOKEN``); the
        token is one of ``secrets``. BadInput without a URL."""
        if not url:
            raise BadInput("no Jenkins server configured", field="PIPELINELIB_JENKINS_URL",
                           expected="the Jenkins URL, e.g. https://ci.example.org/")
        if secrets is not None and token:
            secrets.add(token)
            kwargs.setdefault("redact", secrets.redact_text)
        return cls(url, user, token, **kwargs)

    # -- trigger and follow ------------------------------------------------------------------
    def trigger(self, job: str, parameters: Mapping[str, str] | None = None) -> int:
        """Queue a build of ``job`` (``Jenkins.build_job``); returns the queue item number."""
        import jenkins

        job_path(job)  # validates the name
        try:
            queue_id = self._api(f"job {job}", self.server.build_job, job,
                                 dict(parameters) if parameters else None, post=True,
                                 not_found=lambda: BadInput(
                                     f"Jenkins has no job {job!r} (or you may not see it)",
                                     field="job", expected="an existing job name"))
        except jenkins.EmptyResponseException as exc:
            raise StepFailed(f"Jenkins queued {job} but did not say where",
                             cause=str(exc),
                             hint="Jenkins 1.x answers buildWithParameters without a queue "
                                  "item; use Jenkins 2.x") from exc
        self.log.info("build queued", job=job, queue_item=queue_id)
        return int(queue_id)

    def wait_for_build(self, job: str, queue_id: int, timeout_s: float = 300.0,
                       poll_s: float = 1.0) -> BuildRef:
        """Follow queue item ``queue_id`` to its build; cancel it if it never starts."""
        started = self.clock()
        next_progress = started + self.progress_every_s
        why = ""
        while True:
            item = self._api(f"queue item {queue_id}", self.server.get_queue_item, queue_id,
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
            response = self._request("GET", path, params={"start": offset},
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
        """The build's JSON (result, building, duration, displayName, description):
        ``Jenkins.get_build_info``."""
        info: dict[str, Any] = self._api(f"{ref.job} #{ref.number}",
                                         self.server.get_build_info, ref.job, ref.number)
        return info

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
            self._request("POST", base + "configSubmit", data={"json": json.dumps(form)},
                          what=f"{ref.job} #{ref.number}")
            actions.append(f"set display name of {ref.job} #{ref.number}")
            if description is not None and description != current_description:
                actions.append(f"set description of {ref.job} #{ref.number}")
            return actions
        if description is not None and description != current_description:
            self._request("POST", base + "submitDescription",
                          data={"description": description}, what=f"{ref.job} #{ref.number}")
            actions.append(f"set description of {ref.job} #{ref.number}")
        return actions

    # -- transport -----------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, what: str, **kwargs: Any) -> requests.Response:
        """What python-jenkins has no method for: one request through its ``jenkins_request``
        (session, authentication, crumb on POSTs)."""
        request = requests.Request(method, self.url + path, **kwargs)
        response: requests.Response = self._api(
            what, self.server.jenkins_request, request, add_crumb=method == "POST",
            post=method == "POST")
        return response

    def _api(self, what: str, call: Callable[..., Any], *args: Any, post: bool = False,
             not_found: Callable[[], Exception] | None = None, **kwargs: Any) -> Any:
        """One python-jenkins call: transient faults retried, a rejected crumb fetched again
        once, errors translated to ours."""
        import jenkins

        try:
            try:
                return self._retried(call, *args, **kwargs)
            except JenkinsHTTPError as exc:
                if not (exc.status == 403 and post and _CRUMB_REJECTED in exc.response.text):
                    raise
                self.log.warning("crumb rejected; fetching a fresh one", what=what)
                self.server.crumb = None  # python-jenkins fetches it again on the next POST
                try:
                    return self._retried(call, *args, **kwargs)
                except JenkinsHTTPError as again:
                    if again.status == 403 and _CRUMB_REJECTED in again.response.text:
                        raise JenkinsCrumbRejected(
                            f"Jenkins rejected the CSRF crumb for {what}",
                            cause="No valid crumb was included in the request",
                            hint="use an API token (crumbs are bound to a web session), "
                                 "and keep proxies from dropping the session cookie",
                        ) from again
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
        except ValueError as exc:  # JSON that is not JSON: a login page, a proxy
            if post and self.server.crumb is None:
                raise JenkinsCrumbRejected(
                    "Jenkins' crumb issuer did not answer with a crumb", cause=str(exc)[:200],
                    hint="check the Jenkins URL (a proxy or login page in between?)") from exc
            raise StepFailed(f"Jenkins answered {what} with something that is not JSON",
                             cause=str(exc)[:200],
                             hint="check the Jenkins URL (a proxy or login page?)") from exc
        except jenkins.EmptyResponseException:
            raise
        except jenkins.JenkinsException as exc:
            raise StepFailed(f"Jenkins failed {what}", cause=self.redact(str(exc))[:300],
                             hint="check the Jenkins URL (a proxy or login page?)") from exc

    @transient_retry(attempts=4, max_delay_s=30)
    def _retried(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``call`` once; an HTTP error status becomes ``JenkinsHTTPError`` (its ``status``
        decides the retry), a timeout a ``TransientError``."""
        import jenkins

        try:
            result = call(*args, **kwargs)
        except (jenkins.JenkinsException, requests.HTTPError) as exc:
            if isinstance(exc, jenkins.TimeoutException):
                raise TransientError(f"timeout: {exc}") from exc
            response = _response_of(exc)
            if response is not None and response.status_code >= 400:
                raise JenkinsHTTPError(response) from exc
            raise
        if isinstance(result, requests.Response) and result.status_code >= 400:
            raise JenkinsHTTPError(result)
        return result

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
        """``Jenkins.cancel_queue`` (Jenkins >= 2.210 answers 204; a gone item is fine)."""
        try:
            self._api(f"cancel queue item {queue_id}", self.server.cancel_queue, queue_id,
                      post=True)
            self.log.warning("cancelled the queued build", queue_item=queue_id)
        except (StepFailed, Unreachable, Refused) as exc:
            self.log.warning("could not cancel the queued build", queue_item=queue_id,
                             error=exc.one_line())
