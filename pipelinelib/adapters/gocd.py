"""GoCD over its REST API: schedule a pipeline, follow a stage to its result, comment, encrypt.

Every GoCD API is versioned by its Accept header (``application/vnd.go.cd.vN+json``); a
wrong version answers 404, so each call names its own. Writes carry ``X-GoCD-Confirm: true``.
Authentication is a personal access token (``Authorization: bearer TOKEN``) or basic auth.

- ``schedule``  POST /go/api/pipelines/NAME/schedule (v1) with environment variables
- ``follow``    GET  /go/api/pipelines/NAME/history (v1) for the new counter, then
                GET  /go/api/stages/NAME/COUNTER/STAGE/RUN (v3) until the result is known
- ``run_stage`` POST /go/api/stages/NAME/COUNTER/STAGE/run (v2): approve a manual stage
- ``comment``   POST /go/api/pipelines/NAME/COUNTER/comment (v1): the deployment annotation
                (GoCD has no per-build description; the instance comment is what it allows)
- ``encrypt``   POST /go/api/admin/encrypt (v1): ciphertext for ``secure_variables``

Errors: 401 -> ``Refused`` (token), 403 -> ``Refused`` with GoCD's message, 404 ->
``BadInput`` (unknown pipeline or stage), 409 on schedule -> ``StepFailed`` (paused, locked or
already scheduled: not retried), connection errors / 5xx / 429 -> retried, then ``Unreachable``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
import structlog

from pipelinelib.errors import BadInput, Refused, StepFailed, TransientError, Unreachable
from pipelinelib.retry import TRANSIENT_STATUS, HTTPStatusError, transient_retry

ACCEPT = {
    "schedule": "application/vnd.go.cd.v1+json",
    "history": "application/vnd.go.cd.v1+json",
    "instance": "application/vnd.go.cd.v1+json",
    "stage": "application/vnd.go.cd.v3+json",
    "run_stage": "application/vnd.go.cd.v2+json",
    "comment": "application/vnd.go.cd.v1+json",
    "encrypt": "application/vnd.go.cd.v1+json",
}
FINAL_RESULTS = frozenset({"Passed", "Failed", "Cancelled"})


class _GoCDHTTPError(HTTPStatusError):
    """Internal: an error status; ``status`` lets the retry policy decide."""


@dataclass(frozen=True)
class StageOutcome:
    """How one stage run ended (``result``: Passed, Failed or Cancelled)."""

    pipeline: str
    counter: int
    stage: str
    stage_counter: int
    result: str
    jobs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.result == "Passed"


class GoCDClient:
    """A GoCD server (base URL ending in ``/go``)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        *,
        timeout: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        progress_every_s: float = 5.0,
    ):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"bearer {token}"
        elif username and password:
            self.session.auth = (username, password)
        self.timeout = timeout
        self.sleep, self.clock = sleep, clock
        self.progress_every_s = progress_every_s
        self.log = structlog.get_logger("pipelinelib.gocd").bind(gocd=self.url)

    @classmethod
    def login(cls, url: str | None, token: str | None, *, secrets: Any = None,
              **kwargs: Any) -> GoCDClient:
        """Logged in to ``url`` with a personal access token (the context's
        ``Credentials.gocd``: ``PIPELINELIB_GOCD_URL`` or the agent's ``GO_SERVER_URL``,
        ``PIPELINELIB_GOCD_TOKEN``); the token is one of ``secrets``. BadInput without a
        URL."""
        if not url:
            raise BadInput("no GoCD server configured", field="PIPELINELIB_GOCD_URL",
                           expected="the server URL, e.g. https://gocd.example.org/go")
        if secrets is not None and token:
            secrets.add(token)
        return cls(url, token=token, **kwargs)

    # -- pipelines -----------------------------------------------------------------------------
    def latest_counter(self, pipeline: str) -> int:
        """The newest instance's counter (0 when the pipeline never ran)."""
        history = self._json("GET", f"/api/pipelines/{_q(pipeline)}/history", "history",
                             what=f"pipeline {pipeline}")
        counters = [int(p["counter"]) for p in history.get("pipelines", []) if p.get("counter")]
        return max(counters, default=0)

    def schedule(self, pipeline: str, variables: Mapping[str, str] | None = None,
                 secure: Mapping[str, str] | None = None) -> None:
        """Trigger ``pipeline`` with environment variables (``secure`` ones are masked)."""
        plain = [{"name": k, "value": str(v), "secure": False}
                 for k, v in (variables or {}).items()]
        masked = [{"name": k, "value": str(v), "secure": True} for k, v in (secure or {}).items()]
        body = {"environment_variables": plain + masked,
                "update_materials_before_scheduling": True}
        self._json("POST", f"/api/pipelines/{_q(pipeline)}/schedule", "schedule",
                   what=f"pipeline {pipeline}", json_body=body, conflict_is_final=True)
        self.log.info("pipeline scheduled", pipeline=pipeline,
                      variables=sorted((variables or {}).keys()))

    def instance(self, pipeline: str, counter: int) -> dict[str, Any]:
        """One pipeline instance (label, comment, stages with results)."""
        return self._json("GET", f"/api/pipelines/{_q(pipeline)}/{counter}", "instance",
                          what=f"{pipeline}/{counter}")

    def comment(self, pipeline: str, counter: int, text: str) -> list[str]:
        """Add ``text`` to the instance's comment; a no-op when it is already there."""
        current = self.instance(pipeline, counter).get("comment") or ""
        if text in current.splitlines():
            return []
        new = f"{current}\n{text}" if current else text
        self._json("POST", f"/api/pipelines/{_q(pipeline)}/{counter}/comment", "comment",
                   what=f"{pipeline}/{counter}", json_body={"comment": new})
        return [f"commented on {pipeline}/{counter}"]

    # -- stages --------------------------------------------------------------------------------
    def stage(self, pipeline: str, counter: int, stage: str, stage_counter: int = 1
              ) -> dict[str, Any]:
        """A stage instance (result ``Unknown`` while it runs)."""
        return self._json(
            "GET", f"/api/stages/{_q(pipeline)}/{counter}/{_q(stage)}/{stage_counter}", "stage",
            what=f"{pipeline}/{counter}/{stage}/{stage_counter}")

    def run_stage(self, pipeline: str, counter: int, stage: str) -> None:
        """Run (approve) ``stage`` of an instance, e.g. the manual swap-live stage."""
        self._json("POST", f"/api/stages/{_q(pipeline)}/{counter}/{_q(stage)}/run", "run_stage",
                   what=f"{pipeline}/{counter}/{stage}", conflict_is_final=True)

    def wait_for_new_instance(self, pipeline: str, after: int, timeout_s: float = 300.0,
                              poll_s: float = 2.0) -> int:
        """Wait until an instance newer than ``after`` exists; return its counter."""
        started = self.clock()
        next_progress = started + self.progress_every_s
        while True:
            latest = self.latest_counter(pipeline)
            if latest > after:
                return latest
            now = self.clock()
            if now - started >= timeout_s:
                raise StepFailed(f"GoCD did not start {pipeline} within {timeout_s:.0f}s",
                                 hint="check that the pipeline is not paused and its materials "
                                      "are reachable (GoCD updates them before scheduling)")
            if now >= next_progress:
                self.log.info("waiting for GoCD to schedule", pipeline=pipeline,
                              waited_s=round(now - started, 1))
                next_progress = now + self.progress_every_s
            self.sleep(poll_s)

    def follow_stage(self, pipeline: str, counter: int, stage: str, stage_counter: int = 1,
                     timeout_s: float = 3600.0, poll_s: float = 2.0) -> StageOutcome:
        """Poll a stage until its result is final (Passed, Failed or Cancelled)."""
        started = self.clock()
        next_progress = started + self.progress_every_s
        while True:
            try:
                data = self.stage(pipeline, counter, stage, stage_counter)
            except BadInput:  # not scheduled yet: GoCD answers 404 until the stage exists
                data = {}
            result = data.get("result", "Unknown")
            if result in FINAL_RESULTS:
                return StageOutcome(pipeline, counter, stage, stage_counter, result,
                                    list(data.get("jobs", [])))
            now = self.clock()
            if now - started >= timeout_s:
                states = ", ".join(f"{j.get('name')}={j.get('state')}"
                                   for j in data.get("jobs", [])) or "not scheduled"
                raise StepFailed(f"{pipeline}/{counter}/{stage} has no result after "
                                 f"{timeout_s:.0f}s", cause=f"jobs: {states}",
                                 hint=f"see {self.url}/pipelines/{pipeline}/{counter}/{stage}/"
                                      f"{stage_counter}")
            if now >= next_progress:
                self.log.info("waiting for the stage", pipeline=pipeline, counter=counter,
                              stage=stage, jobs={j.get("name"): j.get("state")
                                                 for j in data.get("jobs", [])})
                next_progress = now + self.progress_every_s
            self.sleep(poll_s)

    def run_and_follow(self, pipeline: str, stage: str, variables: Mapping[str, str] | None = None,
                       secure: Mapping[str, str] | None = None, schedule_timeout_s: float = 300.0,
                       stage_timeout_s: float = 3600.0, poll_s: float = 2.0) -> StageOutcome:
        """Schedule ``pipeline`` with variables and follow ``stage`` of the new instance."""
        before = self.latest_counter(pipeline)
        self.schedule(pipeline, variables, secure)
        counter = self.wait_for_new_instance(pipeline, before, schedule_timeout_s, poll_s)
        return self.follow_stage(pipeline, counter, stage, 1, stage_timeout_s, poll_s)

    # -- admin ---------------------------------------------------------------------------------
    def encrypt(self, value: str) -> str:
        """GoCD's ciphertext for ``value`` (for ``secure_variables`` in a config repository)."""
        data = self._json("POST", "/api/admin/encrypt", "encrypt", what="encrypt",
                          json_body={"value": value})
        return str(data["encrypted_value"])

    # -- transport -----------------------------------------------------------------------------
    def _json(self, method: str, path: str, api: str, *, what: str,
              json_body: Any = None, conflict_is_final: bool = False) -> dict[str, Any]:
        headers = {"Accept": ACCEPT[api]}
        if method == "POST":
            headers["X-GoCD-Confirm"] = "true"
        try:
            response = self._send(method, path, headers, json_body, conflict_is_final)
        except _GoCDHTTPError as exc:
            raise self._translate(exc.response, what) from exc
        except _Final as exc:
            raise self._translate(exc.answer, what) from exc
        except (TransientError, requests.RequestException) as exc:
            raise Unreachable(f"GoCD at {self.url} is unreachable or failing ({what})",
                              cause=str(exc)[:300], hint="check the URL and that GoCD is up"
                              ) from exc
        try:
            return response.json() if response.content else {}
        except ValueError:
            return {"message": response.text}

    @transient_retry(attempts=4, max_delay_s=30)
    def _send(self, method: str, path: str, headers: dict[str, str], json_body: Any,
              conflict_is_final: bool) -> requests.Response:
        response = self.session.request(method, self.url + path, headers=headers, json=json_body,
                                        timeout=self.timeout)
        if response.status_code >= 400:
            if response.status_code == 409 and conflict_is_final:
                raise _Final(response)
            raise _GoCDHTTPError(response)
        return response

    def _translate(self, response: requests.Response, what: str) -> Exception:
        status = response.status_code
        message = _message(response)
        if status == 401:
            return Refused(f"GoCD rejected the credentials ({what})", hint="check "
                           "PIPELINELIB_GOCD_TOKEN (a personal access token)")
        if status == 403:
            return Refused(f"GoCD refused: {message or 'permission denied'} ({what})",
                           hint="ask a GoCD admin for operate permission on the pipeline group")
        if status == 404:
            return BadInput(f"GoCD does not know {what}: {message or 'not found'}",
                            field="pipeline", expected="an existing pipeline (and stage) name")
        if status == 409:
            return StepFailed(f"GoCD cannot do that now ({what}): {message}",
                              hint="the pipeline may be paused, locked or already scheduled")
        if status in TRANSIENT_STATUS:
            return Unreachable(f"GoCD at {self.url} kept failing ({what}): HTTP {status}",
                               cause=message)
        return StepFailed(f"GoCD answered HTTP {status} ({what})", cause=message)


class _Final(Exception):
    """A 409 that is an answer (paused, locked, already scheduled), not a race: never retried.

    It carries no ``status``/``response`` attribute on purpose, so the retry policy cannot
    mistake it for a transient conflict.
    """

    def __init__(self, response: requests.Response):
        super().__init__("HTTP 409")
        self.answer = response


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:300]
    except ValueError:
        return response.text[:300]


def _q(name: str) -> str:
    return quote(name, safe="")
