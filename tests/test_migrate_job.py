"""The app's own migration command as a Kubernetes Job (kwok simulates the pods)."""

from __future__ import annotations

import pytest

from pipelinelib.errors import BadInput, StepFailed
from pipelinelib.steps.migrate import job_name, run_migration_job
from tests.helpers.cli import run_pipeline
from tests.helpers.manifests import image


def test_job_runs_from_the_digest_and_a_rerun_is_unchanged(cluster):
    ns = cluster.namespace("mig")
    ctx = cluster.ctx()
    ref = image(41)
    first = run_migration_job(ctx, ns, ref, ["./manage.py", "migrate"], timeout_s=60)
    assert first.changed and first.outputs["state"] == "succeeded"
    name = job_name("web", ref, ["./manage.py", "migrate"])
    live = cluster.json("-n", ns, "get", "job", name)
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == ref and container["command"] == ["./manage.py", "migrate"]
    assert live["spec"]["backoffLimit"] == 0
    again = run_migration_job(cluster.ctx(), ns, ref, ["./manage.py", "migrate"], timeout_s=60)
    assert not again.changed
    assert len(cluster.json("-n", ns, "get", "jobs")["items"]) == 1


def test_failed_job_shows_pod_and_events_and_cli_exits_1(cluster):
    ns = cluster.namespace("mig")
    ref = image(42)
    with pytest.raises(StepFailed) as failed:
        run_migration_job(cluster.ctx(), ns, ref, ["migrate", "up"],
                          annotations={"pipelinelib.dev/behavior": "job-fail"}, timeout_s=60)
    assert "migration Job" in failed.value.message and "failed" in failed.value.message
    evidence = "\n".join(failed.value.evidence)
    assert "pod web-migrate-" in evidence and "Failed" in evidence
    proc = run_pipeline("migrate", "--app", "shop", "--namespace", ns, "--job-image", ref,
                        "--job-command", "migrate up", "--job-annotation",
                        "pipelinelib.dev/behavior=job-fail", "--job-timeout", "60",
                        env=cluster.cli_env())
    assert proc.returncode == 1, proc.stderr
    assert "migration Job" in proc.stderr and "exit 1" in proc.stderr
    assert "BackoffLimitExceeded" in proc.stderr  # the Job's events are shown
    assert job_name("shop", ref, ["migrate", "up"]) in proc.stderr


def test_unpinned_image_is_refused_before_any_write(cluster):
    ns = cluster.namespace("mig")
    with pytest.raises(BadInput, match="not pinned by digest"):
        run_migration_job(cluster.ctx(), ns, "127.0.0.1:5001/acme/web:latest", ["migrate"])
    assert cluster.json("-n", ns, "get", "jobs")["items"] == []
