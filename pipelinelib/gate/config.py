"""Per-app gate configuration (``APP_DIR/gate.yaml``) and the deployed release's files.

::

    marks: [1, 2, 3, 4, 5]                 # which marks this app checks (default: all)
    test_reports: [build/junit*.xml]        # mark 1: globs relative to the app dir
    migrations: migrations                  # marks 2 and 3: the versioned SQL directory
    openapi: openapi.yaml                   # mark 4: OpenAPI 3 document (or JSON Schema)
    audit_mapping: audit-mapping.yaml       # mark 5: call (operationId or "METHOD /path")
                                            #         -> its audit index mapping
    openapi_levels:                         # mark 4: oasdiff check id -> err|warn|info|none
      response-optional-property-removed: err   # (`oasdiff checks` lists the ids)
    overriders: [alice]                     # CI users who may override a failed mark
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelinelib.errors import BadInput

if TYPE_CHECKING:
    from pipelinelib.context import Context

KEYS = {"marks", "test_reports", "migrations", "openapi", "audit_mapping", "overriders",
        "openapi_levels"}


@dataclass
class GateConfig:
    app_dir: Path
    marks: tuple[int, ...] = (1, 2, 3, 4, 5)
    test_reports: tuple[str, ...] = ()
    migrations: str = ""
    openapi: str = ""
    audit_mapping: str = ""
    overriders: tuple[str, ...] = ()
    source: str = ""
    openapi_levels: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def load_config(app_dir: str | Path, path: str | Path | None = None) -> GateConfig:
    import yaml

    from pipelinelib import yamlsafe

    app = Path(app_dir)
    file = Path(path) if path else app / "gate.yaml"
    if not file.exists():
        if path:
            raise BadInput("gate config not found", source=str(file))
        return GateConfig(app)
    try:
        node = yamlsafe.compose(file)
        data = yamlsafe.safe_load(file) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = str(getattr(exc, "problem", None) or exc).removeprefix("not valid YAML: ")
        raise BadInput(f"not valid YAML: {problem}", source=str(file),
                       line=mark.line + 1 if mark else None,
                       expected="a YAML mapping of " + ", ".join(sorted(KEYS))) from exc
    if not isinstance(data, dict):
        raise BadInput("the gate config is a mapping", source=str(file))
    lines = ({k.value: k.start_mark.line + 1 for k, _ in node.value}
             if isinstance(node, yaml.MappingNode) else {})
    for key in data:
        if key not in KEYS:
            raise BadInput(f"unknown key {key!r}", source=str(file), line=lines.get(key),
                           expected=", ".join(sorted(KEYS)))
    marks = data.get("marks", [1, 2, 3, 4, 5])
    if not isinstance(marks, list) or not all(m in (1, 2, 3, 4, 5) for m in marks):
        raise BadInput("marks are numbers 1 to 5", source=str(file), field="marks",
                       line=lines.get("marks"), expected="a list such as [1, 2, 3, 4, 5]")
    reports = data.get("test_reports") or []
    reports = [reports] if isinstance(reports, str) else reports
    from pipelinelib.adapters.oasdiff import check_levels

    levels = check_levels(data.get("openapi_levels"), str(file), lines.get("openapi_levels"))
    return GateConfig(app, tuple(marks), tuple(str(r) for r in reports),
                      str(data.get("migrations") or ""), str(data.get("openapi") or ""),
                      str(data.get("audit_mapping") or ""),
                      tuple(str(u) for u in data.get("overriders") or []), str(file),
                      openapi_levels=levels)


def read_structured(text: str, source: str) -> dict[str, Any]:
    """A YAML or JSON document that must be a mapping."""
    import yaml

    from pipelinelib import yamlsafe

    try:
        data = json.loads(text) if source.endswith(".json") else yamlsafe.safe_load(text, source)
    except yamlsafe.YamlRefused:
        raise  # names the document, the line and the problem already
    except (ValueError, yaml.YAMLError) as exc:
        line = getattr(exc, "lineno", None) or getattr(
            getattr(exc, "problem_mark", None), "line", None)
        raise BadInput(f"cannot parse: {str(exc).splitlines()[0]}", source=source,
                       line=line) from exc
    if not isinstance(data, dict):
        raise BadInput("expected a mapping", source=source)
    return data


def read_current(app_dir: Path, relpath: str) -> dict[str, Any]:
    path = app_dir / relpath
    if not path.is_file():
        raise BadInput("file not found", source=str(path))
    return read_structured(_text(path.read_bytes(), str(path)), str(path))


def read_audit_mapping(app_dir: Path, relpath: str) -> dict[str, Any]:
    """The release's audit mapping: ``CALL: {index: ..., fields: {...}}`` per call
    (operationId or ``METHOD /path``); BadInput naming every entry that is not a mapping."""
    path = app_dir / relpath
    data = read_current(app_dir, relpath)
    bad = [f"{key}: {type(value).__name__}" for key, value in data.items()
           if not isinstance(value, dict)]
    if bad:
        raise BadInput(f"{len(bad)} entr{'y is' if len(bad) == 1 else 'ies are'} not a "
                       f"mapping ({'; '.join(bad[:10])})", source=str(path), field=bad[0]
                       .split(":")[0], expected="CALL: {index: NAME, fields: {FIELD: TYPE}} "
                                               "per call (operationId or METHOD /path)")
    return data


def _text(data: bytes, source: str) -> str:
    """``data`` as UTF-8 text; BadInput naming the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput.not_utf8(exc, source=source, expected="a YAML or JSON document") from None


def read_deployed(ctx: Context, app_dir: Path, relpath: str, *, deployed_dir: str | None = None,
                  deployed_rev: str | None = None) -> dict[str, Any] | None:
    """The deployed release's copy of ``relpath`` (None when it did not have one)."""
    if deployed_dir:
        path = Path(deployed_dir) / relpath
        return read_structured(_text(path.read_bytes(), str(path)), str(path)) \
            if path.is_file() else None
    if not deployed_rev:
        raise BadInput("the deployed version is unknown", field="--deployed-rev/--deployed-dir",
                       expected="the revision deployed in the target environment")
    try:
        repo = ctx.git(app_dir, remote=None)
    except BadInput as exc:
        raise BadInput(f"not a git repository: {app_dir}", field="--app-dir",
                       hint=exc.message) from None
    prefix = Path(app_dir).resolve().relative_to(repo.path.resolve()).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    try:
        data = repo.file_at(deployed_rev, f"{prefix}{relpath}")
    except BadInput as exc:
        raise BadInput(f"cannot read {relpath} at {deployed_rev}",
                       field="--deployed-rev", expected="a revision of this repository",
                       hint=exc.message) from None
    if data is None:
        return None
    source = f"{deployed_rev}:{prefix}{relpath}"
    return read_structured(_text(data, source), source)
