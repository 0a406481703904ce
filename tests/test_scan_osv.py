"""The real OSV-Scanner, built from the Go module proxy, scanning a testbed image offline.

The image carries a Debian dpkg status with libwebp 1.2.4-0.2 (DSA-5497-1, CVE-2023-4863)
and Python dist-info for requests 2.25.1 (GHSA-j8r2-6x86-q33q) and urllib3 1.26.5
(GHSA-v845-jxx5-vc9f); the local database holds exactly those real advisories.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from pipelinelib.adapters.docker_engine import DockerEngine
from pipelinelib.adapters.osv_scanner import assemble_local_db
from pipelinelib.adapters.registry import RegistryClient
from pipelinelib.attest import read_attestation
from pipelinelib.context import Context
from tests.helpers.cli import run_pipeline
from tests.helpers.paths import ROOT
from tests.helpers.tools import tool_exports

FIX = ROOT / "tests" / "fixtures" / "scan"


@pytest.fixture(scope="session")
def osv_bin() -> str:
    """The pinned osv-scanner (testbed/tools/osv-scanner; ~5 min on a cold cache)."""
    return tool_exports("osv-scanner")["PIPELINELIB_OSV_SCANNER"]


@pytest.fixture(scope="session")
def local_db(tmp_path_factory) -> Path:
    return assemble_local_db(FIX / "osv-db", tmp_path_factory.mktemp("osv-db"))


@pytest.fixture(scope="session")
def vulnerable_image(registry_env) -> tuple[str, str, str]:
    """(local image, registry repository, digest) of the vulnerable test image, pushed."""
    engine = DockerEngine.from_env(registry_env["DOCKER_HOST"])
    registry = registry_env["PIPELINELIB_REGISTRY"]
    repo = f"{registry}/pipelinelib-scan/v{uuid.uuid4().hex[:10]}"
    engine.build(str(FIX / "image"), "Dockerfile", tag=f"{repo}:t1",
                 buildargs={"BASE": registry_env["PIPELINELIB_BASE_IMAGE"]})
    engine.push(repo, "t1")
    digest = RegistryClient(registry).manifest_digest(repo.split("/", 1)[1], "t1")
    assert digest
    return f"{repo}:t1", repo, digest


def scan(tmp_path, env, *args):
    report = tmp_path / "report"
    out = run_pipeline("--report-dir", str(report), "scan", *args,
                       env={**env, "PIPELINELIB_OSV_SCANNER": env["osv"]})
    summary = json.loads((report / "summary.json").read_text())
    return out, summary, report


def test_real_osv_scanner_finds_the_debian_and_python_advisories_offline(
    osv_bin, local_db, vulnerable_image, registry_env, tmp_path
):
    image, repo, digest = vulnerable_image
    env = {**registry_env, "osv": osv_bin}
    out, _, report = scan(tmp_path, env, "--osv-image", image, "--local-db", str(local_db),
                                "--image", repo, "--digest", digest)
    assert out.returncode == 1, out.stderr[-3000:]
    raw = json.loads((report / "osv-scanner.json").read_text())
    ids = {v["id"] for r in raw["results"] for p in r["packages"] for v in p["vulnerabilities"]}
    assert ids == {"DSA-5497-1", "GHSA-j8r2-6x86-q33q", "GHSA-v845-jxx5-vc9f"}
    junit = (report / "junit.xml").read_text()
    # DSA advisories carry no severity: unknown ranks as HIGH by default, so libwebp blocks
    assert "UNKNOWN DSA-5497-1 [CVE-2023-4863] in libwebp 1.2.4-0.2" in junit
    assert "fixed in 1.2.4-0.2+deb12u1" in junit
    recorded = read_attestation(Context(), repo, digest, "scan")
    assert recorded is not None and recorded["passed"] is False
    assert [f["id"] for f in recorded["blocking"]] == ["DSA-5497-1"]
    assert recorded["digest"] == digest and recorded["scanners"] == ["osv-scanner"]


def test_an_ignored_advisory_passes_and_the_verdict_replaces_the_attestation_once(
    osv_bin, local_db, vulnerable_image, registry_env, tmp_path
):
    image, repo, digest = vulnerable_image
    policy = tmp_path / "policy.yaml"
    policy.write_text("fail_on: high\nignore:\n  - id: CVE-2023-4863\n"
                      "    reason: no WebP decoding in this service\n    expires: 2099-01-01\n")
    env = {**registry_env, "osv": osv_bin}
    args = ("--osv-image", image, "--local-db", str(local_db), "--image", repo,
            "--digest", digest, "--policy", str(policy))
    out, summary, _ = scan(tmp_path / "a", env, *args)
    assert out.returncode == 0, out.stderr[-3000:]
    gate = summary["steps"][-1]
    assert gate["status"] == "changed" and gate["outputs"]["ignored"] == 1
    recorded = read_attestation(Context(), repo, digest, "scan")
    assert recorded["passed"] is True
    assert recorded["ignored"][0]["reason"] == "no WebP decoding in this service"
    # --local-db may also name the advisories themselves (zipped into a scratch database)
    raw_db = [str(FIX / "osv-db") if a == str(local_db) else a for a in args]
    again, summary, _ = scan(tmp_path / "b", env, *raw_db)
    assert again.returncode == 0 and summary["steps"][-1]["status"] == "unchanged"


def test_real_osv_scanner_over_a_lockfile_offline_parses_and_dedupes_with_grype(
        osv_bin, local_db, tmp_path):
    from pipelinelib.adapters.osv_scanner import scan_lockfile
    from pipelinelib.scan.model import dedupe
    from pipelinelib.scan.parsers import parse_doc, parse_report

    lockfile = tmp_path / "requirements.txt"
    lockfile.write_text("requests==2.25.1\nurllib3==1.26.5\nidna==2.10\n")
    report = scan_lockfile(osv_bin, lockfile, local_db=local_db)
    assert report["results"][0]["source"]["type"] == "lockfile"
    found = {f.package: f for f in parse_doc(report, "osv-scanner", str(lockfile))}
    assert set(found) == {"requests", "urllib3"}
    assert found["requests"].id == "GHSA-j8r2-6x86-q33q" and found["requests"].fixed == "2.31.0"
    assert "CVE-2023-32681" in found["requests"].aliases
    assert found["urllib3"].fixed == "1.26.17"  # the lowest fix above 1.26.5 of two branches
    # Grype's records of the same vulnerability (a CVE record without the fix, the GHSA
    # record with it) merge into the OSV finding: one finding, the fix kept
    grype = [f for f in parse_report(FIX / "grype-ghsa-and-cve.json")
             if f.package == "requests"]
    (merged,) = [f for f in dedupe([*found.values(), *grype]) if f.package == "requests"]
    assert merged.fixed == "2.31.0" and len(merged.merged) == 3


def test_scan_lockfile_option_runs_the_real_osv_scanner_into_the_same_policy(
        osv_bin, local_db, tmp_path):
    """`pipeline scan --lockfile A --lockfile B --report grype.json`: OSV-Scanner's findings
    of both lockfiles and Grype's merge into one policy verdict and one checklist."""
    first, second = tmp_path / "a" / "requirements.txt", tmp_path / "b" / "requirements.txt"
    for path, text in ((first, "requests==2.25.1\nidna==2.10\n"), (second, "urllib3==1.26.5\n")):
        path.parent.mkdir()
        path.write_text(text)
    env = {"osv": osv_bin}
    out, summary, report = scan(tmp_path / "r", env, "--lockfile", str(first), "--lockfile",
                                str(second), "--local-db", str(local_db),
                                "--report", str(FIX / "grype-ghsa-and-cve.json"),
                                "--fail-on", "medium")
    assert out.returncode == 1, out.stderr[-3000:]
    raws = [json.loads((report / f"osv-scanner-lockfile-{n}.json").read_text()) for n in (1, 2)]
    assert [{v["id"] for r in raw["results"] for p in r["packages"]
             for v in p["vulnerabilities"]} for raw in raws] == [
        {"GHSA-j8r2-6x86-q33q"}, {"GHSA-v845-jxx5-vc9f"}]
    assert [s["step"] for s in summary["steps"]] == ["osv-scan-lockfile", "scan"]
    assert summary["steps"][0]["outputs"]["findings"] == 2
    checklist = (report / "summary.md").read_text()
    # Grype's CVE record (no fix) and OSV's GHSA record (the fix) are one finding
    assert checklist.count(" in requests 2.25.1 ") == 1
    assert "CVE-2023-32681 [GHSA-j8r2-6x86-q33q, PYSEC-2023-74] in requests 2.25.1 " \
           "(fixed in 2.31.0)" in checklist
    assert "MEDIUM GHSA-v845-jxx5-vc9f [CVE-2023-43804] in urllib3 1.26.5 (fixed in 1.26.17)" \
           in checklist
    assert "idna" not in checklist
    # the lockfiles alone, under a policy that accepts both advisories: the gate passes
    policy = tmp_path / "policy.yaml"
    policy.write_text("fail_on: medium\nignore:\n"
                      "  - id: CVE-2023-32681\n    reason: no proxies\n    expires: 2099-01-01\n"
                      "  - id: CVE-2023-43804\n    reason: no redirects\n    expires: 2099-01-01\n")
    out, summary, report = scan(tmp_path / "p", env, "--lockfile", str(first), "--lockfile",
                                str(second), "--local-db", str(local_db), "--policy",
                                str(policy))
    assert out.returncode == 0, out.stderr[-3000:]
    assert summary["steps"][-1]["outputs"]["ignored"] == 2


def test_scan_a_missing_lockfile_is_bad_input_before_any_scan(osv_bin, local_db, tmp_path):
    there = tmp_path / "requirements.txt"
    there.write_text("requests==2.25.1\n")
    missing = tmp_path / "nope" / "poetry.lock"
    out, summary, report = scan(tmp_path / "r", {"osv": osv_bin}, "--lockfile", str(there),
                                "--lockfile", str(missing), "--local-db", str(local_db))
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and str(missing) in out.stderr
    assert not list(report.glob("osv-scanner-lockfile-*.json"))
    assert summary["exit_code"] == 2 and summary["steps"] == []
