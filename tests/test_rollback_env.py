"""``pipeline rollback --env``: a protected environment rolls back only to a digest that a
valid signed promotion (and, under four eyes, approval) carried into it before.

Real SSH keys, git repositories, registry and control plane; the rollback runs as the
least-privilege deployer (kubectl/admin only sets up the unpromoted revision and verifies).
"""

from __future__ import annotations

import json

from pipelinelib.attest import sign_image
from tests.helpers.cli import run_pipeline
from tests.helpers.envstate import ci_env, env_file, hand_edit
from tests.helpers.git import git, write_repo
from tests.helpers.registry import push_image
from tests.helpers.trust import TRUST_POLICY, make_trust, release_ctx
from tests.helpers.wait import wait_until


def _image(cluster, ns: str) -> str:
    live = cluster.json("-n", ns, "get", "deploy", "api")
    return live["spec"]["template"]["spec"]["containers"][0]["image"]


def test_rollback_in_a_protected_environment_only_to_a_promoted_digest(
        tmp_path, cluster, registry_env, monkeypatch):
    registry = registry_env["PIPELINELIB_REGISTRY"]
    prefix = f"rbe{tmp_path.name[-6:]}".lower().replace("_", "")
    repository = f"{registry}/{prefix}/api"
    v1, v2, v3 = (push_image(registry, f"{prefix}/api", f"{n}.0.0", str(n) * 40)
                  for n in (1, 2, 3))
    staging_ns, prod_ns = cluster.namespace("rbe"), cluster.namespace("rbe")
    cluster.kubectl("label", "namespace", prod_ns, "pipelinelib.dev/protected=true")
    trust = make_trust(tmp_path, TRUST_POLICY)
    monkeypatch.setenv("PIPELINE_ATTEST_KEY", str(trust.keys["attest"]))
    for digest in (v1, v2):
        sign_image(release_ctx(), repository, digest)
    clone, origin = write_repo(tmp_path, {
        "environments/staging.yaml": env_file("staging", staging_ns, repository, v1),
        "environments/prod.yaml": env_file("prod", prod_ns, repository, v3, "staging")},
        origin=True)
    deployer = {**cluster.kube_env, "KUBECONFIG": cluster.deployer_kubeconfig}

    def as_user(user: str, key: str | None = None) -> dict[str, str]:
        return {**ci_env(user), **deployer, **trust.env(key)}

    def promote_and_apply() -> None:
        base = ["promote", "api", "--from", "staging", "--to", "prod", "--repo", str(origin),
                "--no-apply"]
        for user, key, extra in (("rm-bob", "rm-bob", ["--approve"]),
                                 ("rm-alice", "jenkins", [])):
            out = run_pipeline(*base, *extra, env=as_user(user, key))
            assert out.returncode == 0, out.stderr[-2000:]
        git(clone, "pull", "-q", "--rebase", "origin", "main")
        out = run_pipeline("apply", "prod", "--repo", str(clone), env=as_user("rm-alice"))
        assert out.returncode == 0, out.stderr[-3000:]

    promote_and_apply()  # v1: revision 1
    assert _image(cluster, prod_ns).endswith(v1)
    hand_edit(clone, "staging", v1, v2, "dev-dana")  # staging is not protected
    promote_and_apply()  # v2: revision 2
    assert _image(cluster, prod_ns).endswith(v2)

    # an administrator runs v3 (never promoted) for a moment, then puts v2 back: revision 3
    # holds v3, revision 4 is v2 again
    def revisions() -> list[int]:
        return sorted(int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
                      for rs in cluster.json("-n", prod_ns, "get", "rs")["items"])

    for digest, expected in ((v3, [1, 2, 3]), (v2, [1, 3, 4])):
        cluster.kubectl("-n", prod_ns, "set", "image", "deploy/api", f"*={repository}@{digest}")
        # the deployment controller records the revision and finishes the rollout (its status
        # writes, were they still coming, would look like writes of the refused rollback)
        wait_until(lambda: revisions() == expected, 120, f"revisions {expected}")  # noqa: B023
        cluster.kubectl("-n", prod_ns, "rollout", "status", "deploy/api", "--timeout=120s")

    def settled() -> bool:  # the controllers' last status writes (the old pod terminating)
        deploy = cluster.json("-n", prod_ns, "get", "deploy", "api")
        status = deploy.get("status", {})
        return (status.get("observedGeneration") == deploy["metadata"]["generation"]
                and not status.get("terminatingReplicas")
                and status.get("updatedReplicas") == status.get("replicas")
                == status.get("availableReplicas"))

    wait_until(settled, 120, "the Deployment's status settled")

    # the default target (the revision before the live one) runs v3: refused, nothing written
    before = cluster.versions(prod_ns)
    for args in ([], ["--to-revision", "3"]):
        out = run_pipeline("rollback", "--env", "prod", "--repo", str(origin), "--app", "api",
                           *args, env=as_user("rm-alice"))
        assert out.returncode == 2, out.stderr[-2000:]
        assert "rollback of prod/api refused: Deployment/api revision #3" in out.stderr
        assert f"runs {v3}, which no valid signed promotion and approval ever carried " \
            "into prod" in out.stderr
        audits = [json.loads(line) for line in out.stderr.splitlines()
                  if line.startswith("{") and '"audit"' in line]
        assert [(a["action"], a["target"], a["result"]) for a in audits] == [
            ("rollback", "prod/api", "refused")], audits
        assert cluster.versions(prod_ns) == before, "nothing written"

    # someone without the role may not roll back at all
    out = run_pipeline("rollback", "--env", "prod", "--repo", str(origin), "--app", "api",
                       "--to-revision", "1", env=as_user("mallory"))
    assert out.returncode == 2 and "mallory may not roll back api in prod" in out.stderr
    assert cluster.versions(prod_ns) == before

    # revision 1 runs v1, promoted and approved before: the rollback passes the protected
    # namespace's guard and converges; a re-run changes nothing
    for expected, target in (("changed", ["--to-revision", "1"]),  # now revision 5
                             ("unchanged", ["--to-git-revision", "1" * 12])):
        out = run_pipeline("rollback", "--env", "prod", "--repo", str(origin), "--app", "api",
                           *target, env=as_user("rm-alice"))
        assert out.returncode == 0, out.stderr[-3000:]
        assert f'"status": "{expected}"' in out.stderr, out.stderr[-2000:]
        assert _image(cluster, prod_ns).endswith(v1)

    # without --env the protected namespace still refuses a rollback
    out = run_pipeline("rollback", "--app", "api", "-n", prod_ns, "--to-revision", "4",
                       env=as_user("rm-alice"))
    assert out.returncode == 2 and f"{prod_ns} is protected" in out.stderr
