"""`pipeline rollback` on the real control plane, as the least-privilege deployer."""

from __future__ import annotations

import hashlib
import json

import pytest

from pipelinelib.errors import StepFailed
from pipelinelib.steps.rollback import ROLLED_BACK_FROM
from pipelinelib.steps.rollout import rollout
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster
from tests.helpers.manifests import image, web, write


def git(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()[:40]


def deploy(cluster: Cluster, ns: str, docs: list, n: int, app: str = "web") -> None:
    rollout(cluster.ctx(app, revision=git(n)), docs, app=app, namespace=ns, timeout=60)


def image_of(cluster: Cluster, ns: str, ref: str) -> str:
    obj = cluster.json("-n", ns, "get", ref)
    return obj["spec"]["template"]["spec"]["containers"][0]["image"]


def test_rollback_goes_to_the_previous_revision_once_and_records_why(cluster, tmp_path):
    ns, env = cluster.namespace("rb"), cluster.cli_env()
    for n in (1, 2, 3):
        deploy(cluster, ns, web(n, greeting=f"v{n}"), n)
    out = run_pipeline("rollback", "--app", "web", "-n", ns, "--dry-run", env=env)
    assert out.returncode == 0 and image_of(cluster, ns, "deploy/web") == image(3)

    out = run_pipeline("rollback", "--app", "web", "-n", ns, "--report-dir",
                       str(tmp_path / "r"), env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    live = cluster.json("-n", ns, "get", "deploy", "web")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image(2)
    assert live["status"]["readyReplicas"] == 2
    ann = live["metadata"]["annotations"]
    assert ann["pipelinelib.dev/revision"] == git(2), "the record says what runs now"
    assert ann[ROLLED_BACK_FROM].startswith("#3 git " + git(3)[:12])
    assert ann["kubernetes.io/change-cause"].startswith("pipelinelib rollback to #2")
    assert "rm-bob" in ann["kubernetes.io/change-cause"]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["steps"][0]["status"] == "changed"

    before = cluster.versions(ns)
    out = run_pipeline("rollback", "--app", "web", "-n", ns, env=env)
    assert out.returncode == 0 and '"status": "unchanged"' in out.stderr, out.stderr[-2000:]
    assert cluster.versions(ns) == before, "a re-run never rolls forward again"

    out = run_pipeline("rollback", "--app", "web", "-n", ns, "--list", env=env)
    assert out.returncode == 0
    for n in (1, 3):
        assert git(n)[:12] in out.stdout, out.stdout

    out = run_pipeline("rollback", "--app", "web", "-n", ns, "--to-git-revision", git(1)[:10],
                       env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert image_of(cluster, ns, "deploy/web") == image(1)

    deploy(cluster, ns, web(3, greeting="v3"), 3)
    live = cluster.json("-n", ns, "get", "deploy", "web")
    assert ROLLED_BACK_FROM not in live["metadata"]["annotations"], "a rollout clears the mark"
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image(3)


def test_bad_targets_exit_2_and_change_nothing(cluster):
    ns, env = cluster.namespace("rb"), cluster.cli_env()
    deploy(cluster, ns, web(1), 1)
    before = cluster.versions(ns)
    for args, expected in ((["--to-revision", "99"], "has no revision 99"),
                           (["--to-git-revision", "not-hex"], "is not a git revision"),
                           (["--to-git-revision", "abcdef0"], "no revision built from git abcdef0"),
                           ([], "Deployment/web has no earlier revision")):
        out = run_pipeline("rollback", "--app", "web", "-n", ns, *args, env=env)
        assert out.returncode == 2, (args, out.stderr[-1500:])
        assert expected in out.stderr, (args, out.stderr[-1500:])
    out = run_pipeline("rollback", "--app", "nothing-here", "-n", ns, env=env)
    assert out.returncode == 2 and "has no workloads" in out.stderr
    assert cluster.versions(ns) == before


def test_statefulsets_and_daemonsets_roll_back_through_controller_revisions(cluster):
    ns = cluster.namespace("rb")

    def docs(n: int) -> list:
        pod = {"metadata": {"labels": {"a": "db"}},
               "spec": {"containers": [{"name": "c", "image": image(n)}]}}
        agent = {"metadata": {"labels": {"a": "agent"}},
                 "spec": {"containers": [{"name": "c", "image": image(n + 10)}]}}
        return [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
             "spec": {"replicas": 2, "serviceName": "db",
                      "selector": {"matchLabels": {"a": "db"}}, "template": pod}},
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
             "spec": {"selector": {"matchLabels": {"a": "agent"}}, "template": agent}},
        ]

    deploy(cluster, ns, docs(1), 1, app="db")
    deploy(cluster, ns, docs(2), 2, app="db")
    out = run_pipeline("rollback", "--app", "db", "-n", ns, env=cluster.cli_env())
    assert out.returncode == 0, out.stderr[-2000:]
    assert image_of(cluster, ns, "sts/db") == image(1)
    assert image_of(cluster, ns, "ds/agent") == image(11)
    sts = cluster.json("-n", ns, "get", "sts", "db")
    assert sts["status"].get("updatedReplicas") == 2 and sts["status"]["readyReplicas"] == 2
    out = run_pipeline("rollback", "--app", "db", "-n", ns, "--list", env=cluster.cli_env())
    lines = out.stdout.splitlines()
    for kind in ("statefulset/db", "daemonset/agent"):
        # the controller reuses revision 1's object for the same template, as #3
        assert any(line.startswith(f"{kind} #3  git {git(1)[:12]}") for line in lines), lines
        assert any(line.startswith(f"{kind} #2  git {git(2)[:12]}") for line in lines), lines


def test_blue_green_rolls_back_by_switching_to_the_colour_that_served_before(cluster, tmp_path):
    ns, env = cluster.namespace("rb"), cluster.cli_env()
    base = ["--app", "web", "-n", ns, "--blue-green"]
    for n in (1, 2):
        out = run_pipeline("rollout", str(write(tmp_path / f"v{n}.yaml", web(n))), *base,
                           env=env)
        assert out.returncode == 0, out.stderr[-2000:]
    svc = lambda: cluster.json("-n", ns, "get", "svc", "web")["spec"]["selector"]  # noqa: E731
    assert svc()["pipelinelib.dev/color"] == "green"
    out = run_pipeline("rollback", "--app", "web", "-n", ns, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert svc()["pipelinelib.dev/color"] == "blue"
    mark = lambda: (cluster.json("-n", ns, "get", "svc", "web")["metadata"]  # noqa: E731
                    .get("annotations") or {}).get("pipelinelib.dev/rolled-back-from")
    assert mark() == "green", "the Service says which colour the rollback left"
    before = cluster.versions(ns)
    # the two rollouts may fall within one second (managedFields times): the mark, not the
    # times, tells that green was left by a rollback
    out = run_pipeline("rollback", "--app", "web", "-n", ns, env=env)
    assert out.returncode == 0 and cluster.versions(ns) == before, "no toggling back"
    out = run_pipeline("rollback", "--app", "web", "-n", ns, "--to-revision", "1", env=env)
    assert out.returncode == 2 and "rolls back by colour" in out.stderr
    out = run_pipeline("rollout", str(write(tmp_path / "v3.yaml", web(3))), *base, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert svc()["pipelinelib.dev/color"] == "green" and mark() is None, "a rollout clears it"
    out = run_pipeline("rollback", "--app", "web", "-n", ns, env=env)
    assert out.returncode == 0 and svc()["pipelinelib.dev/color"] == "blue"


def test_a_failed_first_deploy_deletes_what_it_created(cluster):
    ns = cluster.namespace("rb")
    with pytest.raises(StepFailed) as failed:
        rollout(cluster.ctx(), web(1, behavior="crash"), app="web", namespace=ns, timeout=60)
    assert "first deploy: what it created was deleted" in failed.value.one_line()
    evidence = "\n".join(failed.value.evidence)
    assert "Deployment/web: deleted (created by this rollout)" in evidence
    left = cluster.json("-n", ns, "get", "deploy,svc,cm,secret")["items"]
    assert [i["metadata"]["name"] for i in left
            if i["metadata"]["name"] != "kube-root-ca.crt"] == [], "nothing orphaned"


def test_a_failed_update_removes_its_new_config_and_keeps_the_old(cluster):
    ns = cluster.namespace("rb")
    deploy(cluster, ns, web(1, greeting="old"), 1)
    old = {i["metadata"]["name"] for i in cluster.json("-n", ns, "get", "cm")["items"]}
    with pytest.raises(StepFailed):
        rollout(cluster.ctx(), web(2, greeting="new", behavior="crash"), app="web",
                namespace=ns, timeout=60)
    now = {i["metadata"]["name"] for i in cluster.json("-n", ns, "get", "cm")["items"]}
    assert now == old, "the new hashed ConfigMap went with the failed rollout"
    assert image_of(cluster, ns, "deploy/web") == image(1)


