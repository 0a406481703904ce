"""Promotion by digest through real git repositories (bare origin) and the real registry."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml

from pipelinelib.context import CIInfo, Context
from pipelinelib.promotion import hotfix
from pipelinelib.secrets import Secrets
from tests.conftest import git, run_pipeline
from tests.fixtures.envs.helpers import ci_env, pin, push_image, state_repo

REV = "1" * 40


@pytest.fixture
def world(tmp_path: Path, registry_env):
    clone, origin, prefix = state_repo(tmp_path)
    registry = registry_env["PIPELINELIB_REGISTRY"]
    api = push_image(registry, f"{prefix}/records-api", "1.0.1", REV, "1.0.1")
    portal = push_image(registry, f"{prefix}/patient-portal", "1.0.1", "2" * 40, "1.0.1")
    pin(clone, "int-test", "records-api", api, "1.0.1")
    pin(clone, "int-test", "patient-portal", portal, "1.0.1")
    return {"clone": clone, "origin": origin, "prefix": prefix, "registry": registry,
            "api": api, "portal": portal, "tmp": tmp_path}


def promote(world, user: str | None, *args: str, provider: str = "jenkins"):
    env = ci_env(user, provider) if user is not None else ci_env("", provider="none")
    return run_pipeline("promote", *args, "--repo", str(world["origin"]), "--no-apply",
                        env=env)


def origin_file(world, path: str, branch: str = "main") -> str:
    return git(world["origin"], "show", f"{branch}:{path}")


def origin_head(world, branch: str = "main") -> str:
    return git(world["origin"], "rev-parse", branch)


def spec_image(world, env: str, app: str, branch: str = "main") -> dict:
    data = yaml.safe_load(origin_file(world, f"environments/{env}.yaml", branch))
    return data["apps"][app]["image"]


def audit_events(stderr: str) -> list[dict]:
    events = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "audit":
                events.append(event)
    return events


def test_promotion_copies_the_exact_digest_in_one_clear_commit(world):
    out = promote(world, "qa-quinn", "records-api", "--from", "int-test", "--to", "qa")
    assert out.returncode == 0, out.stderr[-2000:]
    image = spec_image(world, "qa", "records-api")
    assert image["digest"] == world["api"] and image["revision"] == REV
    message = git(world["origin"], "log", "-1", "--format=%B", "main")
    assert message.startswith(f"promote records-api to qa: {world['api']} (from int-test)")
    assert "Promoted-by: qa-quinn (jenkins, http://jenkins.example/job/promote/7/)" in message
    assert git(world["origin"], "log", "-1", "--format=%an", "main") == "qa-quinn"
    changed = git(world["origin"], "show", "--name-only", "--format=", "main").split()
    assert changed == ["environments/qa.yaml"]
    diff = git(world["origin"], "show", "--format=", "main")
    edited = [ln for ln in diff.splitlines()
              if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert edited == ['-      tag: "1.0.0"', '+      tag: "1.0.1"',
                      f'+      digest: "{world["api"]}"', f'+      revision: "{REV}"',
                      '+      version: "1.0.1"'], "only the image lines change"
    assert [e["result"] for e in audit_events(out.stderr)] == ["done"]

    head = origin_head(world)
    again = promote(world, "qa-quinn", "records-api", "--from", "int-test", "--to", "qa")
    assert again.returncode == 0, again.stderr[-2000:]
    assert origin_head(world) == head, "promoting the same digest again writes nothing"


def test_a_user_without_the_role_is_refused_audited_and_nothing_is_written(world):
    head = origin_head(world)
    out = promote(world, "dev-dana", "records-api", "--from", "int-test", "--to", "qa")
    assert out.returncode == 2
    assert "dev-dana may not promote into qa" in out.stderr
    assert origin_head(world) == head
    events = audit_events(out.stderr)
    assert events and events[0]["result"] == "refused" and events[0]["user"] == "dev-dana"


def test_identity_comes_only_from_the_ci_server(world):
    head = origin_head(world)
    local = run_pipeline("promote", "records-api", "--from", "int-test", "--to", "qa",
                         "--repo", str(world["origin"]), "--no-apply",
                         env={"BUILD_USER_ID": "rm-alice"})
    assert local.returncode == 2 and "must run on the CI server" in local.stderr
    anonymous = promote(world, "", "records-api", "--from", "int-test", "--to", "qa")
    assert anonymous.returncode == 2 and "did not say who triggered" in anonymous.stderr
    gocd = promote(world, "qa-quinn", "records-api", "--from", "int-test", "--to", "qa",
                   provider="gocd")
    assert gocd.returncode == 0, gocd.stderr[-2000:]
    assert origin_head(world) != head


def test_an_image_missing_from_the_registry_is_refused(world):
    pin(world["clone"], "int-test", "records-api", "sha256:" + "e" * 64)
    head = origin_head(world)
    out = promote(world, "qa-quinn", "records-api", "--from", "int-test", "--to", "qa")
    assert out.returncode == 2
    assert "the registry has no image" in out.stderr
    assert origin_head(world) == head


def test_an_image_not_built_by_the_build_job_is_refused(world):
    stray = push_image(world["registry"], f"{world['prefix']}/records-api", "stray", None)
    pin(world["clone"], "int-test", "records-api", stray, "stray")
    out = promote(world, "qa-quinn", "records-api", "--from", "int-test", "--to", "qa")
    assert out.returncode == 2 and "was not built by the build job" in out.stderr


def test_promotion_only_from_the_declared_source_environment(world):
    out = promote(world, "rm-alice", "records-api", "--from", "int-test", "--to", "preprod")
    assert out.returncode == 2 and "takes promotions only from qa" in out.stderr


def _to_preprod(world):
    for args in (("--from", "int-test", "--to", "qa"), ("--from", "qa", "--to", "preprod")):
        out = promote(world, "rm-alice", "records-api", *args)
        assert out.returncode == 0, out.stderr[-2000:]


def test_four_eyes_a_second_person_must_approve_and_admins_cannot_bypass_it(world):
    _to_preprod(world)
    head = origin_head(world)
    out = promote(world, "rm-alice", "records-api", "--from", "preprod", "--to", "prod")
    assert out.returncode == 2 and "needs a second person's approval" in out.stderr
    own = promote(world, "rm-alice", "records-api", "--from", "preprod", "--to", "prod",
                  "--approve")
    assert own.returncode == 0, own.stderr[-2000:]
    out = promote(world, "rm-alice", "records-api", "--from", "preprod", "--to", "prod")
    assert out.returncode == 2 and "cannot approve their own promotion" in out.stderr
    qa = promote(world, "qa-quinn", "records-api", "--from", "preprod", "--to", "prod",
                 "--approve")
    assert qa.returncode == 2 and "may not approve" in qa.stderr
    bob = promote(world, "rm-bob", "records-api", "--from", "preprod", "--to", "prod",
                  "--approve")
    assert bob.returncode == 0, bob.stderr[-2000:]
    assert "approved_by: rm-bob" in origin_file(world, "approvals/prod/records-api.yaml")
    done = promote(world, "rm-alice", "records-api", "--from", "preprod", "--to", "prod")
    assert done.returncode == 0, done.stderr[-2000:]
    assert spec_image(world, "prod", "records-api")["digest"] == world["api"]
    message = git(world["origin"], "log", "-1", "--format=%B", "main")
    assert "Approved-by: rm-bob" in message and "Promoted-by: rm-alice" in message
    files = git(world["origin"], "ls-tree", "-r", "--name-only", "main").split()
    assert "approvals/prod/records-api.yaml" in files, "the deploy checks the approval again"
    assert "promotions/prod/records-api.yaml" in files, "who promoted, for the deploy's check"
    assert origin_head(world) != head


def test_an_approval_goes_stale_when_the_digest_changes(world):
    _to_preprod(world)
    bob = promote(world, "rm-bob", "records-api", "--from", "preprod", "--to", "prod",
                  "--approve")
    assert bob.returncode == 0, bob.stderr[-2000:]
    newer = push_image(world["registry"], f"{world['prefix']}/records-api", "1.0.2", "3" * 40)
    pin(world["clone"], "preprod", "records-api", newer, "1.0.2")
    head = origin_head(world)
    out = promote(world, "rm-alice", "records-api", "--from", "preprod", "--to", "prod")
    assert out.returncode == 2
    assert "the approval by rm-bob is stale: the digest changed" in out.stderr
    assert origin_head(world) == head


def test_an_approval_goes_stale_when_the_target_spec_changes(world):
    _to_preprod(world)
    bob = promote(world, "rm-bob", "records-api", "--from", "preprod", "--to", "prod",
                  "--approve")
    assert bob.returncode == 0, bob.stderr[-2000:]
    clone = world["clone"]
    git(clone, "pull", "-q", "origin", "main")
    path = clone / "environments" / "prod.yaml"
    path.write_text(path.read_text().replace("replicas: 3", "replicas: 5"))
    git(clone, "commit", "-q", "-am", "prod: 5 replicas")
    git(clone, "push", "-q", "origin", "HEAD:main")
    out = promote(world, "rm-alice", "records-api", "--from", "preprod", "--to", "prod")
    assert out.returncode == 2 and "stale: the spec changed" in out.stderr


def test_concurrent_promotions_into_one_environment_are_serialized(world):
    results = {}

    def run(app: str) -> None:
        results[app] = promote(world, "qa-quinn", app, "--from", "int-test", "--to", "qa")

    threads = [threading.Thread(target=run, args=(app,))
               for app in ("records-api", "patient-portal")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for app, out in results.items():
        assert out.returncode == 0, (app, out.stderr[-2000:])
    assert spec_image(world, "qa", "records-api")["digest"] == world["api"]
    assert spec_image(world, "qa", "patient-portal")["digest"] == world["portal"]
    subjects = git(world["origin"], "log", "-2", "--format=%s", "main").splitlines()
    assert sorted(s.split()[1] for s in subjects) == ["patient-portal", "records-api"]


def test_preprod_lands_through_a_branch_not_directly(world):
    _to_preprod(world)
    assert spec_image(world, "preprod", "records-api")["digest"] == world["api"]
    assert "digest" not in spec_image(world, "preprod", "records-api", branch="prod"), \
        "the prod branch only changes when the pull request is merged"


def test_hotfix_needs_a_reason_is_recorded_and_warns_until_back_merged(world):
    app_repo = world["tmp"] / "records-api-src"
    app_repo.mkdir()
    git(app_repo, "init", "-q", "-b", "main")
    (app_repo / "app.txt").write_text("v1\n")
    git(app_repo, "add", ".")
    git(app_repo, "commit", "-q", "-m", "v1")
    git(app_repo, "checkout", "-q", "-b", "hotfix/cve")
    (app_repo / "app.txt").write_text("v1 fixed\n")
    git(app_repo, "commit", "-q", "-am", "fix the CVE")
    fix = git(app_repo, "rev-parse", "HEAD")
    image = push_image(world["registry"], f"{world['prefix']}/records-api", "1.0.1-hotfix", fix)
    ref = f"{world['registry']}/{world['prefix']}/records-api@{image}"
    base = ("records-api", "--to", "prod", "--hotfix", "--image", ref,
            "--source-repo", str(app_repo))
    no_reason = promote(world, "rm-alice", *base)
    assert no_reason.returncode == 2 and "a hot-fix needs a reason" in no_reason.stderr
    dev = promote(world, "dev-dana", *base, "--reason", "CVE-2026-1")
    assert dev.returncode == 2 and "dev-dana may not hot-fix prod" in dev.stderr
    assert promote(world, "rm-bob", *base, "--reason", "CVE-2026-1", "--approve").returncode == 0
    out = promote(world, "rm-alice", *base, "--reason", "CVE-2026-1")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "is not yet in main: merge it back" in out.stderr
    message = git(world["origin"], "log", "-1", "--format=%B", "main")
    assert message.startswith("hot-fix records-api to prod") and "Hotfix: CVE-2026-1" in message
    record = yaml.safe_load(origin_file(world, "hotfixes/prod/records-api.yaml"))
    assert record["fix_commit"] == fix and record["reason"] == "CVE-2026-1"

    checkout = world["tmp"] / "check"
    git(world["tmp"], "clone", "-q", str(world["origin"]), str(checkout))
    assert hotfix.warnings(checkout, "prod")
    git(app_repo, "checkout", "-q", "main")
    git(app_repo, "merge", "-q", "--no-ff", "-m", "back-merge the hot-fix", "hotfix/cve")
    assert hotfix.warnings(checkout, "prod") == []


def test_a_build_of_a_branch_deploys_to_its_branch_environment_only(world):
    from pipelinelib.pipelines.branch_deploy import environment_for_branch

    assert environment_for_branch(str(world["clone"]), "sandbox") == "sandbox"
    assert environment_for_branch(str(world["clone"]), "main") == "staging"
    uro = push_image(world["registry"], f"{world['prefix']}/uro", "sandbox-abc", "4" * 40)
    ref = f"{world['registry']}/{world['prefix']}/uro@{uro}"
    out = promote(world, "changes", "uro", "--to", "sandbox", "--image", ref, provider="gocd")
    assert out.returncode == 0, out.stderr[-2000:]
    assert spec_image(world, "sandbox", "uro")["digest"] == uro
    assert git(world["origin"], "log", "-1", "--format=%s", "main").startswith(
        f"deploy uro to sandbox: {uro} (new build)")
    live = promote(world, "rm-alice", "uro", "--to", "live", "--image", ref)
    assert live.returncode == 2 and "not a branch environment" in live.stderr


def test_autoroll_applies_only_environments_a_commit_touched_from_their_branch(world):
    from pipelinelib.envspec.staterepo import EnvStateRepo
    from pipelinelib.pipelines.autoroll import touched_environments

    _to_preprod(world)
    clone = world["clone"]
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


def test_the_release_promote_job_is_the_cli_and_promotes_a_whole_environment(world):
    """release/promote (vars/pipelinePromote) and GoCD run `pipeline promote`: the one entry.
    The env-state repository comes from PIPELINE_ENV_REPO as the agents set it."""
    env = {**ci_env("qa-quinn"), "PIPELINE_ENV_REPO": str(world["origin"])}
    out = run_pipeline("promote", "--all", "--from", "int-test", "--to", "qa", "--no-apply",
                       env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert spec_image(world, "qa", "records-api")["digest"] == world["api"]
    assert spec_image(world, "qa", "patient-portal")["digest"] == world["portal"]
    missing = run_pipeline("promote", "--all", "--from", "int-test", "--to", "qa",
                           env={**env, "PIPELINE_ENV_REPO": ""})
    assert missing.returncode == 2 and "no env-state repository given" in missing.stderr
    assert not (Path(__file__).resolve().parents[1] / "jobs" / "promote.py").exists(), \
        "one entry per job: no second promote script"


def test_recorded_gate_results_must_have_passed_and_required_ones_must_exist(world):
    from pipelinelib.attest import write_attestation
    from pipelinelib.context import Context

    clone = world["clone"]
    git(clone, "pull", "-q", "origin", "main")
    policy = clone / "policy.yaml"
    policy.write_text(policy.read_text().replace(
        'qa: {promote: ["group:qa", "group:release-managers"]}',
        'qa: {promote: ["group:qa", "group:release-managers"], gates: [scan]}'))
    git(clone, "commit", "-q", "-am", "qa requires a scan result")
    git(clone, "push", "-q", "origin", "HEAD:main")
    args = ("records-api", "--from", "int-test", "--to", "qa")
    missing = promote(world, "qa-quinn", *args)
    assert missing.returncode == 2 and "no scan result is recorded" in missing.stderr
    image = f"{world['registry']}/{world['prefix']}/records-api"
    ctx = Context()
    write_attestation(ctx, image, world["api"], "scan", {"kind": "scan", "passed": False})
    failed = promote(world, "qa-quinn", *args)
    assert failed.returncode == 2 and "the scan gate failed" in failed.stderr
    write_attestation(ctx, image, world["api"], "scan", {"kind": "scan", "passed": True})
    passed = promote(world, "qa-quinn", *args)
    assert passed.returncode == 0, passed.stderr[-2000:]
    assert spec_image(world, "qa", "records-api")["digest"] == world["api"]
