"""Shared timing helpers for the benchmarks: best-of-N wall time and ratio lines."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence


def best_of(runs: int, fn: Callable[[], object]) -> float:
    """The fastest of ``runs`` calls of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(cmd: Sequence[str], env: dict[str, str] | None = None, check: bool = True) -> None:
    subprocess.run(list(cmd), env={**os.environ, **(env or {})}, check=check,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def report(name: str, ours: float, peer_name: str, peer: float, goal: str = "") -> None:
    """Print one result line: our time, the peer's, and the ratio."""
    ratio = ours / peer if peer else float("inf")
    suffix = f"  (goal: {goal})" if goal else ""
    print(f"{name}: pipelinelib {ours * 1000:.0f} ms vs {peer_name} {peer * 1000:.0f} ms "
          f"= {ratio:.2f}x{suffix}")
