"""Kill the speculative queue runner (``--speculative 2``) right after each of its writes,
then re-run: it converges to what an uninterrupted run leaves, and duplicates nothing.

Same world as ``test_queue_kill`` (real Gitea, two deployable refspecs that both need a
rebase), but the two are checked at once, the second on top of the first; the kill is
``os._exit`` (no clean-up, like SIGKILL) from whichever thread made the write. Beyond
``converged`` (master moved once per refspec, each move with its tag and note, the lock
released) every deployed commit carries exactly one ``success`` status of the queue, and
exactly one deployment tag names each refspec.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import run_pipeline
from tests.helpers.gitea import GiteaWorld
from tests.helpers.queue import (
    CRASHER,
    converged,
    deployment_tags,
    make_kill_world,
    run_crasher,
    statuses_of,
)

WINDOW = 2
SPECULATIVE_CRASHER = CRASHER.replace("lock_ttl_s=5,", f"lock_ttl_s=5, window={WINDOW},")


def nothing_duplicated(w: GiteaWorld) -> None:
    tags = deployment_tags(w)
    assert len(set(tags.values())) == len(tags), f"a commit with two deployment tags: {tags}"
    for commit in tags.values():
        assert statuses_of(w, commit, "pipelinelib/queue").count("success") == 1, commit


@pytest.mark.slow
def test_speculative_queue_killed_after_any_write_a_rerun_converges(gitea_env, tmp_path):
    assert f"window={WINDOW}" in SPECULATIVE_CRASHER, "the crasher runs the speculative path"
    w = make_kill_world(gitea_env, tmp_path / "reference")
    journal = tmp_path / "reference.jsonl"
    try:
        assert run_crasher(w, SPECULATIVE_CRASHER, 0, journal) == 0
        writes = [json.loads(line) for line in journal.read_text().splitlines()]
        converged(w)
        nothing_duplicated(w)
    finally:
        w.delete()
    assert writes[0] == "lock" and sum(x.startswith("deploy ") for x in writes) == 2, writes
    print(f"{len(writes)} kill points: {writes}")

    for at in range(1, len(writes) + 1):
        w = make_kill_world(gitea_env, tmp_path / f"trial-{at}")
        try:
            before = w.remote_sha("refs/heads/master")
            trial = tmp_path / f"trial-{at}.jsonl"
            assert run_crasher(w, SPECULATIVE_CRASHER, at, trial) == 137, f"trial {at}"
            master = w.remote_sha("refs/heads/master")
            assert master == before or master in deployment_tags(w).values(), \
                f"killed after {writes[at - 1]!r}: master moved without its deployment record"
            out = run_pipeline("queue", "--repo", w.url, "--lock-ttl", "5", "--lock-wait",
                               "60", "--speculative", str(WINDOW), env=w.ci_env())
            assert out.returncode == 0, (at, writes[at - 1], out.stderr[-3000:])
            converged(w)
            nothing_duplicated(w)
        finally:
            w.delete()
