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


def kill_at_every_write(tmp_path: Path, registry: str, scenario, label: str,
                        make_world, make_args, assert_once,
                        twice: bool = False) -> tuple[list, list[Trial]]:
    """Record a promotion's writes (the origin's refs, the audit file), then for each k kill
    it right after write k in a fresh world and re-run it (``twice``: and once more): the
    world must hold the promotion once. The recorded writes and the trials."""
    world = make_world(tmp_path, registry)
    base = git(world["origin"], "rev-parse", "main")
    harness = KillHarness([sys.executable, "-m", "pipelinelib", *make_args(world)],
                          {**os.environ, **world["env"]},
                          [GitRefWrites(world["origin"]), AppendWrites(world["audit"])])
    done, writes = harness.record()
    assert done.returncode == 0, done.stderr[-3000:]
    assert writes, "the promotion's writes"
    assert_once(world, base)
    state: dict = {}

    def fresh(_k: int) -> None:
        w = make_world(tmp_path, registry)
        state["world"], state["base"] = w, git(w["origin"], "rev-parse", "main")
        harness.cmd = [sys.executable, "-m", "pipelinelib", *make_args(w)]
        harness.env = {**os.environ, **w["env"]}
        harness.sources = [GitRefWrites(w["origin"]), AppendWrites(w["audit"])]

    def check(k: int, trial: Trial) -> None:
        w = writes[k - 1]
        row: Scenario = scenario(label, f"SIGKILL after write {k}/{len(writes)} "
                                 f"({w.system} {w.what})", w.system)
        row.outcome = f"killed after {trial.landed} write(s)"
        assert trial.killed and trial.landed == k, (k, trial.writes, writes)
        started = time.monotonic()
        rerun = run_pipeline(*make_args(state["world"]), env=state["world"]["env"])
        row.seconds = round(time.monotonic() - started, 2)
        row.retries = count_retries(rerun.stderr)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert_once(state["world"], state["base"])
        if twice:
            again = run_pipeline(*make_args(state["world"]), env=state["world"]["env"])
            assert again.returncode == 0, again.stderr[-3000:]
            assert_once(state["world"], state["base"])
        row.rerun = "converged" if k < len(writes) else "unchanged (nothing left to write)"
        row.passed = True

    return writes, harness.kill_at_every_write(len(writes), fresh, check)


def test_promote_killed_after_every_write_converges(tmp_path, registry_env, scenario):
    kill_at_every_write(tmp_path, registry_env["PIPELINELIB_REGISTRY"], scenario,
                        "promote (single)", promote_world, args, assert_promoted_once)


# -- a set: several apps into a four-eyes environment, one approval, one commit -------------

SET_APPS = ("records-api", "patient-portal")


def set_world(tmp_path: Path, registry: str) -> dict:
    """Both apps promoted up to preprod, the whole set approved for prod by rm-bob; rm-alice's
    promotion of the set to prod (ci_env's build) is what gets killed."""
    root = tmp_path / f"s{time.monotonic_ns()}"
    root.mkdir()
    clone, origin, prefix = state_repo(root)
    api = push_image(registry, f"{prefix}/records-api", "1.0.1", REV, "1.0.1")
    portal = push_image(registry, f"{prefix}/patient-portal", "1.0.1", "2" * 40, "1.0.1")
    pin(clone, "int-test", "records-api", api, "1.0.1")
    pin(clone, "int-test", "patient-portal", portal, "1.0.1")
    for user, extra in (("rm-alice", ("--from", "int-test", "--to", "qa")),
                        ("rm-alice", ("--from", "qa", "--to", "preprod")),
                        ("rm-bob", (*SET_ARGS, "--approve"))):
        out = run_pipeline("promote", *SET_APPS if "--all" not in extra else (), *extra,
                           "--repo", str(origin), "--no-apply", env=ci_env(user))
        assert out.returncode == 0, out.stderr[-2000:]
    env = ci_env("rm-alice", PIPELINE_LOG_FORMAT="json",
                 PIPELINE_AUDIT_FILE=str(root / "audit.jsonl"),
                 PIPELINE_AUDIT_SPOOL=str(root / "spool"))
    return {"origin": origin, "digests": {"records-api": api, "patient-portal": portal},
            "env": env, "audit": str(root / "audit.jsonl")}


SET_ARGS = ("--all", "--from", "preprod", "--to", "prod")


def set_args(world: dict) -> list[str]:
    return ["promote", *SET_ARGS, "--repo", str(world["origin"]), "--no-apply"]


def assert_set_promoted_once(world: dict, base: str) -> None:
    spec = yaml.safe_load(git(world["origin"], "show", "main:environments/prod.yaml"))
    for app, digest in world["digests"].items():
        assert spec["apps"][app]["image"]["digest"] == digest, app
    subjects = git(world["origin"], "log", "--format=%s", f"{base}..main").splitlines()
    assert len(subjects) == 1 and subjects[0].startswith("promote 2 apps to prod"), subjects
    events = [e for e in read_jsonl(world["audit"]) if e["action"] == "promote"]
    assert sorted(e["target"] for e in events) == sorted(f"prod/{a}" for a in SET_APPS), (
        f"one promotion event per member: {[e['target'] for e in events]}")
    commit = git(world["origin"], "rev-parse", "main")
    assert {e["details"]["commit"] for e in events} == {commit}
    assert all(e["details"]["approved_by"] == "rm-bob" for e in events)


def test_set_promote_killed_after_every_write_converges(tmp_path, registry_env, scenario):
    """`pipeline promote --all --from preprod --to prod` (two apps, one set approval): its
    writes are the state repo's ref update (one commit for the set) and one audit event per
    member. Killed after each, re-run: one commit, one event per member, none twice."""
    writes, trials = kill_at_every_write(tmp_path, registry_env["PIPELINELIB_REGISTRY"],
                                         scenario, "promote (set of 2)", set_world, set_args,
                                         assert_set_promoted_once, twice=True)
    assert [w.system for w in writes] == ["git", "audit", "audit"], writes
    assert [t.landed for t in trials] == [1, 2, 3]
