"""Parsers for scanner reports: Trivy, Grype, OSV-Scanner and Clair v4 JSON.

Each follows its tool's documented schema, including what the tool omits when empty
(Trivy drops ``Results`` and ``Vulnerabilities``; Clair may send ``null`` maps).
Anything else that does not fit is ``BadInput`` naming the file and the field: a
gate never passes on a report it could not read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelinelib.errors import BadInput
from pipelinelib.scan.model import Finding, Severity, severity_from_cvss_score

FORMATS = ("trivy", "grype", "osv-scanner", "clair")


def load_json(path: str | Path) -> Any:
    """Read a JSON file; truncated or malformed JSON is ``BadInput`` with its line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BadInput("report not found", source=source) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the report: {exc}", source=source) from exc
    if not text.strip():
        raise BadInput("the report is empty", source=source, expected="a JSON document")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"not valid JSON: {exc.msg}", source=source, line=exc.lineno, expected="a JSON document"
        ) from exc


def detect_format(doc: Any, source: str = "") -> str:
    """Which scanner wrote ``doc``, from its top-level keys."""
    if isinstance(doc, dict):
        if "SchemaVersion" in doc or "ArtifactName" in doc:
            return "trivy"
        if "matches" in doc and ("descriptor" in doc or "source" in doc or not doc["matches"]):
            return "grype"
        if "manifest_hash" in doc:
            return "clair"
        if "results" in doc:
            return "osv-scanner"
    raise BadInput(
        "cannot tell which scanner wrote this report",
        source=source or None,
        expected="a Trivy, Grype, OSV-Scanner or Clair v4 JSON report (or pass --format)",
    )


def parse_report(path: str | Path, fmt: str = "auto") -> list[Finding]:
    """Read one report file into findings (``fmt`` one of FORMATS or ``auto``)."""
    doc = load_json(path)
    return parse_doc(doc, fmt, str(path))


def parse_doc(doc: Any, fmt: str = "auto", source: str = "") -> list[Finding]:
    """Findings from an already-decoded report."""
    if fmt == "auto":
        fmt = detect_format(doc, source)
    parser = PARSERS.get(fmt)
    if parser is None:
        raise BadInput(f"unknown format {fmt!r}", field="format", expected=", ".join(FORMATS))
    return parser(doc, source)


# -- helpers -----------------------------------------------------------------------------------
class _Reader:
    """Typed access to nested JSON with BadInput naming the path on a wrong shape."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, expected: str) -> BadInput:
        return BadInput("unexpected shape", source=self.source or None, field=where,
                        expected=expected)

    def obj(self, value: Any, where: str, *, optional: bool = False) -> dict[str, Any]:
        if value is None and optional:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, "an object")
        return value

    def arr(self, value: Any, where: str, *, optional: bool = True) -> list[Any]:
        if value is None and optional:
            return []
        if not isinstance(value, list):
            raise self.fail(where, "an array")
        return value

    def text(self, value: Any, where: str, *, required: bool = True) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value):
            raise self.fail(where, "a non-empty string" if required else "a string")
        return value


# -- Trivy ---------------------------------------------------------------------------------------
def parse_trivy(doc: Any, source: str = "") -> list[Finding]:
    """Trivy ``--format json`` (schema 2): Results[].Vulnerabilities[] (both may be absent)."""
    r = _Reader(source)
    top = r.obj(doc, "(top level)")
    findings = []
    for i, result in enumerate(r.arr(top.get("Results"), "Results")):
        result = r.obj(result, f"Results[{i}]")
        vulns = r.arr(result.get("Vulnerabilities"), f"Results[{i}].Vulnerabilities")
        for j, vuln in enumerate(vulns):
            where = f"Results[{i}].Vulnerabilities[{j}]"
            vuln = r.obj(vuln, where)
            findings.append(
                Finding(
                    id=r.text(vuln.get("VulnerabilityID"), f"{where}.VulnerabilityID"),
                    package=r.text(vuln.get("PkgName"), f"{where}.PkgName"),
                    installed=r.text(vuln.get("InstalledVersion"), f"{where}.InstalledVersion",
                                     required=False),
                    fixed=r.text(vuln.get("FixedVersion"), f"{where}.FixedVersion", required=False),
                    severity=Severity.parse(vuln.get("Severity"), source=source,
                                            field=f"{where}.Severity"),
                    source="trivy",
                    aliases=tuple(r.arr(vuln.get("VendorIDs"), f"{where}.VendorIDs")),
                    ecosystem=str(result.get("Type") or ""),
                    title=str(vuln.get("Title") or ""),
                )
            )
    return findings


# -- Grype ---------------------------------------------------------------------------------------
def parse_grype(doc: Any, source: str = "") -> list[Finding]:
    """Grype ``-o json``: matches[] with vulnerability, relatedVulnerabilities and artifact."""
    r = _Reader(source)
    top = r.obj(doc, "(top level)")
    if "matches" not in top:
        raise r.fail("matches", "an array (Grype writes [] when nothing matched)")
    findings = []
    for i, match in enumerate(r.arr(top["matches"], "matches", optional=False)):
        where = f"matches[{i}]"
        match = r.obj(match, where)
        vuln = r.obj(match.get("vulnerability"), f"{where}.vulnerability")
        artifact = r.obj(match.get("artifact"), f"{where}.artifact")
        fix = r.obj(vuln.get("fix"), f"{where}.vulnerability.fix", optional=True)
        versions = r.arr(fix.get("versions"), f"{where}.vulnerability.fix.versions")
        related = [
            r.obj(x, f"{where}.relatedVulnerabilities[{k}]").get("id", "")
            for k, x in enumerate(r.arr(match.get("relatedVulnerabilities"),
                                        f"{where}.relatedVulnerabilities"))
        ]
        vid = r.text(vuln.get("id"), f"{where}.vulnerability.id")
        findings.append(
            Finding(
                id=vid,
                package=r.text(artifact.get("name"), f"{where}.artifact.name"),
                installed=r.text(artifact.get("version"), f"{where}.artifact.version",
                                 required=False),
                fixed=str(versions[0]) if versions and fix.get("state") == "fixed" else "",
                severity=Severity.parse(vuln.get("severity"), source=source,
                                        field=f"{where}.vulnerability.severity"),
                source="grype",
                aliases=tuple(x for x in dict.fromkeys(related) if x and x != vid),
                ecosystem=str(artifact.get("type") or ""),
                title=str(vuln.get("description") or "")[:200],
            )
        )
    return findings


# -- OSV-Scanner ---------------------------------------------------------------------------------
def parse_osv(doc: Any, source: str = "") -> list[Finding]:
    """OSV-Scanner ``--format json``: results[].packages[] with vulnerabilities[] and groups[].

    One finding per group (OSV-Scanner's own grouping of ids that are the same advisory);
    severity from the group's ``max_severity`` (a CVSS score), else the advisory's
    ``database_specific.severity``, else unknown.
    """
    r = _Reader(source)
    top = r.obj(doc, "(top level)")
    if "results" not in top:
        raise r.fail("results", "an array")
    findings = []
    for i, result in enumerate(r.arr(top.get("results"), "results")):
        result = r.obj(result, f"results[{i}]")
        for j, entry in enumerate(r.arr(result.get("packages"), f"results[{i}].packages")):
            where = f"results[{i}].packages[{j}]"
            entry = r.obj(entry, where)
            pkg = r.obj(entry.get("package"), f"{where}.package")
            name = r.text(pkg.get("name"), f"{where}.package.name")
            version = r.text(pkg.get("version"), f"{where}.package.version", required=False)
            ecosystem = str(pkg.get("ecosystem") or "")
            vulns = {}
            for k, v in enumerate(r.arr(entry.get("vulnerabilities"), f"{where}.vulnerabilities")):
                v = r.obj(v, f"{where}.vulnerabilities[{k}]")
                vulns[r.text(v.get("id"), f"{where}.vulnerabilities[{k}].id")] = v
            groups = r.arr(entry.get("groups"), f"{where}.groups") or [
                {"ids": [vid]} for vid in vulns
            ]
            for g, group in enumerate(groups):
                group = r.obj(group, f"{where}.groups[{g}]")
                ids = [str(x) for x in r.arr(group.get("ids"), f"{where}.groups[{g}].ids")]
                if not ids:
                    raise r.fail(f"{where}.groups[{g}].ids", "at least one id")
                main = vulns.get(ids[0], {})
                aliases = [*ids[1:], *group.get("aliases", []), *main.get("aliases", [])]
                findings.append(
                    Finding(
                        id=ids[0],
                        package=name,
                        installed=version,
                        fixed=_osv_fixed(main, name, version),
                        severity=_osv_severity(group, main, source, f"{where}.groups[{g}]"),
                        source="osv-scanner",
                        aliases=tuple(a for a in dict.fromkeys(aliases) if a != ids[0]),
                        ecosystem=ecosystem,
                        title=str(main.get("summary") or "")[:200],
                    )
                )
    return findings


def _osv_severity(group: dict[str, Any], vuln: dict[str, Any], source: str, where: str) -> Severity:
    score = group.get("max_severity")
    if score not in (None, ""):
        try:
            return severity_from_cvss_score(float(score))
        except (TypeError, ValueError) as exc:
            raise BadInput("unexpected shape", source=source or None,
                           field=f"{where}.max_severity", expected="a CVSS score") from exc
    word = (vuln.get("database_specific") or {}).get("severity")
    return Severity.parse(word, source=source, field=f"{where} database_specific.severity")


def _osv_fixed(vuln: dict[str, Any], name: str, installed: str) -> str:
    """The first ``fixed`` event of the range that covers this package (ECOSYSTEM ranges)."""
    from packaging.version import InvalidVersion, Version

    fixes = []
    for affected in vuln.get("affected") or []:
        if (affected.get("package") or {}).get("name") not in (name, None):
            continue
        for rng in affected.get("ranges") or []:
            fixes += [e["fixed"] for e in rng.get("events") or [] if "fixed" in e]
    if len(fixes) <= 1:
        return fixes[0] if fixes else ""
    try:  # several branches (1.26.17, 2.0.6): the smallest fix above the installed version
        have = Version(installed)
        above = sorted((Version(f), f) for f in fixes if Version(f) > have)
        return above[0][1] if above else fixes[0]
    except InvalidVersion:
        return fixes[0]


# -- Clair v4 ------------------------------------------------------------------------------------
def parse_clair(doc: Any, source: str = "") -> list[Finding]:
    """Clair v4 vulnerability report: packages, vulnerabilities and package_vulnerabilities maps.

    Clair sends empty maps as ``{}`` or ``null``; both mean "nothing found".
    """
    r = _Reader(source)
    top = r.obj(doc, "(top level)")
    r.text(top.get("manifest_hash"), "manifest_hash")
    packages = r.obj(top.get("packages"), "packages", optional=True)
    vulns = r.obj(top.get("vulnerabilities"), "vulnerabilities", optional=True)
    links = r.obj(top.get("package_vulnerabilities"), "package_vulnerabilities", optional=True)
    findings = []
    for pkg_id, vuln_ids in sorted(links.items()):
        pkg = r.obj(packages.get(pkg_id), f"packages.{pkg_id}")
        for vid in r.arr(vuln_ids, f"package_vulnerabilities.{pkg_id}"):
            vuln = r.obj(vulns.get(vid), f"vulnerabilities.{vid}")
            word = vuln.get("normalized_severity") or vuln.get("severity")
            findings.append(
                Finding(
                    id=r.text(vuln.get("name"), f"vulnerabilities.{vid}.name"),
                    package=r.text(pkg.get("name"), f"packages.{pkg_id}.name"),
                    installed=str(pkg.get("version") or ""),
                    fixed=str(vuln.get("fixed_in_version") or ""),
                    severity=Severity.parse(word, source=source,
                                            field=f"vulnerabilities.{vid}.normalized_severity"),
                    source="clair",
                    ecosystem=str(pkg.get("kind") or ""),
                    title=str(vuln.get("description") or "")[:200],
                    extra={"updater": vuln.get("updater", "")},
                )
            )
    return findings


PARSERS: dict[str, Callable[[Any, str], list[Finding]]] = {
    "trivy": parse_trivy,
    "grype": parse_grype,
    "osv-scanner": parse_osv,
    "clair": parse_clair,
}
