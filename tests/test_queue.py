"""The deploy queue (seed 003) against a real git server (Gitea): order, records, broken,
failed, continual rebasing, a developer's concurrent push, one runner at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import run_pipeline
from tests.helpers.git import git, git_ok
from tests.helpers.queue import (
    QueueWorld,
    branch,
    deployment_tags,
    mark,
    master_log,
    move_master,
    note_of,
    queue,
    queue_config,
    seed_queue,
)


@pytest.fixture
def world(gitea_env, tmp_path: Path):
    w = QueueWorld.create(gitea_env, tmp_path, "queue")
    w.deploy_log = tmp_path / "deploys.log"
    seed_queue(w, queue_config(w.deploy_log), {"shared.txt": "base\n"})
    yield w
    w.delete()


def test_queue_deploys_in_the_order_refspecs_became_deployable_and_records_each(world):
    w = world
    tips = {name: branch(w, name, {f"{name}.txt": name}) for name in ("bravo", "alpha",
                                                                      "charlie")}
    for name in ("charlie", "alpha", "bravo"):  # the order they become deployable
        mark(w, tips[name], "deployable")

    out = queue(w)
    assert out.returncode == 0, out.stderr[-3000:]
    assert master_log(w)[:3] == ["bravo: change", "alpha: change", "charlie: change"]
    deploys = w.deploy_log.read_text().split("\n")
    assert [line.split()[0] for line in deploys if line] == ["charlie", "alpha", "bravo"]
    tags = deployment_tags(w)
    assert sorted(tags) == ["deployment-0001", "deployment-0002", "deployment-0003"]
    for number, name in enumerate(("charlie", "alpha", "bravo"), start=1):
        commit = tags[f"deployment-{number:04d}"]
        assert w.remote_sha(f"refs/heads/{name}") == commit, "the branch is the deployed commit"
        note = note_of(w, commit)
        assert note.state == "deployed" and note.fields["annotation"] == "Successfully Deployed"
        assert note.fields["tag"] == f"deployment-{number:04d}"
        assert note.history[0]["state"] == "deployable", "history carried over"
        status = w.client.statuses(w.owner, w.name, commit)["pipelinelib/queue"]
        assert status.state == "success" and f"deployment-{number:04d}" in status.description

    head = w.remote_sha("refs/heads/master")
    again = queue(w)
    assert again.returncode == 0, again.stderr[-3000:]
    assert w.remote_sha("refs/heads/master") == head and len(deployment_tags(w)) == 3, \
        "a deployed refspec is never deployed again"


def test_a_conflict_marks_the_refspec_broken_naming_the_files_and_the_queue_goes_on(world):
    w = world
    clash = branch(w, "clash", {"shared.txt": "theirs\n"})
    fine = branch(w, "fine", {"fine.txt": "ok\n"})
    mark(w, clash, "deployable")
    mark(w, fine, "deployable")
    move_master(w, {"shared.txt": "ours\n"})

    out = queue(w)
    assert out.returncode == 1 and "clash: broken, conflicts in shared.txt" in out.stderr
    note = note_of(w, clash)
    assert note.state == "broken" and "conflicts in shared.txt" in note.fields["reason"]
    status = w.client.statuses(w.owner, w.name, clash)["pipelinelib/queue"]
    assert status.state == "failure" and "shared.txt" in status.description
    assert w.remote_sha("refs/heads/clash") == clash, "a broken refspec is left as it was"
    assert master_log(w)[0] == "fine: change"
    assert list(deployment_tags(w)) == ["deployment-0001"]


def test_a_failed_pipeline_is_a_failed_deployment_and_returns_to_development(world):
    w = world
    bad = branch(w, "bad", {"release.env": "APP=hello\nthis is not an env line\n"})
    good = branch(w, "good", {"good.txt": "ok\n"})
    mark(w, bad, "deployable")
    mark(w, good, "deployable")
    before = w.remote_sha("refs/heads/master")

    out = queue(w)
    assert out.returncode == 1 and "bad: Failed Deployment (stage env exited 2)" in out.stderr
    note = note_of(w, w.remote_sha("refs/heads/bad"))
    assert note.state == "development"
    assert note.fields["annotation"] == "Failed Deployment"
    assert "stage env exited 2" in note.fields["reason"]
    assert master_log(w)[0] == "good: change" and w.remote_sha("refs/heads/master") != before
    assert len(deployment_tags(w)) == 1, "no deployment record for the failed refspec"


def test_master_moving_rebases_deployable_and_staged_refspecs_with_a_lease(world):
    w = world
    staged = branch(w, "staged-work", {"staged.txt": "s\n"})
    dev = branch(w, "dev-work", {"dev.txt": "d\n"})
    mark(w, staged, "staged")  # dev-work stays in development: the developer rebases it
    master = move_master(w, {"other.txt": "o\n"})

    out = queue(w, "--rebase-only")
    assert out.returncode == 0, out.stderr[-3000:]
    rebased = w.remote_sha("refs/heads/staged-work")
    assert rebased != staged
    git(w.clone, "fetch", "-q", "origin")
    assert git_ok(w.clone, "merge-base", "--is-ancestor", master, rebased), \
        "rebased onto the new master"
    note = note_of(w, rebased)
    assert note.state == "staged" and "rebased onto" in note.fields["reason"]
    assert w.remote_sha("refs/heads/dev-work") == dev, "development refspecs are not touched"
    assert w.remote_sha("refs/heads/master") == master, "staged refspecs are not deployed"

    again = queue(w, "--rebase-only")
    assert again.returncode == 0 and w.remote_sha("refs/heads/staged-work") == rebased, \
        "rebasing is deterministic: nothing to do the second time"


def test_a_developers_concurrent_push_is_never_overwritten(world, tmp_path):
    from pipelinelib.context import Context
    from pipelinelib.queue.config import parse_config
    from pipelinelib.queue.runner import QueueRunner, candidates
    from pipelinelib.queue.workspace import Workspace

    w = world
    tip = branch(w, "racy", {"racy.txt": "1\n"})
    mark(w, tip, "deployable")
    move_master(w, {"other.txt": "o\n"})
    ws = Workspace.clone(Context(), w.url, tmp_path / "queue-clone")
    ws.refresh()
    config = parse_config(queue_config(tmp_path / "log"))
    runner = QueueRunner(Context(), ws, config, reports=tmp_path / "reports")
    cand = candidates(ws, config)[0]
    rebased = ws.rebase(cand.tip, ws.tip("master"))
    # the developer pushes between the queue's read and its push
    git(w.clone, "checkout", "-q", "racy")
    (w.clone / "racy.txt").write_text("2\n")
    git(w.clone, "commit", "-q", "-am", "racy: more")
    git(w.clone, "push", "-q", "origin", "racy")
    theirs = git(w.clone, "rev-parse", "HEAD")

    assert runner._push_rebased(cand, rebased.commit, ws.tip("master")) is False
    assert w.remote_sha("refs/heads/racy") == theirs, "the developer's push survives"
    assert runner.report.skipped == [{"branch": "racy", "why": "pushed meanwhile"}]
    assert note_of(w, rebased.commit).fields == {}, "no note for a commit that was not pushed"


def test_one_queue_runner_at_a_time(world, tmp_path):
    from pipelinelib.context import Context
    from pipelinelib.queue.lock import QueueLock
    from pipelinelib.queue.workspace import Workspace

    w = world
    tip = branch(w, "waits", {"waits.txt": "1\n"})
    mark(w, tip, "deployable")
    ws = Workspace.clone(Context(), w.url, tmp_path / "holder")
    lock = QueueLock(ws, holder="another runner", ttl_s=120)
    lock.acquire()
    try:
        out = queue(w)
        assert out.returncode == 1 and "another queue runner holds the queue lock" in out.stderr
        assert "held by another runner" in out.stderr
        assert w.remote_sha("refs/heads/waits") == tip and not deployment_tags(w)
    finally:
        lock.release()
    assert w.remote_sha("refs/pipelinelib/queue-lock") is None
    out = queue(w)
    assert out.returncode == 0, out.stderr[-3000:]
    assert list(deployment_tags(w)) == ["deployment-0001"]


def test_dry_run_shows_the_queue_in_order_and_writes_nothing(world):
    w = world
    clash = branch(w, "clash", {"shared.txt": "theirs\n"})
    fine = branch(w, "fine", {"fine.txt": "ok\n"})
    mark(w, fine, "deployable")
    mark(w, clash, "deployable")
    master = move_master(w, {"shared.txt": "ours\n"})

    out = run_pipeline("--dry-run", "queue", "--repo", w.url, env=w.ci_env())
    assert out.returncode == 0, out.stderr[-3000:]
    assert "would: deploy fine (deployable since" in out.stderr
    assert "mark clash broken: conflicts in shared.txt" in out.stderr
    assert out.stderr.index("deploy fine") < out.stderr.index("mark clash broken")
    assert w.remote_sha("refs/heads/master") == master and not deployment_tags(w)
    assert note_of(w, clash).state == "deployable" and w.remote_sha(
        "refs/pipelinelib/queue-lock") is None
