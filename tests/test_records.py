"""Deployment tags and state notes in real git repositories with a bare origin."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from pipelinelib.adapters.git_repo import GitRepo
from pipelinelib.errors import Refused, Unreachable
from pipelinelib.records import format as fmt
from pipelinelib.records import states, tags
from tests.helpers import processes
from tests.helpers.git import clone, git, make_origin

DIGEST = "sha256:" + "cd" * 32


def tag_fields(commit: str, environment: str, build: str) -> dict[str, str]:
    return {"deployment_id": tags.deployment_id(commit, environment, build),
            "environment": environment, "commit": commit, "digest": DIGEST, "actor": "ci",
            "build_url": build, "time": fmt.utc_now(), "result": "success"}


def remote_tags(origin: Path) -> dict[str, str]:
    out = git(origin, "for-each-ref", "--format=%(refname:short) %(*objectname)",
              "refs/tags/deployment-*")
    return dict(line.split() for line in out.splitlines())


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, list[str]]:
    return make_origin(tmp_path)


def test_deployment_tags_are_numbered_pushed_and_a_rerun_adds_none(
        tmp_path: Path, world: tuple[Path, list[str]]) -> None:
    origin, shas = world
    repo = GitRepo.open(clone(tmp_path, origin, "a"))
    first = tags.ensure_deployment_tag(repo, tag_fields(shas[0], "live", "ci/1"))
    second = tags.ensure_deployment_tag(repo, tag_fields(shas[1], "live", "ci/2"))
    again = tags.ensure_deployment_tag(repo, tag_fields(shas[1], "live", "ci/2"))
    assert (first.name, second.name) == ("deployment-0001", "deployment-0002")
    assert first.changed and second.changed and not again.changed
    assert again.name == "deployment-0002"
    assert remote_tags(origin) == {"deployment-0001": shas[0], "deployment-0002": shas[1]}
    message = git(origin, "tag", "-l", "--format=%(contents)", "deployment-0002")
    assert message.startswith("Successfully Deployed: live (deployment-0002)")
    assert f"deployment_id: {tags.deployment_id(shas[1], 'live', 'ci/2')}" in message
    # the same commit deployed by another build is another deployment
    other = tags.ensure_deployment_tag(repo, tag_fields(shas[1], "live", "ci/3"))
    assert other.name == "deployment-0003"


def test_per_environment_numbering_and_dry_run_writes_nothing(
        tmp_path: Path, world: tuple[Path, list[str]]) -> None:
    origin, shas = world
    repo = GitRepo.open(clone(tmp_path, origin, "a"))
    staged = tags.ensure_deployment_tag(repo, tag_fields(shas[0], "staging", "b1"),
                                        per_environment=True)
    live = tags.ensure_deployment_tag(repo, tag_fields(shas[0], "live", "b1"),
                                      per_environment=True)
    plan = tags.ensure_deployment_tag(repo, tag_fields(shas[1], "staging", "b2"),
                                      per_environment=True, dry_run=True)
    assert (staged.name, live.name) == ("deployment-staging-0001", "deployment-live-0001")
    assert plan.name == "deployment-staging-0002" and plan.changed
    assert set(remote_tags(origin)) == {"deployment-staging-0001", "deployment-live-0001"}


def _tag_many(path: str, shas: list[str], worker: int, out: multiprocessing.Queue) -> None:
    repo = GitRepo.open(path)
    for i, sha in enumerate(shas):
        result = tags.ensure_deployment_tag(repo, tag_fields(sha, "live", f"w{worker}/{i}"))
        out.put((worker, result.name, result.attempts))


def test_two_processes_tagging_at_once_get_unique_numbers(
        tmp_path: Path, world: tuple[Path, list[str]]) -> None:
    origin, shas = world
    out = processes.queue()
    processes.run_at_once(_tag_many, [(str(clone(tmp_path, origin, f"c{w}")), shas * 2, w, out)
                                      for w in range(2)], timeout_s=120)
    results = [out.get(timeout=5) for _ in range(12)]
    names = sorted(name for _, name, _ in results)
    assert names == [f"deployment-{n:04d}" for n in range(1, 13)]
    assert sorted(remote_tags(origin)) == names
    ids = {tags.DeploymentTag.from_ref(r).deployment_id
           for r in GitRepo.open(clone(tmp_path, origin, "check")).refs(tags.TAG_GLOB)}
    assert len(ids) == 12


def note_entry(state: str, environment: str = "", **extra: str) -> dict[str, str]:
    return {"state": state, "environment": environment, "time": fmt.utc_now(),
            "actor": "ci", **extra}


def test_state_notes_default_to_development_and_refuse_illegal_transitions(
        tmp_path: Path, world: tuple[Path, list[str]]) -> None:
    origin, shas = world
    repo = GitRepo.open(clone(tmp_path, origin, "a"))
    states.fetch_notes(repo)
    assert states.read_note(repo, shas[0]).state == "development"
    staged = states.set_state(repo, shas[0], note_entry("staged", "staging"))
    deployed = states.set_state(repo, shas[0], note_entry("deployed", "live", digest=DIGEST))
    assert (staged.before, staged.after, deployed.after) == ("development", "staged", "deployed")
    with pytest.raises(Refused, match="deployed -> development"):
        states.set_state(repo, shas[0], note_entry("development"))
    with pytest.raises(Refused, match="deployed -> staged"):
        states.set_state(repo, shas[0], note_entry("staged"))
    # what the origin has, read from a fresh clone with plain git
    other = clone(tmp_path, origin, "b")
    git(other, "fetch", "-q", "origin", f"{states.NOTES_REF}:{states.NOTES_REF}")
    shown = git(other, "notes", "--ref", states.NOTES_REF, "show", shas[0])
    assert shown.splitlines()[0] == "state: deployed"
    note = states.Note.parse(shas[0], shown)
    assert [h["state"] for h in note.history] == ["staged", "deployed"]
    assert note.fields["digest"] == DIGEST and note.fields["environment"] == "live"
    # a re-run of the same change writes nothing; broken is allowed after deployed
    same = states.set_state(repo, shas[0], {**note_entry("deployed", "live", digest=DIGEST)})
    assert not same.changed
    assert states.set_state(repo, shas[0], note_entry("broken", "live")).after == "broken"


def _note_many(path: str, shas: list[str], worker: int) -> None:
    repo = GitRepo.open(path)
    for i, sha in enumerate(shas):
        state = "staged" if worker == 0 else "deployable"
        states.set_state(repo, sha, note_entry(state, f"env{worker}-{i}", reason=f"{worker}-{i}"))


def test_racing_note_writers_lose_no_write(tmp_path: Path, world: tuple[Path, list[str]]) -> None:
    origin, shas = world
    processes.run_at_once(_note_many, [(str(clone(tmp_path, origin, f"c{w}")), shas * 3, w)
                                       for w in range(2)], timeout_s=120)
    repo = GitRepo.open(clone(tmp_path, origin, "check"))
    states.fetch_notes(repo)
    notes = states.read_all(repo)
    assert set(notes) == set(shas)
    reasons = sorted(h["reason"] for n in notes.values() for h in n.history)
    assert reasons == sorted(f"{w}-{i}" for w in range(2) for i in range(9))


def test_an_unreachable_origin_raises_unreachable_and_leaves_no_local_note(
        tmp_path: Path, world: tuple[Path, list[str]]) -> None:
    origin, shas = world
    path = clone(tmp_path, origin, "a")
    repo = GitRepo.open(path)
    states.set_state(repo, shas[0], note_entry("staged", "staging"))
    git(path, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    with pytest.raises(Unreachable):
        states.set_state(repo, shas[1], note_entry("staged", "staging"))
    assert repo.note(states.NOTES_REF, shas[1]) is None
    assert repo.note(states.NOTES_REF, shas[0]) is not None


def test_tags_and_notes_work_on_an_agent_without_a_git_identity(
        tmp_path: Path, world: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    origin, shas = world
    path = tmp_path / "anon"
    git(tmp_path, "clone", "-q", str(origin), str(path))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    repo = GitRepo.open(path)
    assert tags.ensure_deployment_tag(repo, tag_fields(shas[0], "live", "b")).changed
    assert states.set_state(repo, shas[0], note_entry("deployed", "live")).changed
    assert "pipelinelib" in git(origin, "log", "-1", "--format=%an", states.NOTES_REF)


def test_a_transition_checked_against_a_stale_note_is_rechecked_after_losing_the_race(
        tmp_path: Path, world: tuple[Path, list[str]]) -> None:
    origin, shas = world
    other = GitRepo.open(clone(tmp_path, origin, "other"))

    class RacedRepo(GitRepo):
        """Real git; just before its first push, another job deploys the same commit."""

        raced = False

        def push_cas(self, updates: Any) -> None:
            if not self.raced:
                self.raced = True
                states.set_state(other, shas[0], note_entry("deployed", "live"))
            super().push_cas(updates)

    mine = RacedRepo(git_module_repo(clone(tmp_path, origin, "mine")))
    with pytest.raises(Refused, match="deployed -> staged"):
        states.set_state(mine, shas[0], note_entry("staged", "staging"))
    assert mine.raced
    check = GitRepo.open(clone(tmp_path, origin, "check"))
    states.fetch_notes(check)
    note = states.read_note(check, shas[0])
    assert note.state == "deployed" and [h["state"] for h in note.history] == ["deployed"]


def git_module_repo(path: Path) -> Any:
    import git as gitpython

    return gitpython.Repo(path)
