"""The retry wait honours ``Retry-After`` (delta-seconds or an HTTP-date) and never waits past
the retry deadline; a registry whose storage refuses writes is not retried. The waits are
the ones tenacity is told to sleep (a recording ``sleep``), not wall time."""

from __future__ import annotations

import email.utils
import time

import pytest
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from pipelinelib.errors import TransientError
from pipelinelib.retry import (
    is_storage_failure,
    is_transient,
    parse_retry_after,
    retry_after_of,
    wait_retry_after,
)


def run(errors: list[BaseException], deadline_s: float = 30.0) -> list[float]:
    """Retry a call that raises ``errors`` in turn, then succeeds; the waits chosen."""
    slept: list[float] = []
    left = list(errors)

    def call() -> str:
        if left:
            raise left.pop(0)
        return "ok"

    retrying = Retrying(retry=retry_if_exception(is_transient), stop=stop_after_attempt(10),
                        wait=wait_retry_after(wait_fixed(0.1), deadline_s),
                        sleep=slept.append, reraise=True)
    assert retrying(call) == "ok"
    return slept


def test_a_429_waits_at_least_its_retry_after():
    assert run([TransientError("429", 429, retry_after=2), TransientError("503", 503)]) == [
        2.0, 0.1]


def test_retry_after_is_capped_by_the_deadline():
    [wait] = run([TransientError("429", 429, retry_after=120)], deadline_s=5.0)
    assert 0 < wait <= 5.0


class Answer(Exception):
    def __init__(self, headers: dict[str, str]):
        super().__init__("answer")
        self.response = type("Response", (), {"headers": headers, "status_code": 503})()


@pytest.mark.parametrize(("header", "low", "high"), [
    ("3", 3, 3), ("0", 0, 0), ("", None, None), ("soon", None, None)])
def test_retry_after_read_from_a_response(header, low, high):
    found = retry_after_of(Answer({"Retry-After": header} if header else {}))
    assert found == low == high if low is None else low <= found <= high


def test_retry_after_as_an_http_date():
    now = time.time()
    assert parse_retry_after(email.utils.formatdate(now + 10, usegmt=True), now=now) == (
        pytest.approx(10, abs=1))


def test_a_storage_refusal_is_not_transient_text():
    """distribution's 500 for an upload its storage cannot write, in words."""
    assert is_storage_failure("UNKNOWN: unknown error (filesystem: mkdir /var/lib/registry/"
                              "docker: permission denied)")
    assert is_storage_failure("filesystem: open /data/x: read-only file system")
    assert not is_storage_failure("UNKNOWN: unknown error")
