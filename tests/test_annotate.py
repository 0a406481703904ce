"""Annotating deployments: git tag + note, the workload on a real control plane, the audit
trail, and the failure annotation after a failed step (Job.always)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from pipelinelib.adapters.git_repo import GitRepo
from pipelinelib.context import CIInfo, Context, Credentials
from pipelinelib.errors import BadInput, StepFailed
from pipelinelib.job import Job
from pipelinelib.records import states
from pipelinelib.records.audit import read_jsonl
from pipelinelib.step import step
from pipelinelib.steps.annotate import annotate_deployment
from tests.helpers.cli import run_pipeline
from tests.helpers.git import clone, git, make_origin

DIGEST = "sha256:" + "9f" * 32
PLANTED = "planted-annot-s3cret"


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    origin, shas = make_origin(tmp_path)
    path = clone(tmp_path, origin, "work")
    return {"origin": origin, "shas": shas, "repo": path,
            "env": {"PIPELINE_AUDIT_FILE": str(tmp_path / "audit.jsonl"),
                    "PIPELINE_AUDIT_SPOOL": str(tmp_path / "spool")}}


def make_ctx(world: dict[str, Any], revision: str, environment: str = "live",
             **adapters: Any) -> Context:
    """deploy-dave's Jenkins run (no write-back token), auditing to the world's file."""
    ctx = Context(app="hello", environment=environment, revision=revision,
                  ci=CIInfo(provider="jenkins", user="deploy-dave",
                            build_url=f"https://ci:{PLANTED}@ci.example.org/job/deploy/7/",
                            build_number="7", job="deploy"),
                  credentials=Credentials.from_env(world["env"]), adapters=dict(adapters))
    ctx.secrets.add(PLANTED)
    return ctx


def test_success_tags_notes_and_audits_once_and_a_rerun_writes_nothing(
        world: dict[str, Any]) -> None:
    sha = world["shas"][-1]
    ctx = make_ctx(world, sha)
    first = annotate_deployment(ctx, repo=world["repo"], digest=DIGEST,
                                reason=f"release {PLANTED}")
    again = annotate_deployment(ctx, repo=world["repo"], digest=DIGEST)
    assert first.changed and first.outputs["tag"] == "deployment-0001"
    assert first.outputs["state"] == "deployed"
    assert not again.changed and "already annotated" in again.summary
    origin = world["origin"]
    assert git(origin, "rev-parse", "deployment-0001^{commit}") == sha
    note = git(origin, "notes", "--ref", states.NOTES_REF, "show", sha)
    assert note.startswith("state: deployed\n")
    assert "annotation: Successfully Deployed" in note and DIGEST in note
    assert "build_url: https://ci.example.org/job/deploy/7/" in note
    [event] = read_jsonl(world["env"]["PIPELINE_AUDIT_FILE"])
    assert (event["action"], event["result"], event["revision"]) == ("deployment", "success", sha)
    assert event["details"]["tag"] == "deployment-0001" and event["to"] == "live"
    everything = note + json.dumps(event) + git(origin, "tag", "-l", "-n99", "deployment-0001")
    assert PLANTED not in everything


@step("rollout")
def failing_rollout(ctx: Context) -> Any:
    raise StepFailed("deployment/hello did not become ready", cause="CrashLoopBackOff")


def test_failure_annotation_is_written_after_an_earlier_step_failed(
        world: dict[str, Any]) -> None:
    sha = world["shas"][0]
    ctx = make_ctx(world, sha)
    with Job("deploy", ctx) as job:
        job.always(annotate_deployment, ctx, repo=world["repo"], digest=DIGEST,
                   reason="rollout failed")
        job.run(failing_rollout, ctx)
    assert job.exit_code == 1 and "did not become ready" in job.error.message
    annotated = job.results[-1]
    assert annotated.step == "annotate" and annotated.outputs["result"] == "failure"
    assert annotated.outputs["tag"] == ""  # failed deployments are not tagged
    repo = GitRepo.open(world["repo"])
    states.fetch_notes(repo)
    note = states.read_note(repo, sha)
    assert note.state == "broken" and note.fields["annotation"] == "Failed Deployment"
    [event] = read_jsonl(world["env"]["PIPELINE_AUDIT_FILE"])
    assert (event["result"], event["reason"]) == ("failure", "rollout failed")
    assert git(world["origin"], "tag", "-l") == ""


def test_bad_input_is_refused_before_any_write(world: dict[str, Any]) -> None:
    ctx = make_ctx(world, world["shas"][0])
    for kwargs in ({"digest": "sha256:short"}, {"workload": "pod"},
                   {"workload": "deployment/hello"}, {"result": "maybe"}):
        with pytest.raises(BadInput):
            annotate_deployment(ctx, repo=world["repo"], **kwargs)
    with pytest.raises(BadInput, match="unknown revision"):
        annotate_deployment(make_ctx(world, "f" * 40), repo=world["repo"])
    assert git(world["origin"], "for-each-ref") .count("refs/") == 1  # only main
    assert not Path(world["env"]["PIPELINE_AUDIT_FILE"]).exists()


def test_cli_annotate_dry_run_plans_and_writes_nothing(world: dict[str, Any]) -> None:
    out = run_pipeline("annotate", "--env", "staging", "--result", "success", "--app", "hello",
                       "--digest", DIGEST, "--dry-run", "--output", "json", cwd=world["repo"],
                       env=world["env"])
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["dry_run"] and result["outputs"]["tag"] == "deployment-0001"
    assert any(a.startswith("note ") for a in result["actions"])
    assert git(world["origin"], "tag", "-l") == ""
    assert not Path(world["env"]["PIPELINE_AUDIT_FILE"]).exists()


def test_cli_state_get_set_and_refusal(world: dict[str, Any]) -> None:
    sha = world["shas"][1]
    env = world["env"]

    def state(*args: str) -> Any:
        return run_pipeline("state", *args, cwd=world["repo"], env=env)

    assert state("get", sha).stdout.strip() == "development"
    assert state("set", "deployable", sha, "--env", "staging").returncode == 0
    assert state("set", "deployed", sha, "--env", "live").returncode == 0
    refused = state("set", "staged", sha)
    assert refused.returncode == 2 and "illegal state transition deployed -> staged" in (
        refused.stderr)
    forced = state("set", "staged", sha, "--force", "--reason", "record repaired by hand")
    assert forced.returncode == 0, forced.stderr
    shown = json.loads(state("get", sha, "--output", "json").stdout)
    assert shown["state"] == "staged"
    assert [h["state"] for h in shown["history"]] == ["deployable", "deployed", "staged"]
    actions = [(e["action"], e["result"]) for e in read_jsonl(env["PIPELINE_AUDIT_FILE"])]
    assert actions == [("state", "success"), ("state", "success"), ("refusal", "refused"),
                       ("override", "overridden")]


# -- the workload annotation on the real control plane ---------------------------------------

def _deployment(name: str, namespace: str) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app",
                                                           "image": "example/app:1"}]}}}}


def test_workload_is_annotated_on_the_control_plane(
        world: dict[str, Any], kube_env: dict[str, str]) -> None:
    from pipelinelib.adapters.kube import KubeClient

    kube = KubeClient.from_kubeconfig(kube_env["KUBECONFIG"])
    namespace = f"annotate-{uuid.uuid4().hex[:8]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    try:
        kube.create(_deployment("hello", namespace), namespace)
        sha = world["shas"][-1]
        ok = annotate_deployment(make_ctx(world, sha, kube=kube), repo=world["repo"],
                                 digest=DIGEST, workload="deployment/hello",
                                 namespace=namespace)
        live = kube.get("Deployment", "hello", namespace)
        notes = live["metadata"]["annotations"]
        assert notes["pipelinelib.dev/deployment-status"] == "Successfully Deployed (live)"
        assert notes["pipelinelib.dev/deployment-tag"] == ok.outputs["tag"]
        assert notes["pipelinelib.dev/deployed-revision"] == sha
        assert notes["pipelinelib.dev/deployed-digest"] == DIGEST
        assert notes["pipelinelib.dev/build-url"] == "https://ci.example.org/job/deploy/7/"
        assert PLANTED not in json.dumps(notes)
        template = live["spec"]["template"]["metadata"]  # metadata only: no new rollout
        assert "pipelinelib.dev/deployment-status" not in (template.get("annotations") or {})
        # the next deployment of another commit fails: the workload says so
        failed = annotate_deployment(make_ctx(world, world["shas"][0], kube=kube),
                                     repo=world["repo"],
                                     digest=DIGEST, workload="deployment/hello",
                                     namespace=namespace, job_failed=True)
        notes = kube.get("Deployment", "hello", namespace)["metadata"]["annotations"]
        assert failed.outputs["result"] == "failure"
        assert notes["pipelinelib.dev/deployment-status"] == "Failed Deployment (live)"
        assert "pipelinelib.dev/deployment-tag" not in notes
        assert notes["pipelinelib.dev/deployed-revision"] == world["shas"][0]
    finally:
        kube.delete("Namespace", namespace)


def test_a_missing_workload_fails_the_step_but_git_and_audit_are_still_written(
        world: dict[str, Any], kube_env: dict[str, str]) -> None:
    from pipelinelib.adapters.kube import KubeClient

    kube = KubeClient.from_kubeconfig(kube_env["KUBECONFIG"])
    sha = world["shas"][0]
    with pytest.raises(StepFailed, match="1 place") as raised:
        annotate_deployment(make_ctx(world, sha, kube=kube), repo=world["repo"], digest=DIGEST,
                            workload="deployment/nope", namespace="default")
    assert any("kubernetes: deployment/nope not found" in e for e in raised.value.evidence)
    assert git(world["origin"], "tag", "-l") == "deployment-0001"
    [event] = read_jsonl(world["env"]["PIPELINE_AUDIT_FILE"])
    assert "not found" in event["reason"]
    assert os.path.exists(world["env"]["PIPELINE_AUDIT_FILE"])
