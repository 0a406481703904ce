"""Promotions nobody can bypass: the deploy itself checks signed promotions and approvals.

Real SSH keys and ``ssh-keygen -Y``, real git repositories, the real registry and control
plane; every deploy runs as the least-privilege deployer (kubectl/admin only verifies).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from pipelinelib.attest import sign_image
from pipelinelib.envspec.load import environment_path, load_environment
from pipelinelib.errors import Refused
from pipelinelib.promotion import approvals
from pipelinelib.promotion.enforce import check_four_eyes, content_hash, enforce
from pipelinelib.promotion.policy import load_policy
from pipelinelib.promotion.trust import sign_policy
from tests.helpers.cli import run_pipeline
from tests.helpers.envstate import ci_env, env_file, hand_edit
from tests.helpers.git import git, write_repo
from tests.helpers.registry import push_image
from tests.helpers.trust import (
    DIGEST_A,
    DIGEST_B,
    TRUST_POLICY,
    make_trust,
    release_ctx,
    write_signed,
)


def _refusal(env) -> str:
    with pytest.raises(Refused) as caught:
        enforce(release_ctx(), env, ["api"])
    return caught.value.message


def test_a_promotion_signed_by_ci_and_approved_by_a_second_person_passes(signed):
    trust, clone, env = signed
    write_signed(clone, env, "rm-alice", "jenkins", "rm-bob", "rm-bob", trust)
    [verified] = enforce(release_ctx(), env, ["api"])
    assert (verified.promoted_by, verified.approved_by) == ("rm-alice", "rm-bob")


@pytest.mark.parametrize(("promoted_by", "promo_key", "approved_by", "approve_key", "reason"), [
    (None, None, None, None, "no signed promotion record"),
    ("rm-alice", "jenkins", None, None, "no valid signed approval by a second person"),
    ("rm-alice", "mallory", "rm-bob", "rm-bob", "names rm-alice but was signed by mallory"),
    ("rm-alice", "jenkins", "rm-bob", "mallory", "no valid signed approval"),
    ("rm-alice", "rm-alice", "rm-alice", "rm-alice", "cannot approve their own change"),
    ("mallory", "mallory", "rm-bob", "rm-bob", "mallory may not promote into prod"),
    ("rm-alice", "jenkins", "qa-quinn", "qa-quinn", "qa-quinn does not hold the approve role"),
])
def test_forged_missing_or_self_approvals_are_refused_naming_app_commit_and_author(
        signed, promoted_by, promo_key, approved_by, approve_key, reason):
    trust, clone, env = signed
    if promoted_by:
        write_signed(clone, env, promoted_by, promo_key, approved_by, approve_key, trust)
    message = _refusal(env)
    commit = git(clone, "rev-parse", "HEAD")[:12]
    assert reason in message and f"prod/api at commit {commit} by " in message
    assert message.split(" by ", 1)[1].startswith("Test <t@example.org>: ")


def test_an_approval_copied_onto_another_digest_or_edited_by_hand_is_refused(signed):
    trust, clone, env = signed
    write_signed(clone, env, "rm-alice", "jenkins", "rm-bob", "rm-bob", trust)
    path = clone / approvals.approval_path("prod", "api")
    path.write_text(path.read_text().replace("approved_by: rm-bob", "approved_by: rm-alice"))
    assert "no valid signed approval" in _refusal(env)
    write_signed(clone, env, "rm-alice", "jenkins", "rm-bob", "rm-bob", trust)
    moved = dataclasses.replace(env, apps={"api": dataclasses.replace(
        env.apps["api"], image=dataclasses.replace(env.apps["api"].image, digest=DIGEST_B))})
    assert "the digest changed after rm-alice promoted it" in _refusal(moved)


def test_a_policy_change_needs_two_signatures_and_the_repositorys_policy_is_ignored(signed):
    trust, clone, _ = signed
    (clone / "policy.yaml").write_text("environments:\n  prod: {promote: ['*']}\n")
    assert load_policy(clone).env("prod").four_eyes, "the env repo cannot lower the bar"
    trust.write_policy(TRUST_POLICY.replace("four_eyes: true", "four_eyes: false"),
                       signers=("rm-alice",))
    with pytest.raises(Refused, match=r"signed by 1 \(rm-alice\), not 2"):
        load_policy(clone)
    sign_policy(trust.directory, trust.keys["rm-alice"], "rm-alice-again")  # one person twice
    with pytest.raises(Refused, match="signed by 1"):
        load_policy(clone)
    (trust.directory / "policy.yaml").write_text(TRUST_POLICY)  # edited after signing
    with pytest.raises(Refused, match="signed by 0"):
        load_policy(clone)


def test_no_trust_root_means_a_protected_environment_takes_no_change(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_TRUST_DIR", raising=False)
    clone, _ = write_repo(tmp_path, {"environments/prod.yaml": env_file(
        "prod", "prod-ns", "127.0.0.1:5001/t/api", DIGEST_A), "policy.yaml": TRUST_POLICY})
    env = load_environment(environment_path(clone, "prod"), root=clone)
    assert "no trust root" in _refusal(env)


def test_check_four_eyes_is_the_people_rule_for_any_approval_source(signed):
    policy = load_policy(signed[1])
    assert check_four_eyes(policy, "prod", "rm-alice", "rm-bob") is None
    assert "own change" in check_four_eyes(policy, "prod", "rm-alice", "rm-alice")
    assert "approve role" in check_four_eyes(policy, "prod", "rm-alice", "qa-quinn")


def test_a_local_chart_tweak_changes_what_an_approval_binds(tmp_path):
    chart = tmp_path / "charts" / "portal"
    chart.mkdir(parents=True)
    (chart / "values.yaml").write_text("banner: hi\n")
    spec_text = env_file("prod", "ns", "127.0.0.1:5001/t/api", DIGEST_A).replace(
        "    replicas: 1\n", "    replicas: 1\n    chart: {name: portal, repository: "
        "charts/portal, version: 0.1.0}\n")
    (tmp_path / "environments").mkdir()
    (tmp_path / "environments" / "prod.yaml").write_text(spec_text)
    app = load_environment(environment_path(tmp_path, "prod"), root=tmp_path).apps["api"]
    before = content_hash(tmp_path, app)
    (chart / "values.yaml").write_text("banner: hi\n# touched\n")
    assert before and content_hash(tmp_path, app) != before


# --- end to end: promote, approve, apply on the real cluster as the deployer ---------------

def test_apply_deploys_only_signed_approved_changes_and_refuses_a_hand_push(
        tmp_path, cluster, registry_env, monkeypatch):
    registry = registry_env["PIPELINELIB_REGISTRY"]
    prefix = f"enf{tmp_path.name[-6:]}".lower().replace("_", "")
    repository = f"{registry}/{prefix}/api"
    v1 = push_image(registry, f"{prefix}/api", "1.0.0", "1" * 40)
    v2 = push_image(registry, f"{prefix}/api", "2.0.0", "2" * 40)
    staging_ns, prod_ns = cluster.namespace("enf"), cluster.namespace("enf")
    cluster.kubectl("label", "namespace", prod_ns, "pipelinelib.dev/protected=true")
    trust = make_trust(tmp_path, TRUST_POLICY)
    monkeypatch.setenv("PIPELINE_ATTEST_KEY", str(trust.keys["attest"]))
    sign_image(release_ctx(), repository, v2)  # as the build job does after the push
    clone, origin = write_repo(tmp_path, {
        "environments/staging.yaml": env_file("staging", staging_ns, repository, v2),
        "environments/prod.yaml": env_file("prod", prod_ns, repository, v1, "staging")},
        origin=True)
    deployer = {**cluster.kube_env, "KUBECONFIG": cluster.deployer_kubeconfig}

    def as_user(user: str, key: str | None = None) -> dict[str, str]:
        return {**ci_env(user), **deployer, **trust.env(key)}

    # 1. the bootstrap commit pinned v1 by hand: not promoted, so not deployed
    out = run_pipeline("apply", "prod", "--repo", str(clone), env=as_user("rm-alice"))
    head = git(clone, "rev-parse", "HEAD")[:12]
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"prod/api at commit {head} by Test <t@example.org>: no signed promotion" \
        in out.stderr
    refused = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")
               and '"audit"' in line]
    assert refused and refused[0]["result"] == "refused" and refused[0]["target"] == "prod/api"
    assert cluster.kubectl("-n", prod_ns, "get", "deploy", "-o", "name").strip() == "", \
        "nothing written"

    # 2. rm-bob approves with his key, rm-alice promotes (the CI key signs), apply deploys
    base = ["promote", "api", "--from", "staging", "--to", "prod", "--repo", str(origin),
            "--no-apply"]
    out = run_pipeline(*base, "--approve", env=as_user("rm-bob", "rm-alice"))
    assert out.returncode == 2 and "signing key is rm-alice's, not rm-bob's" in out.stderr
    out = run_pipeline(*base, "--approve", env=as_user("rm-bob", "rm-bob"))
    assert out.returncode == 0, out.stderr[-2000:]
    out = run_pipeline(*base, env=as_user("rm-alice", "jenkins"))
    assert out.returncode == 0, out.stderr[-2000:]
    git(clone, "pull", "-q", "origin", "main")
    out = run_pipeline("apply", "prod", "--repo", str(clone), env=as_user("rm-alice"))
    assert out.returncode == 0, out.stderr[-3000:]
    live = cluster.json("-n", prod_ns, "get", "deploy", "api")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"].endswith(v2)

    # 3. a writer of the repository pushes v1 back by hand: refused, nothing written
    before = {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in
              cluster.json("-n", prod_ns, "get", "deploy,svc,cm")["items"]}
    commit = hand_edit(clone, "prod", v2, v1, "mallory")
    out = run_pipeline("apply", "prod", "--repo", str(clone), env=as_user("mallory"))
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"prod/api at commit {commit} by mallory <mallory@example.org>: the digest " \
        "changed after rm-alice promoted it" in out.stderr
    after = {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in
             cluster.json("-n", prod_ns, "get", "deploy,svc,cm")["items"]}
    assert after == before

    # 4. the paths that know no environment cannot write into the protected namespace
    manifest = tmp_path / "by-hand.yaml"
    live["metadata"] = {"name": "api"}
    live.pop("status", None)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = f"{repository}@{v1}"
    manifest.write_text(json.dumps(live))
    out = run_pipeline("rollout", str(manifest), "--app", "api", "-n", prod_ns,
                       env=as_user("mallory"))
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"{prod_ns} is protected (pipelinelib.dev/protected=true)" in out.stderr
    assert {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in cluster.json(
        "-n", prod_ns, "get", "deploy,svc,cm")["items"]} == before


def test_a_swap_in_a_protected_environment_needs_the_same_evidence(tmp_path):
    trust = make_trust(tmp_path, TRUST_POLICY.replace(
        "  staging: {promote: [\"*\"], require_ci: false}",
        "  staging: {promote: [\"*\"], swap: [\"group:release-managers\"], protected: true}"))
    spec = env_file("staging", "staging-ns", "127.0.0.1:5001/t/api", DIGEST_A)
    clone, _ = write_repo(tmp_path, {"environments/staging.yaml": spec.replace(
        "    timeout: 60\n", "    timeout: 60\n    strategy: blue-green\n")})
    out = run_pipeline("swap", "--env", "staging", "--app", "api", "--repo", str(clone),
                       env={**ci_env("rm-alice"), **trust.env()})
    head = git(clone, "rev-parse", "HEAD")[:12]
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"swap of staging refused: staging/api at commit {head} by Test <t@example.org>: " \
        "no signed promotion record" in out.stderr


def test_rollback_in_a_protected_namespace_is_refused(cluster, tmp_path):
    from tests.helpers.manifests import web, write

    ns = cluster.namespace("enf")
    for n in (1, 2):
        out = run_pipeline("rollout", str(write(tmp_path / f"v{n}.yaml", web(n))), "--app",
                           "web", "-n", ns, env=cluster.cli_env())
        assert out.returncode == 0, out.stderr[-2000:]
    cluster.kubectl("label", "namespace", ns, "pipelinelib.dev/protected=true")
    before = cluster.versions(ns)
    out = run_pipeline("rollback", "--app", "web", "-n", ns, env=cluster.cli_env())
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"rollback refused: {ns} is protected" in out.stderr
    assert cluster.versions(ns) == before, "nothing written"
