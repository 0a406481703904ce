"""squawk (``squawk-cli`` from PyPI, a runtime dependency): the PostgreSQL migration linter.

One call lints a list of SQL files with ``--reporter json``; each violation comes back as
a ``Violation`` with a 1-based line (squawk's JSON counts lines from 0), the rule id, its
message and the fix squawk suggests (``help``). Exit 0 means clean, 1 violations; any
other exit is a failure with squawk's stderr as evidence.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipelinelib.errors import StepFailed

ENV_BINARY = "PIPELINELIB_SQUAWK"
VERSION = "2.70.0"  # pinned in setup.cfg (squawk-cli==2.70.0)


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    column: int
    rule: str
    message: str
    help: str
    level: str


def find_binary(explicit: str | None = None) -> str:
    """``explicit``, ``$PIPELINELIB_SQUAWK``, the one installed next to this Python (the
    ``squawk-cli`` wheel's script), else on PATH."""
    beside = Path(sys.executable).parent / "squawk"
    for candidate in (explicit, os.environ.get(ENV_BINARY),
                      str(beside) if beside.is_file() else None, shutil.which("squawk")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise StepFailed("squawk not found", hint=f"pip install squawk-cli=={VERSION} "
                     "(a pipelinelib runtime dependency) or set PIPELINELIB_SQUAWK")


def lint_files(files: list[str], *, in_transaction: bool, binary: str | None = None,
               pg_version: str | None = None, include: tuple[str, ...] = (),
               timeout: float = 120) -> list[Violation]:
    """Every squawk violation in ``files``: the rules squawk runs by default and the opt-in
    ones in ``include``."""
    if not files:
        return []
    args = [find_binary(binary), "--reporter", "json",
            "--assume-in-transaction" if in_transaction else "--no-assume-in-transaction"]
    if pg_version:
        args += ["--pg-version", pg_version]
    if include:
        args += ["--include", ",".join(include)]
    try:
        proc = subprocess.run([*args, *files], capture_output=True, text=True, check=False,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise StepFailed(f"squawk did not finish within {timeout:.0f}s") from exc
    tail = proc.stderr.strip().splitlines()[-10:]
    if proc.returncode not in (0, 1):
        raise StepFailed(f"squawk failed (exit {proc.returncode})", cause=tail[-1] if tail
                         else None, evidence=tail)
    try:
        items = json.loads(proc.stdout or "[]")
    except ValueError as exc:
        raise StepFailed("squawk wrote no JSON report", evidence=tail) from exc
    return [Violation(file=str(item.get("file", "")), line=int(item.get("line") or 0) + 1,
                      column=int(item.get("column") or 0), rule=str(item.get("rule_name", "")),
                      message=str(item.get("message") or ""), help=str(item.get("help") or ""),
                      level=str(item.get("level") or ""))
            for item in items if isinstance(item, dict)]
