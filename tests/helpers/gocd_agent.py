"""A GoCD agent for tests: runs a config repository's pipelines the way GoCD would.

GoCD cannot run here, so this reproduces what its server and agent do with a
``*.gocd.yaml`` (YAML config plugin, format_version 10) once the plugin has parsed it, and
runs every task for real against the testbed:

- materials: each git material is cloned (``shallow_clone``: depth 1) at its ``branch`` into
  the pipeline's working directory (``destination`` if given), like the agent's checkout;
  the URL is the one in the file, mapped to a local origin by the test (``git_urls``) as a
  site adapts the file when copying it;
- label: ``label_template`` with ``${COUNT}`` and ``${MATERIAL}`` / ``${MATERIAL[:N]}``;
- stages in order; ``approval: success`` (the default) runs a stage when the previous one
  passed; ``manual`` runs only when the test approves it as a named user, who must be listed
  in ``users`` or hold one of ``roles``; that user becomes ``GO_TRIGGER_USER``;
- environment variables: pipeline < stage < job (the inner one wins), on top of the agent's
  own environment; each job runs on a fresh (elastic) agent: a new checkout, earlier
  stages' files only through ``fetch``; ``{{SECRET:[config][key]}}`` values are
  resolved from the test's secret store (a missing secret fails the job, as GoCD does);
  ``secure_variables`` values are ciphertext only the server can decrypt: the test gives
  their plain values by name;
- GoCD's own variables (https://docs.gocd.org/current/faq/dev_use_current_revision_in_build.html):
  GO_SERVER_URL, GO_PIPELINE_NAME, GO_PIPELINE_COUNTER, GO_PIPELINE_LABEL, GO_STAGE_NAME,
  GO_STAGE_COUNTER, GO_JOB_NAME, GO_TRIGGER_USER, GO_REVISION_<MATERIAL>,
  GO_TO_REVISION_<MATERIAL>, GO_FROM_REVISION_<MATERIAL>, GO_MATERIAL_BRANCH_<MATERIAL>
  (material names upper-cased, ``-`` -> ``_``);
- tasks in order: ``exec`` (``command``, ``arguments``, ``working_directory``) runs the
  program directly, no shell; ``run_if`` passed (default) / failed / any against the job's
  state so far; ``fetch`` copies an artifact of an earlier stage; ``clean_workspace`` wipes
  the working directory (and checks the materials out again) before the job;
- artifacts (``build``/``test``) are uploaded after the tasks, whatever the job's result;
- the console masks every secret value (``******``), as GoCD does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SECRET_PARAM = re.compile(r"\{\{SECRET:\[([\w.-]+)\]\[([\w.-]+)\]\}\}")
LABEL_PART = re.compile(r"\$\{([\w-]+)(?:\[:(\d+)\])?\}")
MASK = "******"


def material_var(name: str) -> str:
    return name.upper().replace("-", "_")


def load_pipelines(*paths: Path) -> dict[str, dict[str, Any]]:
    """Every pipeline of the given config repository files, by name (names must be unique
    across files, as the GoCD server requires)."""
    pipelines: dict[str, dict[str, Any]] = {}
    for path in paths:
        doc = yaml.safe_load(path.read_text()) or {}
        for name, pipeline in (doc.get("pipelines") or {}).items():
            assert name not in pipelines, f"{path}: pipeline {name} defined twice"
            pipelines[name] = pipeline
    return pipelines


def _stage_list(pipeline: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [next(iter(entry.items())) for entry in pipeline.get("stages") or []]


@dataclass
class TaskRun:
    stage: str
    job: str
    index: int
    argv: list[str]
    run_if: str
    ran: bool
    exit_code: int | None = None
    output: str = ""
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class StageRun:
    name: str
    result: str  # Passed, Failed, or NotRun (awaiting approval / not allowed)
    trigger_user: str = ""
    why: str = ""


@dataclass
class PipelineRun:
    name: str
    counter: int
    label: str
    revision: dict[str, str]
    stages: list[StageRun] = field(default_factory=list)
    tasks: list[TaskRun] = field(default_factory=list)

    def stage(self, name: str) -> StageRun:
        return next(s for s in self.stages if s.name == name)

    def report(self, tail: int = 2500) -> str:
        """One line per task, then the output tail of each failed one (for assertions)."""
        lines = [f"{t.stage}/{t.job} #{t.index} {'ran' if t.ran else 'skipped'} "
                 f"exit={t.exit_code}: {' '.join(t.argv)[:160]}" for t in self.tasks]
        for t in self.tasks:
            if t.ran and t.exit_code:
                errors = [ln[:600] for ln in t.output.splitlines()
                          if '"level": "error"' in ln or " failed: " in ln]
                lines.append(f"--- {t.stage}/{t.job} #{t.index} output ---\n"
                             + "\n".join(errors[-5:]) + "\n..." + t.output[-tail:])
        return "\n".join(lines)

    def console(self) -> str:
        return "\n".join(f"[{t.stage}/{t.job} #{t.index} {'ran' if t.ran else 'skipped'} "
                         f"exit={t.exit_code}] {' '.join(t.argv)}\n{t.output}"
                         for t in self.tasks)


@dataclass
class GoCDAgent:
    """One agent (and the server's scheduling) for the pipelines of a config repository."""

    root: Path                                   # the agent's pipelines/ and the artifact store
    agent_env: dict[str, str]                    # the agent process's own environment
    git_urls: dict[str, str]                     # material URL in the file -> local origin
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)   # (config, key) -> value
    secure_values: dict[str, str] = field(default_factory=dict)          # secure var -> plain
    roles: dict[str, set[str]] = field(default_factory=dict)             # user -> roles
    # what a site adapts when it copies the file: variable -> its value here; each must be
    # a variable the file declares (a renamed variable fails instead of passing unseen)
    site: dict[str, str] = field(default_factory=dict)
    server_url: str = "https://127.0.0.1:1/go"
    counters: dict[str, int] = field(default_factory=dict)
    timeout_s: float = 900.0

    # -- scheduling --------------------------------------------------------------------------
    def run(self, name: str, pipeline: dict[str, Any], *, trigger_user: str = "changes",
            approvals: dict[str, str] | None = None,
            run_only: list[str] | None = None) -> PipelineRun:
        """Schedule ``pipeline`` and run its stages in order while they pass. ``approvals``
        maps a manual stage to the user who approves it (unapproved: the run stops there,
        as GoCD waits); ``run_only`` stops after the named stages."""
        approvals = approvals or {}
        declared = {k for level in [pipeline, *[s for _, s in _stage_list(pipeline)],
                                    *[j for _, s in _stage_list(pipeline)
                                      for j in (s.get("jobs") or {}).values()]]
                    for k in (level.get("environment_variables") or {})}
        unknown = set(self.site) - declared
        assert not unknown, f"{name} declares no variable {sorted(unknown)} to adapt"
        counter = self.counters[name] = self.counters.get(name, 0) + 1
        workdir = self.root / "pipelines" / name
        revisions = self._checkout(pipeline, workdir, fresh=True)
        label = self._label(pipeline.get("label_template") or "${COUNT}", counter, revisions)
        run = PipelineRun(name, counter, label, revisions)
        for stage_name, _ in _stage_list(pipeline):
            if run_only is not None and stage_name not in run_only:
                break
            if not self.trigger_stage(run, pipeline, stage_name,
                                      approvals.get(stage_name, trigger_user)):
                break
        return run

    def trigger_stage(self, run: PipelineRun, pipeline: dict[str, Any], stage_name: str,
                      user: str) -> bool:
        """Run one stage of ``run`` as GoCD would when ``user`` triggers it (for a manual
        stage: approves it). Returns whether the stage passed."""
        stage = dict(_stage_list(pipeline))[stage_name]
        names = [n for n, _ in _stage_list(pipeline)]
        previous = names[names.index(stage_name) - 1] if names.index(stage_name) else None
        prior = next((s for s in reversed(run.stages) if s.name == previous), None)
        previous_passed = prior is None or prior.result == "Passed"
        approval = stage.get("approval") or {"type": "success"}
        if isinstance(approval, str):
            approval = {"type": approval}
        why = ""
        if approval.get("type") == "manual":
            allowed = (user in (approval.get("users") or [])
                       or bool(self.roles.get(user, set()) & set(approval.get("roles") or [])))
            if not allowed:
                why = f"manual approval by {user or 'nobody'} not authorized"
            elif approval.get("allow_only_on_success") and not previous_passed:
                why = "previous stage failed"
        elif not previous_passed:
            why = "previous stage failed"
        if why:
            run.stages.append(StageRun(stage_name, "NotRun", user, why))
            return False
        workdir = self.root / "pipelines" / run.name
        passed = True
        for job_name, job in (stage.get("jobs") or {}).items():
            passed &= self._run_job(run, pipeline, workdir, stage_name, stage, job_name, job,
                                    user)
        run.stages.append(StageRun(stage_name, "Passed" if passed else "Failed", user))
        return passed

    # -- materials and labels ------------------------------------------------------------
    def _checkout(self, pipeline: dict[str, Any], workdir: Path,
                  fresh: bool) -> dict[str, str]:
        if fresh and workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        revisions = {}
        for name, material in (pipeline.get("materials") or {}).items():
            url = material.get("git") or material.get("url")
            assert url, f"material {name}: only git materials are supported here"
            origin = self.git_urls[url]
            dest = workdir / material["destination"] if material.get("destination") else workdir
            depth = ["--depth", "1"] if material.get("shallow_clone") else []
            branch = material.get("branch", "master")
            if dest.exists() and any(dest.iterdir()):
                tmp = workdir.parent / f".{workdir.name}-{name}-checkout"
                shutil.rmtree(tmp, ignore_errors=True)
                subprocess.run(["git", "clone", "-q", *depth, "-b", branch, f"file://{origin}",
                                str(tmp)], check=True)
                for child in tmp.iterdir():
                    shutil.move(str(child), dest / child.name)
                tmp.rmdir()
            else:
                subprocess.run(["git", "clone", "-q", *depth, "-b", branch, f"file://{origin}",
                                str(dest)], check=True)
            # the agent's checkout keeps the material's URL as origin (not the local mapping)
            subprocess.run(["git", "-C", str(dest), "remote", "set-url", "origin",
                            f"file://{origin}"], check=True)
            revisions[name] = subprocess.run(["git", "-C", str(dest), "rev-parse", "HEAD"],
                                             capture_output=True, text=True,
                                             check=True).stdout.strip()
        return revisions

    @staticmethod
    def _label(template: str, counter: int, revisions: dict[str, str]) -> str:
        def part(match: re.Match[str]) -> str:
            key, length = match.group(1), match.group(2)
            value = str(counter) if key == "COUNT" else revisions[key]
            return value[: int(length)] if length else value
        return LABEL_PART.sub(part, template)

    # -- jobs and tasks ------------------------------------------------------------------
    def _variables(self, *levels: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
        """Merge the levels' environment and secure variables; resolve secret params."""
        env: dict[str, str] = {}
        missing: list[str] = []
        for level in levels:
            for key, value in (level.get("environment_variables") or {}).items():
                env[key] = self.site.get(key, self._resolve(str(value), missing))
            for key in level.get("secure_variables") or {}:
                if key not in self.secure_values:
                    missing.append(f"secure variable {key}")
                env[key] = self.secure_values.get(key, "")
        return env, missing

    def _resolve(self, value: str, missing: list[str]) -> str:
        def secret(match: re.Match[str]) -> str:
            key = (match.group(1), match.group(2))
            if key not in self.secrets:
                missing.append(f"secret [{key[0]}][{key[1]}]")
                return ""
            return self.secrets[key]
        return SECRET_PARAM.sub(secret, value)

    def _run_job(self, run: PipelineRun, pipeline: dict[str, Any], workdir: Path,
                 stage_name: str, stage: dict[str, Any], job_name: str, job: dict[str, Any],
                 user: str) -> bool:
        # every job runs on a fresh (elastic) agent: a new checkout, nothing left over from
        # an earlier stage but what it fetches (stricter than clean_workspace)
        self._checkout(pipeline, workdir, fresh=True)
        variables, missing = self._variables(pipeline, stage, job)
        env = {**self.agent_env, **variables}
        env.update({
            "GO_SERVER_URL": self.server_url,
            "GO_PIPELINE_NAME": run.name,
            "GO_PIPELINE_COUNTER": str(run.counter),
            "GO_PIPELINE_LABEL": run.label,
            "GO_STAGE_NAME": stage_name,
            "GO_STAGE_COUNTER": "1",
            "GO_JOB_NAME": job_name,
            "GO_TRIGGER_USER": user,
        })
        for material, revision in run.revision.items():
            var = material_var(material)
            env[f"GO_REVISION_{var}"] = env[f"GO_TO_REVISION_{var}"] = revision
            env[f"GO_FROM_REVISION_{var}"] = revision
            branch = (pipeline["materials"][material].get("branch") or "master")
            env[f"GO_MATERIAL_BRANCH_{var}"] = branch
        masked = [v for k, v in variables.items()
                  if v and (k in (job.get("secure_variables") or {})
                            or k in (stage.get("secure_variables") or {})
                            or k in (pipeline.get("secure_variables") or {})
                            or self._is_secret_param(pipeline, stage, job, k))]
        passed = not missing
        if missing:
            run.tasks.append(TaskRun(stage_name, job_name, 0, [], "passed", False, None,
                                     "job failed: could not resolve " + ", ".join(missing)))
        for index, task in enumerate(job.get("tasks") or [], start=1):
            kind, spec = next(iter(task.items()))
            spec = spec or {}
            run_if = spec.get("run_if", "passed")
            should = (run_if == "any" or (run_if == "passed" and passed)
                      or (run_if == "failed" and not passed))
            if kind == "fetch":
                argv = ["fetch", spec.get("stage", ""), spec.get("job", ""), spec["source"]]
            else:
                assert kind == "exec", f"{stage_name}/{job_name}: task type {kind} not supported"
                argv = [str(spec["command"]), *[str(a) for a in spec.get("arguments") or []]]
            record = TaskRun(stage_name, job_name, index, argv, run_if, should, env=dict(env))
            run.tasks.append(record)
            if not should or missing:
                record.ran = False
                continue
            if kind == "fetch":
                record.exit_code = self._fetch(run, workdir, spec)
            else:
                cwd = workdir / spec.get("working_directory", ".")
                try:
                    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True,
                                          text=True, timeout=self.timeout_s, check=False)
                    record.exit_code, out = done.returncode, done.stdout + done.stderr
                except FileNotFoundError as exc:
                    record.exit_code, out = 127, f"could not run {argv[0]}: {exc}"
                for secret in sorted(masked, key=len, reverse=True):
                    out = out.replace(secret, MASK)
                record.output = out
            if record.exit_code != 0:
                passed = False
        self._upload(run, workdir, stage_name, job_name, job)
        return passed

    @staticmethod
    def _is_secret_param(pipeline: dict[str, Any], stage: dict[str, Any], job: dict[str, Any],
                         key: str) -> bool:
        for level in (pipeline, stage, job):
            value = (level.get("environment_variables") or {}).get(key)
            if value is not None and SECRET_PARAM.search(str(value)):
                return True
        return False

    def _store(self, run: PipelineRun, stage: str, job: str) -> Path:
        return self.root / "artifacts" / run.name / str(run.counter) / stage / "1" / job

    def _upload(self, run: PipelineRun, workdir: Path, stage: str, job_name: str,
                job: dict[str, Any]) -> None:
        for artifact in job.get("artifacts") or []:
            _, spec = next(iter(artifact.items()))
            src = workdir / spec["source"]
            dest = self._store(run, stage, job_name) / spec.get("destination", "")
            if src.is_dir():
                # GoCD uploads a directory into the destination: DEST/NAME/...
                shutil.copytree(src, dest / src.name, dirs_exist_ok=True)
            elif src.exists():
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / src.name)

    def _fetch(self, run: PipelineRun, workdir: Path, spec: dict[str, Any]) -> int:
        src = self._store(run, spec["stage"], spec["job"]) / spec["source"]
        dest = workdir / spec.get("destination", ".")
        if not src.exists():
            return 1
        if spec.get("is_file"):
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / src.name)
        else:
            shutil.copytree(src, dest / src.name, dirs_exist_ok=True)
        return 0


def pipeline_env_for_test(testbed_env: dict[str, str]) -> dict[str, str]:
    """The agent process's environment: the testbed's exports plus PATH/HOME of this run."""
    return {**{k: v for k, v in os.environ.items()
               if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")},
            **testbed_env}


class GoCDServerAPI:
    """The part of GoCD's server API the tasks call back (`pipeline annotate` comments on the
    pipeline instance), on loopback: GoCD cannot run here. Answers as api.gocd.org documents
    for v1 "Get pipeline instance" (GET /go/api/pipelines/NAME/COUNTER) and "Comment on
    pipeline instance" (POST .../comment -> {"message": "Comment successfully updated."});
    a wrong Accept version is a 404, a wrong token a 401, as GoCD answers them."""

    def __init__(self, token: str):
        import http.server
        import json
        import threading

        self.token = token
        self.comments: dict[tuple[str, int], Any] = {}
        self.requests: list[tuple[str, str]] = []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.go.cd.v1+json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _check(self) -> tuple[str, int] | None:
                api.requests.append((self.command, self.path))
                if self.headers.get("Authorization", "").lower() != f"bearer {api.token}":
                    self._answer(401, {"message": "You are not authenticated!"})
                    return None
                if self.headers.get("Accept") != "application/vnd.go.cd.v1+json":
                    self._answer(404, {"message": "The url you are trying to reach appears "
                                                  "to be incorrect."})
                    return None
                match = re.fullmatch(r"/go/api/pipelines/([^/]+)/(\d+)(/comment)?", self.path)
                if not match:
                    self._answer(404, {"message": "not found"})
                    return None
                return match.group(1), int(match.group(2))

            def do_GET(self) -> None:
                key = self._check()
                if key:
                    self._answer(200, {"name": key[0], "counter": key[1],
                                       "label": str(key[1]), "natural_order": float(key[1]),
                                       "can_run": True, "preparing_to_schedule": False,
                                       "comment": api.comments.get(key),
                                       "scheduled_date": 1700000000000,
                                       "build_cause": {"trigger_message": "modified by dev",
                                                       "trigger_forced": False,
                                                       "approver": "", "material_revisions": []},
                                       "stages": []})

            def do_POST(self) -> None:
                key = self._check()
                if key:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length) or b"{}")
                    api.comments[key] = body.get("comment")
                    self._answer(200, {"message": "Comment successfully updated."})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/go"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
