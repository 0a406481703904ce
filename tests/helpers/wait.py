"""Waits, not sleeps: poll for an observable condition until a deadline.

A test that waits for something asks for the thing itself (a file, a port, a status, an
object's field) with ``wait_until``; a bare ``time.sleep`` is only for a pause that IS the
behaviour under test, and says so in a comment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 30.0, what: str = "", *,
               interval: float = 0.1,
               ignoring: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``condition`` until it returns something truthy and return that; fail the test
    naming ``what`` (and the last value seen) if ``timeout`` seconds pass first. Exceptions
    of the ``ignoring`` types count as "not yet". Polls every ``interval`` seconds."""
    deadline = time.monotonic() + timeout
    value: T | None = None
    while True:
        try:
            value = condition()
        except ignoring as exc:
            value = None
            last_error: BaseException | None = exc
        else:
            last_error = None
            if value:
                return value
        if time.monotonic() >= deadline:
            seen = f"last error {last_error!r}" if last_error else f"last saw {value!r}"
            raise AssertionError(f"waited {timeout:g} s for {what or condition!r}; {seen}")
        time.sleep(interval)
