"""`pipeline annotate` killed right after each of its writes (tag push, note push, audit
event), read from the origin's ref updates and the audit file, then re-run: every channel
is completed once, nothing is lost or duplicated."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipelinelib.records import states
from pipelinelib.records.audit import read_jsonl
from pipelinelib.testing.faults import Scenario, count_retries
from pipelinelib.testing.kill import AppendWrites, GitRefWrites, KillHarness, RecordedWrites
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



# -- the CI write-back channel: Jenkins (description, display name) and GoCD (comment) ------

CI_TOKEN = "ci-kill-token-4471"


class CIServer:
    """One CI server's loopback stand-in (tests/jenkins_api.py, tests/gocd_agent.py: the
    servers' own payloads) behind a Toxiproxy latency toxic: the server records and answers
    the write at once, the answer waits in the proxy, so the kill lands before the audit
    write that follows it."""

    def __init__(self, kind: str, fault_proxy) -> None:
        self.kind = kind
        if kind == "jenkins":
            from tests.helpers.jenkins_api import JenkinsBuildAPI

            self.api: Any = JenkinsBuildAPI("ci-bot", CI_TOKEN, "deploy", 31)
            port = self.api.server.server_address[1]
        else:
            from tests.helpers.gocd_agent import GoCDServerAPI

            self.api = GoCDServerAPI(CI_TOKEN)
            port = self.api.server.server_address[1]
        self.proxy = fault_proxy(kind, f"127.0.0.1:{port}")
        self.proxy.add("latency", latency=300)
        if kind == "jenkins":  # its redirects name its root URL, the proxy's (as a Jenkins
            self.api.server.server_address = ("127.0.0.1", self.proxy.port)  # behind one)
        self.url = f"http://{self.proxy.listen}/"

    def env(self) -> dict[str, str]:
        if self.kind == "jenkins":
            return {"JENKINS_URL": self.url, "BUILD_URL": f"{self.url}job/deploy/31/",
                    "JOB_NAME": "deploy", "BUILD_NUMBER": "31", "BUILD_USER_ID": "rm-kim",
                    "PIPELINELIB_JENKINS_USER": "ci-bot", "PIPELINELIB_JENKINS_TOKEN": CI_TOKEN}
        return {"GO_SERVER_URL": f"{self.url}go", "GO_PIPELINE_NAME": "deploy",
                "GO_PIPELINE_COUNTER": "31", "GO_PIPELINE_LABEL": "31",
                "GO_TRIGGER_USER": "rm-kim", "PIPELINELIB_GOCD_TOKEN": CI_TOKEN}

    def writes(self) -> list[str]:
        """Every write the server answered, in order."""
        from urllib.parse import urlparse

        return [f"{method} {urlparse(path).path}" for method, path in list(self.api.requests)
                if method == "POST"]

    def says(self) -> list[str]:
        """What the build shows: Jenkins' description, GoCD's comment lines."""
        if self.kind == "jenkins":
            return [self.api.build["description"] or ""]
        return (self.api.comments.get(("deploy", 31)) or "").splitlines()

    def close(self) -> None:
        self.api.close()


def ci_world(tmp_path: Path, name: str, kind: str, fault_proxy, servers: list[CIServer]):
    origin, repo, shas, env = annotate_world(tmp_path, name)
    for key in ("BUILD_URL", "JOB_NAME", "BUILD_NUMBER", "BUILD_USER_ID", "JENKINS_URL"):
        env.pop(key)
    server = CIServer(kind, fault_proxy)
    servers.append(server)
    return origin, repo, shas, {**env, **server.env()}, server


@pytest.mark.parametrize("kind", ["jenkins", "gocd"])
def test_annotate_killed_around_the_ci_write_back_writes_it_exactly_once(
        tmp_path: Path, fault_proxy, scenario, kind: str) -> None:
    """The write-back is one of the step's writes, read from the CI server's own record:
    killed before it (after the tag or the note), the re-run writes it; killed after it
    (before the audit event), the re-run sees the build already says so and writes only the
    audit event. Over the killed run and its re-run the server took exactly one write-back,
    and the build shows the outcome once."""
    servers: list[CIServer] = []
    try:
        origin, repo, shas, env, server = ci_world(tmp_path, "record", kind, fault_proxy,
                                                   servers)
        harness = KillHarness(cmd(repo, shas[-1]), env, [
            GitRefWrites(origin), RecordedWrites(kind, server.writes),
            AppendWrites(env["PIPELINE_AUDIT_FILE"])])
        done, writes = harness.record()
        assert done.returncode == 0, done.stderr[-2000:]
        assert [w.system for w in writes] == ["git", "git", kind, "audit"], writes
        text = "Successfully Deployed to live (deployment-0001)"
        assert server.says().count(text) == 1, server.says()
        worlds: dict[int, tuple] = {}

        def fresh(k: int) -> None:
            world = ci_world(tmp_path, f"{kind}{k}-{time.monotonic_ns()}", kind, fault_proxy,
                             servers)
            worlds[k] = world
            o, r, s, e, srv = world
            harness.cmd, harness.env = cmd(r, s[-1]), e
            harness.sources = [GitRefWrites(o), RecordedWrites(kind, srv.writes),
                               AppendWrites(e["PIPELINE_AUDIT_FILE"])]

        def check(k: int, trial) -> None:
            w = writes[k - 1]
            row: Scenario = scenario(f"annotate ({kind} write-back)",
                                     f"SIGKILL after write {k} of {len(writes)} "
                                     f"({w.system} {w.what})", w.system)
            row.outcome = f"killed after {trial.landed} write(s)"
            assert trial.killed and trial.landed == k, (k, trial.writes)
            o, r, s, e, srv = worlds[k]
            before = len(srv.writes())
            assert before == (1 if k >= 3 else 0), srv.writes()
            started = time.monotonic()
            rerun = run_pipeline(*cmd(r, s[-1])[3:], env=e)
            row.seconds = round(time.monotonic() - started, 2)
            assert rerun.returncode == 0, rerun.stderr[-2000:]
            row.retries = count_retries(rerun.stderr)
            assert len(srv.writes()) == 1, f"one write-back in all: {srv.writes()}"
            assert srv.says().count(text) == 1, srv.says()
            assert_annotated_once(o, s[-1], e["PIPELINE_AUDIT_FILE"])
            wrote = rerun.stdout.strip().splitlines()[-1]
            assert (f"{kind}: {text}" in wrote) == (k < 3), wrote
            row.rerun = ("unchanged (nothing left to write)" if k == len(writes) else
                         "converged: wrote " + ", ".join(a.split(":")[0].split(" ")[0]
                                                          for a in wrote.split("; ")))
            third = run_pipeline(*cmd(r, s[-1])[3:], env=e)
            assert third.returncode == 0 and "already annotated: nothing written" in third.stdout
            assert len(srv.writes()) == 1
            row.lost = 0 if len(srv.writes()) == 1 else 1
            row.passed = True

        trials = harness.kill_at_every_write(len(writes), fresh, check)
        assert [t.landed for t in trials] == [1, 2, 3, 4]
    finally:
        for s in servers:
            s.close()
