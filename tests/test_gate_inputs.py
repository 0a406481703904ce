"""Every gate input that is malformed exits 2, names the file, and never shows a traceback.

Each gate command is fed, in place of one of its inputs, a truncated copy of a real input
(cut off mid-document), a wrong-typed one (well-formed, but a value of the wrong type
where the command expects another) and a binary file. The gate must refuse all of them
(exit 2, not 0 and not 1), name the file (and where possible the JSON path or line) and
say what it expected; it must never pass.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.cli import run_pipeline
from tests.helpers.git import commit_all, init_repo
from tests.helpers.paths import ROOT

FIX = ROOT / "tests" / "fixtures"
# a PNG header, NUL bytes and invalid UTF-8: what a wrong artifact upload looks like
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


def cut(path: Path, marker: str) -> bytes:
    """The real file ``path`` cut off just after the first ``marker``."""
    text = path.read_text()
    return text[:text.index(marker) + len(marker)].encode()


# input -> (truncated, wrong-typed): the two well-formed-looking broken variants
SCAN_REPORTS = {
    "trivy": (cut(FIX / "scan" / "trivy.json", '"Vulnerabilities": ['),
              b'{"SchemaVersion": 2, "ArtifactName": "x", "Results": '
              b'[{"Target": "x", "Vulnerabilities": {"VulnerabilityID": "CVE-1"}}]}'),
    "grype": (cut(FIX / "scan" / "grype.json", '"matches": ['),
              b'{"matches": [{"vulnerability": "CVE-2023-1", "artifact": []}], '
              b'"descriptor": {"name": "grype"}}'),
    "osv-scanner": (cut(FIX / "scan" / "osv.json", '"packages": ['),
                    b'{"results": [{"source": {"path": "x", "type": "lockfile"}, '
                    b'"packages": {"package": "requests"}}]}'),
    "clair": (cut(FIX / "scan" / "clair.json", '"vulnerabilities": {'),
              b'{"manifest_hash": "sha256:00", "packages": [], "vulnerabilities": 7, '
              b'"package_vulnerabilities": {}}'),
}
KINDS = ("truncated", "wrong-typed", "binary")


def variant(kind: str, truncated: bytes, wrong: bytes) -> bytes:
    return {"truncated": truncated, "wrong-typed": wrong, "binary": BINARY}[kind]


def run_scan_report(tmp_path: Path, kind: str, fmt: str) -> tuple[object, Path]:
    bad = tmp_path / f"{fmt}.json"
    bad.write_bytes(variant(kind, *SCAN_REPORTS[fmt]))
    return run_pipeline("--report-dir", str(tmp_path / "r"), "scan", "--report",
                        f"{fmt}:{bad}"), bad


def run_scan_report_detected(tmp_path: Path, kind: str, fmt: str) -> tuple[object, Path]:
    bad = tmp_path / f"{fmt}-auto.json"
    bad.write_bytes(variant(kind, *SCAN_REPORTS[fmt]))
    return run_pipeline("--report-dir", str(tmp_path / "r"), "scan", "--report", str(bad)), bad


def run_scan_policy(tmp_path: Path, kind: str) -> tuple[object, Path]:
    bad = tmp_path / "policy.yaml"
    bad.write_bytes(variant(kind, cut(FIX / "scan" / "policy.yaml", "reason: the app"),
                            b"fail_on: [high]\nonly_fixable: sometimes\nignore: CVE-2023-1\n"))
    return run_pipeline("--report-dir", str(tmp_path / "r"), "scan", "--report",
                        str(FIX / "scan" / "trivy.json"), "--policy", str(bad)), bad


def gate_app(tmp_path: Path) -> tuple[Path, str]:
    """A git repository with gate.yaml (mark 4) and the v1 OpenAPI spec, committed."""
    app = tmp_path / "repo" / "svc"
    app.mkdir(parents=True)
    (app / "gate.yaml").write_text("marks: [4]\nopenapi: openapi.yaml\n")
    shutil.copy(FIX / "openapi" / "v1.yaml", app / "openapi.yaml")
    return app, init_repo(app.parent, "release 1.4.0")


def run_gate_config(tmp_path: Path, kind: str) -> tuple[object, Path]:
    app, deployed = gate_app(tmp_path)
    bad = app / "gate.yaml"
    shutil.copy(FIX / "gate" / "gate.yaml", tmp_path / "gate.yaml")
    bad.write_bytes(variant(kind, cut(tmp_path / "gate.yaml", "test_reports: [build/"),
                            b"marks: four\nopenapi: [openapi.yaml]\n"))
    commit_all(app, "broken gate config")
    return run_pipeline("--report-dir", str(tmp_path / "r"), "gate", "--app-dir", str(app),
                        "--deployed-rev", deployed), bad


def run_gate_openapi(tmp_path: Path, kind: str) -> tuple[object, Path]:
    app, deployed = gate_app(tmp_path)
    bad = app / "openapi.yaml"
    bad.write_bytes(variant(kind, cut(FIX / "openapi" / "v1.yaml", 'schema: {$ref: "#/comp'),
                            b"openapi: 3.0.3\ninfo: {title: hello, version: 1.5.0}\n"
                            b"paths: ['/users', '/users/{id}']\n"))
    commit_all(app, "broken spec")
    return run_pipeline("--report-dir", str(tmp_path / "r"), "gate", "--app-dir", str(app),
                        "--deployed-rev", deployed), bad


def run_perf_budget(tmp_path: Path, kind: str) -> tuple[object, Path]:
    bad = tmp_path / "budget.yaml"
    bad.write_bytes(variant(kind, cut(FIX / "perf" / "budget.yaml", "total-byte-weight: 500K"),
                            b"categories: [performance]\nmetrics:\n"
                            b"  largest-contentful-paint: {max: 2.5s}\n"))
    return run_pipeline("--report-dir", str(tmp_path / "r"), "perf", "--report",
                        str(FIX / "perf" / "lighthouse-hello.json"), "--budget", str(bad)), bad


def run_perf_report(tmp_path: Path, kind: str) -> tuple[object, Path]:
    bad = tmp_path / "lighthouse.json"
    bad.write_bytes(variant(kind, cut(FIX / "perf" / "lighthouse-hello.json", '"audits": {'),
                            b'{"lighthouseVersion": "12.8.2", "requestedUrl": "http://x/", '
                            b'"categories": [{"id": "performance", "score": 1}], '
                            b'"audits": {"largest-contentful-paint": "fast"}}'))
    return run_pipeline("--report-dir", str(tmp_path / "r"), "perf", "--report", str(bad),
                        "--budget", str(FIX / "perf" / "budget.yaml")), bad


def run_perf_coach(tmp_path: Path, kind: str) -> tuple[object, Path]:
    bad = tmp_path / "coach.json"
    bad.write_bytes(variant(kind, cut(FIX / "perf" / "coach.json", '"performance": {"score"'),
                            b'{"version": "8.0.2", "url": "http://x/", "advice": '
                            b'[{"score": 84}]}'))
    budget = tmp_path / "budget-coach.yaml"
    budget.write_text("categories:\n  coach: 80\n")
    return run_pipeline("--report-dir", str(tmp_path / "r"), "perf", "--report", str(bad),
                        "--budget", str(budget)), bad


def run_gate_audit_mapping(tmp_path: Path, kind: str) -> tuple[object, Path]:
    app, _ = gate_app(tmp_path)
    (app / "gate.yaml").write_text("marks: [4, 5]\nopenapi: openapi.yaml\n"
                                   "audit_mapping: audit-mapping.yaml\n")
    shutil.copy(FIX / "gate" / "audit-mapping.yaml", app)
    deployed = commit_all(app, "release 1.4.0 with an audit mapping")
    bad = app / "audit-mapping.yaml"
    bad.write_bytes(variant(kind, cut(FIX / "gate" / "audit-mapping.yaml",
                                      "createUser: {index: audit-users-create-v1, fie"),
                            b"listUsers: audit-users-list-v1\ncreateUser: [name, email]\n"))
    commit_all(app, "broken audit mapping")
    return run_pipeline("--report-dir", str(tmp_path / "r"), "gate", "--app-dir", str(app),
                        "--deployed-rev", deployed), bad


def run_migrate_lint(tmp_path: Path, kind: str) -> tuple[object, Path]:
    d = tmp_path / "migrations"
    shutil.copytree(FIX / "migrations" / "app", d)
    bad = d / "V4__broken.sql"
    bad.write_bytes(variant(kind, cut(d / "V1__create_users.sql", "("),
                            b"ALTER TABLE users ADD COLUMN age integer DEFAULT 'many' 7;\n"))
    return run_pipeline("--report-dir", str(tmp_path / "r"), "migrate", "--lint-only",
                        "--dir", str(d)), bad


CASES: dict[str, Callable[[Path, str], tuple[object, Path]]] = {
    **{f"scan --report {fmt}:": (lambda p, k, f=fmt: run_scan_report(p, k, f))
       for fmt in SCAN_REPORTS},
    **{f"scan --report ({fmt}, detected)": (lambda p, k, f=fmt: run_scan_report_detected(p, k, f))
       for fmt in SCAN_REPORTS},
    "scan --policy": run_scan_policy,
    "gate gate.yaml": run_gate_config,
    "gate openapi": run_gate_openapi,
    "perf --budget": run_perf_budget,
    "perf --report lighthouse": run_perf_report,
    "perf --report coach": run_perf_coach,
    "gate audit mapping": run_gate_audit_mapping,
    "migrate --lint-only": run_migrate_lint,
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(CASES))
def test_malformed_gate_input_exits_2_naming_the_file(tmp_path: Path, case: str,
                                                      kind: str) -> None:
    out, bad = CASES[case](tmp_path, kind)
    text = out.stdout + out.stderr
    assert out.returncode == 2, f"{case} {kind}: exit {out.returncode}\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
    assert bad.name in out.stderr, f"{case} {kind}: the file is not named\n{out.stderr[-2000:]}"
    if case == "migrate --lint-only" and kind != "binary":
        line = {"truncated": 2, "wrong-typed": 1}[kind]  # where the file ends / the error
        assert f"{bad.name}:{line}: SQL does not parse" in out.stderr, out.stderr[-2000:]
    # ...and says what it expected (or what the bytes are not: UTF-8 text, valid YAML/JSON)
    assert re.search(r"expected|not valid|not UTF-8|cannot parse", out.stderr), \
        out.stderr[-2000:]
