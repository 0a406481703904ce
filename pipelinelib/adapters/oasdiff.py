"""oasdiff (github.com/oasdiff/oasdiff, built by testbed/tools/oasdiff): OpenAPI changes.

``changelog(base, revision)`` runs ``oasdiff changelog BASE REVISION --format json
--flatten-allof`` offline on two local files and returns every change with its level:
``ERR`` (breaking), ``WARN`` (may break clients) or ``INFO``. Per-project levels go in
through ``--severity-levels`` (``{check id: err|warn|info|none}``). Exit 0 is success;
anything else is a failure with oasdiff's stderr as evidence.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelinelib.errors import BadInput, StepFailed

ENV_BINARY = "PIPELINELIB_OASDIFF"
VERSION = "v1.37.0"  # the pin in testbed/tools/oasdiff
LEVELS = {3: "ERR", 2: "WARN", 1: "INFO"}
CUSTOM_LEVELS = ("err", "warn", "info", "none")
LOAD_ERRORS = {102, 103, 122, 123}  # oasdiff internal/errors.go: cannot load or flatten a spec


@dataclass(frozen=True)
class ApiChange:
    """One change oasdiff reports (its ``formatters.Change`` JSON)."""

    id: str
    level: str
    text: str
    operation: str = ""
    path: str = ""
    operation_id: str = ""
    section: str = ""
    comment: str = ""


def find_binary(explicit: str | None = None) -> str:
    """``explicit``, ``$PIPELINELIB_OASDIFF``, the testbed's cached build, else PATH."""
    cache = Path(os.environ.get("PIPELINELIB_CACHE") or Path.home() / ".cache" / "pipelinelib")
    cached = cache / "oasdiff" / VERSION / "bin" / "oasdiff"
    for candidate in (explicit, os.environ.get(ENV_BINARY),
                      str(cached) if cached.is_file() else None, shutil.which("oasdiff")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise StepFailed("oasdiff not found", hint=f"build it once with testbed/tools/oasdiff "
                     f"(oasdiff {VERSION} from the Go module proxy) or set {ENV_BINARY}")


def changelog(base: dict[str, Any], revision: dict[str, Any], *,
              levels: dict[str, str] | None = None, binary: str | None = None,
              sources: tuple[str, str] = ("base", "revision"),
              timeout: float = 120) -> list[ApiChange]:
    """Every change from ``base`` to ``revision`` (two decoded OpenAPI documents).

    A document oasdiff cannot load is ``BadInput`` naming its source (``sources``).
    """
    exe = find_binary(binary)
    with tempfile.TemporaryDirectory(prefix="pipelinelib-oasdiff-") as tmp:
        paths = []
        for name, doc in (("base.json", base), ("revision.json", revision)):
            path = Path(tmp) / name
            path.write_text(json.dumps(doc, default=str))
            paths.append(str(path))
        args = [exe, "changelog", *paths, "--format", "json", "--flatten-allof"]
        if levels:
            level_file = Path(tmp) / "levels.txt"
            level_file.write_text("".join(f"{check} {level}\n" for check, level in
                                          sorted(levels.items())))
            args += ["--severity-levels", str(level_file)]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, check=False,
                                  timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            raise StepFailed(f"oasdiff did not finish within {timeout:.0f}s") from exc
    tail = [line.replace(tmp + "/", "") for line in proc.stderr.strip().splitlines()[-10:]]
    if proc.returncode in LOAD_ERRORS:
        which = sources[0] if "base" in " ".join(tail) else sources[1]
        message = " ".join(tail)[:400].replace("base.json", sources[0]).replace(
            "revision.json", sources[1])
        raise BadInput(f"oasdiff cannot read the document: {message}", source=which,
                       expected="an OpenAPI 3 document (openapi, info, paths)")
    if proc.returncode != 0:
        raise StepFailed(f"oasdiff failed (exit {proc.returncode})",
                         cause=tail[-1] if tail else None, evidence=tail,
                         hint="check that both documents are OpenAPI 3")
    try:
        items = json.loads(proc.stdout or "[]") or []
    except ValueError as exc:
        raise StepFailed("oasdiff wrote no JSON", evidence=tail) from exc
    return [ApiChange(id=str(i.get("id", "")), level=LEVELS.get(_level(i.get("level")), "INFO"),
                      text=str(i.get("text") or ""), operation=str(i.get("operation") or ""),
                      path=str(i.get("path") or ""),
                      operation_id=str(i.get("operationId") or ""),
                      section=str(i.get("section") or ""),
                      comment=str(i.get("comment") or ""))
            for i in items if isinstance(i, dict)]


def check_levels(raw: Any, source: str, line: int | None = None) -> dict[str, str]:
    """Validate a per-project ``{check id: err|warn|info|none}`` mapping."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadInput("must be a mapping", source=source, field="openapi_levels", line=line,
                       expected="check id: err|warn|info|none (oasdiff checks changelog "
                                "lists the ids)")
    out = {}
    for check, level in raw.items():
        word = str(level).strip().lower()
        if word not in CUSTOM_LEVELS:
            raise BadInput(f"bad level {level!r}", source=source,
                           field=f"openapi_levels.{check}", line=line,
                           expected=", ".join(CUSTOM_LEVELS))
        out[str(check)] = word
    return out


def _level(value: Any) -> int:
    """oasdiff's numeric level (3 ERR, 2 WARN, 1 INFO); 0 for anything else."""
    return value if isinstance(value, int) else 0
