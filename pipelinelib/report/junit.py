"""JUnit XML: one testcase per step run, as Jenkins' ``junit`` step and GoCD read it."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from pipelinelib.result import Status, StepResult


def junit_xml(suite: str, results: list[StepResult], started: dt.datetime) -> bytes:
    """Render ``results`` as a JUnit XML document (``testsuites`` > ``testsuite``)."""
    failures = sum(r.status is Status.FAILED for r in results)
    total_time = f"{sum(r.duration_s for r in results):.3f}"
    root = ET.Element(
        "testsuites",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        time=total_time,
    )
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=total_time,
        timestamp=started.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    for result in results:
        case = ET.SubElement(
            ts,
            "testcase",
            classname=f"pipelinelib.{suite}",
            name=result.step,
            time=f"{result.duration_s:.3f}",
        )
        if result.status is Status.FAILED:
            failure = ET.SubElement(
                case, "failure", message=result.error or result.summary, type="StepFailed"
            )
            failure.text = "\n".join([result.error or "", *result.evidence]).strip()
        lines = [
            f"status: {result.status.value}{' (dry run)' if result.dry_run else ''}",
            f"summary: {result.summary}",
            *(f"- {a}" for a in result.actions),
        ]
        lines += [f"{k}: {v}" for k, v in result.outputs.items()]
        ET.SubElement(case, "system-out").text = "\n".join(lines)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
