"""Write every report of a run into ``--report-dir``, secrets redacted."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from pipelinelib.report.junit import junit_xml
from pipelinelib.report.summary import summary_data, summary_markdown
from pipelinelib.result import StepResult
from pipelinelib.secrets import Secrets


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_reports(
    report_dir: str | os.PathLike[str],
    job: str,
    results: list[StepResult],
    exit_code: int,
    started: dt.datetime,
    secrets: Secrets,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``junit.xml``, ``summary.json`` and ``summary.md``; return the directory."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean = [StepResult(**{**secrets.redact(r.to_dict()), "status": r.status}) for r in results]
    data = summary_data(job, clean, exit_code, secrets.redact(meta or {}))
    _write_atomic(out / "junit.xml", junit_xml(job, clean, started))
    _write_atomic(out / "summary.json", json.dumps(data, indent=2, default=str).encode())
    _write_atomic(out / "summary.md", summary_markdown(data).encode())
    return out
