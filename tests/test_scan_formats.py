"""The scan parsers on what the real scanners write: their own golden/snapshot files and
reports rebuilt from their schemas (each fixture names its source in ``_source``; see
tests/fixtures/scan/README.md). Each test here failed before the parsers were fixed."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipelinelib.errors import BadInput
from pipelinelib.scan.model import MISCONFIGURATION, SECRET, Severity, dedupe
from pipelinelib.scan.parsers import parse_doc, parse_report
from pipelinelib.scan.policy import evaluate, load_policy
from tests.helpers.cli import run_pipeline
from tests.helpers.paths import FIXTURES

FIX = FIXTURES / "scan"
TODAY = dt.date(2026, 11, 23)


def by_id(findings):
    return {f.id: f for f in findings}


def write_policy(tmp_path, text):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


# -- OSV-Scanner: "aliases": null ---------------------------------------------------------------
def test_osv_scanner_groups_with_null_aliases_are_read_not_a_type_error():
    (finding,) = parse_report(FIX / "osv-aliases-null.json")
    assert finding.id == "GO-2021-0053" and finding.fixed == "1.3.2"
    assert set(finding.aliases) == {"CVE-2021-3121", "GHSA-c3h9-896r-86jm"}
    assert finding.severity is Severity.UNKNOWN  # no max_severity, no database severity


def test_pipeline_scan_on_null_aliases_gives_a_verdict_not_a_traceback(tmp_path):
    out = run_pipeline("--report-dir", str(tmp_path), "scan", "--report",
                       str(FIX / "osv-aliases-null.json"))
    assert out.returncode == 1, out.stderr[-2000:]  # UNKNOWN ranked HIGH by default
    assert "Traceback" not in out.stderr and "GO-2021-0053" in out.stdout


def test_an_empty_max_severity_falls_back_to_the_database_severity():
    doc = json.loads((FIX / "osv-aliases-null.json").read_text())
    pkg = doc["results"][0]["packages"][0]
    pkg["groups"][0]["max_severity"] = ""
    pkg["vulnerabilities"][0]["database_specific"]["severity"] = "HIGH"
    (finding,) = parse_doc(doc, "osv-scanner")
    assert finding.severity is Severity.HIGH
    pkg["groups"][0]["max_severity"] = "7.5"
    assert parse_doc(doc, "osv-scanner")[0].severity is Severity.HIGH
    pkg["groups"][0]["max_severity"] = "9.1"
    assert parse_doc(doc, "osv-scanner")[0].severity is Severity.CRITICAL


# -- Clair v4: normalized Unknown, CVSS in the enrichments --------------------------------------
def test_clair_ranks_unknown_severity_by_the_cvss_enrichment_and_says_so():
    found = by_id(parse_report(FIX / "clair-enriched.json"))
    curl = found["CVE-2023-38545"]
    assert curl.severity is Severity.CRITICAL and curl.package == "libcurl4"
    assert "clair.cvss enrichment" in curl.severity_source and "9.8" in curl.severity_source
    assert found["CVE-2023-4863"].severity is Severity.HIGH
    assert found["CVE-2005-2541"].severity is Severity.UNKNOWN  # no enrichment: stays unknown


def test_fail_on_critical_fails_a_clair_report_holding_a_critical_vulnerability(tmp_path):
    out = run_pipeline("--report-dir", str(tmp_path), "scan", "--report",
                       str(FIX / "clair-enriched.json"), "--fail-on", "critical")
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert "CRITICAL CVE-2023-38545 in libcurl4" in out.stdout
    assert "severity from clair.cvss enrichment" in out.stdout


def test_clair_fixtures_use_claircores_field_names():
    for name in ("clair.json", "clair-enriched.json"):
        doc = json.loads((FIX / name).read_text())
        for vuln in doc["vulnerabilities"].values():
            assert not {"dist", "repo"} & set(vuln), name


# -- de-duplication -----------------------------------------------------------------------------
def test_two_cves_sharing_one_vendor_advisory_stay_two_findings():
    found = dedupe(parse_report(FIX / "trivy-centos-7.json"))
    openssl = sorted(f.id for f in found if f.package == "openssl-libs")
    assert openssl == ["CVE-2018-0734", "CVE-2019-1559"]
    assert all(f.advisories == ("RHSA-2019:2304",) and not f.aliases
               for f in found if f.package == "openssl-libs")


def test_an_ignore_for_one_cve_does_not_ignore_its_sibling_in_the_same_advisory(tmp_path):
    policy = load_policy(write_policy(tmp_path, """\
fail_on: low
ignore:
  - id: CVE-2019-1559
    reason: openssl is not used for TLS in this image
    expires: 2099-12-31
  - id: RHSA-2019:2304
    reason: an advisory names several vulnerabilities, so it ignores none
    expires: 2099-12-31
"""))
    verdict = evaluate(dedupe(parse_report(FIX / "trivy-centos-7.json")), policy, TODAY)
    assert [f.id for f, _ in verdict.ignored] == ["CVE-2019-1559"]
    assert {f.id for f in verdict.blocking} == {"CVE-2018-0734", "CVE-2019-18276"}


def test_a_cve_record_and_its_ghsa_record_merge_keeping_the_fix():
    found = dedupe(parse_report(FIX / "grype-ghsa-and-cve.json"))
    (req,) = [f for f in found if f.package == "requests"]
    assert req.fixed == "2.31.0" and req.fix_state == "fixed"
    assert set(req.ids) == {"CVE-2023-32681", "GHSA-j8r2-6x86-q33q"}
    assert set(req.merged) == {"grype:CVE-2023-32681", "grype:GHSA-j8r2-6x86-q33q"}
    only_fixable = load_policy(None, fail_on="medium", only_fixable=True)
    assert [f.id for f in evaluate(found, only_fixable, TODAY).blocking] == [req.id]


def test_records_from_two_scanners_merge_with_the_highest_severity_and_every_id():
    trivy = [f for f in parse_report(FIX / "trivy.json") if f.package == "requests"]
    osv = [f for f in parse_report(FIX / "osv.json") if f.package == "requests"]
    (merged,) = dedupe([*trivy, *osv])
    assert {"CVE-2023-32681", "GHSA-j8r2-6x86-q33q", "PYSEC-2023-74"} <= set(merged.ids)
    assert merged.severity == max(f.severity for f in [*trivy, *osv])
    assert merged.source == "trivy+osv-scanner" or merged.source == "osv-scanner+trivy"


# -- fix states ---------------------------------------------------------------------------------
def test_grype_fix_states_and_the_lowest_fix_above_the_installed_version():
    found = by_id(parse_report(FIX / "grype-ghsa-and-cve.json"))
    assert (found["CVE-2005-2541"].fix_state, found["CVE-2005-2541"].fixed) == ("wont-fix", "")
    assert (found["CVE-2023-45853"].fix_state, found["CVE-2023-45853"].fixed) == ("not-fixed", "")
    assert "no fix: not-fixed" in found["CVE-2023-45853"].line()
    snap = by_id(parse_report(FIX / "grype-snapshot.json"))
    assert snap["CVE-1999-0001"].fixed == "1.2.1"  # installed 1.1.1; fixes 1.2.1, 2.1.3, 3.4.0
    assert snap["CVE-1999-0002"].fixed == "" and snap["CVE-1999-0002"].fix_state == ""


def test_trivy_will_not_fix_is_no_fix():
    found = by_id(parse_report(FIX / "trivy-centos-7.json"))
    bash = found["CVE-2019-18276"]
    assert (bash.fix_state, bash.fixed, bash.fixable) == ("will_not_fix", "", False)


# -- Trivy secrets and misconfigurations --------------------------------------------------------
def test_trivy_secrets_are_findings_that_fail_the_gate_by_default():
    found = by_id(parse_report(FIX / "trivy-secrets.json"))
    aws = found["aws-access-key-id"]
    assert aws.kind == SECRET and aws.severity is Severity.CRITICAL
    assert (aws.package, aws.installed) == ("deploy.sh", "line 3")
    verdict = evaluate(list(found.values()), load_policy(None), TODAY)
    assert not verdict.passed and {f.id for f in verdict.blocking} == set(found)
    assert "✗ no leaked secret (2 found)" in verdict.checklist(load_policy(None))


def test_secrets_warn_reports_them_without_failing(tmp_path):
    policy = load_policy(write_policy(tmp_path, "secrets: warn\n"))
    verdict = evaluate(parse_report(FIX / "trivy-secrets.json"), policy, TODAY)
    assert verdict.passed
    assert any(line.startswith("✓ no leaked secret (2 found, reported only")
               for line in verdict.checklist(policy))


def test_a_leaked_key_fails_pipeline_scan_and_its_value_is_never_printed(tmp_path):
    planted = "AKIAPLANTED7Q2Z5X9W4V"
    doc = json.loads((FIX / "trivy-secrets.json").read_text())
    secret = doc["Results"][0]["Secrets"][0]
    secret["Match"] = f"export AWS_ACCESS_KEY_ID={planted}"
    for line in secret["Code"]["Lines"]:
        line["Content"] = line["Content"].replace("********************", planted)
    report = tmp_path / "trivy.json"
    report.write_text(json.dumps(doc))
    out = run_pipeline("--report-dir", str(tmp_path / "r"), "scan", "--report", str(report))
    assert out.returncode == 1, out.stderr[-2000:]
    assert "leaked secret" in out.stdout + out.stderr
    assert "aws-access-key-id" in out.stdout
    written = "".join(p.read_text() for p in (tmp_path / "r").rglob("*") if p.is_file())
    assert planted not in out.stdout + out.stderr + written


def test_trivy_misconfigurations_are_ranked_by_their_own_threshold(tmp_path):
    (check,) = parse_report(FIX / "trivy-misconfig.json")
    assert check.kind == MISCONFIGURATION and check.id == "DS-0002"
    assert check.severity is Severity.HIGH and check.package == "Dockerfile"
    assert not evaluate([check], load_policy(None), TODAY).passed  # default: fail_on HIGH
    lenient = load_policy(write_policy(tmp_path, "misconfigurations: critical\n"))
    assert evaluate([check], lenient, TODAY).passed
    warn = load_policy(write_policy(tmp_path, "misconfigurations: warn\n"))
    verdict = evaluate([check], warn, TODAY)
    assert verdict.passed and any("DS-0002" in line for line in verdict.checklist(warn))


# -- malformed input: exit 2 with the JSON path and what was expected ---------------------------
@pytest.mark.parametrize(("mutate", "path", "expected"), [
    (lambda d: d["results"][0]["packages"][0]["groups"][0].update(aliases="CVE-1"),
     "results[0].packages[0].groups[0].aliases", "an array"),
    (lambda d: d["results"][0]["packages"][0]["groups"][0].update(max_severity="HIGH"),
     "results[0].packages[0].groups[0].max_severity", "CVSS base score"),
    (lambda d: d["results"][0]["packages"][0]["package"].pop("name"),
     "results[0].packages[0].package.name", "a non-empty string"),
])
def test_a_malformed_osv_report_exits_2_naming_the_json_path(tmp_path, mutate, path, expected):
    doc = json.loads((FIX / "osv-aliases-null.json").read_text())
    mutate(doc)
    report = tmp_path / "osv.json"
    report.write_text(json.dumps(doc))
    out = run_pipeline("--report-dir", str(tmp_path / "r"), "scan", "--report", str(report))
    assert out.returncode == 2, out.stderr[-2000:]
    assert str(report) in out.stderr and path in out.stderr and expected in out.stderr
    assert "Traceback" not in out.stderr


def test_a_malformed_clair_enrichment_is_bad_input_naming_where():
    doc = json.loads((FIX / "clair-enriched.json").read_text())
    (kind,) = doc["enrichments"]
    doc["enrichments"][kind][0]["9001"][0]["baseScore"] = "9.8"
    with pytest.raises(BadInput) as err:
        parse_doc(doc, "clair", "clair.json")
    assert "9001[0].baseScore" in str(err.value) and "a CVSS base score" in str(err.value)


def test_a_bad_secrets_policy_value_is_bad_input_with_its_line(tmp_path):
    with pytest.raises(BadInput) as err:
        load_policy(write_policy(tmp_path, "fail_on: high\nsecrets: maybe\n"))
    assert ":2 secrets:" in str(err.value) and "fail or warn" in str(err.value)
