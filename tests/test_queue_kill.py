"""Kill the queue runner right after each of its writes, then re-run: it converges.

Every trial is a fresh repository on the real Gitea with two deployable refspecs (one
needs a rebase). The runner process is killed (``os._exit``, no clean-up, like SIGKILL)
right after its N-th remote write, for every N the uninterrupted run makes; a second,
normal run must then leave exactly what an uninterrupted run leaves: master moved once per
refspec, each move with its deployment tag and ``deployed`` note, no refspec deployed twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_pipeline
from tests.fixtures.gitea import GiteaWorld, git, gitea_env  # noqa: F401
from tests.test_queue import branch, deployment_tags, mark, move_master, note_of, queue_config

CRASHER = """
import json, os, sys
from pipelinelib.context import Context
from pipelinelib.log import configure
from pipelinelib.pipelines.queue import run_queue

crash_at, count = int(sys.argv[2]), [0]
def after_write(what):
    count[0] += 1
    with open(sys.argv[3], "a") as f:
        f.write(json.dumps(what) + "\\n")
    if count[0] == crash_at:
        os._exit(137)
ctx = Context(secrets=configure("json"))
try:
    run_queue(ctx, repo=sys.argv[1], lock_ttl_s=5, after_write=after_write)
except Exception as exc:
    print(exc, file=sys.stderr)
"""


def make_world(gitea_env, tmp_path: Path) -> GiteaWorld:  # noqa: F811
    w = GiteaWorld.create(gitea_env, tmp_path, "kill")
    w.deploy_log = tmp_path / "deploys.log"  # type: ignore[attr-defined]
    (w.clone / ".pipeline").mkdir()
    (w.clone / ".pipeline" / "queue.yaml").write_text(yaml.safe_dump(queue_config(
        w.deploy_log)))  # type: ignore[attr-defined]
    (w.clone / "release.env").write_text("APP=hello\n")
    git(w.clone, "add", "-A")
    git(w.clone, "commit", "-q", "-m", "base")
    git(w.clone, "push", "-q", "origin", "master")
    one = branch(w, "one", {"one.txt": "1\n"})
    two = branch(w, "two", {"two.txt": "2\n"})
    mark(w, one, "deployable")
    mark(w, two, "deployable")
    move_master(w, {"base2.txt": "x\n"})  # both need a rebase
    return w


def crash_run(w: GiteaWorld, at: int, journal: Path) -> int:
    proc = subprocess.run([sys.executable, "-c", CRASHER, w.url, str(at), str(journal)],
                          env={**__import__("os").environ, **w.ci_env()},
                          capture_output=True, text=True, check=False, timeout=600)
    return proc.returncode


def converged(w: GiteaWorld) -> None:
    """What an uninterrupted run leaves."""
    tags = deployment_tags(w)
    assert sorted(tags) == ["deployment-0001", "deployment-0002"], tags
    git(w.clone, "fetch", "-q", "origin")
    first_parent = git(w.clone, "rev-list", "--first-parent", "origin/master").stdout.split()
    landed = first_parent[:2]
    assert sorted(landed) == sorted(tags.values()), "every master move has its record"
    assert first_parent[2] == git(w.clone, "rev-parse", "origin/master~2").stdout.strip()
    subjects = git(w.clone, "log", "-2", "--format=%s", "origin/master").stdout.splitlines()
    assert sorted(subjects) == ["one: change", "two: change"], "each refspec landed once"
    for commit in tags.values():
        note = note_of(w, commit)
        assert note.state == "deployed" and note.fields["annotation"] == "Successfully Deployed"
        status = w.client.statuses(w.owner, w.name, commit)["pipelinelib/queue"]
        assert status.state == "success"
    assert w.remote_sha("refs/pipelinelib/queue-lock") is None


@pytest.mark.slow
def test_killed_after_any_write_a_rerun_converges(gitea_env, tmp_path):  # noqa: F811
    # the uninterrupted run: how many writes, and which
    w = make_world(gitea_env, tmp_path / "reference")
    journal = tmp_path / "reference.jsonl"
    try:
        assert crash_run(w, 0, journal) == 0
        writes = [json.loads(line) for line in journal.read_text().splitlines()]
        converged(w)
    finally:
        w.delete()
    assert writes[0] == "lock" and any(x.startswith("deploy one") for x in writes)
    assert any(x.startswith("rebase") for x in writes)

    for at in range(1, len(writes) + 1):
        w = make_world(gitea_env, tmp_path / f"trial-{at}")
        try:
            trial = tmp_path / f"trial-{at}.jsonl"
            before = w.remote_sha("refs/heads/master")
            assert crash_run(w, at, trial) == 137, f"trial {at} did not crash"
            master = w.remote_sha("refs/heads/master")
            assert master == before or master in deployment_tags(w).values(), \
                f"killed after {writes[at - 1]!r}: master moved without its deployment record"
            out = run_pipeline("queue", "--repo", w.url, "--lock-ttl", "5", "--lock-wait",
                               "60", env=w.ci_env())
            assert out.returncode == 0, (at, writes[at - 1], out.stderr[-3000:])
            converged(w)
        finally:
            w.delete()
