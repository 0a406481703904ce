"""The deploy queue's world on the real Gitea: a repository with .pipeline/queue.yaml,
branches to queue, state notes, deployment tags, and a runner that can be killed after any
of its writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pipelinelib.adapters.git_repo import GitRepo
from pipelinelib.records import format as fmt
from pipelinelib.records import states
from tests.helpers.cli import run_pipeline
from tests.helpers.git import git
from tests.helpers.gitea import GiteaWorld
from tests.helpers.wait import wait_until

CHECK_ENV = {"pipeline": ["env", "{workdir}/release.env"]}


class QueueWorld(GiteaWorld):
    """A ``GiteaWorld`` whose queue's deploy step appends to ``deploy_log``."""

    deploy_log: Path


def queue_config(deploy_log: Path, check: list[Any] | None = None) -> dict[str, Any]:
    """A queue on ``live`` whose deploy appends "BRANCH COMMIT" to ``deploy_log``."""
    return {"environment": "live",
            "check": check or [CHECK_ENV],
            "deploy": [{"run": ["sh", "-c", f'echo "$0 $1" >> {deploy_log}', "{branch}",
                                "{commit}"]}]}


def seed_queue(w: GiteaWorld, config: dict[str, Any],
               files: dict[str, str] | None = None) -> None:
    """Master gets .pipeline/queue.yaml (``config``), release.env and ``files``, pushed."""
    (w.clone / ".pipeline").mkdir()
    (w.clone / ".pipeline" / "queue.yaml").write_text(yaml.safe_dump(config))
    (w.clone / "release.env").write_text("APP=hello\n")
    for path, text in (files or {}).items():
        (w.clone / path).write_text(text)
    git(w.clone, "add", "-A")
    git(w.clone, "commit", "-q", "-m", "base")
    git(w.clone, "push", "-q", "origin", "master")


def branch(w: GiteaWorld, name: str, files: dict[str, str], base: str = "master") -> str:
    """Branch ``name`` off ``base`` with ``files`` changed, force-pushed; its tip."""
    git(w.clone, "checkout", "-q", "-B", name, f"origin/{base}" if base == "master" else base)
    for path, text in files.items():
        (w.clone / path).write_text(text)
    git(w.clone, "add", "-A")
    git(w.clone, "commit", "-q", "-m", f"{name}: change")
    git(w.clone, "push", "-q", "-f", "origin", name)
    return git(w.clone, "rev-parse", "HEAD")


def move_master(w: GiteaWorld, files: dict[str, str]) -> str:
    """A developer's commit on master (``files`` changed), pushed; its SHA."""
    git(w.clone, "fetch", "-q", "origin")
    git(w.clone, "checkout", "-q", "-B", "master", "origin/master")
    for path, text in files.items():
        (w.clone / path).write_text(text)
    git(w.clone, "add", "-A")
    git(w.clone, "commit", "-q", "-m", "master moves")
    git(w.clone, "push", "-q", "origin", "master")
    return git(w.clone, "rev-parse", "HEAD")


def mark(w: GiteaWorld, commit: str, state: str) -> None:
    """What `pipeline state set` does (same records code), in-process to keep tests short.
    Note times have second resolution: returns once the clock shows a later second, so the
    order in which refspecs "became deployable" is the order of the calls."""
    repo = GitRepo.open(w.clone)
    now = fmt.utc_now()
    states.set_state(repo, commit, {"state": state, "time": now, "actor": "dev"})
    wait_until(lambda: fmt.utc_now() > now, 3, "the next second of the note clock")


def note_of(w: GiteaWorld, commit: str) -> states.Note:
    repo = GitRepo.open(w.clone)
    states.fetch_notes(repo)
    return states.read_note(repo, commit)


def queue(w: GiteaWorld, *args: str) -> subprocess.CompletedProcess[str]:
    """`pipeline queue` on ``w`` with its CI credentials."""
    return run_pipeline("queue", "--repo", w.url, "--lock-ttl", "10", *args, env=w.ci_env())


def master_log(w: GiteaWorld) -> list[str]:
    """The subjects on origin/master, newest first."""
    git(w.clone, "fetch", "-q", "origin", "--tags", "--force")
    return git(w.clone, "log", "--format=%s", "origin/master").split("\n")


def deployment_tags(w: GiteaWorld) -> dict[str, str]:
    """deployment-NNNN tag -> the commit it points at, on the origin."""
    git(w.clone, "fetch", "-q", "origin", "--tags", "--force")
    out = git(w.clone, "for-each-ref", "--format=%(refname:strip=2) %(*objectname)",
              "refs/tags/deployment-*").split("\n")
    return dict(line.split() for line in out if line.strip())


def statuses_of(w: GiteaWorld, sha: str, context: str) -> list[str]:
    """Every status ``context`` ever got on ``sha`` (the server keeps them all)."""
    response = w.client.session.get(
        f"{w.client.url}/api/v1/repos/{w.owner}/{w.name}/statuses/{sha}?limit=50", timeout=30)
    response.raise_for_status()
    return [d.get("status") or d.get("state") for d in response.json()
            if d.get("context") == context]


# --- kill trials: the runner killed right after its N-th remote write ----------------------

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


def run_crasher(w: GiteaWorld, crasher: str, at: int, journal: Path) -> int:
    """Run ``crasher`` (CRASHER or a variant) on ``w``, killed after write ``at`` (0: never);
    each write is journalled to ``journal``. Its exit code (137 when killed)."""
    import os

    proc = subprocess.run([sys.executable, "-c", crasher, w.url, str(at), str(journal)],
                          env={**os.environ, **w.ci_env()}, capture_output=True, text=True,
                          check=False, timeout=600)
    return proc.returncode


def make_kill_world(gitea_env: dict[str, str], tmp_path: Path) -> QueueWorld:
    """Two deployable refspecs, one and two, that both need a rebase onto master."""
    w = QueueWorld.create(gitea_env, tmp_path, "kill")
    w.deploy_log = tmp_path / "deploys.log"
    seed_queue(w, queue_config(w.deploy_log))
    one = branch(w, "one", {"one.txt": "1\n"})
    two = branch(w, "two", {"two.txt": "2\n"})
    mark(w, one, "deployable")
    mark(w, two, "deployable")
    move_master(w, {"base2.txt": "x\n"})  # both need a rebase
    return w


def converged(w: GiteaWorld) -> None:
    """What an uninterrupted run leaves."""
    tags = deployment_tags(w)
    assert sorted(tags) == ["deployment-0001", "deployment-0002"], tags
    git(w.clone, "fetch", "-q", "origin")
    first_parent = git(w.clone, "rev-list", "--first-parent", "origin/master").split()
    landed = first_parent[:2]
    assert sorted(landed) == sorted(tags.values()), "every master move has its record"
    assert first_parent[2] == git(w.clone, "rev-parse", "origin/master~2")
    subjects = git(w.clone, "log", "-2", "--format=%s", "origin/master").splitlines()
    assert sorted(subjects) == ["one: change", "two: change"], "each refspec landed once"
    for commit in tags.values():
        note = note_of(w, commit)
        assert note.state == "deployed" and note.fields["annotation"] == "Successfully Deployed"
        status = w.client.statuses(w.owner, w.name, commit)["pipelinelib/queue"]
        assert status.state == "success"
    assert w.remote_sha("refs/pipelinelib/queue-lock") is None
