"""Promotion by digest through real git repositories (bare origin) and the real registry."""

from __future__ import annotations

import threading

import pytest
import yaml

from pipelinelib.context import CIInfo, Context
from pipelinelib.promotion import hotfix
from pipelinelib.secrets import Secrets
from tests.helpers.cli import run_pipeline
from tests.helpers.envstate import ci_env, pin
from tests.helpers.git import git, hotfix_repo
from tests.helpers.paths import ROOT
from tests.helpers.promotion import (
    REV,
    audit_events,
    origin_file,
    origin_head,
    promote,
    spec_image,
)
from tests.helpers.registry import push_image


def test_promotion_copies_the_exact_digest_in_one_clear_commit(promo_world):
    out = promote(promo_world, "qa-quinn", "records-api", "--from", "int-test", "--to", "qa")
    assert out.returncode == 0, out.stderr[-2000:]
    image = spec_image(promo_world, "qa", "records-api")
    assert image["digest"] == promo_world["api"] and image["revision"] == REV
    message = git(promo_world["origin"], "log", "-1", "--format=%B", "main")
    assert message.startswith(f"promote records-api to qa: {promo_world['api']} (from int-test)")
    assert "Promoted-by: qa-quinn (jenkins, http://jenkins.example/job/promote/7/)" in message
    assert git(promo_world["origin"], "log", "-1", "--format=%an", "main") == "qa-quinn"
    changed = git(promo_world["origin"], "show", "--name-only", "--format=", "main").split()
    assert changed == ["environments/qa.yaml"]
    diff = git(promo_world["origin"], "show", "--format=", "main")
    edited = [ln for ln in diff.splitlines()
              if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert edited == ['-      tag: "1.0.0"', '+      tag: "1.0.1"',
                      f'+      digest: "{promo_world["api"]}"', f'+      revision: "{REV}"',
                      '+      version: "1.0.1"'], "only the image lines change"
    assert [e["result"] for e in audit_events(out.stderr)] == ["done"]

    head = origin_head(promo_world)
    again = promote(promo_world, "qa-quinn", "records-api", "--from", "int-test", "--to", "qa")
    assert again.returncode == 0, again.stderr[-2000:]
    assert origin_head(promo_world) == head, "promoting the same digest again writes nothing"


def test_a_user_without_the_role_is_refused_audited_and_nothing_is_written(promo_world):
    head = origin_head(promo_world)
    out = promote(promo_world, "dev-dana", "records-api", "--from", "int-test", "--to", "qa")
    assert out.returncode == 2
    assert "dev-dana may not promote into qa" in out.stderr
    assert origin_head(promo_world) == head
    events = audit_events(out.stderr)
    assert events and events[0]["result"] == "refused" and events[0]["user"] == "dev-dana"


def test_identity_comes_only_from_the_ci_server(promo_world):
    head = origin_head(promo_world)
    local = run_pipeline("promote", "records-api", "--from", "int-test", "--to", "qa",
                         "--repo", str(promo_world["origin"]), "--no-apply",
                         env={"BUILD_USER_ID": "rm-alice"})
    assert local.returncode == 2 and "must run on the CI server" in local.stderr
    anonymous = promote(promo_world, "", "records-api", "--from", "int-test", "--to", "qa")
    assert anonymous.returncode == 2 and "did not say who triggered" in anonymous.stderr
    gocd = promote(promo_world, "qa-quinn", "records-api", "--from", "int-test", "--to", "qa",
                   provider="gocd")
    assert gocd.returncode == 0, gocd.stderr[-2000:]
    assert origin_head(promo_world) != head


def test_an_image_missing_from_the_registry_is_refused(promo_world):
    pin(promo_world["clone"], "int-test", "records-api", "sha256:" + "e" * 64)
    head = origin_head(promo_world)
    out = promote(promo_world, "qa-quinn", "records-api", "--from", "int-test", "--to", "qa")
    assert out.returncode == 2
    assert "the registry has no image" in out.stderr
    assert origin_head(promo_world) == head


def test_an_image_not_built_by_the_build_job_is_refused(promo_world):
    stray = push_image(promo_world["registry"],
                       f"{promo_world['prefix']}/records-api", "stray", None)
    pin(promo_world["clone"], "int-test", "records-api", stray, "stray")
    out = promote(promo_world, "qa-quinn", "records-api", "--from", "int-test", "--to", "qa")
    assert out.returncode == 2 and "was not built by the build job" in out.stderr


def test_promotion_only_from_the_declared_source_environment(promo_world):
    out = promote(promo_world, "rm-alice", "records-api", "--from", "int-test", "--to", "preprod")
    assert out.returncode == 2 and "takes promotions only from qa" in out.stderr


def _to_preprod(promo_world):
    for args in (("--from", "int-test", "--to", "qa"), ("--from", "qa", "--to", "preprod")):
        out = promote(promo_world, "rm-alice", "records-api", *args)
        assert out.returncode == 0, out.stderr[-2000:]


def test_four_eyes_a_second_person_must_approve_and_admins_cannot_bypass_it(promo_world):
    _to_preprod(promo_world)
    head = origin_head(promo_world)
    out = promote(promo_world, "rm-alice", "records-api", "--from", "preprod", "--to", "prod")
    assert out.returncode == 2 and "needs a second person's approval" in out.stderr
    own = promote(promo_world, "rm-alice", "records-api", "--from", "preprod", "--to", "prod",
                  "--approve")
    assert own.returncode == 0, own.stderr[-2000:]
    out = promote(promo_world, "rm-alice", "records-api", "--from", "preprod", "--to", "prod")
    assert out.returncode == 2 and "cannot approve their own promotion" in out.stderr
    qa = promote(promo_world, "qa-quinn", "records-api", "--from", "preprod", "--to", "prod",
                 "--approve")
    assert qa.returncode == 2 and "may not approve" in qa.stderr
    bob = promote(promo_world, "rm-bob", "records-api", "--from", "preprod", "--to", "prod",
                  "--approve")
    assert bob.returncode == 0, bob.stderr[-2000:]
    assert "approved_by: rm-bob" in origin_file(promo_world, "approvals/prod/records-api.yaml")
    done = promote(promo_world, "rm-alice", "records-api", "--from", "preprod", "--to", "prod")
    assert done.returncode == 0, done.stderr[-2000:]
    assert spec_image(promo_world, "prod", "records-api")["digest"] == promo_world["api"]
    message = git(promo_world["origin"], "log", "-1", "--format=%B", "main")
    assert "Approved-by: rm-bob" in message and "Promoted-by: rm-alice" in message
    files = git(promo_world["origin"], "ls-tree", "-r", "--name-only", "main").split()
    assert "approvals/prod/records-api.yaml" in files, "the deploy checks the approval again"
    assert "promotions/prod/records-api.yaml" in files, "who promoted, for the deploy's check"
    assert origin_head(promo_world) != head


def test_an_approval_goes_stale_when_the_digest_changes(promo_world):
    _to_preprod(promo_world)
    bob = promote(promo_world, "rm-bob", "records-api", "--from", "preprod", "--to", "prod",
                  "--approve")
    assert bob.returncode == 0, bob.stderr[-2000:]
    newer = push_image(promo_world["registry"],
                       f"{promo_world['prefix']}/records-api", "1.0.2", "3" * 40)
    pin(promo_world["clone"], "preprod", "records-api", newer, "1.0.2")
    head = origin_head(promo_world)
    out = promote(promo_world, "rm-alice", "records-api", "--from", "preprod", "--to", "prod")
    assert out.returncode == 2
    assert "the approval by rm-bob is stale: the digest changed" in out.stderr
    assert origin_head(promo_world) == head


def test_an_approval_goes_stale_when_the_target_spec_changes(promo_world):
    _to_preprod(promo_world)
    bob = promote(promo_world, "rm-bob", "records-api", "--from", "preprod", "--to", "prod",
                  "--approve")
    assert bob.returncode == 0, bob.stderr[-2000:]
    clone = promo_world["clone"]
    git(clone, "pull", "-q", "origin", "main")
    path = clone / "environments" / "prod.yaml"
    path.write_text(path.read_text().replace("replicas: 3", "replicas: 5"))
    git(clone, "commit", "-q", "-am", "prod: 5 replicas")
    git(clone, "push", "-q", "origin", "HEAD:main")
    out = promote(promo_world, "rm-alice", "records-api", "--from", "preprod", "--to", "prod")
    assert out.returncode == 2 and "stale: the spec changed" in out.stderr


def test_concurrent_promotions_into_one_environment_are_serialized(promo_world):
    results = {}

    def run(app: str) -> None:
        results[app] = promote(promo_world, "qa-quinn", app, "--from", "int-test", "--to", "qa")

    threads = [threading.Thread(target=run, args=(app,))
               for app in ("records-api", "patient-portal")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for app, out in results.items():
        assert out.returncode == 0, (app, out.stderr[-2000:])
    assert spec_image(promo_world, "qa", "records-api")["digest"] == promo_world["api"]
    assert spec_image(promo_world, "qa", "patient-portal")["digest"] == promo_world["portal"]
    subjects = git(promo_world["origin"], "log", "-2", "--format=%s", "main").splitlines()
    assert sorted(s.split()[1] for s in subjects) == ["patient-portal", "records-api"]


def test_preprod_lands_through_a_branch_not_directly(promo_world):
    _to_preprod(promo_world)
    assert spec_image(promo_world, "preprod", "records-api")["digest"] == promo_world["api"]
    assert "digest" not in spec_image(promo_world, "preprod", "records-api", branch="prod"), \
        "the prod branch only changes when the pull request is merged"


def test_hotfix_needs_a_reason_is_recorded_and_warns_until_back_merged(promo_world):
    app_repo = promo_world["tmp"] / "records-api-src"
    fix = hotfix_repo(app_repo, "hotfix/cve", "fix the CVE")
    image = push_image(promo_world["registry"],
                       f"{promo_world['prefix']}/records-api", "1.0.1-hotfix", fix)
    ref = f"{promo_world['registry']}/{promo_world['prefix']}/records-api@{image}"
    base = ("records-api", "--to", "prod", "--hotfix", "--image", ref,
            "--source-repo", str(app_repo))
    no_reason = promote(promo_world, "rm-alice", *base)
    assert no_reason.returncode == 2 and "a hot-fix needs a reason" in no_reason.stderr
    dev = promote(promo_world, "dev-dana", *base, "--reason", "CVE-2026-1")
    assert dev.returncode == 2 and "dev-dana may not hot-fix prod" in dev.stderr
    assert promote(promo_world, "rm-bob", *base, "--reason", "CVE-2026-1",
                   "--approve").returncode == 0
    out = promote(promo_world, "rm-alice", *base, "--reason", "CVE-2026-1")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "is not yet in main: merge it back" in out.stderr
    message = git(promo_world["origin"], "log", "-1", "--format=%B", "main")
    assert message.startswith("hot-fix records-api to prod") and "Hotfix: CVE-2026-1" in message
    record = yaml.safe_load(origin_file(promo_world, "hotfixes/prod/records-api.yaml"))
    assert record["fix_commit"] == fix and record["reason"] == "CVE-2026-1"

    checkout = promo_world["tmp"] / "check"
    git(promo_world["tmp"], "clone", "-q", str(promo_world["origin"]), str(checkout))
    assert hotfix.warnings(checkout, "prod")
    git(app_repo, "checkout", "-q", "main")
    git(app_repo, "merge", "-q", "--no-ff", "-m", "back-merge the hot-fix", "hotfix/cve")
    assert hotfix.warnings(checkout, "prod") == []


def test_a_build_of_a_branch_deploys_to_its_branch_environment_only(promo_world):
    from pipelinelib.pipelines.branch_deploy import environment_for_branch

    assert environment_for_branch(str(promo_world["clone"]), "sandbox") == "sandbox"
    assert environment_for_branch(str(promo_world["clone"]), "main") == "staging"
    uro = push_image(promo_world["registry"],
                     f"{promo_world['prefix']}/uro", "sandbox-abc", "4" * 40)
    ref = f"{promo_world['registry']}/{promo_world['prefix']}/uro@{uro}"
    out = promote(promo_world, "changes", "uro", "--to", "sandbox", "--image", ref, provider="gocd")
    assert out.returncode == 0, out.stderr[-2000:]
    assert spec_image(promo_world, "sandbox", "uro")["digest"] == uro
    assert git(promo_world["origin"], "log", "-1", "--format=%s", "main").startswith(
        f"deploy uro to sandbox: {uro} (new build)")
    live = promote(promo_world, "rm-alice", "uro", "--to", "live", "--image", ref)
    assert live.returncode == 2 and "not a branch environment" in live.stderr


def test_autoroll_applies_only_environments_a_commit_touched_from_their_branch(promo_world):
    from pipelinelib.envspec.staterepo import EnvStateRepo
    from pipelinelib.pipelines.autoroll import touched_environments

    _to_preprod(promo_world)
    clone = promo_world["clone"]
    git(clone, "fetch", "-q", "origin")
    git(clone, "checkout", "-q", "-B", "prod", "origin/prod")
    git(clone, "merge", "-q", "--no-ff", "-m", "Merge pull request: preprod", "origin/main")
    git(clone, "push", "-q", "origin", "prod")
    merge = git(clone, "rev-parse", "HEAD")
    state = EnvStateRepo.open(clone)
    assert touched_environments(state, merge, "prod") == ["preprod"]
    main_head = git(clone, "rev-parse", "origin/main")
    assert touched_environments(state, main_head, "main") == [], "preprod rolls from prod only"
    path = clone / "charts" / "portal" / "values.yaml"
    git(clone, "checkout", "-q", "main")
    git(clone, "pull", "-q", "origin", "main")
    path.write_text(path.read_text() + "# touched\n")
    git(clone, "commit", "-q", "-am", "portal chart tweak")
    chart_commit = git(clone, "rev-parse", "HEAD")
    assert touched_environments(state, chart_commit, "main") == ["int-test", "prod", "qa"]
    # ...but the tweak reaches prod only with a signed promotion and approval: refused here
    from pipelinelib.envspec.load import environment_path, load_environment
    from pipelinelib.errors import Refused
    from pipelinelib.promotion.enforce import enforce

    prod = load_environment(environment_path(clone, "prod"), root=clone)
    ctx = Context(secrets=Secrets(), ci=CIInfo(provider="jenkins", user="rm-alice"))
    with pytest.raises(Refused) as refused:
        enforce(ctx, prod, ["patient-portal"])
    assert f"prod/patient-portal at commit {chart_commit[:12]} by " in refused.value.message


def test_the_release_promote_job_is_the_cli_and_promotes_a_whole_environment(promo_world):
    """release/promote (vars/pipelinePromote) and GoCD run `pipeline promote`: the one entry.
    The env-state repository comes from PIPELINE_ENV_REPO as the agents set it."""
    env = {**ci_env("qa-quinn"), "PIPELINE_ENV_REPO": str(promo_world["origin"])}
    out = run_pipeline("promote", "--all", "--from", "int-test", "--to", "qa", "--no-apply",
                       env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert spec_image(promo_world, "qa", "records-api")["digest"] == promo_world["api"]
    assert spec_image(promo_world, "qa", "patient-portal")["digest"] == promo_world["portal"]
    missing = run_pipeline("promote", "--all", "--from", "int-test", "--to", "qa",
                           env={**env, "PIPELINE_ENV_REPO": ""})
    assert missing.returncode == 2 and "no env-state repository given" in missing.stderr
    assert not (ROOT / "jobs" / "promote.py").exists(), \
        "one entry per job: no second promote script"


def test_recorded_gate_results_must_have_passed_and_required_ones_must_exist(promo_world):
    from pipelinelib.attest import write_attestation
    from pipelinelib.context import Context

    clone = promo_world["clone"]
    git(clone, "pull", "-q", "origin", "main")
    policy = clone / "policy.yaml"
    policy.write_text(policy.read_text().replace(
        'qa: {promote: ["group:qa", "group:release-managers"]}',
        'qa: {promote: ["group:qa", "group:release-managers"], gates: [scan]}'))
    git(clone, "commit", "-q", "-am", "qa requires a scan result")
    git(clone, "push", "-q", "origin", "HEAD:main")
    args = ("records-api", "--from", "int-test", "--to", "qa")
    missing = promote(promo_world, "qa-quinn", *args)
    assert missing.returncode == 2 and "no scan result is recorded" in missing.stderr
    image = f"{promo_world['registry']}/{promo_world['prefix']}/records-api"
    ctx = Context()
    write_attestation(ctx, image, promo_world["api"], "scan", {"kind": "scan", "passed": False})
    failed = promote(promo_world, "qa-quinn", *args)
    assert failed.returncode == 2 and "the scan gate failed" in failed.stderr
    write_attestation(ctx, image, promo_world["api"], "scan", {"kind": "scan", "passed": True})
    passed = promote(promo_world, "qa-quinn", *args)
    assert passed.returncode == 0, passed.stderr[-2000:]
    assert spec_image(promo_world, "qa", "records-api")["digest"] == promo_world["api"]
