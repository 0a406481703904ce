"""`pipeline annotate` killed right after each of its writes (tag push, note push, audit
event), read from the origin's ref updates and the audit file, then re-run: every channel
is completed once, nothing is lost or duplicated."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from pipelinelib.records import states
from pipelinelib.records.audit import read_jsonl
from pipelinelib.testing.faults import Scenario, count_retries
from pipelinelib.testing.kill import AppendWrites, GitRefWrites, KillHarness
from tests.helpers.cli import run_pipeline
from tests.helpers.git import clone, git, make_origin

DIGEST = "sha256:" + "5c" * 32


def annotate_world(tmp_path: Path, name: str) -> tuple[Path, Path, list[str], dict[str, str]]:
    root = tmp_path / name
    root.mkdir()
    origin, shas = make_origin(root)
    repo = clone(root, origin, "work")
    env = {**os.environ, "PIPELINE_LOG_FORMAT": "json",
           "PIPELINE_AUDIT_FILE": str(root / "audit.jsonl"),
           "PIPELINE_AUDIT_SPOOL": str(root / "spool"),
           "BUILD_URL": "https://ci.example/job/deploy/31/", "JOB_NAME": "deploy",
           "BUILD_NUMBER": "31", "BUILD_USER_ID": "rm-kim", "JENKINS_URL": "https://ci.example/"}
    return origin, repo, shas, env


def cmd(repo: Path, sha: str) -> list[str]:
    return [sys.executable, "-m", "pipelinelib", "annotate", "--env", "live", "--result",
            "success", "--app", "hello", "--revision", sha, "--repo", str(repo),
            "--digest", DIGEST]


def assert_annotated_once(origin: Path, sha: str, audit_file: str) -> None:
    tags = git(origin, "tag", "-l", "deployment-*").split()
    assert tags == ["deployment-0001"], f"one deployment tag, got {tags}"
    assert git(origin, "rev-parse", "deployment-0001^{commit}") == sha
    note = git(origin, "notes", "--ref", states.NOTES_REF, "show", sha)
    assert note.startswith("state: deployed\n")
    assert note.count("state: deployed") == 2, "the latest entry + one history entry"
    events = [e for e in read_jsonl(audit_file) if e["action"] == "deployment"]
    assert len(events) == 1, f"exactly one audit event, got {len(events)}"
    assert events[0]["details"]["tag"] == "deployment-0001"


def test_annotate_killed_after_every_write_completes_each_channel_once(
        tmp_path: Path, scenario) -> None:
    # 1. one clean run: the writes it makes, as the origin and the audit file saw them
    origin, repo, shas, env = annotate_world(tmp_path, "record")
    harness = KillHarness(cmd(repo, shas[-1]), env,
                          [GitRefWrites(origin), AppendWrites(env["PIPELINE_AUDIT_FILE"])])
    done, writes = harness.record()
    assert done.returncode == 0, done.stderr[-2000:]
    assert [w.what for w in writes] == ["refs/tags/deployment-0001",
                                         "refs/notes/pipelinelib-state", "deployment"]
    assert_annotated_once(origin, shas[-1], env["PIPELINE_AUDIT_FILE"])

    # 2. kill after write k, re-run, check
    worlds: dict[int, tuple[Path, Path, list[str], dict[str, str]]] = {}

    def fresh(k: int) -> None:
        world = annotate_world(tmp_path, f"k{k}-{time.monotonic_ns()}")
        worlds[k] = world
        harness.cmd = cmd(world[1], world[2][-1])
        harness.env = world[3]
        harness.sources = [GitRefWrites(world[0]), AppendWrites(world[3]["PIPELINE_AUDIT_FILE"])]

    def check(k: int, trial) -> None:
        row: Scenario = scenario("annotate", f"SIGKILL after write {k} of {len(writes)} "
                                 f"({writes[k - 1].system} {writes[k - 1].what})",
                                 writes[k - 1].system)
        row.outcome = f"killed after {trial.landed} write(s)"
        assert trial.killed and trial.landed == k, trial
        origin_k, repo_k, shas_k, env_k = worlds[k]
        started = time.monotonic()
        rerun = run_pipeline(*cmd(repo_k, shas_k[-1])[3:], env=env_k)
        row.seconds = round(time.monotonic() - started, 2)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        row.retries = count_retries(rerun.stderr)
        if k == len(writes):
            assert "already annotated: nothing written" in rerun.stdout
            row.rerun = "unchanged (nothing left to write)"
        else:
            assert "already annotated" not in rerun.stdout, "a re-run must complete the rest"
            done = rerun.stdout.strip().splitlines()[-1].split("; ")
            row.rerun = "converged: wrote " + ", ".join(a.split(":")[0].split(" ")[0]
                                                         for a in done)
        assert_annotated_once(origin_k, shas_k[-1], env_k["PIPELINE_AUDIT_FILE"])
        third = run_pipeline(*cmd(repo_k, shas_k[-1])[3:], env=env_k)
        assert third.returncode == 0 and "already annotated: nothing written" in third.stdout
        row.passed = True

    trials = harness.kill_at_every_write(len(writes), fresh, check)
    assert [t.landed for t in trials] == [1, 2, 3]


def test_a_rerun_after_the_note_completes_the_audit_event_exactly_once_even_if_spooled(
        tmp_path: Path) -> None:
    """The audit sink is down during the killed run's re-run: the event is spooled once,
    and a later run delivers it once (the spool flushes exactly once)."""
    origin, repo, shas, env = annotate_world(tmp_path, "spool")
    harness = KillHarness(cmd(repo, shas[-1]), env, [GitRefWrites(origin)])
    trial = harness.kill_after(2)  # tag and note pushed, audit not written
    assert trial.killed and [w.what for w in trial.writes] == [
        "refs/tags/deployment-0001", "refs/notes/pipelinelib-state"]
    # the file sink works, the URL sink is unreachable: spooled for the URL sink
    down = {**env, "PIPELINE_AUDIT_URL": "http://127.0.0.1:9/"}
    for _ in range(2):
        out = run_pipeline(*cmd(repo, shas[-1])[3:], env=down)
        assert out.returncode == 0, out.stderr[-2000:]
    spooled = list(Path(env["PIPELINE_AUDIT_SPOOL"]).glob("bulk-*/*.json"))
    assert len(spooled) == 1, "the same event is spooled once, however many re-runs"
    assert_annotated_once(origin, shas[-1], env["PIPELINE_AUDIT_FILE"])

