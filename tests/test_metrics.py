"""DORA metrics from the records of a real repository: tags, state notes, audit JSONL."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

from pipelinelib.adapters.git_repo import GitRepo
from pipelinelib.records import states, tags
from tests.helpers.cli import run_pipeline
from tests.helpers.git import clone, git

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)
DIGEST = "sha256:" + "12" * 32


def iso(hours: float) -> str:
    return (T0 + dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def commit_at(repo: Path, hours: float, name: str) -> str:
    (repo / "f.txt").write_text(name)
    env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.org",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.org",
           "GIT_COMMITTER_DATE": iso(hours), "GIT_AUTHOR_DATE": iso(hours)}
    subprocess.run(["git", "commit", "-q", "-am", name], cwd=repo, env=env, check=True)
    return git(repo, "rev-parse", "HEAD")


def new_repo(tmp_path: Path) -> tuple[Path, Path]:
    """A bare origin and a work tree with one tracked file (no commit yet)."""
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    (work / "f.txt").write_text("0")
    git(work, "add", "f.txt")
    return origin, work


def deploy(repo: GitRepo, commit: str, env: str, hours: float, ok: bool, build: str) -> None:
    """Write the records a deployment leaves (the annotate step's formats) at a given time."""
    dep_id = tags.deployment_id(commit, env, build)
    fields = {"deployment_id": dep_id, "environment": env, "commit": commit, "digest": DIGEST,
              "actor": "rita", "build_url": build, "time": iso(hours),
              "result": "success" if ok else "failure"}
    if ok:
        fields["tag"] = tags.ensure_deployment_tag(repo, fields).name
    states.set_state(repo, commit, {**fields, "state": "deployed" if ok else "broken",
                                    "annotation": "Successfully Deployed" if ok
                                    else "Failed Deployment"})


def test_metrics_from_tags_notes_and_audit(tmp_path: Path) -> None:
    origin, work = new_repo(tmp_path)
    c1 = commit_at(work, 0, "c1")
    c2 = commit_at(work, 3, "c2")
    c3 = commit_at(work, 6, "c3")
    c4 = commit_at(work, 8.5, "c4")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "-q", "origin", "main")
    repo = GitRepo.open(work)
    deploy(repo, c1, "staging", 1, True, "b0")
    deploy(repo, c1, "live", 2, True, "b1")
    deploy(repo, c2, "live", 5, False, "b2")
    deploy(repo, c3, "live", 7, True, "b3")
    states.set_state(repo, c3, {"state": "broken", "environment": "live", "time": iso(8),
                                "actor": "oncall", "reason": "incident 42"})
    audit_file = tmp_path / "audit.jsonl"  # c4's deployment is only in the audit trail
    audit_file.write_text(json.dumps({
        "@timestamp": iso(10)[:-1] + ".000Z", "action": "deployment", "result": "success",
        "environment": "live", "revision": c4, "user": "rita", "digest": DIGEST,
        "details": {"deployment_id": "feedfacefeedface"}}) + "\n")

    # read back from a fresh clone: git alone (plus the audit file) holds everything
    fresh = clone(tmp_path, origin, "fresh")
    out = run_pipeline("metrics", "--fetch", "--env", "live", "--since", iso(-1),
                       "--until", iso(23),
                       "--audit-file", str(audit_file), "--history", "--output", "json",
                       cwd=fresh)
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    assert (m["deployments"], m["successful"], m["failed"]) == (4, 3, 2)
    assert m["deployment_frequency_per_day"] == 3.0
    assert m["lead_time_hours_median"] == 1.5  # c1 2 h, c3 1 h, c4 1.5 h
    assert m["change_failure_rate"] == 0.5
    assert sorted(r["hours"] for r in m["restores"]) == [2.0, 5.0]
    assert m["time_to_restore_hours_median"] == 3.5
    assert [(h["commit"], h["result"], h["source"]) for h in m["history"]] == [
        (c1, "success", "note"), (c2, "failure", "note"), (c3, "success", "note"),
        (c4, "success", "audit")]
    assert m["history"][0]["tag"] == "deployment-0002"

    everywhere = run_pipeline("metrics", "--since", iso(-1), "--until", iso(23), cwd=fresh)
    assert everywhere.returncode == 0, everywhere.stderr
    # all environments (staging too), without the audit file
    assert "deployments            4 (3 successful, 2 failed)" in everywhere.stdout
    bad = run_pipeline("metrics", "--since", "yesterday", cwd=fresh)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_history_command_and_html_page_with_the_chart(tmp_path: Path) -> None:
    origin, work = new_repo(tmp_path)
    c1, c2 = commit_at(work, 0, "c1"), commit_at(work, 3, "c2")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "-q", "origin", "main")
    repo = GitRepo.open(work)
    deploy(repo, c1, "live", 2, True, "b1")
    deploy(repo, c2, "live", 26, False, "b2")  # the next day
    deploy(repo, c2, "live", 27, True, "b3")
    page = tmp_path / "dora.html"

    out = run_pipeline("history", "--fetch", "--env", "live", "--since", iso(-1),
                       "--until", iso(47), "--html", str(page),
                       cwd=clone(tmp_path, origin, "fresh"))

    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(1 for line in lines if " live " in line and c2[:12] in line) == 2  # the history
    assert "deployments            3 (2 successful, 1 failed)" in out.stdout
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    assert "<title>2026-11-02: 1 successful, 0 failed</title>" in text
    assert "<title>2026-11-03: 1 successful, 1 failed</title>" in text
    assert text.count('class="ok"') == 2 and text.count('class="failed" x=') == 1
    assert "deployment-0001" in text and "change failure rate" in text


def test_history_reads_the_local_clone_offline_and_fetches_only_when_asked(tmp_path: Path) -> None:
    """An unreachable remote: the clone's records are still read (exit 0), saying how old
    they are; --fetch is what contacts the remote (and then fails as Unreachable, exit 3)."""
    origin, work = new_repo(tmp_path)
    c1, c2 = commit_at(work, 0, "c1"), commit_at(work, 3, "c2")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "-q", "origin", "main")
    repo = GitRepo.open(work)
    deploy(repo, c1, "live", 2, True, "b1")
    reader = clone(tmp_path, origin, "reader")
    fetched = run_pipeline("history", "--fetch", "--env", "live", "--since", iso(-1),
                           "--until", iso(47), cwd=reader)
    assert fetched.returncode == 0, fetched.stderr
    assert "deployments            1 (1 successful, 0 failed)" in fetched.stdout
    deploy(repo, c2, "live", 5, True, "b2")  # newer than the reader's last fetch
    git(reader, "remote", "set-url", "origin", str(tmp_path / "gone.git"))

    offline = run_pipeline("history", "--env", "live", "--since", iso(-1), "--until", iso(47),
                           cwd=reader)
    assert offline.returncode == 0, offline.stderr
    assert "deployments            1 (1 successful, 0 failed)" in offline.stdout
    assert "records: local clone" in offline.stdout and "last fetched 20" in offline.stdout
    assert "run with --fetch for the newest" in offline.stdout
    as_json = run_pipeline("metrics", "--output", "json", "--env", "live", "--since", iso(-1),
                           "--until", iso(47), cwd=reader)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["deployments"] == 1 and data["fetched"] is False and data["data_as_of"]

    asked = run_pipeline("history", "--fetch", "--env", "live", cwd=reader)
    assert asked.returncode == 3, (asked.returncode, asked.stderr)


def test_two_deployments_within_one_second_are_ordered_by_their_tags(tmp_path: Path) -> None:
    from pipelinelib.records.metrics import deployed_in

    _, work = new_repo(tmp_path)
    commits = [commit_at(work, 0, "c1"), commit_at(work, 1, "c2")]
    repo = GitRepo.open(work)
    # the records' times have whole seconds: c2 follows c1 into live within the same one;
    # c2's commit sorts first by sha in one of the two orders, so both are tried
    for n, (first, second) in enumerate((commits, commits[::-1])):
        deploy(repo, first, "live", 2, True, f"b{n}-1")
        deploy(repo, second, "live", 2, True, f"b{n}-2")
        latest = deployed_in(repo, "live")
        assert latest is not None and latest.commit == second, (latest, second)
