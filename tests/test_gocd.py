"""GoCD: the config repository (gocd/*.gocd.yaml) and the API adapter (pipelinelib.adapters.gocd).

GoCD cannot run here, so the YAML is validated against a JSON Schema written from the YAML
config plugin's format reference for format_version 10 (gocd/format-10.schema.json: unknown
keys are errors) plus the rules of seed 002 checked semantically; the adapter is tested with
`responses` against GoCD's documented payloads and versioned Accept headers.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import responses
import yaml
from responses import matchers

from pipelinelib.adapters.gocd import GoCDClient
from pipelinelib.errors import BadInput, Refused, StepFailed, Unreachable
from pipelinelib.secrets import looks_secret
from tests.helpers.fakes import FakeClock
from tests.helpers.paths import ROOT

GOCD = ROOT / "gocd"
SCHEMA = json.loads((GOCD / "format-10.schema.json").read_text())
CONFIGS = sorted(GOCD.glob("*.gocd.yaml"))
SECRET_PARAM = re.compile(r"^\{\{SECRET:\[[\w.-]+\]\[[\w.-]+\]\}\}$")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def stages(pipeline: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [next(iter(entry.items())) for entry in pipeline["stages"]]


def tasks(stage: dict[str, Any]) -> list[dict[str, Any]]:
    """The stage's exec tasks (fetch tasks bring artifacts, they call nothing)."""
    return [task for job in stage["jobs"].values() for task in job["tasks"] if "exec" in task]


AGENT_ENV = {"GO_REVISION_CODE": "0123456789abcdef0123456789abcdef01234567",
             "GO_PIPELINE_NAME": "hello", "GO_PIPELINE_COUNTER": "8", "APP": "hello",
             "NAMESPACE": "hello", "GO_STAGE_NAME": "staging"}


def pipeline_argv(task: dict[str, Any], variables: dict[str, Any] | None = None) -> list[str]:
    """The `pipeline` command line a task runs: exec's arguments, or what a real /bin/sh
    passes to `pipeline` for a `sh -c TEXT` task (with the pipeline's variables set)."""
    spec = task.get("exec") or {}
    args = [str(a) for a in spec.get("arguments", [])]
    if spec.get("command") == "pipeline":
        return args
    if spec.get("command") == "/bin/sh" and args[:1] == ["-c"] and "pipeline " in args[1]:
        with tempfile.TemporaryDirectory() as tmp:
            fake = Path(tmp) / "pipeline"
            fake.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                            "open(os.environ['ARGV_OUT'], 'w').write(json.dumps(sys.argv[1:]))\n")
            fake.chmod(0o755)
            out = Path(tmp) / "argv.json"
            env = {"PATH": f"{tmp}:/usr/bin:/bin", "ARGV_OUT": str(out), **AGENT_ENV,
                   **{k: str(v) for k, v in (variables or {}).items()}}
            subprocess.run(["/bin/sh", "-c", args[1]], env=env, check=False, timeout=30)
            return json.loads(out.read_text()) if out.exists() else []
    return []


def subcommand(argv: list[str]) -> str:
    rest = list(argv)
    while rest and rest[0].startswith("--"):
        rest = rest[2:] if rest[0] in ("--report-dir", "--log-format", "--log-level") else rest[1:]
    return rest[0] if rest else ""


def semantic_errors(config: dict[str, Any]) -> list[str]:
    """seed 002's rules that a schema cannot say; empty when the config is right."""
    errors: list[str] = []
    pipelines = config.get("pipelines", {})
    for name, pipeline in pipelines.items():
        stage_names = [s for s, _ in stages(pipeline)]
        for material_name, material in pipeline["materials"].items():
            if "pipeline" in material:
                upstream = pipelines.get(material["pipeline"])
                if upstream is None:
                    errors.append(f"{name}: material {material_name} names an unknown pipeline")
                elif material["stage"] not in [s for s, _ in stages(upstream)]:
                    errors.append(f"{name}: material {material_name} names an unknown stage")
        for stage_name, stage in stages(pipeline):
            where = f"{name}/{stage_name}"
            if not stage.get("jobs"):
                errors.append(f"{where}: no jobs")
            for job_name, job in (stage.get("jobs") or {}).items():
                if not job.get("tasks"):
                    errors.append(f"{where}/{job_name}: no tasks")
                for task in job.get("tasks") or []:
                    if "fetch" in task:
                        continue
                    if not pipeline_argv(task, pipeline.get("environment_variables")):
                        errors.append(f"{where}/{job_name}: a task does not call the pipeline CLI")
            approval = stage.get("approval", "success")
            kind = approval if isinstance(approval, str) else approval.get("type")
            if kind not in ("manual", "success"):
                errors.append(f"{where}: approval type {kind!r} (expected manual or success)")
            variables = pipeline.get("environment_variables")
            commands = [subcommand(pipeline_argv(t, variables)) for t in tasks(stage)
                        ] if stage.get("jobs") else []
            if "swap" in commands:
                if kind != "manual":
                    errors.append(f"{where}: the swap stage must be manual")
                elif not isinstance(approval, dict) or not approval.get("roles"):
                    errors.append(f"{where}: the manual swap must name who may approve it")
            if ("rollout" in commands and "migrate" in commands
                    and commands.index("migrate") > commands.index("rollout")):
                errors.append(f"{where}: migrations must run before the rollout")
        if len(set(stage_names)) != len(stage_names):
            errors.append(f"{name}: duplicate stage names")
        errors.extend(_secret_errors(name, pipeline))
    return errors


def _secret_errors(name: str, pipeline: dict[str, Any]) -> list[str]:
    errors = []
    scopes = [pipeline] + [s for _, s in stages(pipeline)]
    scopes += [job for _, s in stages(pipeline) for job in (s.get("jobs") or {}).values()]
    for scope in scopes:
        for key, value in (scope.get("environment_variables") or {}).items():
            if (looks_secret(key) or key.endswith("DSN")) and not SECRET_PARAM.match(str(value)):
                errors.append(f"{name}: {key} is a secret in plain text (use a secret param "
                              "or secure_variables)")
    return errors


def validate(config: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    found = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(config)]
    return found or semantic_errors(config)


# -- the shipped config repository ------------------------------------------------------------

def test_the_schema_itself_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert CONFIGS, "no gocd/*.gocd.yaml"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_repository_files_are_valid_format_10(path: Path) -> None:
    assert validate(load(path)) == []


def test_sandbox_branch_and_main_branch_pipelines_after_seed_002() -> None:
    config = load(GOCD / "hello.gocd.yaml")
    sandbox, main = config["pipelines"]["hello-sandbox"], config["pipelines"]["hello"]
    assert [m["branch"] for m in sandbox["materials"].values()] == ["sandbox"]
    assert [m["branch"] for m in main["materials"].values()] == ["main"]
    assert [s for s, _ in stages(sandbox)] == ["build", "sandbox"]
    assert [s for s, _ in stages(main)] == ["build", "staging", "swap-live"]
    build = dict(stages(main))["build"]
    variables = main["environment_variables"]
    assert [subcommand(pipeline_argv(t, variables)) for t in tasks(build)] == [
        "build", "scan", "perf"]
    scan = pipeline_argv(tasks(build)[1], variables)
    # the image the build pushed: release.env's REGISTRY/CONTAINER_NAMESPACE/PROJECT-NAME
    assert scan[scan.index("--osv-image") + 1] == (
        "127.0.0.1:5001/pipelinelib/hello-example-org-web:0123456")
    staging = dict(stages(main))["staging"]
    assert staging["approval"]["type"] == "success"
    assert [subcommand(pipeline_argv(t)) for t in tasks(staging)] == [
        "gate", "migrate", "gate", "rollout", "annotate", "annotate"]
    rollout = pipeline_argv(tasks(staging)[3])
    assert "--blue-green" in rollout and "--await-promotion" in rollout
    assert rollout[rollout.index("--from-build") + 1] == "reports/build"  # the pushed digest
    fetch = staging["jobs"]["deploy"]["tasks"][0]["fetch"]
    assert (fetch["stage"], fetch["job"]) == ("build", "build")


def test_registry_credentials_use_the_variable_names_the_code_reads() -> None:
    """The defect: PIPELINELIB_REGISTRY_PASSWORD was set, which no code reads."""
    config = load(GOCD / "hello.gocd.yaml")
    build = dict(stages(config["pipelines"]["hello"]))["build"]
    assert set(build["environment_variables"]) == {"PIPELINE_REGISTRY_USER",
                                                   "PIPELINE_REGISTRY_PASSWORD",
                                                   "PIPELINE_ATTEST_KEY"}


def test_every_variable_the_config_sets_is_read_by_something() -> None:
    """A variable no code, task or tool reads is a typo or a leftover (the registry password
    once was): each must appear in pipelinelib's source, a task's shell text, or be one of
    the tools' own (CI)."""
    source = "\n".join(p.read_text() for p in (ROOT / "pipelinelib").rglob("*.py"))
    for path in CONFIGS:
        config = load(path)
        for name, pipeline in config["pipelines"].items():
            scopes = [pipeline] + [s for _, s in stages(pipeline)]
            scopes += [j for _, s in stages(pipeline) for j in (s.get("jobs") or {}).values()]
            texts = " ".join(" ".join(map(str, (t.get("exec") or {}).get("arguments") or []))
                             for _, s in stages(pipeline) for t in tasks(s))
            for scope in scopes:
                for variable in (scope.get("environment_variables") or {}):
                    read = (f'"{variable}"' in source or f"${variable}" in texts
                            or variable in ("CI",))
                    assert read, f"{path.name}: {name} sets {variable}, which nothing reads"


def test_the_swap_of_staging_and_live_is_manual_for_release_managers_only() -> None:
    """The defect: swap-live used `--namespace`, which checks no privilege; `--env live`
    checks GO_TRIGGER_USER against the env-state policy's swap role."""
    swap = dict(stages(load(GOCD / "hello.gocd.yaml")["pipelines"]["hello"]))["swap-live"]
    assert swap["approval"] == {"type": "manual", "allow_only_on_success": True,
                                "roles": ["release-managers"]}
    assert pipeline_argv(tasks(swap)[0])[2:] == ["swap", "--app", "hello", "--env", "live"]


def test_deployments_are_annotated_on_success_and_on_failure() -> None:
    for pipeline in load(GOCD / "hello.gocd.yaml")["pipelines"].values():
        for stage_name, stage in stages(pipeline):
            annotations = [(t["exec"].get("run_if"), pipeline_argv(t)) for t in tasks(stage)
                           if subcommand(pipeline_argv(t)) == "annotate"]
            if stage_name == "build":
                assert annotations == []
                continue
            assert {(run_if, argv[argv.index("--result") + 1]) for run_if, argv in annotations
                    } == {("passed", "success"), ("failed", "failure")}, stage_name


def test_blue_green_stages_annotate_the_colour_deployed_not_the_plain_name() -> None:
    """The defect: `--workload deployment/hello` after a blue/green rollout, which creates
    only hello-blue / hello-green: the annotation failed after a good deploy."""
    main = load(GOCD / "hello.gocd.yaml")["pipelines"]["hello"]
    for stage_name in ("staging", "swap-live"):
        for task in tasks(dict(stages(main))[stage_name]):
            argv = pipeline_argv(task)
            if subcommand(argv) == "annotate":
                assert "--workload" not in argv and "--workload-from" in argv, stage_name


def test_every_task_writes_its_reports_and_every_job_publishes_them() -> None:
    for pipeline in load(GOCD / "hello.gocd.yaml")["pipelines"].values():
        for _, stage in stages(pipeline):
            for job in stage["jobs"].values():
                assert {"test": {"source": "reports", "destination": "reports"}} in job["artifacts"]
                for task in job["tasks"]:
                    if "fetch" in task:
                        continue
                    argv = pipeline_argv(task, pipeline["environment_variables"])
                    assert argv[0] == "--report-dir" and argv[1].startswith("reports/")


def test_task_arguments_parse_with_the_real_pipeline_cli() -> None:
    """Every task's command line is accepted by `pipeline`'s parser (commands that exist)."""
    import importlib.util

    from pipelinelib.cli import COMMANDS, build_parser

    checked = 0
    for pipeline in load(GOCD / "hello.gocd.yaml")["pipelines"].values():
        for _, stage in stages(pipeline):
            for task in tasks(stage):
                argv = pipeline_argv(task, pipeline["environment_variables"])
                command = subcommand(argv)
                assert command in COMMANDS, command
                if importlib.util.find_spec(f"pipelinelib.commands.{COMMANDS[command][0]}"):
                    build_parser(argv).parse_args(argv)
                    checked += 1
    assert checked >= 19


# -- the validator catches what it must --------------------------------------------------------

def mutated(change: Any) -> dict[str, Any]:
    config = copy.deepcopy(load(GOCD / "hello.gocd.yaml"))
    change(config)
    return config


def _stage(config: dict[str, Any], pipeline: str, name: str) -> dict[str, Any]:
    return dict(stages(config["pipelines"][pipeline]))[name]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.update(format_version=9), "10 was expected"),
        (lambda c: _stage(c, "hello", "swap-live").update(approval={"type": "auto"}),
         "is not valid"),
        (lambda c: _stage(c, "hello", "swap-live").update(approval="success"),
         "the swap stage must be manual"),
        (lambda c: _stage(c, "hello", "swap-live").update(approval="manual"),
         "must name who may approve"),
        (lambda c: _stage(c, "hello", "staging").update(jobs={}), "should be non-empty"),
        (lambda c: _stage(c, "hello", "staging")["jobs"]["deploy"].update(tasks=[]),
         "should be non-empty"),
        (lambda c: _stage(c, "hello", "staging")["jobs"]["deploy"]["tasks"].reverse(),
         "migrations must run before the rollout"),
        (lambda c: c["pipelines"]["hello"].update(materials={}), "should be non-empty"),
        (lambda c: c["pipelines"]["hello"]["materials"].update(
            up={"pipeline": "nope", "stage": "build"}), "unknown pipeline"),
        (lambda c: c["pipelines"]["hello"].update(lock_behaviour="none"),
         "Additional properties are not allowed"),
        (lambda c: _stage(c, "hello", "staging")["environment_variables"].update(
            PIPELINE_DB_DSN="postgresql://u:pw@db/app"), "secret in plain text"),
        (lambda c: c["pipelines"]["hello"].update(
            secure_variables={"DB_PASSWORD": "hunter2"}), "does not match"),
        (lambda c: _stage(c, "hello", "build")["jobs"]["build"]["tasks"].append(
            {"exec": {"command": "make"}}), "does not call the pipeline CLI"),
    ],
)
def test_validation_rejects_broken_configs(change: Any, expected: str) -> None:
    errors = validate(mutated(change))
    assert any(expected in e for e in errors), errors


# -- the API adapter ---------------------------------------------------------------------------

GO = "https://gocd.example.org/go"



def gocd(**kwargs: Any) -> GoCDClient:
    clock = FakeClock()
    return GoCDClient(GO, token="tok-gocd-1", sleep=clock.sleep, clock=clock, **kwargs)


def accept(version: int) -> Any:
    return matchers.header_matcher({"Accept": f"application/vnd.go.cd.v{version}+json"})


def history(*counters: int) -> dict[str, Any]:
    return {"_links": {"next": {"href": f"{GO}/api/pipelines/hello/history?after=1"}},
            "pipelines": [{"name": "hello", "counter": c, "label": f"{c}-abc12345",
                           "natural_order": float(c), "can_run": True,
                           "preparing_to_schedule": False, "comment": None,
                           "scheduled_date": 1700000000000,
                           "build_cause": {"trigger_message": "Forced by rita",
                                           "trigger_forced": True, "approver": "rita",
                                           "material_revisions": []},
                           "stages": []} for c in counters]}


def stage_json(result: str, state: str = "Completed") -> dict[str, Any]:
    return {"name": "staging", "counter": 1, "approval_type": "success",
            "approved_by": "changes", "result": result, "rerun_of_counter": None,
            "fetch_materials": True, "clean_working_directory": False,
            "artifacts_deleted": False, "pipeline_name": "hello", "pipeline_counter": 8,
            "jobs": [{"name": "deploy", "scheduled_date": 1700000000000, "state": state,
                      "result": result}]}


@responses.activate
def test_run_and_follow_schedules_with_variables_and_waits_for_the_stage_result() -> None:
    responses.add(responses.GET, f"{GO}/api/pipelines/hello/history", json=history(7, 6),
                  match=[accept(1)])
    responses.add(responses.POST, f"{GO}/api/pipelines/hello/schedule", status=202,
                  json={"message": "Request to schedule pipeline hello accepted"},
                  match=[accept(1), matchers.header_matcher({"X-GoCD-Confirm": "true"})])
    responses.add(responses.GET, f"{GO}/api/pipelines/hello/history", json=history(7, 6))
    responses.add(responses.GET, f"{GO}/api/pipelines/hello/history", json=history(8, 7, 6))
    responses.add(responses.GET, f"{GO}/api/stages/hello/8/staging/1", status=404,
                  json={"message": "Not Found { Stage 'staging' not found. }"})
    responses.add(responses.GET, f"{GO}/api/stages/hello/8/staging/1",
                  json=stage_json("Unknown", "Building"), match=[accept(3)])
    responses.add(responses.GET, f"{GO}/api/stages/hello/8/staging/1", json=stage_json("Passed"),
                  match=[accept(3)])

    outcome = gocd().run_and_follow("hello", "staging", {"APP": "hello", "DIGEST": "sha256:ab"},
                                    secure={"TOKEN": "s3cr3t-value"})

    assert outcome.ok and (outcome.counter, outcome.result) == (8, "Passed")
    schedule = next(c.request for c in responses.calls if c.request.method == "POST")
    body = json.loads(schedule.body)
    assert body["environment_variables"] == [
        {"name": "APP", "value": "hello", "secure": False},
        {"name": "DIGEST", "value": "sha256:ab", "secure": False},
        {"name": "TOKEN", "value": "s3cr3t-value", "secure": True}]
    assert body["update_materials_before_scheduling"] is True
    assert schedule.headers["Authorization"] == "bearer tok-gocd-1"


@responses.activate
def test_a_failed_stage_is_reported_with_its_jobs() -> None:
    responses.add(responses.GET, f"{GO}/api/stages/hello/8/staging/1", json=stage_json("Failed"))

    outcome = gocd().follow_stage("hello", 8, "staging")

    assert not outcome.ok and outcome.jobs[0]["result"] == "Failed"


@responses.activate
def test_a_stage_that_never_finishes_fails_with_its_job_states() -> None:
    responses.add(responses.GET, f"{GO}/api/stages/hello/8/staging/1",
                  json=stage_json("Unknown", "Scheduled"))

    with pytest.raises(StepFailed, match="has no result after 60s") as caught:
        gocd().follow_stage("hello", 8, "staging", timeout_s=60)
    assert "deploy=Scheduled" in caught.value.one_line()


@responses.activate
def test_a_paused_pipeline_is_not_retried_and_says_why() -> None:
    responses.add(responses.POST, f"{GO}/api/pipelines/hello/schedule", status=409,
                  json={"message": "Failed to trigger pipeline [hello] { Pipeline 'hello' is "
                                   "paused. }"})

    with pytest.raises(StepFailed, match="is paused"):
        gocd().schedule("hello", {"APP": "hello"})
    assert len(responses.calls) == 1


@responses.activate
def test_server_errors_are_retried_then_unreachable() -> None:
    responses.add(responses.GET, f"{GO}/api/pipelines/hello/history", status=503)

    with pytest.raises(Unreachable, match="kept failing"):
        gocd().latest_counter("hello")
    assert len(responses.calls) == 4


@responses.activate
def test_401_403_and_404_are_refusals_and_bad_input() -> None:
    responses.add(responses.GET, f"{GO}/api/pipelines/hello/history", status=401,
                  json={"message": "You are not authenticated!"})
    responses.add(responses.POST, f"{GO}/api/stages/hello/8/swap-live/run", status=403,
                  json={"message": "You do not have permissions for this operation."})
    responses.add(responses.GET, f"{GO}/api/pipelines/nope/history", status=404,
                  json={"message": "Either the resource you requested was not found, or you "
                                   "are not authorized to perform this action."})
    client = gocd()

    with pytest.raises(Refused, match="rejected the credentials"):
        client.latest_counter("hello")
    with pytest.raises(Refused, match="You do not have permissions"):
        client.run_stage("hello", 8, "swap-live")
    with pytest.raises(BadInput, match="GoCD does not know pipeline nope"):
        client.latest_counter("nope")


@responses.activate
def test_run_stage_approves_the_manual_swap() -> None:
    responses.add(responses.POST, f"{GO}/api/stages/hello/8/swap-live/run", status=202,
                  json={"message": "Request to schedule stage hello/8/swap-live accepted"},
                  match=[accept(2), matchers.header_matcher({"X-GoCD-Confirm": "true"})])

    gocd().run_stage("hello", 8, "swap-live")

    assert len(responses.calls) == 1


@responses.activate
def test_comment_annotates_the_instance_once() -> None:
    instance = {**history(8)["pipelines"][0], "comment": "release 1.4"}
    responses.add(responses.GET, f"{GO}/api/pipelines/hello/8", json=instance, match=[accept(1)])
    responses.add(responses.POST, f"{GO}/api/pipelines/hello/8/comment",
                  json={"message": "Comment successfully updated."}, match=[accept(1)])

    assert gocd().comment("hello", 8, "Successfully Deployed to staging") == [
        "commented on hello/8"]
    post = next(c.request for c in responses.calls if c.request.method == "POST")
    assert json.loads(post.body) == {"comment": "release 1.4\nSuccessfully Deployed to staging"}

    responses.replace(responses.GET, f"{GO}/api/pipelines/hello/8",
                      json={**instance, "comment": "release 1.4\nSuccessfully Deployed to staging"})
    assert gocd().comment("hello", 8, "Successfully Deployed to staging") == []


@responses.activate
def test_encrypt_returns_the_ciphertext_for_secure_variables() -> None:
    responses.add(responses.POST, f"{GO}/api/admin/encrypt",
                  json={"_links": {"doc": {"href": "https://api.gocd.org/#encryption"}},
                        "encrypted_value": "AES:ZmFrZWl2:Y2lwaGVy"}, match=[accept(1)])

    value = gocd().encrypt("hunter2")

    assert value == "AES:ZmFrZWl2:Y2lwaGVy"
    assert re.fullmatch(SCHEMA["$defs"]["secureVariables"]["additionalProperties"]["pattern"],
                        value)


def test_login_takes_the_agent_url_and_registers_the_token() -> None:
    from pipelinelib.context import Credentials
    from pipelinelib.secrets import Secrets

    with pytest.raises(BadInput, match="PIPELINELIB_GOCD_URL"):
        GoCDClient.login(None, None)
    secrets = Secrets()
    login = Credentials.from_env({"GO_SERVER_URL": GO + "/",
                                  "PIPELINELIB_GOCD_TOKEN": "tok-9999"}).gocd
    client = GoCDClient.login(login.url, login.token, secrets=secrets)
    assert client.url == GO and "tok-9999" in secrets
