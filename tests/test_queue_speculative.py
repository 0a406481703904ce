"""The speculative queue (as Zuul's gate): the next N refspecs are checked in parallel, each
on top of the ones ahead of it; deployments still land strictly in order; a failure ejects
its refspec and the ones behind it are checked again on the new master."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tests.helpers.git import git
from tests.helpers.gitea import GiteaWorld
from tests.helpers.queue import CHECK_ENV, branch, deployment_tags, mark, note_of, queue, seed_queue

# (no literal braces: stage arguments are templates with {workdir}-style placeholders)
GATE = """
import json, sys, time
start = time.time()
time.sleep(float(sys.argv[3]))  # the gate's work: its duration is what overlaps
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(dict(branch=sys.argv[2], start=start, end=time.time(),
                            files=sorted(__import__("os").listdir(".")))) + "\\n")
sys.exit(1 if __import__("os").path.exists("fail.txt") else 0)
"""


@pytest.fixture
def world(gitea_env, tmp_path: Path):
    w = GiteaWorld.create(gitea_env, tmp_path, "spec")
    gates = tmp_path / "gates.jsonl"
    deploys = tmp_path / "deploys.log"
    config = {"environment": "live",
              "check": [CHECK_ENV, {"run": ["python3", "-c", GATE, str(gates), "{branch}",
                                            "4"]}],
              "deploy": [{"run": ["sh", "-c", f'echo "$0" >> {deploys}', "{branch}"]}]}
    seed_queue(w, config)
    w.gates, w.deploys = gates, deploys  # type: ignore[attr-defined]
    yield w
    w.delete()


def test_speculative_checks_overlap_deploys_stay_in_order_and_a_failure_is_ejected(world):
    w = world
    tips = {"a": branch(w, "a", {"a.txt": "a\n"}),
            "b": branch(w, "b", {"fail.txt": "the gate fails on this\n"}),
            "c": branch(w, "c", {"c.txt": "c\n"}),
            "d": branch(w, "d", {"d.txt": "d\n"})}
    for name in "abcd":
        mark(w, tips[name], "deployable")

    out = queue(w, "--speculative", "4")
    assert out.returncode == 1 and "b: Failed Deployment (stage python3 exited 1)" in out.stderr

    deploys = w.deploys.read_text().split()  # type: ignore[attr-defined]
    assert deploys == ["a", "c", "d"], "deployed strictly in queue order, the failure ejected"
    tags = deployment_tags(w)
    assert sorted(tags) == ["deployment-0001", "deployment-0002", "deployment-0003"]
    git(w.clone, "fetch", "-q", "origin")
    subjects = git(w.clone, "log", "-3", "--format=%s", "origin/master").splitlines()
    assert subjects == ["d: change", "c: change", "a: change"]
    assert note_of(w, w.remote_sha("refs/heads/b")).fields["annotation"] == "Failed Deployment"

    gates = [json.loads(line) for line in w.gates.read_text().splitlines()]  # type: ignore
    first_round = sorted(gates[:4], key=lambda g: g["branch"])
    assert [g["branch"] for g in first_round] == ["a", "b", "c", "d"]
    for ahead, behind in itertools.pairwise(first_round):
        assert behind["start"] < ahead["end"], f"{behind['branch']} was checked while " \
            f"{ahead['branch']} still was (speculatively, on top of it)"
    span = max(g["end"] for g in first_round) - min(g["start"] for g in first_round)
    assert sum(g["end"] - g["start"] for g in first_round) > span, "the checks overlapped"
    # c and d were checked on top of a and b first, then again on the new master without b
    c_runs = [g for g in gates if g["branch"] == "c"]
    d_runs = [g for g in gates if g["branch"] == "d"]
    assert len(c_runs) == 2 and len(d_runs) == 2, "the ones behind the failure re-ran"
    assert {"a.txt", "fail.txt", "c.txt"} <= set(c_runs[0]["files"]), "speculated on a and b"
    assert "fail.txt" not in c_runs[1]["files"], "re-checked without the ejected b"
    assert {"a.txt", "c.txt", "d.txt"} <= set(d_runs[1]["files"])
    assert len([g for g in gates if g["branch"] == "a"]) == 1, "a was checked once"
