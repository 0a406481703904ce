"""Scanner report parsers, the scan policy and `pipeline scan` over report files."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipelinelib.errors import BadInput, GateFailed
from pipelinelib.scan.model import Finding, Severity
from pipelinelib.scan.parsers import detect_format, load_json, parse_report
from pipelinelib.scan.policy import evaluate, load_policy
from tests.helpers.cli import run_pipeline
from tests.helpers.paths import FIXTURES

FIX = FIXTURES / "scan"
TODAY = dt.date(2026, 11, 23)


def by_id(findings):
    return {f.id: f for f in findings}


def test_trivy_report_maps_every_vulnerability_and_vendor_ids_become_advisories():
    found = by_id(parse_report(FIX / "trivy.json"))
    assert set(found) == {"CVE-2023-4863", "CVE-2011-3374", "CVE-2023-32681"}
    webp = found["CVE-2023-4863"]
    assert (webp.package, webp.installed, webp.fixed) == ("libwebp7", "1.2.4-0.2",
                                                         "1.2.4-0.2+deb12u1")
    assert webp.severity is Severity.HIGH and webp.advisories == ("DSA-5497-1",)
    assert webp.aliases == ()  # a vendor advisory may list several CVEs: not an alias
    assert webp.source == "trivy" and webp.ecosystem == "debian"
    assert found["CVE-2011-3374"].fixed == "" and not found["CVE-2011-3374"].fixable


def test_trivy_results_without_vulnerabilities_and_without_results_mean_nothing_found():
    assert parse_report(FIX / "trivy-clean.json") == []
    assert parse_report(FIX / "trivy-no-results.json") == []


def test_grype_report_uses_related_vulnerabilities_as_aliases_and_fix_state():
    found = by_id(parse_report(FIX / "grype.json"))
    req = found["GHSA-j8r2-6x86-q33q"]
    assert req.aliases == ("CVE-2023-32681",) and req.fixed == "2.31.0"
    assert req.severity is Severity.MEDIUM and req.source == "grype"
    assert found["CVE-2023-4863"].severity is Severity.CRITICAL
    tar = found["CVE-2005-2541"]
    assert tar.fixed == "" and tar.severity is Severity.NEGLIGIBLE
    assert parse_report(FIX / "grype-empty.json") == []


def test_clair_vulnerability_report_joins_packages_and_vulnerabilities():
    found = by_id(parse_report(FIX / "clair.json"))
    assert set(found) == {"CVE-2023-4863", "CVE-2005-2541"}
    assert found["CVE-2023-4863"].package == "libwebp7"
    assert found["CVE-2023-4863"].fixed == "1.2.4-0.2+deb12u1"
    assert found["CVE-2023-4863"].severity is Severity.HIGH
    assert parse_report(FIX / "clair-empty.json") == []
    assert parse_report(FIX / "clair-null.json") == []


def test_osv_scanner_empty_results_mean_nothing_found():
    assert parse_report(FIX / "osv-empty.json") == []


@pytest.mark.parametrize("name", ["trivy.json", "grype.json", "clair.json", "osv-empty.json",
                                  "grype-empty.json", "trivy-no-results.json"])
def test_the_format_is_detected_from_the_document(name):
    expected = name.split("-")[0].split(".")[0].replace("osv", "osv-scanner")
    assert detect_format(load_json(FIX / name)) == expected


def test_truncated_json_is_bad_input_with_the_line():
    with pytest.raises(BadInput) as err:
        parse_report(FIX / "trivy-truncated.json")
    assert "trivy-truncated.json:" in str(err.value) and "not valid JSON" in str(err.value)
    assert err.value.exit_code == 2


def test_an_unknown_severity_is_bad_input_naming_the_field():
    with pytest.raises(BadInput) as err:
        parse_report(FIX / "trivy-unknown-severity.json")
    assert "Results[0].Vulnerabilities[1].Severity" in str(err.value)
    assert "'SEVERE'" in str(err.value)


def test_a_wrong_shape_is_bad_input_naming_the_path(tmp_path):
    bad = tmp_path / "grype.json"
    bad.write_text(json.dumps({"matches": [{"vulnerability": {"id": "CVE-1"}}],
                               "descriptor": {"name": "grype"}}))
    with pytest.raises(BadInput) as err:
        parse_report(bad)
    assert "matches[0].artifact" in str(err.value)
    unknown = tmp_path / "other.json"
    unknown.write_text('{"issues": []}')
    with pytest.raises(BadInput, match="cannot tell which scanner"):
        parse_report(unknown)


def test_policy_fails_at_or_above_the_threshold_and_lists_why():
    findings = parse_report(FIX / "trivy.json")
    verdict = evaluate(findings, load_policy(None, fail_on="medium"), TODAY)
    assert not verdict.passed
    assert {f.id for f in verdict.blocking} == {"CVE-2023-4863", "CVE-2023-32681"}
    assert [f.id for f in verdict.tolerated] == ["CVE-2011-3374"]


def test_a_finding_of_unknown_severity_is_ranked_by_the_policy_and_says_so():
    webp = Finding(id="DSA-5497-1", package="libwebp", installed="1.2.4-0.2",
                   fixed="1.2.4-0.2+deb12u1", severity=Severity.UNKNOWN, source="osv-scanner")
    strict = load_policy(None, fail_on="high")
    verdict = evaluate([webp], strict, TODAY)
    assert verdict.blocking == [webp]
    assert verdict.evidence(strict) == [
        "UNKNOWN DSA-5497-1 in libwebp 1.2.4-0.2 (fixed in 1.2.4-0.2+deb12u1); severity unknown,"
        " ranked HIGH (policy unknown_severity) >= HIGH"]
    lenient = load_policy(None, fail_on="high", unknown_severity="low")
    assert evaluate([webp], lenient, TODAY).tolerated == [webp]


def test_only_fixable_tolerates_findings_without_a_fix():
    findings = parse_report(FIX / "grype.json")
    everything = evaluate(findings, load_policy(None, fail_on="negligible"), TODAY)
    fixable = evaluate(findings, load_policy(None, fail_on="negligible", only_fixable=True), TODAY)
    assert "CVE-2005-2541" in {f.id for f in everything.blocking}
    assert "CVE-2005-2541" not in {f.id for f in fixable.blocking}


def test_an_active_ignore_matches_by_alias_with_its_reason():
    findings = parse_report(FIX / "grype.json")  # GHSA id, CVE as alias
    policy = load_policy(FIX / "policy.yaml", fail_on="medium")
    verdict = evaluate(findings, policy, TODAY)
    ignored = {f.id: i for f, i in verdict.ignored}
    assert "the app never sends Proxy-Authorization" in ignored["GHSA-j8r2-6x86-q33q"].reason
    assert [f.id for f in verdict.blocking] == ["CVE-2023-4863"]


def test_an_expired_ignore_fails_the_gate_loudly_even_below_the_threshold():
    findings = parse_report(FIX / "grype.json")
    policy = load_policy(FIX / "policy-expired.yaml")
    verdict = evaluate(findings, policy, TODAY)
    assert verdict.expired and not verdict.passed
    text = "\n".join(verdict.evidence(policy))
    assert "EXPIRED IGNORE GHSA-j8r2-6x86-q33q expired on 2024-06-30" in text
    assert "policy-expired.yaml:3" in text and "accepted for the 2024 release" in text
    fresh = evaluate(findings, policy, dt.date(2024, 6, 30))
    assert not fresh.expired, "an ignore is valid through its expiry day"


def test_policy_with_an_unknown_key_or_missing_reason_is_bad_input_with_its_line():
    with pytest.raises(BadInput) as err:
        load_policy(FIX / "policy-unknown-key.yaml")
    assert str(err.value).startswith(f"{FIX / 'policy-unknown-key.yaml'}:3: unknown key")
    with pytest.raises(BadInput) as err:
        load_policy(FIX / "policy-no-reason.yaml")
    assert ":3 ignore[0].reason: reason is required" in str(err.value)
    with pytest.raises(BadInput, match="unknown severity"):
        load_policy(None, fail_on="severe")


def test_scan_gate_step_raises_gate_failed_with_the_blocking_findings_as_evidence():
    from pipelinelib.context import Context
    from pipelinelib.steps.scan import scan_gate

    findings = parse_report(FIX / "trivy.json")
    with pytest.raises(GateFailed) as err:
        scan_gate(Context(app="hello"), findings, load_policy(None), today=TODAY)
    assert "1 finding(s) at or above HIGH" in err.value.message
    assert any("CVE-2023-4863" in line and "fixed in 1.2.4-0.2+deb12u1" in line
               for line in err.value.evidence)
    passed = scan_gate(Context(app="hello"), findings, load_policy(None, fail_on="critical"),
                       today=TODAY)
    assert passed.outputs["blocking"] == 0 and passed.outputs["total"] == 3


def test_pipeline_scan_writes_the_failure_into_junit_and_summary(tmp_path):
    out = run_pipeline("--report-dir", str(tmp_path), "scan", "--report",
                       f"trivy:{FIX / 'trivy.json'}", "--report", str(FIX / "grype.json"),
                       "--fail-on", "high")
    assert out.returncode == 1, out.stderr[-2000:]
    junit = (tmp_path / "junit.xml").read_text()
    assert "CVE-2023-4863" in junit and "<failure" in junit
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"][-1]["step"] == "scan" and summary["steps"][-1]["status"] == "failed"
    assert "✗ no finding at or above HIGH (1 of" in out.stdout, out.stdout
    assert "    CRITICAL CVE-2023-4863" in out.stdout and "✓ no expired ignore (0)" in out.stdout


def test_a_passing_scan_prints_its_checklist_and_puts_it_in_the_summary(tmp_path):
    out = run_pipeline("--report-dir", str(tmp_path), "scan", "--report",
                       str(FIX / "trivy.json"), "--policy", str(FIX / "policy.yaml"),
                       "--fail-on", "critical")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "✓ no finding at or above CRITICAL with a fix (0 of 3)" in out.stdout, out.stdout
    assert "✓ 1 ignored, each with a reason and an expiry" in out.stdout
    markdown = (tmp_path / "summary.md").read_text()
    assert "## ✓ scan" in markdown and "CVE-2023-32681 in requests until 2099-12-31" in markdown


def test_pipeline_scan_on_bad_input_exits_2_and_passes_nothing(tmp_path):
    out = run_pipeline("--report-dir", str(tmp_path), "scan", "--report",
                       str(FIX / "trivy-truncated.json"))
    assert out.returncode == 2 and "not valid JSON" in out.stderr
    out = run_pipeline("scan", "--report", str(FIX / "trivy-clean.json"), "--policy",
                       str(FIX / "policy-unknown-key.yaml"))
    assert out.returncode == 2 and "unknown key 'ignore_unfixed'" in out.stderr
    out = run_pipeline("scan", "--report", str(FIX / "trivy-clean.json"))
    assert out.returncode == 0, out.stderr[-2000:]


def test_attestations_round_trip_on_the_auth_registry_and_rewrite_only_on_change(
        registry_env, monkeypatch):
    import uuid

    from pipelinelib.adapters.registry import RegistryClient
    from pipelinelib.attest import attestation_tag, read_attestation, write_attestation
    from pipelinelib.context import Context

    host = registry_env["PIPELINELIB_AUTH_REGISTRY"]
    monkeypatch.setenv("PIPELINE_REGISTRY_USER", registry_env["PIPELINELIB_AUTH_REGISTRY_USER"])
    monkeypatch.setenv("PIPELINE_REGISTRY_PASSWORD",
                       registry_env["PIPELINELIB_AUTH_REGISTRY_PASSWORD"])
    repo = f"{host}/pipelinelib-attest/a{uuid.uuid4().hex[:10]}"
    digest = "sha256:" + uuid.uuid4().hex * 2
    ctx = Context(app="hello")
    assert read_attestation(ctx, repo, digest, "scan") is None
    first = write_attestation(ctx, repo, digest, "scan", {"passed": False, "blocking": ["X"]})
    assert first["changed"] and first["tag"] == attestation_tag(digest, "scan")
    assert first["tag"] == f"sha256-{digest[7:]}.scan"
    same = write_attestation(ctx, repo, digest, "scan", {"passed": False, "blocking": ["X"]})
    assert same["changed"] is False and same["manifest_digest"] == first["manifest_digest"]
    write_attestation(ctx, repo, digest, "scan", {"passed": True})
    assert read_attestation(ctx, repo, digest, "scan") == {"passed": True}
    assert read_attestation(ctx, repo, digest, "gate") is None
    client = RegistryClient(host, registry_env["PIPELINELIB_AUTH_REGISTRY_USER"],
                            registry_env["PIPELINELIB_AUTH_REGISTRY_PASSWORD"])
    manifest, media_type, _ = client.manifest(repo.split("/", 1)[1], first["tag"])
    assert media_type.startswith("application/vnd.oci.image.manifest.v1+json")
    assert manifest["annotations"]["dev.pipelinelib.subject"] == digest
    with pytest.raises(BadInput, match="not an image digest"):
        write_attestation(ctx, repo, "sha256:abc", "scan", {})


def test_a_dry_run_records_nothing_in_the_registry(registry_env, tmp_path):
    import uuid

    from pipelinelib.attest import read_attestation
    from pipelinelib.context import Context

    repo = f"{registry_env['PIPELINELIB_REGISTRY']}/pipelinelib-attest/d{uuid.uuid4().hex[:10]}"
    digest = "sha256:" + uuid.uuid4().hex * 2
    out = run_pipeline("--report-dir", str(tmp_path), "--dry-run", "scan", "--report",
                       str(FIX / "trivy-clean.json"), "--image", repo, "--digest", digest)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    gate = summary["steps"][-1]
    assert gate["dry_run"] and gate["actions"][0].startswith("record scan result as ")
    assert read_attestation(Context(), repo, digest, "scan") is None
