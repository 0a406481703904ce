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
