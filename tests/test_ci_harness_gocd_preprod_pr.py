"""gocd/queue.gocd.yaml's ``ehealth-preprod-pr``, run by the GoCD agent harness
(tests/helpers/gocd_agent.py) against the real git server and control plane: the env-state material
is checked out, the task runs ``pipeline promote --to preprod --via-pull-request`` with the
repository from PIPELINE_ENV_REPO, the token from the secret store and the deployer's
kubeconfig. Run 1 (a release manager triggers it) opens the pull request; another release
manager reviews it; run 2 (the timer) merges, applies preprod and reports back."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.git import git
from tests.helpers.gitea import admin_client
from tests.helpers.paths import ROOT
from tests.helpers.pull_request import (
    PR_POLICY,
    change_master,
    deployed_image,
    drop_world,
    make_pr_world,
    open_pr,
    spec_digest,
)
from tests.helpers.trust import CI_KEY, make_trust


def test_the_gocd_preprod_pull_request_pipeline_promotes_on_an_agent(
        gitea_env, kube_env, tmp_path: Path) -> None:
    from tests.helpers.gocd_agent import GoCDAgent, load_pipelines, pipeline_env_for_test

    w = make_pr_world(gitea_env, kube_env, tmp_path / "repo", prefix="gocdpr")
    token_name = f"gocd-{w.name}"
    token = admin_client(gitea_env).create_token(token_name)
    try:
        change_master(w, "1.1")
        pipeline = load_pipelines(ROOT / "gocd" / "queue.gocd.yaml")["ehealth-preprod-pr"]
        # the agent administrators install the trust root and keys (secret params hold their
        # paths): the same policy as the repository's, signed by two people
        trust = make_trust(tmp_path / "trust-root", PR_POLICY, people=("alice", "bob"))
        mirror = tmp_path / "material.git"  # the harness checks materials out from local origins
        git(tmp_path, "clone", "-q", "--bare", w.url, str(mirror))
        agent = GoCDAgent(
            root=tmp_path / "agent",
            agent_env=pipeline_env_for_test({
                "PIPELINE_AUDIT_FILE": str(tmp_path / "audit.jsonl"),
                "KUBECONFIG": kube_env["PIPELINELIB_DEPLOYER_KUBECONFIG"]}),
            git_urls={"https://git.example.org/platform/env-state.git": str(mirror)},
            secrets={("pipelinelib", "gitea_token"): token,
                     ("pipelinelib", "gocd_token"): "planted-gocd-token",
                     ("pipelinelib", "trust_dir"): str(trust.directory),
                     ("pipelinelib", "promotion_key"): str(trust.keys[CI_KEY]),
                     ("pipelinelib", "attest_key"): str(trust.keys["attest"])},
            site={"PIPELINE_ENV_REPO": w.url,
                  "PIPELINELIB_GITEA_URL": gitea_env["PIPELINELIB_GITEA_URL"]})

        first = agent.run("ehealth-preprod-pr", pipeline, trigger_user="alice")
        assert [(s.name, s.result) for s in first.stages] == [("promote-preprod", "Passed")], \
            first.console()[-4000:]
        pr = open_pr(w)
        assert pr is not None and "Requested by: alice" in pr.body
        assert deployed_image(w) is None
        w.client.as_user("bob").review(w.owner, w.name, pr.number, "APPROVED", "ok",
                                       commit=pr.head_sha)

        second = agent.run("ehealth-preprod-pr", pipeline, trigger_user="timer")
        assert [(s.name, s.result) for s in second.stages] == [("promote-preprod", "Passed")], \
            second.console()[-4000:]
        merged = w.client.pull_request(w.owner, w.name, pr.number)
        assert merged.merged
        digest = spec_digest("1.1")
        assert digest in (deployed_image(w) or "")
        status = w.client.statuses(w.owner, w.name, merged.merge_commit)["pipelinelib/preprod"]
        assert status.state == "success" and "approved by bob" in status.description
        assert token not in first.console() + second.console()
    finally:
        admin_client(gitea_env).delete_token(token_name)
        drop_world(w)
