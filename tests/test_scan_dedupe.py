"""Property: de-duplication never loses information.

For any report (records of the same vulnerability under CVE and GHSA ids, from several
scanners, with or without the fix, sharing vendor advisories with sibling CVEs), the
number of findings after de-duplication equals the number of distinct (package, installed
version, vulnerability) triples, no fix is lost and no id disappears.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelinelib.scan.model import Finding, Severity, dedupe

PACKAGES = ["openssl", "requests", "libwebp7"]
VERSIONS = ["1.0.0", "2.0.0"]
VULNS = 6  # vulnerability n is CVE-2024-000n, alias GHSA-000n; advisory RHSA-(n // 3)


def record(package: str, version: str, vuln: int, as_ghsa: bool, with_alias: bool,
           fix: bool, scanner: str, severity: Severity) -> Finding:
    cve, ghsa = f"CVE-2024-000{vuln}", f"GHSA-000{vuln}"
    # a GHSA record always lists its CVE (as OSV and Grype write it); a CVE record may
    # or may not list the GHSA
    ident, aliases = (ghsa, (cve,)) if as_ghsa else (cve, (ghsa,) if with_alias else ())
    return Finding(id=ident, package=package, installed=version, severity=severity,
                   source=scanner, aliases=aliases, fixed="9.9.9" if fix else "",
                   advisories=(f"RHSA-2024:{vuln // 3}",))


records = st.builds(
    record,
    st.sampled_from(PACKAGES), st.sampled_from(VERSIONS), st.integers(0, VULNS - 1),
    st.booleans(), st.booleans(), st.booleans(),
    st.sampled_from(["trivy", "grype", "osv-scanner", "clair"]),
    st.sampled_from(list(Severity)),
)


def vulnerability(finding: Finding) -> str:
    return next(i for i in finding.ids if i.startswith("CVE-")).removeprefix("CVE-")


@settings(max_examples=300, deadline=None)
@given(st.lists(records, max_size=40))
def test_dedupe_keeps_one_finding_per_triple_and_loses_no_fix_or_id(report):
    out = dedupe(report)
    triples = {(f.package, f.installed, vulnerability(f)) for f in report}
    assert len(out) == len(triples)
    assert {(f.package, f.installed, vulnerability(f)) for f in out} == triples
    for triple in triples:
        same = [f for f in report if (f.package, f.installed, vulnerability(f)) == triple]
        (kept,) = [f for f in out if (f.package, f.installed, vulnerability(f)) == triple]
        assert kept.fixable == any(f.fixable for f in same)  # no fix is lost
        assert kept.severity == max(f.severity for f in same)
        assert {i for f in same for i in f.ids} == set(kept.ids)  # every id kept
        assert len({i for i in kept.ids if i.startswith("CVE-")}) == 1  # never two CVEs
        if len(same) > 1:
            assert len(kept.merged) == len({(f.source, f.id) for f in same})


# -- the same property through the parsers: reports as Trivy, Grype and OSV-Scanner write them
SCORES = {Severity.CRITICAL: "9.8", Severity.HIGH: "7.5", Severity.MEDIUM: "5.3",
          Severity.LOW: "2.1", Severity.NEGLIGIBLE: "0.0", Severity.UNKNOWN: ""}


def as_reports(report: list[Finding]) -> dict[str, dict]:
    """``report``'s records written out in each scanner's JSON shape (see the fixtures' own
    golden files for the shapes), one document per scanner."""
    trivy, grype, osv = [], [], []
    for f in report:
        cve = next(i for i in f.ids if i.startswith("CVE-"))
        if f.source in ("trivy", "clair"):
            # Trivy names a vulnerability by its CVE when one exists and has no alias field
            trivy.append({"VulnerabilityID": cve, "VendorIDs": list(f.advisories),
                          "PkgName": f.package, "InstalledVersion": f.installed,
                          "FixedVersion": f.fixed, "Status": "fixed" if f.fixed else "affected",
                          "Severity": f.severity.name})
        elif f.source == "grype":
            grype.append({"vulnerability": {"id": f.id, "severity": f.severity.name.title(),
                                            "fix": {"versions": [f.fixed] if f.fixed else [],
                                                    "state": "fixed" if f.fixed else "not-fixed"},
                                            "advisories": [{"id": a} for a in f.advisories]},
                          "relatedVulnerabilities": [{"id": a} for a in f.aliases],
                          "matchDetails": [],
                          "artifact": {"name": f.package, "version": f.installed,
                                       "type": "python"}})
        else:
            events = [{"introduced": "0"}, *([{"fixed": f.fixed}] if f.fixed else [])]
            osv.append({"package": {"name": f.package, "version": f.installed,
                                    "ecosystem": "PyPI"},
                        "vulnerabilities": [{"id": f.id, "aliases": list(f.aliases) or None,
                                             "affected": [{"package": {"name": f.package},
                                                           "ranges": [{"type": "ECOSYSTEM",
                                                                       "events": events}]}]}],
                        "groups": [{"ids": [f.id], "aliases": [f.id, *f.aliases] if
                                    f.aliases else None,
                                    "max_severity": SCORES[f.severity]}]})
        assert cve  # every record names its CVE as id or alias
    return {"trivy": {"SchemaVersion": 2, "Results": [{"Target": "app", "Type": "pip",
                                                      "Vulnerabilities": trivy or None}]},
            "grype": {"matches": grype, "descriptor": {"name": "grype"}},
            "osv-scanner": {"results": [{"source": {"type": "lockfile"}, "packages": osv}]}}


@settings(max_examples=150, deadline=None)
@given(st.lists(records, max_size=30), st.data())
def test_parsed_reports_dedupe_to_the_distinct_triples_and_an_ignore_takes_one(report, data):
    from pipelinelib.scan.parsers import parse_doc
    from pipelinelib.scan.policy import Ignore, ScanPolicy, evaluate

    found = [f for fmt, doc in as_reports(report).items() for f in parse_doc(doc, fmt)]
    out = dedupe(found)
    triples = {(f.package, f.installed, vulnerability(f)) for f in report}
    assert len(out) == len(triples)
    for triple in triples:
        same = [f for f in report if (f.package, f.installed, vulnerability(f)) == triple]
        (kept,) = [f for f in out if (f.package, f.installed, vulnerability(f)) == triple]
        assert kept.fixable == any(f.fixable for f in same)
    if out:  # an ignore of any id of one finding ignores exactly the findings that carry it
        target = data.draw(st.sampled_from(out))
        name = data.draw(st.sampled_from([*target.ids, *target.advisories]))
        policy = ScanPolicy(fail_on=Severity.NEGLIGIBLE, ignore=(
            Ignore(name, "accepted", dt.date(2099, 12, 31)),))
        ignored = {f.id for f, _ in evaluate(out, policy, dt.date(2026, 1, 1)).ignored}
        assert ignored == {f.id for f in out if name in f.ids}
        assert not name.startswith("RHSA-") or not ignored  # an advisory names no finding
