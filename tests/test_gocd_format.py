"""gocd/*.gocd.yaml against the YAML config plugin's own documented format, not our schema.

The rules below are the plugin's format reference: README.md of
github.com/tomzo/gocd-yaml-config-plugin at commit 3d26c1a7d9f24869b0ed9728e3abb236702f10a9
(sections "Format version", "Pipeline", "Stage", "Approval", "Job", "Artifacts", "Tasks",
"Exec", "Fetch", "Git", "Environment variables", "Retrieving secrets from Secrets Management
plugins", "YAML Aliases") and the keys its transforms read (src/main/java/.../transforms/
RootTransform.java: a top-level key other than format_version, pipelines, environments or
common is an error). A key the plugin does not know is silently dropped by GoCD or fails the
config repository; either way it is a defect here.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.paths import ROOT

CONFIGS = sorted((ROOT / "gocd").glob("*.gocd.yaml"))

ROOT_KEYS = {"format_version", "pipelines", "environments", "common"}
FORMAT_VERSION = 10  # GoCD >= 20.8.0: includes/ignore instead of whitelist/blacklist
PIPELINE_KEYS = {"group", "label_template", "locking", "lock_behavior", "tracking_tool",
                 "mingle", "timer", "environment_variables", "parameters", "secure_variables",
                 "materials", "stages", "template", "display_order"}
LOCK_BEHAVIORS = {"lockOnFailure", "unlockWhenFinished", "none"}
STAGE_KEYS = {"fetch_materials", "keep_artifacts", "clean_workspace", "approval",
              "environment_variables", "secure_variables", "jobs", "tasks"}
APPROVAL_KEYS = {"type", "allow_only_on_success", "roles", "users"}
JOB_KEYS = {"timeout", "run_instances", "environment_variables", "secure_variables", "tabs",
            "resources", "artifacts", "tasks", "elastic_profile_id", "properties"}
ARTIFACT_TYPES = {"build", "test", "external"}
TASK_TYPES = {"exec", "ant", "nant", "rake", "fetch", "plugin", "script"}
RUN_IF = {"passed", "failed", "any"}
EXEC_KEYS = {"command", "arguments", "working_directory", "run_if", "on_cancel"}
FETCH_KEYS = {"run_if", "artifact_origin", "pipeline", "stage", "job", "is_file", "source",
              "destination", "artifact_id", "configuration", "on_cancel"}
GIT_KEYS = {"git", "type", "url", "branch", "ignore", "includes", "destination", "auto_update",
            "shallow_clone", "username", "password", "encrypted_password", "name"}
SECRET_PARAM = re.compile(r"\{\{SECRET:\[[^\]]+\]\[[^\]]+\]\}\}")


def format_errors(doc: Any) -> list[str]:
    """Every way ``doc`` departs from the plugin's documented format, each with its path."""
    errors: list[str] = []

    def keys(where: str, value: Any, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a hash")
            return {}
        errors.extend(f"{where}: unknown key {k!r}" for k in value if k not in allowed)
        return value

    def variables(where: str, scope: dict[str, Any]) -> None:
        for kind in ("environment_variables", "secure_variables"):
            for name, value in (scope.get(kind) or {}).items():
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
                    errors.append(f"{where}.{kind}.{name}: not a variable name")
                if isinstance(value, (dict, list)):
                    errors.append(f"{where}.{kind}.{name}: a value must be a scalar")
                elif "{{SECRET" in str(value) and not SECRET_PARAM.fullmatch(str(value)):
                    errors.append(f"{where}.{kind}.{name}: malformed secret param")

    def task(where: str, item: Any) -> None:
        if not isinstance(item, dict) or len(item) != 1:
            errors.append(f"{where}: a task is a hash with exactly one type key")
            return
        kind, spec = next(iter(item.items()))
        if kind not in TASK_TYPES:
            errors.append(f"{where}: task type {kind!r} (expected one of {sorted(TASK_TYPES)})")
            return
        spec = spec or {}
        if kind == "exec":
            keys(f"{where}.exec", spec, EXEC_KEYS)
            if not spec.get("command"):
                errors.append(f"{where}.exec: command is required")
            if not isinstance(spec.get("arguments", []), list):
                errors.append(f"{where}.exec.arguments: expected a list")
        if kind == "fetch":
            keys(f"{where}.fetch", spec, FETCH_KEYS)
            if spec.get("artifact_origin", "gocd") == "gocd":
                for required in ("stage", "job", "source"):
                    if not spec.get(required):
                        errors.append(f"{where}.fetch: {required} is required")
        if isinstance(spec, dict) and spec.get("run_if", "passed") not in RUN_IF:
            errors.append(f"{where}: run_if {spec.get('run_if')!r} (expected {sorted(RUN_IF)})")
        if isinstance(spec, dict) and spec.get("on_cancel") is not None:
            task(f"{where}.on_cancel", spec["on_cancel"])

    top = keys("<root>", doc, ROOT_KEYS)
    if top.get("format_version") != FORMAT_VERSION:
        errors.append(f"format_version: {top.get('format_version')!r} "
                      f"(expected {FORMAT_VERSION})")
    for name, pipeline in (top.get("pipelines") or {}).items():
        where = f"pipelines.{name}"
        pipeline = keys(where, pipeline, PIPELINE_KEYS)
        if not isinstance(pipeline.get("materials"), dict) or not pipeline["materials"]:
            errors.append(f"{where}.materials: a non-empty hash is required")
        if not pipeline.get("stages") and not pipeline.get("template"):
            errors.append(f"{where}: stages (a list) or a template is required")
        if pipeline.get("lock_behavior", "none") not in LOCK_BEHAVIORS:
            errors.append(f"{where}.lock_behavior: {pipeline['lock_behavior']!r}")
        variables(where, pipeline)
        for mname, material in (pipeline.get("materials") or {}).items():
            if isinstance(material, dict) and ("git" in material or material.get("type") == "git"):
                keys(f"{where}.materials.{mname}", material, GIT_KEYS)
        for index, entry in enumerate(pipeline.get("stages") or []):
            if not isinstance(entry, dict) or len(entry) != 1:
                errors.append(f"{where}.stages[{index}]: a stage is a hash with one name key")
                continue
            sname, stage = next(iter(entry.items()))
            swhere = f"{where}.stages.{sname}"
            stage = keys(swhere, stage, STAGE_KEYS)
            variables(swhere, stage)
            approval = stage.get("approval", "success")
            if isinstance(approval, str):
                if approval not in ("manual", "success"):
                    errors.append(f"{swhere}.approval: {approval!r}")
            else:
                approval = keys(f"{swhere}.approval", approval, APPROVAL_KEYS)
                if approval.get("type") not in ("manual", "success"):
                    errors.append(f"{swhere}.approval.type: {approval.get('type')!r}")
            if not stage.get("jobs") and not stage.get("tasks"):
                errors.append(f"{swhere}: jobs (or tasks, single-job stage) are required")
            for jname, job in (stage.get("jobs") or {}).items():
                jwhere = f"{swhere}.jobs.{jname}"
                job = keys(jwhere, job, JOB_KEYS)
                variables(jwhere, job)
                if job.get("elastic_profile_id") and job.get("resources"):
                    errors.append(f"{jwhere}: elastic_profile_id MUST NOT be set with resources")
                for aindex, artifact in enumerate(job.get("artifacts") or []):
                    kind = next(iter(artifact)) if isinstance(artifact, dict) else None
                    if kind not in ARTIFACT_TYPES or len(artifact) != 1:
                        errors.append(f"{jwhere}.artifacts[{aindex}]: expected one of "
                                      f"{sorted(ARTIFACT_TYPES)}")
                    elif kind in ("build", "test") and not artifact[kind].get("source"):
                        errors.append(f"{jwhere}.artifacts[{aindex}]: source is required")
                if not job.get("tasks"):
                    errors.append(f"{jwhere}: tasks are required")
                for tindex, item in enumerate(job.get("tasks") or []):
                    task(f"{jwhere}.tasks[{tindex}]", item)
    return errors


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_repository_files_follow_the_plugins_documented_format(path: Path) -> None:
    assert format_errors(yaml.safe_load(path.read_text())) == []


def _first_exec(doc: dict[str, Any]) -> dict[str, Any]:
    pipeline = next(iter(doc["pipelines"].values()))
    stage = next(iter(pipeline["stages"][0].values()))
    return next(iter(stage["jobs"].values()))["tasks"][0]["exec"]


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d.update(format_version=9), "format_version: 9"),
    (lambda d: d.update(defaults={}), "unknown key 'defaults'"),
    (lambda d: next(iter(d["pipelines"].values())).update(lock_behaviour="none"),
     "unknown key 'lock_behaviour'"),
    (lambda d: next(iter(d["pipelines"].values())).update(lock_behavior="lock"),
     "lock_behavior"),
    (lambda d: _first_exec(d).update(run_if="always"), "run_if 'always'"),
    (lambda d: _first_exec(d).update(args=["x"]), "unknown key 'args'"),
    (lambda d: _first_exec(d).pop("command"), "command is required"),
    (lambda d: next(iter(d["pipelines"].values()))["environment_variables"].update(
        TOKEN="{{SECRET:[pipelinelib]}}"), "malformed secret param"),
    (lambda d: next(iter(next(iter(d["pipelines"].values()))["stages"][0].values())).update(
        approval={"type": "auto"}), "approval.type: 'auto'"),
])
def test_the_format_check_catches_what_the_plugin_rejects_or_drops(change: Any,
                                                                    expected: str) -> None:
    doc = copy.deepcopy(yaml.safe_load(CONFIGS[0].read_text()))
    change(doc)
    errors = format_errors(doc)
    assert any(expected in e for e in errors), errors
