"""Fault and kill scenarios: run them, print the totals, regenerate docs/reliability.md.

    python benchmarks/faults.py            run tests/test_kill_*.py + tests/test_faults_*.py
    python benchmarks/faults.py --report reports/faults.jsonl   only summarise a finished run
    python benchmarks/faults.py --write-docs                     also rewrite the table

Every scenario (a step x a fault, or a SIGKILL right after one of the step's writes)
records one row (pipelinelib.testing.faults.Scenario) in $PIPELINELIB_FAULTS_REPORT. Totals:
scenarios run, survived (converged, nothing lost), data lost (goal 0), locks stuck (goal 0),
the longest time to a clear failure, and the wall time of the whole fault suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- scenarios:begin -->", "<!-- scenarios:end -->"


def run_suite(report: Path) -> tuple[int, float]:
    tests = sorted(str(p.relative_to(ROOT)) for pattern in ("test_kill_*.py", "test_faults_*.py")
                   for p in (ROOT / "tests").glob(pattern))
    env = {**os.environ, "PIPELINELIB_FAULTS_REPORT": str(report),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.monotonic()
    code = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *tests], cwd=ROOT, env=env, check=False).returncode
    return code, time.monotonic() - started


def load(report: Path) -> list[dict]:
    rows = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    latest: dict[tuple[str, str, str], dict] = {}
    for row in rows:  # a scenario run twice (a retried trial) counts once: its last run
        latest[(row["step"], row["fault"], row["system"])] = row
    return sorted(latest.values(), key=lambda r: (r["step"], r["system"], r["fault"]))


def totals(rows: list[dict]) -> dict[str, float]:
    clear_failures = [r["seconds"] for r in rows if r["outcome"].startswith("exit 3")]
    return {"scenarios run": len(rows),
            "survived": sum(1 for r in rows if r["passed"] and not r["lost"]
                            and not r["stuck_locks"]),
            "data lost": sum(r["lost"] for r in rows),
            "locks stuck": sum(r["stuck_locks"] for r in rows),
            "longest time to a clear failure (s)": max(clear_failures, default=0.0)}


def table(rows: list[dict]) -> str:
    lines = ["| step | system | fault | outcome | retries | time (s) | re-run | ok |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["step"], r["system"], r["fault"], r["outcome"], str(r["retries"]),
                 f"{r['seconds']:.1f}", r["rerun"], "yes" if r["passed"] else "**NO**"]
        lines.append("| " + " | ".join(c.replace("|", "/").replace("\n", " ") for c in cells)
                     + " |")
    return "\n".join(lines)


def write_docs(rows: list[dict], summary: dict[str, float], wall: float | None) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Reliability\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    figures = "\n".join(f"- {k}: {v:g}" for k, v in summary.items())
    if wall is not None:
        figures += f"\n- fault suite wall time (s): {wall:.0f}"
    DOC.write_text(f"{head}{BEGIN}\n{figures}\n\n{table(rows)}\n{END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="summarise this JSONL instead of running")
    parser.add_argument("--write-docs", action="store_true", help="rewrite docs/reliability.md")
    parser.add_argument("--out", type=Path, help="record the run's rows here (default: a temp "
                        "file)")
    args = parser.parse_args()
    wall = None
    code = 0
    if args.report:
        report = args.report
    else:
        report = args.out or Path(tempfile.mkdtemp(prefix="faults-")) / "faults.jsonl"
        report.unlink(missing_ok=True)
        code, wall = run_suite(report)
    rows = load(report)
    summary = totals(rows)
    for key, value in summary.items():
        print(f"{key:40s} {value:g}")
    if wall is not None:
        print(f"{'fault suite wall time (s)':40s} {wall:.0f}")
    if args.write_docs:
        write_docs(rows, summary, wall)
        print(f"wrote {DOC.relative_to(ROOT)}")
    failed = summary["scenarios run"] - summary["survived"]
    return 1 if code or failed or summary["data lost"] or summary["locks stuck"] else 0


if __name__ == "__main__":
    sys.exit(main())
