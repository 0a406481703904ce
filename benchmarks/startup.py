"""`pipeline --help`, `build --help`, `rollout --help` start-up vs `python -c pass`
(budget < 300 ms)."""

from __future__ import annotations

import shutil
import sys

from _timing import best_of, report, run

RUNS = 7


def main() -> None:
    python = best_of(RUNS, lambda: run([sys.executable, "-c", "pass"]))
    pipeline = shutil.which("pipeline") or "pipeline"
    for args in (["--help"], ["build", "--help"], ["rollout", "--help"]):
        ours = best_of(RUNS, lambda a=args: run([pipeline, *a]))
        report(f"pipeline {' '.join(args)}", ours, "python -c pass", python, "< 300 ms")


if __name__ == "__main__":
    main()
