"""summary.json and summary.md: the run's result in one place, for machines and people."""

from __future__ import annotations

from typing import Any

from pipelinelib.result import Status, StepResult

_MARK = {Status.CHANGED: "✓ changed", Status.UNCHANGED: "= unchanged", Status.FAILED: "✗ failed"}


def summary_data(
    job: str, results: list[StepResult], exit_code: int, meta: dict[str, Any]
) -> dict[str, Any]:
    """The machine-readable summary of one run."""
    return {
        "job": job,
        "exit_code": exit_code,
        "result": "success" if exit_code == 0 else "failure",
        **meta,
        "steps": [r.to_dict() for r in results],
    }


def summary_markdown(data: dict[str, Any]) -> str:
    """The human summary: a header line, a table of steps, failures with evidence."""
    icon = "✅" if data["exit_code"] == 0 else "❌"
    lines = [f"# {icon} {data['job']}: {data['result']} (exit {data['exit_code']})", ""]
    for key in ("app", "environment", "revision", "user", "build_url"):
        if data.get(key):
            lines.append(f"- **{key}**: {data[key]}")
    lines += ["", "| step | result | time | summary |", "|---|---|---|---|"]
    for step in data["steps"]:
        status = Status(step["status"])
        summary = str(step["summary"]).replace("|", "\\|").replace("\n", " ")
        dry = " (dry run)" if step["dry_run"] else ""
        lines.append(
            f"| {step['step']} | {_MARK[status]}{dry} | {step['duration_s']:.2f}s | {summary} |"
        )
    for step in data["steps"]:
        if step["status"] == Status.FAILED.value:
            lines += ["", f"## ✗ {step['step']}", "", step.get("error") or ""]
            if step["evidence"]:
                lines += ["", "```", *step["evidence"], "```"]
        elif (step.get("outputs") or {}).get("checklist"):  # a gate that passed: its checks
            lines += ["", f"## ✓ {step['step']}", "", "```", *step["outputs"]["checklist"],
                      "```"]
    return "\n".join(lines) + "\n"
