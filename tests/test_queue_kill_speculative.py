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
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_pipeline
from tests.fixtures.gitea import GiteaWorld, gitea_env  # noqa: F401
from tests.test_queue import deployment_tags
from tests.test_queue_kill import CRASHER, converged, make_world

WINDOW = 2
SPECULATIVE_CRASHER = CRASHER.replace("lock_ttl_s=5,", f"lock_ttl_s=5, window={WINDOW},")


def crash_run(w: GiteaWorld, at: int, journal: Path) -> int:
    proc = subprocess.run([sys.executable, "-c", SPECULATIVE_CRASHER, w.url, str(at),
                           str(journal)], env={**os.environ, **w.ci_env()},
                          capture_output=True, text=True, check=False, timeout=600)
    return proc.returncode


def statuses_of(w: GiteaWorld, sha: str, context: str) -> list[str]:
    """Every status ``context`` ever got on ``sha`` (the server keeps them all)."""
    response = w.client.session.get(
        f"{w.client.url}/api/v1/repos/{w.owner}/{w.name}/statuses/{sha}?limit=50", timeout=30)
    response.raise_for_status()
    return [d.get("status") or d.get("state") for d in response.json()
            if d.get("context") == context]


def nothing_duplicated(w: GiteaWorld) -> None:
    tags = deployment_tags(w)
    assert len(set(tags.values())) == len(tags), f"a commit with two deployment tags: {tags}"
    for commit in tags.values():
        assert statuses_of(w, commit, "pipelinelib/queue").count("success") == 1, commit


@pytest.mark.slow
def test_speculative_queue_killed_after_any_write_a_rerun_converges(gitea_env, tmp_path):  # noqa: F811
    assert f"window={WINDOW}" in SPECULATIVE_CRASHER, "the crasher runs the speculative path"
    w = make_world(gitea_env, tmp_path / "reference")
    journal = tmp_path / "reference.jsonl"
    try:
        assert crash_run(w, 0, journal) == 0
        writes = [json.loads(line) for line in journal.read_text().splitlines()]
        converged(w)
        nothing_duplicated(w)
    finally:
        w.delete()
    assert writes[0] == "lock" and sum(x.startswith("deploy ") for x in writes) == 2, writes
    print(f"{len(writes)} kill points: {writes}")

    for at in range(1, len(writes) + 1):
        w = make_world(gitea_env, tmp_path / f"trial-{at}")
        try:
            before = w.remote_sha("refs/heads/master")
            assert crash_run(w, at, tmp_path / f"trial-{at}.jsonl") == 137, f"trial {at}"
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
