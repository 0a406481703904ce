"""Apply's scheduler: priority order, bounded parallelism within a priority, fail fast."""

from __future__ import annotations

import threading
import time

from pipelinelib.envspec.schedule import run_by_priority


class Recorder:
    """A unit of work that records when it ran and how many ran at once."""

    def __init__(self, seconds: float = 0.05, fail: tuple[str, ...] = (),
                 durations: dict[str, float] | None = None):
        self.seconds, self.fail, self.durations = seconds, fail, durations or {}
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.spans: dict[str, tuple[float, float]] = {}

    def __call__(self, name: str) -> str:
        start = time.monotonic()
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(self.durations.get(name, self.seconds))  # the step's work: the behaviour
        with self.lock:
            self.running -= 1
            self.spans[name] = (start, time.monotonic())
        if name in self.fail:
            raise RuntimeError(f"{name} broke")
        return f"{name} done"


def test_lower_priorities_finish_before_higher_ones_start():
    work = Recorder()
    items = [(10, "web"), (0, "db"), (0, "queue"), (5, "api")]
    outcome = run_by_priority(items, work, limit=4)
    assert outcome.ok and sorted(outcome.results) == ["api", "db", "queue", "web"]
    assert max(work.spans["db"][1], work.spans["queue"][1]) <= work.spans["api"][0]
    assert work.spans["api"][1] <= work.spans["web"][0]


def test_equal_priorities_run_in_parallel_up_to_the_limit():
    work = Recorder(seconds=0.2)
    outcome = run_by_priority([(0, f"app-{i}") for i in range(6)], work, limit=3)
    assert outcome.ok and work.peak == 3, "three at once, never more"
    spans = sorted(work.spans.values())
    # the first three overlap; each later one starts only after one of them has ended
    assert max(start for start, _ in spans[:3]) < min(end for _, end in spans[:3])
    assert all(start >= min(end for _, end in spans[:3]) for start, _ in spans[3:])


def test_fail_fast_starts_nothing_new_lets_running_finish_and_reports_each():
    work = Recorder(seconds=0.1, fail=("b",), durations={"a": 0.5})  # a outlives b's failure
    items = [(0, "a"), (0, "b"), (0, "c"), (0, "d"), (1, "later")]
    outcome = run_by_priority(items, work, limit=2)
    assert [name for name, _ in outcome.failures] == ["b"]
    assert "a" in outcome.results, "the app running next to the failure finished"
    assert set(outcome.skipped) == {"c", "d", "later"}
    assert "later" not in work.spans and "c" not in work.spans
