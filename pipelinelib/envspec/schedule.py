"""Run work in priority order: groups one after another, a group's items in parallel.

``run_by_priority(items, run, limit)`` — ``items`` are ``(priority, name)``; lower priorities
first; at most ``limit`` items of one group at once (threads). Fail fast: after the first
failure nothing new starts (not in this group, not in later ones); items already running
finish. Returns every item's outcome, in a stable order, and the failures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

NOT_STARTED = "not started"


@dataclass
class ScheduleOutcome:
    """What happened to each item: ``results`` (name -> value), ``failures`` (name, error),
    ``skipped`` (never started because of an earlier failure)."""

    results: dict[str, Any] = field(default_factory=dict)
    failures: list[tuple[str, BaseException]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def run_by_priority(items: Iterable[tuple[int, str]], run: Callable[[str], Any],
                    limit: int) -> ScheduleOutcome:
    """See the module docstring. ``run(name)`` raises to fail."""
    groups: dict[int, list[str]] = {}
    for priority, name in items:
        groups.setdefault(priority, []).append(name)
    outcome = ScheduleOutcome()
    lock = threading.Lock()
    for priority in sorted(groups):
        names = groups[priority]
        if outcome.failures:
            outcome.skipped += names
            continue
        _run_group(names, run, max(1, limit), outcome, lock)
    return outcome


def _run_group(names: list[str], run: Callable[[str], Any], limit: int, outcome: ScheduleOutcome,
               lock: threading.Lock) -> None:
    pending = list(names)
    running: dict[Future[Any], str] = {}
    with ThreadPoolExecutor(max_workers=min(limit, len(names))) as pool:
        while pending or running:
            while pending and len(running) < limit and not outcome.failures:
                name = pending.pop(0)
                with lock:
                    outcome.order.append(name)
                running[pool.submit(run, name)] = name
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                error = future.exception()
                with lock:
                    if error is None:
                        outcome.results[name] = future.result()
                    else:
                        outcome.failures.append((name, error))
    outcome.skipped += pending
