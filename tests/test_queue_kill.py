"""Kill the queue runner right after each of its writes, then re-run: it converges.

Every trial is a fresh repository on the real Gitea with two deployable refspecs (one
needs a rebase). The runner process is killed (``os._exit``, no clean-up, like SIGKILL)
right after its N-th remote write, for every N the uninterrupted run makes; a second,
normal run must then leave exactly what an uninterrupted run leaves: master moved once per
refspec, each move with its deployment tag and ``deployed`` note, no refspec deployed twice.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import run_pipeline
from tests.helpers.queue import CRASHER, converged, deployment_tags, make_kill_world, run_crasher


@pytest.mark.slow
def test_killed_after_any_write_a_rerun_converges(gitea_env, tmp_path):
    # the uninterrupted run: how many writes, and which
    w = make_kill_world(gitea_env, tmp_path / "reference")
    journal = tmp_path / "reference.jsonl"
    try:
        assert run_crasher(w, CRASHER, 0, journal) == 0
        writes = [json.loads(line) for line in journal.read_text().splitlines()]
        converged(w)
    finally:
        w.delete()
    assert writes[0] == "lock" and any(x.startswith("deploy one") for x in writes)
    assert any(x.startswith("rebase") for x in writes)

    for at in range(1, len(writes) + 1):
        w = make_kill_world(gitea_env, tmp_path / f"trial-{at}")
        try:
            trial = tmp_path / f"trial-{at}.jsonl"
            before = w.remote_sha("refs/heads/master")
            assert run_crasher(w, CRASHER, at, trial) == 137, f"trial {at} did not crash"
            master = w.remote_sha("refs/heads/master")
            assert master == before or master in deployment_tags(w).values(), \
                f"killed after {writes[at - 1]!r}: master moved without its deployment record"
            out = run_pipeline("queue", "--repo", w.url, "--lock-ttl", "5", "--lock-wait",
                               "60", env=w.ci_env())
            assert out.returncode == 0, (at, writes[at - 1], out.stderr[-3000:])
            converged(w)
        finally:
            w.delete()
