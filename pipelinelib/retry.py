"""One retry policy for transient faults, shared by every adapter.

Retried: connection errors and timeouts, HTTP 5xx, 429 and 409 (conflict), and
``TransientError``. Never retried: 4xx other than those, every ``PipelineError`` (bad
input, refusals, step failures), and a *deterministic* answer whatever its code: the
Kubernetes apiserver says why in its Status ``reason`` (``Invalid``, ``BadRequest``,
``RequestEntityTooLarge``...), and answers some bad input with a 500 (a patch that does not
fit the schema: "failed to create typed patch object", "strict decoding error"). Sending
the same bytes again gets the same answer: see :func:`is_deterministic`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from pipelinelib.errors import PipelineError, TransientError

T = TypeVar("T")
TRANSIENT_STATUS = frozenset({409, 429, 500, 502, 503, 504})
# Status reasons (k8s.io/apimachinery metav1.StatusReason) that describe the request itself.
DETERMINISTIC_REASONS = frozenset({
    "BadRequest", "Invalid", "RequestEntityTooLarge", "UnsupportedMediaType", "NotAcceptable",
    "MethodNotAllowed", "Forbidden", "Unauthorized", "NotFound", "AlreadyExists", "Gone",
})
# Reasons worth another try: load, timeouts, conflicts on a resourceVersion.
TRANSIENT_REASONS = frozenset({
    "TooManyRequests", "ServiceUnavailable", "ServerTimeout", "Timeout", "Conflict",
})
# Messages of 5xx answers that are about the body sent (apiserver decoding and SSA typing).
DETERMINISTIC_MARKERS = (
    "failed to create typed patch object", "strict decoding error", "unknown field",
    "cannot unmarshal", "json: cannot", "yaml: ", "error decoding", "is invalid",
    "request entity too large", "failed to convert", "expected numeric", "expected string",
    "expected map", "expected list", ".spec: ", "field not declared in schema",
)
_CONNECTION_ERROR_NAMES = frozenset(
    {
        "ConnectionError",
        "ConnectTimeout",
        "ReadTimeout",
        "Timeout",
        "ProtocolError",
        "MaxRetryError",
        "NewConnectionError",
        "RemoteDisconnected",
        "ChunkedEncodingError",
    }
)


# What a third-party tool says in its own words (the Docker engine's push stream) when the
# far side failed in a way that may clear by itself: a 5xx or 429, a refused, reset or
# timed-out connection, a stream cut short.
_TRANSIENT_TEXT = re.compile(
    r"unexpected HTTP status: (5\d\d|429)|status code (5\d\d|429)|connection refused|"
    r"connection reset|broken pipe|i/o timeout|unexpected EOF|: EOF\b|"
    r"TLS handshake timeout|server misbehaving|too many requests", re.IGNORECASE)


def is_transient_text(message: str) -> bool:
    """True when a tool's error message describes a transient fault (see _TRANSIENT_TEXT)."""
    return bool(_TRANSIENT_TEXT.search(message or ""))


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (requests, docker-py, kubernetes), if any."""
    for attr in ("status", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def is_deterministic(status: int, reason: str | None = None, message: str = "") -> bool:
    """True when an HTTP answer describes the request, so a retry gets the same answer."""
    if reason in TRANSIENT_REASONS or status in (429, 503, 504):
        return False
    if reason in DETERMINISTIC_REASONS or status in (400, 413, 415, 422):
        return True
    text = (message or "").lower()
    return status >= 500 and any(marker in text for marker in DETERMINISTIC_MARKERS)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is worth retrying."""
    if getattr(exc, "deterministic", False):
        return False
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, PipelineError):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if any(cls.__name__ in _CONNECTION_ERROR_NAMES for cls in type(exc).__mro__):
        return True
    status = status_of(exc)
    return status in TRANSIENT_STATUS


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    structlog.get_logger("pipelinelib.retry").warning(
        "retrying after transient fault",
        call=getattr(state.fn, "__qualname__", "?"),
        attempt=state.attempt_number,
        error=str(exc)[:200],
        wait_s=round(state.next_action.sleep, 2) if state.next_action else None,
    )


def transient_retry(
    attempts: int = 5, max_delay_s: float = 30.0, max_wait_s: float = 8.0
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator: retry transient faults with bounded, jittered exponential back-off."""
    return retry(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts) | stop_after_delay(max_delay_s),
        wait=wait_random_exponential(multiplier=0.25, max=max_wait_s),
        before_sleep=_log_retry,
        reraise=True,
    )


def call_with_retry(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn`` once under the default transient retry policy."""
    return transient_retry()(fn)(*args, **kwargs)


class HTTPStatusError(Exception):
    """An HTTP answer with an error status, raised by adapters for :func:`is_transient` to judge.

    ``status`` and ``response`` are kept so callers can translate it after the retries.
    """

    def __init__(self, response: Any, message: str | None = None):
        super().__init__(message or f"HTTP {response.status_code}")
        self.response = response
        self.status = response.status_code
