"""The rollout step on the real control plane, run as the least-privilege deployer."""

from __future__ import annotations

import json

import pytest

from pipelinelib.errors import StepFailed
from pipelinelib.kube.labels import APP_LABEL, MANAGED_BY
from pipelinelib.kube.revisions import RECORD_PREFIX
from pipelinelib.steps.rollout import rollout
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster
from tests.helpers.manifests import PLANTED, digest, image, web, write


def deployment(cluster: Cluster, ns: str, name: str = "web") -> dict:
    return cluster.json("-n", ns, "get", "deployment", name)


def configmaps(cluster: Cluster, ns: str) -> list[str]:
    """The app's ConfigMaps (not the namespace's CA, nor the app's record of owned kinds)."""
    return sorted(i["metadata"]["name"] for i in cluster.json("-n", ns, "get", "configmaps")
                  ["items"] if i["metadata"]["name"] != "kube-root-ca.crt"
                  and not i["metadata"]["name"].startswith(RECORD_PREFIX))


def test_first_deploy_records_who_and_a_rerun_writes_nothing(cluster, tmp_path):
    ns = cluster.namespace()
    ctx = cluster.ctx()
    result = rollout(ctx, web(1), app="web", namespace=ns, timeout=60)
    # how fast is benchmarks/rollout_exit.py's to measure; here: ready, and said so
    assert result.changed and result.outputs["seconds_to_ready"] >= 0
    live = deployment(cluster, ns)
    assert live["status"]["readyReplicas"] == 2
    ann, labels = live["metadata"]["annotations"], live["metadata"]["labels"]
    assert labels[MANAGED_BY] == "pipelinelib" and labels[APP_LABEL] == "web"
    assert ann["pipelinelib.dev/digest"] == digest(1)
    assert ann["pipelinelib.dev/deployed-by"] == "rm-alice"
    assert ann["pipelinelib.dev/build-url"] == "https://ci.example/job/web/7/"
    assert ann["pipelinelib.dev/revision"].startswith("0123456789ab")
    assert ann["kubernetes.io/change-cause"].startswith("pipelinelib rollout 0123456789ab by rm")
    assert PLANTED not in json.dumps(live), "no secret in annotations or env"
    (cm,) = configmaps(cluster, ns)
    assert cm.startswith("web-config-") and len(cm) == len("web-config-") + 10
    env_from = live["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]
    assert env_from["configMapRef"]["name"] == cm, "reference rewritten to the hashed name"

    before = cluster.versions(ns)
    other = cluster.ctx(user="rm-bob", build_url="https://ci.example/job/web/8/")
    again = rollout(other, web(1), app="web", namespace=ns, timeout=60)
    assert not again.changed and again.outputs["writes"] == 0
    assert other.kube.writes == 0
    assert cluster.versions(ns) == before, "no object was written"


def test_update_rolls_the_image_and_config_change_prunes_old_config_after_success(cluster):
    ns = cluster.namespace()
    rollout(cluster.ctx(), web(1), app="web", namespace=ns, timeout=60)
    (old_cm,) = configmaps(cluster, ns)
    result = rollout(cluster.ctx(), web(2), app="web", namespace=ns, timeout=60)
    assert result.changed and "update Deployment/web" in result.actions
    assert deployment(cluster, ns)["spec"]["template"]["spec"]["containers"][0]["image"] \
        == image(2)
    result = rollout(cluster.ctx(), web(2, greeting="bonjour"), app="web", namespace=ns,
                     timeout=60)
    (new_cm,) = configmaps(cluster, ns)
    assert new_cm != old_cm and f"prune ConfigMap/{old_cm}" in result.actions
    live = deployment(cluster, ns)
    assert live["spec"]["template"]["spec"]["containers"][0]["envFrom"][0][
        "configMapRef"]["name"] == new_cm, "pods roll onto the new config"
    assert live["status"]["updatedReplicas"] == 2


def test_prune_deletes_only_objects_this_app_owns(cluster):
    ns = cluster.namespace()
    extra = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "old-svc"},
             "spec": {"selector": {"app": "web"}, "ports": [{"port": 81}]}}
    rollout(cluster.ctx(), web(1, extra=[extra]), app="web", namespace=ns, timeout=60)
    cluster.kubectl("-n", ns, "create", "configmap", "hand-made", "--from-literal=a=b")
    cluster.kubectl("-n", ns, "create", "configmap", "other-app", "--from-literal=a=b")
    cluster.kubectl("-n", ns, "label", "configmap", "other-app",
                    "app.kubernetes.io/managed-by=pipelinelib", "pipelinelib.dev/app=api")
    result = rollout(cluster.ctx(), web(1), app="web", namespace=ns, timeout=60)
    assert result.outputs["pruned"] == ["Service/old-svc"]
    services = [i["metadata"]["name"] for i in cluster.json("-n", ns, "get", "svc")["items"]]
    assert services == ["web"]
    assert {"hand-made", "other-app"} <= set(configmaps(cluster, ns))


def test_dry_run_shows_the_diff_and_prune_list_masks_secrets_and_writes_nothing(cluster):
    ns = cluster.namespace()
    rollout(cluster.ctx(), web(1), app="web", namespace=ns, timeout=60)
    before = cluster.versions(ns)
    ctx = cluster.ctx(dry_run=True)
    result = rollout(ctx, web(3, greeting="hi"), app="web", namespace=ns, timeout=60)
    assert result.dry_run and ctx.kube.writes == 0 and cluster.versions(ns) == before
    diff = "\n".join(result.outputs["diff"])
    assert digest(3) in diff and "+  GREETING: hi" in diff
    assert PLANTED not in diff and PLANTED not in json.dumps(result.to_dict())
    assert any(p.startswith("ConfigMap/web-config-") for p in result.outputs["prune"])


FAILURES = [
    ("crash", {"behavior": "crash"}, "CrashLoopBackOff"),
    ("pull", {"behavior": "pull-fail"}, "ImagePull"),
    ("unschedulable", {"node_selector": {"disktype": "none-such"}}, "Unschedulable"),
    ("timeout", {"behavior": "never-ready"}, "ReadinessTimeout"),
    ("deadline", {"behavior": "never-ready", "progress_deadline": 3}, "ProgressDeadlineExceeded"),
    ("config", {"behavior": "config-error"}, "CreateContainerConfigError"),
]


@pytest.mark.parametrize(("case", "bad", "reason"), FAILURES, ids=[f[0] for f in FAILURES])
def test_failure_is_detected_fast_with_evidence_and_rolled_back(cluster, case, bad, reason):
    ns = cluster.namespace()
    rollout(cluster.ctx(), web(1), app="web", namespace=ns, timeout=60)
    # only the "timeout" case may run out of time; the others get a deadline far beyond
    # what they need (an unschedulable pod waits out the 30 s unnamed-taint grace first: the
    # testbed's real node is tainted, as control planes are), so a slow machine cannot turn
    # their own failure into a timeout
    timeout = 6 if case == "timeout" else 120
    with pytest.raises(StepFailed) as failed:
        rollout(cluster.ctx(), web(2, **bad), app="web", namespace=ns, timeout=timeout)
    error = failed.value
    assert reason in error.one_line(), error.one_line()
    assert "previous revision is ready again" in error.one_line()
    if case != "timeout":  # failed on its own evidence, not by running out of time
        assert "ReadinessTimeout" not in error.one_line(), error.one_line()
    evidence = "\n".join(error.evidence)
    if case in ("crash", "pull", "config"):
        assert "event web-" in evidence and "log web-" in evidence, evidence
    assert "rollback: Deployment/web: rolled back" in evidence
    live = deployment(cluster, ns)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image(1)
    assert live["status"].get("readyReplicas") == 2


def test_failed_job_is_reported_with_its_pod(cluster):
    ns = cluster.namespace()
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
           "spec": {"backoffLimit": 0, "template": {
               "metadata": {"annotations": {"pipelinelib.dev/behavior": "job-fail"}},
               "spec": {"restartPolicy": "Never",
                        "containers": [{"name": "m", "image": image(5)}]}}}}
    with pytest.raises(StepFailed) as failed:
        rollout(cluster.ctx(), web(1, extra=[job]), app="web", namespace=ns, timeout=60)
    assert "job/migrate: failed" in failed.value.message
    assert any("migrate-" in line for line in failed.value.evidence)
    assert "Deployment" not in cluster.kubectl("-n", ns, "get", "deploy"), \
        "workloads wait for the Job"


def test_jobs_cronjobs_and_statefulsets_succeed(cluster):
    ns = cluster.namespace()
    pod = {"containers": [{"name": "c", "image": image(7)}]}
    docs = [
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
         "spec": {"template": {"spec": {**pod, "restartPolicy": "Never"}}}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
         "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {
             "spec": {**pod, "restartPolicy": "Never"}}}}}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
         "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"a": "db"}},
                  "template": {"metadata": {"labels": {"a": "db"}}, "spec": pod}}},
    ]
    result = rollout(cluster.ctx("batch"), docs, app="batch", namespace=ns, timeout=60)
    assert result.changed
    assert cluster.json("-n", ns, "get", "sts", "db")["status"]["readyReplicas"] == 2
    assert cluster.json("-n", ns, "get", "job", "migrate")["status"]["succeeded"] == 1


def test_bad_input_exits_2_before_any_write(cluster, tmp_path):
    ns = cluster.namespace()
    env = cluster.cli_env()
    unpinned = web(1)
    unpinned[2]["spec"]["template"]["spec"]["containers"][0]["image"] = "acme/web:latest"
    path = write(tmp_path / "unpinned.yaml", unpinned)
    out = run_pipeline("rollout", str(path), "--app", "web", "-n", ns, env=env)
    assert out.returncode == 2, out.stderr
    assert f"{path}:" in out.stderr and "doc 2 Deployment/web" in out.stderr
    assert "spec.template.spec.containers[0].image" in out.stderr
    assert "not pinned by digest" in out.stderr
    (tmp_path / "broken.yaml").write_text("kind: ConfigMap\nmetadata: {name: x\n")
    out = run_pipeline("rollout", str(tmp_path / "broken.yaml"), "--app", "web", "-n", ns,
                       env=env)
    assert out.returncode == 2 and "not valid YAML" in out.stderr
    unknown = write(tmp_path / "unknown.yaml", web(1, extra=[
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}]))
    out = run_pipeline("rollout", str(unknown), "--app", "web", "-n", ns, env=env)
    assert out.returncode == 2 and "unknown kind Widget" in out.stderr, out.stderr
    good = write(tmp_path / "good.yaml", web(1))
    out = run_pipeline("rollout", str(good), "--app", "web", "-n", ns,
                       "--allowed-namespaces", "prod,staging", env=env)
    assert out.returncode == 2 and "not in the allowed set" in out.stderr
    missing = write(tmp_path / "missing.yaml", web(1, config_ref="nowhere"))
    out = run_pipeline("rollout", str(missing), "--app", "web", "-n", ns, env=env)
    assert out.returncode == 2 and "ConfigMap nowhere does not exist" in out.stderr
    assert configmaps(cluster, ns) == [] and "web" not in cluster.kubectl("-n", ns, "get", "all")


def test_rbac_denial_names_verb_resource_and_namespace(cluster, tmp_path):
    ns = cluster.namespace(bind=False)
    out = run_pipeline("rollout", str(write(tmp_path / "m.yaml", web(1))), "--app", "web",
                       "-n", ns, env=cluster.cli_env())
    assert out.returncode == 2, out.stderr
    assert "forbids" in out.stderr and f"namespace {ns}" in out.stderr, out.stderr


def test_cli_rollout_and_noop(cluster, tmp_path):
    ns = cluster.namespace()
    path = write(tmp_path / "m" / "app.yaml", web(1))
    out = run_pipeline("rollout", str(path.parent), "--app", "web", "-n", ns,
                       "--report-dir", str(tmp_path / "r"), env=cluster.cli_env())
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert PLANTED not in json.dumps(summary)
    ann = deployment(cluster, ns)["metadata"]["annotations"]
    assert ann["pipelinelib.dev/deployed-by"] == "rm-bob"
    out = run_pipeline("rollout", str(path.parent), "--app", "web", "-n", ns,
                       env=cluster.cli_env())
    assert out.returncode == 0 and '"status": "unchanged"' in out.stderr, out.stderr


def test_deploy_job_and_undo_return_to_the_previous_revision(cluster, tmp_path):
    import subprocess
    import sys

    from tests.helpers.paths import ROOT

    ns = cluster.namespace()
    env = {**__import__("os").environ, **cluster.cli_env(), "PIPELINE_LOG_FORMAT": "json"}
    for n in (1, 2):
        path = write(tmp_path / f"v{n}.yaml", web(n))
        out = subprocess.run([sys.executable, str(ROOT / "jobs" / "deploy.py"), str(path),
                              "--namespace", ns], env={**env, "APP": "web"},
                             capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr[-2000:]
    assert deployment(cluster, ns)["spec"]["template"]["spec"]["containers"][0]["image"] \
        == image(2)
    out = run_pipeline("rollout", "--undo", "--app", "web", "-n", ns, env=cluster.cli_env())
    assert out.returncode == 0, out.stderr[-2000:]
    live = deployment(cluster, ns)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image(1)
    assert live["status"]["readyReplicas"] == 2


def test_progress_lines_while_waiting_and_ready_reported_promptly(cluster, tmp_path):
    ns = cluster.namespace()
    path = write(tmp_path / "slow.yaml", web(1, behavior="slow-ready", ready_after="4s"))
    out = run_pipeline("rollout", str(path), "--app", "web", "-n", ns, env=cluster.cli_env())
    assert out.returncode == 0, out.stderr[-2000:]
    events = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    progress = [e for e in events if e.get("event") == "waiting"]
    assert len(progress) >= 2 and "deployment/web" in progress[-1]["progress"]
    ready = next(e for e in events if e.get("event") == "ready")
    # not before the pods' 4 s; then at once: no progress line once the rollout is ready
    assert ready["seconds"] >= 4.0, ready
    assert events.index(ready) > events.index(progress[-1]), "ready is the last word"


def test_cli_pins_unpinned_manifests_to_the_builds_digests(cluster, tmp_path):
    ns, env = cluster.namespace(), cluster.cli_env()
    docs = web(1)
    docs[2]["spec"]["template"]["spec"]["containers"][0]["image"] = "acme/web:latest"
    path = write(tmp_path / "app.yaml", docs)
    build = tmp_path / "build"
    build.mkdir()
    (build / "summary.json").write_text(json.dumps({"steps": [
        {"name": "push", "outputs": {"image": image(4)}}]}))
    typo = f"acme/wbe={image(4)}"
    out = run_pipeline("rollout", str(path), "--app", "web", "-n", ns, "--from-build",
                       str(build), "--image", typo, env=env)
    assert out.returncode == 2 and "no container image matches acme/wbe" in out.stderr
    assert "web" not in cluster.kubectl("-n", ns, "get", "all"), "nothing applied"
    out = run_pipeline("rollout", str(path), "--app", "web", "-n", ns, "--from-build",
                       str(build), env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    live = deployment(cluster, ns)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image(4)
    assert live["metadata"]["annotations"]["pipelinelib.dev/digest"] == digest(4)
