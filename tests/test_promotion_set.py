"""Whole-environment promotion under four eyes: one approval binds the whole set of
(app, digest, spec fingerprint); any member changing makes it stale. Real git repos
(bare origin) and the real registry."""

from __future__ import annotations

import yaml

from tests.helpers.envstate import pin
from tests.helpers.git import git
from tests.helpers.promotion import audit_events, origin_file, origin_head, promote, spec_image
from tests.helpers.registry import push_image

APPS = ("records-api", "patient-portal")
ALL = ("--all", "--from", "preprod", "--to", "prod")


def to_preprod(promo_world) -> None:
    for args in (("--from", "int-test", "--to", "qa"), ("--from", "qa", "--to", "preprod")):
        out = promote(promo_world, "rm-alice", *APPS, *args)
        assert out.returncode == 0, out.stderr[-2000:]


def files(promo_world) -> list[str]:
    return git(promo_world["origin"], "ls-tree", "-r", "--name-only", "main").split()


def test_one_approval_binds_the_whole_set_and_it_lands_in_one_commit(promo_world):
    to_preprod(promo_world)
    head = origin_head(promo_world)
    alone = promote(promo_world, "rm-alice", *ALL)
    assert alone.returncode == 2 and "approval (four eyes) of the whole set" in alone.stderr
    assert origin_head(promo_world) == head
    events = audit_events(alone.stderr)
    assert events[-1]["result"] == "refused" and "records-api" in events[-1]["target"]

    bob = promote(promo_world, "rm-bob", *ALL, "--approve")
    assert bob.returncode == 0, bob.stderr[-2000:]
    assert [f for f in files(promo_world)
            if f.startswith("approvals/")] == ["approvals/prod/_set.yaml"]
    approval = yaml.safe_load(origin_file(promo_world, "approvals/prod/_set.yaml"))
    assert approval["approved_by"] == "rm-bob" and sorted(approval["members"]) == sorted(APPS)
    assert approval["members"]["records-api"]["digest"] == promo_world["api"]

    own = promote(promo_world, "rm-bob", *ALL)
    assert own.returncode == 2 and "cannot approve their own promotion" in own.stderr
    before = origin_head(promo_world)
    done = promote(promo_world, "rm-alice", *ALL)
    assert done.returncode == 0, done.stderr[-2000:]
    assert git(promo_world["origin"], "rev-list", "--count", f"{before}..main") == "1", "one commit"
    assert spec_image(promo_world, "prod", "records-api")["digest"] == promo_world["api"]
    assert spec_image(promo_world, "prod", "patient-portal")["digest"] == promo_world["portal"]
    message = git(promo_world["origin"], "log", "-1", "--format=%B", "main")
    assert message.startswith("promote 2 apps to prod (from preprod)")
    assert "App: records-api" in message and "App: patient-portal" in message
    assert "Approved-by: rm-bob (the whole set)" in message
    assert "approvals/prod/_set.yaml" in files(promo_world), "the deploy checks the approval again"


def test_the_set_approval_goes_stale_when_any_member_changes(promo_world):
    to_preprod(promo_world)
    assert promote(promo_world, "rm-bob", *ALL, "--approve").returncode == 0
    newer = push_image(promo_world["registry"], f"{promo_world['prefix']}/patient-portal", "1.0.2",
                       "5" * 40)
    pin(promo_world["clone"], "preprod", "patient-portal", newer, "1.0.2")
    head = origin_head(promo_world)
    out = promote(promo_world, "rm-alice", *ALL)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "the approval by rm-bob is stale: the digest of patient-portal changed" in out.stderr
    assert origin_head(promo_world) == head

    assert promote(promo_world, "rm-bob", *ALL, "--approve").returncode == 0  # approve the new set
    clone = promo_world["clone"]
    git(clone, "pull", "-q", "--rebase", "origin", "main")
    path = clone / "environments" / "prod.yaml"
    path.write_text(path.read_text().replace("replicas: 3", "replicas: 5"))
    git(clone, "commit", "-q", "-am", "prod: records-api 5 replicas")
    git(clone, "push", "-q", "origin", "HEAD:main")
    head = origin_head(promo_world)
    out = promote(promo_world, "rm-alice", *ALL)
    assert out.returncode == 2 and "stale: the spec of records-api changed" in out.stderr
    assert origin_head(promo_world) == head


def test_a_set_approval_does_not_cover_a_different_set(promo_world):
    to_preprod(promo_world)
    assert promote(promo_world, "rm-bob", "records-api", "--from", "preprod", "--to", "prod",
                   "--approve").returncode == 0  # one app approved on its own
    out = promote(promo_world, "rm-alice", *ALL)
    assert out.returncode == 2 and "there is none" in out.stderr
    assert promote(promo_world, "rm-bob", *APPS, "--from", "preprod", "--to", "prod",
                   "--approve").returncode == 0
    alone = promote(promo_world, "rm-alice", "records-api", "--from", "preprod", "--to", "prod")
    assert alone.returncode == 0, "the single-app approval still covers that app alone"
    rest = promote(promo_world, "rm-alice", *ALL)
    assert rest.returncode == 0, "records-api already is what the set approval approved"
    assert spec_image(promo_world, "prod", "patient-portal")["digest"] == promo_world["portal"]
    subject = git(promo_world["origin"], "log", "-1", "--format=%s", "main")
    assert subject == "promote 1 app to prod (from preprod): patient-portal", subject
