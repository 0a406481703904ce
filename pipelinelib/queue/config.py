"""The queue's configuration: which environment it deploys and the app's pipeline stages.

``.pipeline/queue.yaml`` as it is on **master** (a refspec cannot change the pipeline that
judges it)::

    environment: live            # deployment records: tag deployment-NNNN, note, audit
    branches: [master]           # default branch first (never queued); others ignored
    check:                       # per candidate, speculatively in parallel (build, scan, gate)
      - pipeline: [build, --app-dir, "{workdir}", --registry, 127.0.0.1:5001]
      - pipeline: [scan, --osv-image, "...", --policy, "{workdir}/scan-policy.yaml"]
      - pipeline: [gate, --app-dir, "{workdir}"]
    deploy:                      # strictly in queue order, one at a time (migrate, rollout)
      - pipeline: [migrate, --dir, "{workdir}/migrations"]
      - pipeline: [rollout, "{workdir}/k8s", --app, hello, --namespace, hello]

A ``pipeline:`` stage is one of the existing ``pipeline`` subcommands (the same job
compositions CI stages run); ``run:`` is the app's own command (its test suite), an
argument list, never a shell string. Placeholders: ``{workdir}`` (the candidate's
checkout), ``{commit}``, ``{short}``, ``{branch}``, ``{reports}`` (this stage's report dir).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelinelib.errors import BadInput

CONFIG_PATH = ".pipeline/queue.yaml"
PLACEHOLDERS = frozenset({"workdir", "commit", "short", "branch", "reports"})
PHASES = ("check", "deploy")
# subcommands a stage may run: the job compositions, not the queue or promotion themselves
STAGE_COMMANDS = frozenset({"env", "build", "scan", "perf", "gate", "migrate", "rollout",
                            "plan", "apply", "annotate", "status"})
_ENV = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclass(frozen=True)
class Stage:
    """One stage: a ``pipeline`` subcommand or the app's own program, with arguments."""

    name: str
    argv: tuple[str, ...]
    pipeline: bool

    def render(self, values: dict[str, str]) -> list[str]:
        return [arg.format_map(values) for arg in self.argv]


@dataclass(frozen=True)
class QueueConfig:
    """See the module docstring."""

    environment: str
    branches: tuple[str, ...] = ("master",)
    check: tuple[Stage, ...] = ()
    deploy: tuple[Stage, ...] = ()
    source: str = CONFIG_PATH
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def master(self) -> str:
        return self.branches[0]


def parse_config(data: Any, source: str = CONFIG_PATH) -> QueueConfig:
    """Validate ``data`` (parsed YAML); every problem is reported at once (BadInput)."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise BadInput("the queue configuration is not a mapping", source=source,
                       expected="environment, branches, check, deploy")
    unknown = sorted(set(data) - {"environment", "branches", "check", "deploy"})
    if unknown:
        problems.append(f"unknown keys {unknown} (expected environment, branches, check, "
                        "deploy)")
    environment = data.get("environment")
    if not isinstance(environment, str) or not _ENV.match(environment):
        problems.append(f"environment: {environment!r} is not an environment name "
                        "(expected lower-case letters, digits and '-')")
    branches = data.get("branches", ["master"])
    if not (isinstance(branches, list) and branches
            and all(isinstance(b, str) and b and not b.startswith("-") for b in branches)):
        problems.append("branches: expected a non-empty list of branch names, "
                        "the default branch first")
        branches = ["master"]
    phases: dict[str, list[Stage]] = {}
    for phase in PHASES:
        raw = data.get(phase) or []
        if not isinstance(raw, list):
            problems.append(f"{phase}: expected a list of stages")
            raw = []
        phases[phase] = [s for i, item in enumerate(raw)
                         if (s := _stage(item, f"{phase}[{i}]", problems)) is not None]
    if not phases["check"] and not phases["deploy"]:
        problems.append("check/deploy: no stage at all (expected the app's pipeline)")
    if problems:
        raise BadInput(f"{len(problems)} problem(s): " + "; ".join(problems), source=source,
                       expected="the stages of docs/queue.md")
    return QueueConfig(str(environment), tuple(branches), tuple(phases["check"]),
                       tuple(phases["deploy"]), source)


def _stage(item: Any, where: str, problems: list[str]) -> Stage | None:
    if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in (
            "pipeline", "run"):
        problems.append(f"{where}: expected one key, `pipeline: [COMMAND, ARGS...]` or "
                        "`run: [PROGRAM, ARGS...]`")
        return None
    kind, argv = next(iter(item.items()))
    if not (isinstance(argv, list) and argv and all(isinstance(a, (str, int, float))
                                                     for a in argv)):
        problems.append(f"{where}.{kind}: expected a non-empty list of arguments "
                        "(never a shell string)")
        return None
    args = tuple(str(a) for a in argv)
    for arg in args:
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(arg) if f is not None}
        except ValueError:
            problems.append(f"{where}.{kind}: unbalanced braces in {arg!r}")
            continue
        bad = sorted(names - PLACEHOLDERS)
        if bad:
            problems.append(f"{where}.{kind}: unknown placeholder(s) {bad} "
                            f"(expected {sorted(PLACEHOLDERS)})")
    if kind == "pipeline" and args[0] not in STAGE_COMMANDS:
        problems.append(f"{where}.pipeline: {args[0]!r} is not a stage command "
                        f"(expected one of {sorted(STAGE_COMMANDS)})")
    name = args[0] if kind == "pipeline" else Path(args[0]).name
    return Stage(name, args, kind == "pipeline")


def load_config(path: str | Path) -> QueueConfig:
    """Read and validate the configuration file."""
    import yaml

    from pipelinelib import yamlsafe

    path = Path(path)
    if not path.is_file():
        raise BadInput("no queue configuration", source=str(path),
                       expected=f"{CONFIG_PATH} on the default branch (see docs/queue.md)")
    if path.stat().st_size > 256 * 1024:
        raise BadInput("queue configuration too large", source=str(path),
                       expected="at most 256 KiB")
    try:
        data = yamlsafe.safe_load(path)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadInput(f"not valid YAML: {str(exc)[:200]}", source=str(path)) from exc
    return parse_config(data, str(path))
