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
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pipelinelib.secrets import looks_secret

ROOT = Path(__file__).resolve().parents[1]
GOCD = ROOT / "gocd"
SCHEMA = json.loads((GOCD / "format-10.schema.json").read_text())
CONFIGS = sorted(GOCD.glob("*.gocd.yaml"))
SECRET_PARAM = re.compile(r"^\{\{SECRET:\[[\w.-]+\]\[[\w.-]+\]\}\}$")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def stages(pipeline: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [next(iter(entry.items())) for entry in pipeline["stages"]]


def tasks(stage: dict[str, Any]) -> list[dict[str, Any]]:
    return [task for job in stage["jobs"].values() for task in job["tasks"]]


def pipeline_argv(task: dict[str, Any]) -> list[str]:
    """The `pipeline` command line a task runs (exec directly, or /bin/sh -c TEXT)."""
    spec = task.get("exec") or {}
    args = [str(a) for a in spec.get("arguments", [])]
    if spec.get("command") == "pipeline":
        return args
    if spec.get("command") == "/bin/sh" and args[:1] == ["-c"]:
        words = args[1].split(";")[0].split()
        if words and words[0] == "pipeline":
            return words[1:]
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
                    if not pipeline_argv(task):
                        errors.append(f"{where}/{job_name}: a task does not call the pipeline CLI")
            approval = stage.get("approval", "success")
            kind = approval if isinstance(approval, str) else approval.get("type")
            if kind not in ("manual", "success"):
                errors.append(f"{where}: approval type {kind!r} (expected manual or success)")
            commands = [subcommand(pipeline_argv(t)) for t in tasks(stage)] if stage.get(
                "jobs") else []
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
    assert [subcommand(pipeline_argv(t)) for t in tasks(build)] == ["build", "scan", "gate"]
    staging = dict(stages(main))["staging"]
    assert staging["approval"]["type"] == "success"
    assert [subcommand(pipeline_argv(t)) for t in tasks(staging)] == [
        "migrate", "rollout", "annotate", "annotate"]


def test_the_swap_of_staging_and_live_is_manual_for_release_managers_only() -> None:
    swap = dict(stages(load(GOCD / "hello.gocd.yaml")["pipelines"]["hello"]))["swap-live"]
    assert swap["approval"] == {"type": "manual", "allow_only_on_success": True,
                                "roles": ["release-managers"]}
    assert pipeline_argv(tasks(swap)[0])[2:] == ["swap", "--app", "hello", "--env", "live"]


def test_deployments_are_annotated_on_success_and_on_failure() -> None:
    for pipeline in load(GOCD / "hello.gocd.yaml")["pipelines"].values():
        for stage_name, stage in stages(pipeline):
            annotations = [t["exec"] for t in tasks(stage)
                           if subcommand(pipeline_argv(t)) == "annotate"]
            if stage_name == "build":
                assert annotations == []
                continue
            assert {(a["run_if"], a["arguments"][-1]) for a in annotations} == {
                ("passed", "SUCCESS"), ("failed", "FAILURE")}, stage_name


def test_every_task_writes_its_reports_and_every_job_publishes_them() -> None:
    for pipeline in load(GOCD / "hello.gocd.yaml")["pipelines"].values():
        for _, stage in stages(pipeline):
            for job in stage["jobs"].values():
                assert {"test": {"source": "reports", "destination": "reports"}} in job["artifacts"]
                for task in job["tasks"]:
                    argv = pipeline_argv(task)
                    assert argv[0] == "--report-dir" and argv[1].startswith("reports/")


def test_task_arguments_parse_with_the_real_pipeline_cli() -> None:
    """Every task's command line is accepted by `pipeline`'s parser (commands that exist)."""
    import importlib.util

    from pipelinelib.cli import COMMANDS, build_parser

    checked = 0
    for pipeline in load(GOCD / "hello.gocd.yaml")["pipelines"].values():
        for _, stage in stages(pipeline):
            for task in tasks(stage):
                argv = pipeline_argv(task)
                command = subcommand(argv)
                assert command in COMMANDS, command
                if importlib.util.find_spec(f"pipelinelib.commands.{COMMANDS[command][0]}"):
                    build_parser(argv).parse_args(argv)
                    checked += 1
    assert checked >= 1  # at least `build` exists today


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
            PIPELINELIB_PG_DSN="postgresql://u:pw@db/app"), "secret in plain text"),
        (lambda c: c["pipelines"]["hello"].update(
            secure_variables={"DB_PASSWORD": "hunter2"}), "does not match"),
        (lambda c: _stage(c, "hello", "build")["jobs"]["build"]["tasks"].append(
            {"exec": {"command": "make"}}), "does not call the pipeline CLI"),
    ],
)
def test_validation_rejects_broken_configs(change: Any, expected: str) -> None:
    errors = validate(mutated(change))
    assert any(expected in e for e in errors), errors
