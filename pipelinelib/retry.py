"""One retry policy for transient faults, shared by every adapter.

Retried: connection errors and timeouts, HTTP 5xx, 429 and 409 (conflict), and
``TransientError``. Never retried: 4xx other than those, every ``PipelineError`` (bad
input, refusals, step failures), and a *deterministic* answer whatever its code: the
Kubernetes apiserver says why in its Status ``reason`` (``Invalid``, ``BadRequest``,
``RequestEntityTooLarge``...), and answers some bad input with a 500 (a patch that does not
fit the schema: "failed to create typed patch object", "strict decoding error"); a registry
whose storage refuses writes answers every upload with a 500 naming the file system error
("read-only file system", "permission denied", "no space left on device"). Sending the same
bytes again gets the same answer: see :func:`is_deterministic` and :func:`is_storage_failure`.

Waits: jittered exponential back-off, but never shorter than the server's ``Retry-After``
(429 and 503 answers: the apiserver under API Priority and Fairness sends it), and never past
the retry deadline: see :class:`wait_retry_after`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
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
from tenacity.wait import wait_base

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
# Messages of 5xx answers about the server's own storage refusing writes (a registry on a
# read-only or full disk): every retry meets the same refusal until someone fixes the disk.
STORAGE_FAILURE_MARKERS = (
    "read-only file system", "permission denied", "no space left on device",
    "disk quota exceeded",
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


def is_storage_failure(message: str) -> bool:
    """True when a server's error message says its storage refuses writes."""
    text = (message or "").lower()
    return any(marker in text for marker in STORAGE_FAILURE_MARKERS)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP-date), or None."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def retry_after_of(exc: BaseException | None) -> float | None:
    """The ``Retry-After`` an exception carries (ours: ``retry_after``; requests, docker-py
    and kubernetes errors: the response's or the exception's headers), or None."""
    if exc is None:
        return None
    value = getattr(exc, "retry_after", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    for holder in (getattr(exc, "response", None), exc):
        headers = getattr(holder, "headers", None)
        if headers is not None and hasattr(headers, "get"):
            parsed = parse_retry_after(headers.get("Retry-After"))
            if parsed is not None:
                return parsed
    return None


class wait_retry_after(wait_base):  # named like tenacity's own wait strategies
    """Wait ``max(jittered back-off, Retry-After)``, capped by what is left of ``deadline_s``
    (so a server asking for a longer pause ends the retries at the deadline, not after it)."""

    def __init__(self, backoff: wait_base, deadline_s: float):
        self.backoff, self.deadline_s = backoff, deadline_s

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = float(self.backoff(retry_state))
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        asked = retry_after_of(exc)
        if asked is not None:
            wait = max(wait, asked)
        left = self.deadline_s - (retry_state.seconds_since_start or 0.0)
        return max(0.0, min(wait, left))


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
        retry_after_s=retry_after_of(exc),
    )


def transient_retry(
    attempts: int = 5, max_delay_s: float = 30.0, max_wait_s: float = 8.0
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator: retry transient faults with bounded, jittered exponential back-off that
    honours the server's ``Retry-After`` within ``max_delay_s``."""
    return retry(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts) | stop_after_delay(max_delay_s),
        wait=wait_retry_after(wait_random_exponential(multiplier=0.25, max=max_wait_s),
                              max_delay_s),
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
