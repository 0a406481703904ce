"""`pipeline promote` (one app) killed right after each of its writes (the state repo's ref
update, the audit event), read from the origin's ref log hook and the audit file, then
re-run: the spec holds the digest once (one promotion commit) and one promotion event."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import yaml

from pipelinelib.records.audit import read_jsonl
from pipelinelib.testing.faults import Scenario, count_retries
from pipelinelib.testing.kill import AppendWrites, GitRefWrites, KillHarness, Trial
from tests.helpers.cli import run_pipeline
from tests.helpers.envstate import ci_env, pin, state_repo
from tests.helpers.git import git
from tests.helpers.registry import push_image

REV = "1" * 40


def promote_world(tmp_path: Path, registry: str) -> dict:
    root = tmp_path / f"w{time.monotonic_ns()}"
    root.mkdir()
    clone, origin, prefix = state_repo(root)
    api = push_image(registry, f"{prefix}/records-api", "1.0.1", REV, "1.0.1")
    pin(clone, "int-test", "records-api", api, "1.0.1")
    env = ci_env("qa-quinn", PIPELINE_LOG_FORMAT="json",
                 PIPELINE_AUDIT_FILE=str(root / "audit.jsonl"),
                 PIPELINE_AUDIT_SPOOL=str(root / "spool"))
    return {"origin": origin, "api": api, "env": env, "audit": str(root / "audit.jsonl")}


def args(world: dict) -> list[str]:
    return ["promote", "records-api", "--from", "int-test", "--to", "qa", "--repo",
            str(world["origin"]), "--no-apply"]


def assert_promoted_once(world: dict, base: str) -> None:
    spec = yaml.safe_load(git(world["origin"], "show", "main:environments/qa.yaml"))
    assert spec["apps"]["records-api"]["image"]["digest"] == world["api"]
    subjects = git(world["origin"], "log", "--format=%s", f"{base}..main").splitlines()
    assert len(subjects) == 1, f"one promotion commit: {subjects}"
    events = [e for e in read_jsonl(world["audit"]) if e["action"] == "promote"
              and e["target"] == "qa/records-api"]
    assert len(events) == 1, f"one promotion event, got {len(events)}"


def test_promote_killed_after_every_write_converges(tmp_path, registry_env, scenario):
    registry = registry_env["PIPELINELIB_REGISTRY"]
    world = promote_world(tmp_path, registry)
    base = git(world["origin"], "rev-parse", "main")
    harness = KillHarness([sys.executable, "-m", "pipelinelib", *args(world)],
                          {**os.environ, **world["env"]},
                          [GitRefWrites(world["origin"]), AppendWrites(world["audit"])])
    done, writes = harness.record()
    assert done.returncode == 0, done.stderr[-3000:]
    assert writes, "the promotion's writes"
    assert_promoted_once(world, base)
    state: dict = {}

    def fresh(_k: int) -> None:
        w = promote_world(tmp_path, registry)
        state["world"], state["base"] = w, git(w["origin"], "rev-parse", "main")
        harness.cmd = [sys.executable, "-m", "pipelinelib", *args(w)]
        harness.env = {**os.environ, **w["env"]}
        harness.sources = [GitRefWrites(w["origin"]), AppendWrites(w["audit"])]

    def check(k: int, trial: Trial) -> None:
        w = writes[k - 1]
        row: Scenario = scenario("promote (single)", f"SIGKILL after write {k}/{len(writes)} "
                                 f"({w.system} {w.what})", w.system)
        row.outcome = f"killed after {trial.landed} write(s)"
        assert trial.killed and trial.landed == k, (k, trial.writes, writes)
        started = time.monotonic()
        rerun = run_pipeline(*args(state["world"]), env=state["world"]["env"])
        row.seconds = round(time.monotonic() - started, 2)
        row.retries = count_retries(rerun.stderr)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert_promoted_once(state["world"], state["base"])
        row.rerun = "converged"
        row.passed = True

    harness.kill_at_every_write(len(writes), fresh, check)
