"""Load and validate environment files against the published JSON Schema.

Every problem is collected before anything happens: ``SpecInvalid`` (exit 2) lists each
one as ``FILE:LINE FIELD: what is wrong (expected WHAT)``. Unknown keys are errors.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelinelib.envspec import yamlines
from pipelinelib.envspec.model import (
    DEFAULT_PARALLEL,
    DEFAULT_PRIORITY,
    DEFAULT_TIMEOUT,
    ROLLING,
    AppSpec,
    ChartSpec,
    EnvSpec,
    ImageSpec,
    NamespaceSpec,
    SecretRef,
)
from pipelinelib.envspec.namespaces import PROTECTED_LABEL
from pipelinelib.errors import BadInput

SCHEMA_PATH = Path(__file__).with_name("schema") / "environment.schema.json"
ENV_DIR = "environments"
_PATTERNS = {
    "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$": "a DNS label (lower-case a-z 0-9 -, at most 63)",
    "^[A-Za-z_][A-Za-z0-9_]*$": "an environment variable name (letters, digits, _)",
    "^sha256:[a-f0-9]{64}$": "sha256: and 64 lower-case hex digits",
    "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$": "a docker tag (A-Z a-z 0-9 _ . -, at most 128)",
    "^[a-z0-9.:/_-]+$": "registry/repository in lower case, without tag",
    "^[0-9a-f]{7,40}$": "a git revision (7 to 40 lower-case hex digits)",
}
_JSON_TYPES = {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer",
               float: "number", type(None): "null"}


class Problem:
    """One validation problem: where, what, and what was expected."""

    def __init__(self, source: str, line: int | None, field: str, message: str,
                 expected: str | None = None):
        self.source, self.line, self.field = source, line, field
        self.message, self.expected = message, expected

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        text = f"{where} {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        return f"{text} (expected {self.expected})" if self.expected else text


class SpecInvalid(BadInput):
    """One or more problems in environment files; all of them are in ``problems``."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        first = self.problems[0]
        super().__init__(first.message, source=first.source, field=first.field or None,
                         line=first.line, expected=first.expected,
                         hint="fix the file(s) and run again; nothing was changed")
        if len(self.problems) > 1:
            listing = "\n".join(f"  {p}" for p in self.problems)
            self.message = f"{len(self.problems)} problems in the environment spec:\n{listing}"


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The published JSON Schema (pipelinelib/envspec/schema/environment.schema.json)."""
    return json.loads(SCHEMA_PATH.read_text())


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with local ``$ref``s replaced by their targets (validation is ~2x faster)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target: Any = defs
            for part in ref[len("#/$defs/"):].split("/"):
                target = target[part]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return _inline({**target, **rest}, defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    published = schema()
    cls = jsonschema.validators.validator_for(published)
    return cls(_inline(published, published.get("$defs", {})))


def _field(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path)


def _schema_problems(data: Any, source: str, lines: yamlines.Lines) -> list[Problem]:
    problems: list[Problem] = []
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    for err in errors:
        path = list(err.absolute_path)
        problems.extend(_explain(err, path, source, lines))
    unique = {str(p): p for p in problems}
    return sorted(unique.values(), key=lambda p: (p.line or 0, p.field))


def _explain(err: Any, path: list[Any], source: str, lines: yamlines.Lines) -> list[Problem]:
    kind, value, sub = err.validator, err.instance, err.schema
    line = lines.line(path)
    here = _field(path)

    def problem(message: str, expected: str | None = None, at: list[Any] | None = None):
        where = path if at is None else at
        return Problem(source, lines.line(where), _field(where), message, expected)

    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(sub.get("properties", {}))
        extra = [k for k in value if k not in sub.get("properties", {})]
        return [problem(f"unknown key {k!r}", "one of " + ", ".join(allowed), [*path, k])
                for k in extra]
    if kind == "required":
        missing = [k for k in err.validator_value if isinstance(value, dict) and k not in value]
        return [problem(f"missing required key {k!r}", f"{k!r} under {here or 'the top level'}")
                for k in missing]
    if kind == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return [problem(f"got {_JSON_TYPES.get(type(value), type(value).__name__)} "
                        f"{_short(value)}", want)]
    if kind == "pattern" and "propertyNames" in err.schema_path:
        return [problem(f"invalid name {_short(value)}",
                        _PATTERNS.get(err.validator_value, "a valid name"), [*path, value])]
    if kind == "pattern":
        return [problem(f"invalid value {_short(value)}",
                        _PATTERNS.get(err.validator_value, f"to match {err.validator_value}"))]
    if kind == "propertyNames":
        at = [*path, err.instance] if isinstance(err.instance, str) else path
        expected = "a valid name"
        for ctx_err in err.context or []:
            expected = _PATTERNS.get(str(ctx_err.validator_value), expected)
        return [problem(f"invalid name {_short(err.instance)}", expected, at)]
    if kind == "const":
        return [problem(f"got {_short(value)}", repr(err.validator_value))]
    if kind == "enum":
        return [problem(f"got {_short(value)}", "one of " + ", ".join(map(str,
                                                                         err.validator_value)))]
    if kind == "oneOf" and path == ["namespaces"]:
        branch = 0 if isinstance(value, list) else 1  # the list form, or the mapping form
        deeper = [e for e in err.context or []
                  if (list(e.absolute_path) != path or "propertyNames" in e.relative_schema_path)
                  and e.relative_schema_path and e.relative_schema_path[0] == branch]
        if deeper and isinstance(value, (dict, list)):
            return [p for e in deeper for p in _explain(e, list(e.absolute_path), source, lines)]
        return [problem(f"got {_JSON_TYPES.get(type(value), type(value).__name__)}",
                        "a list of namespace names, or a mapping of name to settings")]
    if kind == "anyOf" and path and (path[-1] == "image" or path[-2:-1] == ["images"]):
        return [problem("the image needs a tag or a digest", "image.tag or image.digest")]
    if kind == "not" and isinstance(value, dict) and "chart" in value:
        return [problem("an app takes manifests or a chart, not both", "one of them")]
    if kind in ("minimum", "maximum", "minLength", "minItems", "uniqueItems"):
        return [problem(err.message.replace(repr(value), _short(value)),
                        f"{kind} {err.validator_value}" if kind != "uniqueItems" else
                        "no duplicates")]
    return [Problem(source, line, here, err.message[:200])]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_environment(path: str | Path, root: str | Path | None = None,
                     environ: Mapping[str, str] | None = None) -> EnvSpec:
    """Read, validate and return one environment file; ``SpecInvalid`` lists every problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BadInput("no such environment file", source=source,
                       expected=f"{ENV_DIR}/<name>.yaml in the env-state repository") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read: {exc}", source=source) from exc
    return parse_environment(text, source, path.stem, Path(root) if root else path.parent.parent,
                             environ)


class _Sourced(yamlines.Lines):
    """Lines of several files merged: the file of every path, too."""

    def __init__(self, main: str) -> None:
        super().__init__()
        self.main = main
        self.sources: dict[tuple[Any, ...], str] = {}

    def add(self, lines: yamlines.Lines, source: str) -> None:
        for path, line in lines.by_path.items():
            self.by_path[path] = line
            self.sources[path] = source

    def source(self, path: Sequence[Any]) -> str:
        path = tuple(path)
        while path:
            if path in self.sources:
                return self.sources[path]
            path = path[:-1]
        return self.main


def _read(text: str, source: str) -> tuple[Any, yamlines.Lines]:
    try:
        return yamlines.load(text)
    except yamlines.YamlError as exc:
        raise SpecInvalid([Problem(source, exc.line, "", f"not valid YAML: {exc}",
                                   "a YAML mapping")]) from exc


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _compose(data: dict[str, Any], lines: yamlines.Lines, source: str,
             root: Path | None) -> tuple[dict[str, Any], yamlines.Lines, list[Problem]]:
    """The files named under ``include`` merged in order, then this file on top."""
    includes = data.get("include")
    if not isinstance(includes, list) or not includes:
        return data, lines, []
    merged: dict[str, Any] = {}
    sourced, problems = _Sourced(source), []
    for i, rel in enumerate(includes):
        at = ("include", i)
        if not isinstance(rel, str):
            continue  # the schema reports it
        path = _inside(root, rel)
        if path is None or not path.is_file():
            problems.append(Problem(source, lines.line(at), _field(at),
                                    f"no file {rel!r} in the env-state repository",
                                    "a spec file path relative to the repository root"))
            continue
        part, part_lines = _read(path.read_text(encoding="utf-8"), str(path))
        if not isinstance(part, dict):
            problems.append(Problem(str(path), part_lines.line(()), "",
                                    "an included file is not a mapping", "spec keys"))
            continue
        if "include" in part:
            problems.append(Problem(str(path), part_lines.line(("include",)), "include",
                                    "included files cannot include others", "no include"))
        sourced.add(part_lines, str(path))
        merged = _deep_merge(merged, {k: v for k, v in part.items() if k != "include"})
    sourced.add(lines, source)
    return _deep_merge(merged, data), sourced, problems


def _inside(root: Path | None, rel: str) -> Path | None:
    """``root/rel`` when it stays inside the repository, else None."""
    base = (root or Path(".")).resolve()
    path = (base / rel).resolve()
    return path if path == base or base in path.parents else None


def _locate(problems: list[Problem], lines: yamlines.Lines) -> list[Problem]:
    """Each problem named by the file its field came from (specs composed with include)."""
    if not isinstance(lines, _Sourced):
        return problems
    by_field = {_field(p): p for p in lines.by_path}
    for problem in problems:
        path = by_field.get(problem.field)
        if path is not None and problem.source == lines.main:
            problem.source = lines.source(path)
    return problems


def parse_environment(text: str, source: str, expected_name: str | None = None,
                      root: Path | None = None,
                      environ: Mapping[str, str] | None = None) -> EnvSpec:
    """Validate ``text`` (the content of ``source``) and build the ``EnvSpec``.

    ``environ`` (default ``os.environ``) answers ``$NAME`` lookups in ``set``/``set_string``:
    variables missing there are kept in ``env_problems``, raised by plan/apply when they
    render (status and promotion need no deploy-time secrets); values are read at render.
    """
    data, lines = _read(text, source)
    if not isinstance(data, dict):
        raise SpecInvalid([Problem(source, lines.line(()), "", "the file is not a mapping",
                                   "keys apiVersion, kind, name, apps")])
    data, lines, problems = _compose(data, lines, source, root)
    problems += _schema_problems(data, source, lines)
    if problems:
        raise SpecInvalid(_locate(problems, lines))
    spec = _build(data, source, lines, root)
    spec.includes = list(data.get("include", []))
    spec.env_problems = _locate(_env_problems(data, source, lines, os.environ if environ is None
                                              else environ), lines)
    problems = _semantic_problems(spec, data, lines, expected_name)
    if problems:
        raise SpecInvalid(_locate(problems, lines))
    return spec


ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def env_names(value: Any) -> list[str]:
    """The environment variables ``value`` reads (``$NAME``, ``${NAME}``; ``$$`` is a $)."""
    if not isinstance(value, str):
        return []
    return [m.group(1) or m.group(2) for m in ENV_REF.finditer(value) if m.group(0) != "$$"]


def expand(value: Any, environ: Mapping[str, str]) -> tuple[Any, list[str]]:
    """``value`` with its ``$NAME`` references read from ``environ``; also the values read
    (to be registered as secrets)."""
    if not isinstance(value, str):
        return value, []
    read: list[str] = []

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        found = environ.get(match.group(1) or match.group(2), "")
        read.append(found)
        return found

    return ENV_REF.sub(one, value), read


def _env_problems(data: dict[str, Any], source: str, lines: yamlines.Lines,
                  environ: Mapping[str, str]) -> list[Problem]:
    problems = []
    apps = data.get("apps")
    for name, raw in (apps.items() if isinstance(apps, dict) else ()):
        if not isinstance(raw, dict) or raw.get("enabled") is False:
            continue
        for kind in ("set", "set_string"):
            values = raw.get(kind)
            for key, value in (values.items() if isinstance(values, dict) else ()):
                for var in env_names(value):
                    if var not in environ:
                        at = ("apps", name, kind, key)
                        problems.append(Problem(source, lines.line(at), _field(at),
                                                f"environment variable {var} is not set",
                                                f"{var} in the environment (or $$ for a "
                                                "literal $)"))
    return problems


def _build(data: dict[str, Any], source: str, lines: yamlines.Lines,
           root: Path | None) -> EnvSpec:
    defaults = data.get("defaults", {})
    raw_ns = data.get("namespaces", [])
    namespaces = list(raw_ns)
    ns_specs = {name: _namespace(name, settings or {}) for name, settings in raw_ns.items()
                } if isinstance(raw_ns, dict) else {}
    apps, disabled = {}, []
    for name, raw in data["apps"].items():
        if raw.get("enabled", True) is False:
            disabled.append(name)
            continue
        merged = {**defaults, **raw}
        chart = raw.get("chart")
        apps[name] = AppSpec(
            name=name,
            image=ImageSpec(**raw["image"]) if raw.get("image") else None,
            namespace=merged.get("namespace") or (namespaces[0] if namespaces else "default"),
            manifests=raw.get("manifests"),
            chart=ChartSpec(**chart) if chart else None,
            values=raw.get("values", {}),
            config={k: _text(v) for k, v in raw.get("config", {}).items()},
            ports=list(raw.get("ports", [])),
            replicas=merged.get("replicas", 1),
            resources={k: str(v) for k, v in merged.get("resources", {}).items()},
            env={k: _text(v) for k, v in {**defaults.get("env", {}),
                                          **raw.get("env", {})}.items()},
            secrets={k: SecretRef(**v) for k, v in raw.get("secrets", {}).items()},
            dns=list(raw.get("dns", [])),
            priority=merged.get("priority", DEFAULT_PRIORITY),
            protected=raw.get("protected", False),
            timeout=merged.get("timeout", DEFAULT_TIMEOUT),
            annotations=raw.get("annotations", {}),
            strategy=merged.get("strategy", ROLLING),
            await_promotion=raw.get("await_promotion"),
            images={k: ImageSpec(**v) for k, v in raw.get("images", {}).items()},
            values_files=list(raw.get("values_files", [])),
            set=dict(raw.get("set", {})),
            set_string={k: _text(v) for k, v in raw.get("set_string", {}).items()},
            max_history=merged.get("max_history"),
            replicas_given="replicas" in merged,
            line=lines.line(("apps", name)),
        )
    cluster = data.get("cluster", {})
    promotion = data.get("promotion", {})
    return EnvSpec(name=data["name"], source=source, apps=apps, namespaces=namespaces,
                   namespace_specs=ns_specs, disabled=disabled,
                   context=cluster.get("context"), kubeconfig=cluster.get("kubeconfig"),
                   branch=data.get("branch"), promote_from=list(promotion.get("from", [])),
                   via_branch=promotion.get("via_branch"),
                   max_parallel=data.get("max_parallel", DEFAULT_PARALLEL),
                   await_promotion=data.get("await_promotion", False), root=root)


def _namespace(name: str, raw: dict[str, Any]) -> NamespaceSpec:
    return NamespaceSpec(name=name, protected=raw.get("protected", False),
                         labels=dict(raw.get("labels", {})),
                         annotations=dict(raw.get("annotations", {})),
                         limits=list(raw.get("limits", [])),
                         quotas={k: str(v) for k, v in raw.get("quotas", {}).items()})


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _semantic_problems(spec: EnvSpec, data: dict[str, Any], lines: yamlines.Lines,
                       expected_name: str | None) -> list[Problem]:
    src = spec.source
    problems = []
    if expected_name and spec.name != expected_name:
        problems.append(Problem(src, lines.line(("name",)), "name",
                                f"{spec.name!r} differs from the file name",
                                repr(expected_name)))
    hosts: dict[str, str] = {}
    problems += _namespace_problems(src, spec, lines)
    for app in spec.apps.values():
        at = ("apps", app.name)
        if spec.namespaces and app.namespace not in spec.namespaces:
            field: tuple[Any, ...] = (*at, "namespace") if "namespace" in data["apps"][
                app.name] else at
            problems.append(Problem(src, lines.line(field), _field(field),
                                    f"namespace {app.namespace!r} is not allowed here",
                                    "one of " + ", ".join(spec.namespaces)))
        problems += _strategy_problems(src, app, data["apps"][app.name], lines)
        problems += _image_problems(src, app, lines)
        for name in ("values", "values_files", "set", "set_string"):
            if getattr(app, name) and app.chart is None:
                problems.append(Problem(src, lines.line((*at, name)), _field((*at, name)),
                                        f"{name} are only used by charts",
                                        f"a chart, or no {name}"))
        if spec.root is not None and app.chart is not None:
            problems += _values_file_problems(src, app, spec.root, lines)
        for key in sorted(set(app.env) & set(app.secrets)):
            problems.append(Problem(src, lines.line((*at, "secrets", key)),
                                    _field((*at, "secrets", key)),
                                    f"{key} is both in env and in secrets", "one of them"))
        for i, host in enumerate(app.dns):
            if host in hosts:
                problems.append(Problem(src, lines.line((*at, "dns", i)), _field((*at, "dns", i)),
                                        f"host {host!r} is already bound to {hosts[host]}",
                                        "each host bound once"))
            hosts.setdefault(host, app.name)
        if spec.root is not None:
            local = app.manifests or (app.chart.repository if app.chart and
                                      app.chart.kind == "local" else None)
            if local and not (spec.root / local).is_dir():
                field = (*at, "manifests") if app.manifests else (*at, "chart", "repository")
                problems.append(Problem(src, lines.line(field), _field(field),
                                        f"no directory {local!r} in the env-state repository",
                                        "a directory path relative to the repository root"))
    return problems


def _image_problems(src: str, app: AppSpec, lines: yamlines.Lines) -> list[Problem]:
    """The built-in Deployment needs ``image``; ``image`` and ``images.<app>`` collide."""
    at = ("apps", app.name)
    if app.image is None and not (app.manifests or app.chart):
        if app.images.get(app.name):
            return []
        return [Problem(src, lines.line(at), _field(at),
                        "an app without manifests or a chart needs its image",
                        "image: {repository, tag or digest}")]
    if app.image is not None and app.name in app.images:
        field = (*at, "images", app.name)
        return [Problem(src, lines.line(field), _field(field),
                        f"container {app.name} gets the app's image already",
                        "image, or images." + app.name + ", not both")]
    return []


def _values_file_problems(src: str, app: AppSpec, root: Path,
                          lines: yamlines.Lines) -> list[Problem]:
    problems = []
    for i, rel in enumerate(app.values_files):
        at = ("apps", app.name, "values_files", i)
        path = _inside(root, rel)
        if path is None or not path.is_file():
            problems.append(Problem(src, lines.line(at), _field(at),
                                    f"no file {rel!r} in the env-state repository",
                                    "a values file path relative to the repository root"))
            continue
        try:
            data, _ = yamlines.load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yamlines.YamlError) as exc:
            problems.append(Problem(str(path), getattr(exc, "line", None), "",
                                    f"not a readable YAML values file: {exc}", "a mapping"))
            continue
        if not isinstance(data, (dict, type(None))):
            problems.append(Problem(str(path), 1, "", "a values file is not a mapping",
                                    "a mapping of Helm values"))
    return problems


def read_values_file(root: Path | None, rel: str) -> dict[str, Any]:
    """One values file of the env-state repository (checked on load)."""
    path = _inside(root, rel)
    if path is None:
        raise BadInput(f"values file {rel!r} is outside the repository", field="values_files")
    data, _ = yamlines.load(path.read_text(encoding="utf-8"))
    return data or {}


def _namespace_problems(src: str, spec: EnvSpec, lines: yamlines.Lines) -> list[Problem]:
    """Labels that would switch off the cluster's Pod Security admission, or remove (or set)
    the cluster administrator's protected-namespace label, are refused."""
    problems = []
    for ns in spec.namespace_specs.values():
        for label in ns.labels:
            at = ("namespaces", ns.name, "labels", label)
            if label.startswith("pod-security.kubernetes.io/"):
                problems.append(Problem(src, lines.line(at), _field(at),
                                        "Pod Security labels are set by the cluster's admins",
                                        "other labels"))
            elif label == PROTECTED_LABEL:
                problems.append(Problem(src, lines.line(at), _field(at),
                                        f"{PROTECTED_LABEL} is set by the cluster's admins, "
                                        "never through a spec",
                                        "other labels (protected: true marks the namespace "
                                        "protected in the policy)"))
    return problems


def _strategy_problems(src: str, app: AppSpec, raw: dict[str, Any],
                       lines: yamlines.Lines) -> list[Problem]:
    """Blue/green needs Services to switch; await_promotion means nothing without it."""
    at = ("apps", app.name)
    if "await_promotion" in raw and not app.blue_green:
        field: tuple[Any, ...] = (*at, "await_promotion")
        return [Problem(src, lines.line(field), _field(field),
                        "await_promotion applies to blue/green apps only",
                        "strategy: blue-green on this app, or no await_promotion")]
    if app.blue_green and not (app.ports or app.manifests or app.chart):
        field = (*at, "strategy") if "strategy" in raw else at
        return [Problem(src, lines.line(field), _field(field),
                        "a blue/green app needs a Service to switch between colours",
                        "ports (or manifests/a chart with a Service)")]
    return []


def environment_path(root: str | Path, name: str) -> Path:
    """Where the file of environment ``name`` lives in an env-state checkout."""
    if not name or "/" in name or name.startswith("."):
        raise BadInput(f"invalid environment name {name!r}", field="ENV",
                       expected="a DNS label such as staging")
    return Path(root) / ENV_DIR / f"{name}.yaml"


def list_environments(root: str | Path) -> list[str]:
    """Names of every environment file in the checkout, sorted."""
    folder = Path(root) / ENV_DIR
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
