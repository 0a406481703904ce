"""Racing writers: the same function in several processes at once (``spawn``: no state
shared with the test), each of which must exit 0."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any


def run_at_once(target: Callable[..., Any], args: Sequence[tuple[Any, ...]],
                timeout_s: float) -> None:
    """``target(*a)`` for every ``a`` in ``args``, each in its own process, all started
    before any is waited for; fails unless every one exits 0 within ``timeout_s``."""
    procs = [multiprocessing.get_context("spawn").Process(target=target, args=a)
             for a in args]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout_s)
        assert proc.exitcode == 0, f"{target.__name__}{proc.name}: exit {proc.exitcode}"


def queue() -> Any:
    """A queue the processes of ``run_at_once`` can report into."""
    return multiprocessing.get_context("spawn").Queue()
