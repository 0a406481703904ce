"""Only transient faults are retried, a bounded number of times."""

import pytest
import requests

from pipelinelib.errors import BadInput, StepFailed, TransientError
from pipelinelib.retry import is_transient, transient_retry


class HTTPError(Exception):
    def __init__(self, status):
        self.status = status


@pytest.mark.parametrize(("exc", "expected"), [
    (TransientError("x"), True),
    (requests.exceptions.ConnectionError(), True),
    (ConnectionResetError(), True),
    (HTTPError(503), True), (HTTPError(429), True), (HTTPError(409), True),
    (HTTPError(404), False), (HTTPError(403), False), (HTTPError(400), False),
    (BadInput("bad"), False), (StepFailed("no"), False), (ValueError("v"), False),
])
def test_transient_classification(exc, expected):
    assert is_transient(exc) is expected


def test_transient_faults_are_retried_then_raised():
    calls = []

    @transient_retry(attempts=3, max_delay_s=5, max_wait_s=0.01)
    def flaky():
        calls.append(1)
        raise TransientError("503", 503)

    with pytest.raises(TransientError):
        flaky()
    assert len(calls) == 3


def test_client_errors_are_not_retried():
    calls = []

    @transient_retry(attempts=5, max_wait_s=0.01)
    def forbidden():
        calls.append(1)
        raise HTTPError(403)

    with pytest.raises(HTTPError):
        forbidden()
    assert len(calls) == 1


def test_transient_text_in_a_tools_own_words():
    """The Docker engine's push stream says what failed in words: 5xx, 429, refused, reset
    and timed-out connections are transient; a refusal or a bad manifest is not."""
    from pipelinelib.retry import is_transient_text

    for message in ("received unexpected HTTP status: 500 Internal Server Error",
                    "received unexpected HTTP status: 503 Service Unavailable",
                    'Get "http://127.0.0.1:5/v2/": dial tcp 127.0.0.1:5: connect: '
                    "connection refused",
                    "read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer",
                    "net/http: TLS handshake timeout", "toomanyrequests: too many requests"):
        assert is_transient_text(message), message
    for message in ("denied: requested access to the resource is denied",
                    "unauthorized: authentication required", "manifest invalid", ""):
        assert not is_transient_text(message), message
