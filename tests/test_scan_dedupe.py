"""Property: de-duplication never loses information.

For any report (records of the same vulnerability under CVE and GHSA ids, from several
scanners, with or without the fix, sharing vendor advisories with sibling CVEs), the
number of findings after de-duplication equals the number of distinct (package, installed
version, vulnerability) triples, no fix is lost and no id disappears.
"""

from __future__ import annotations

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
