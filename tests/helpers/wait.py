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


def wait_until(condition: Callable[[], T], timeout: float = 30.0, what: str = "",
               interval: float = 0.05) -> T:
    """Call ``condition`` until it returns something truthy and return that; fail the test
    naming ``what`` (and the last value seen) if ``timeout`` seconds pass first. Polls every
    ``interval`` seconds, backing off to one second."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {what or condition!r}; "
                                 f"last saw {value!r}")
        time.sleep(interval)
        interval = min(interval * 1.5, 1.0)


def wait_for_file(path: object, timeout: float = 30.0) -> None:
    """Wait until ``path`` (a pathlib.Path) exists."""
    from pathlib import Path

    target = Path(str(path))
    wait_until(target.exists, timeout, f"{target} to exist")
