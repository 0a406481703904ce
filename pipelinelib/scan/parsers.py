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
from pipelinelib.scan.model import (
    MISCONFIGURATION,
    SECRET,
    Finding,
    Severity,
    severity_from_cvss_score,
)

FORMATS = ("trivy", "grype", "osv-scanner", "clair")


def load_json(path: str | Path) -> Any:
    """Read a JSON file; truncated or malformed JSON is ``BadInput`` with its line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BadInput("report not found", source=source) from exc
    except UnicodeDecodeError as exc:
        raise BadInput.not_utf8(exc, source=source, expected="a JSON document") from None
    except OSError as exc:
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
    """Trivy ``--format json`` (schema 2): Results[] with Vulnerabilities[], Secrets[] and
    Misconfigurations[] (each may be absent or null; so may ``Results``).

    ``VendorIDs`` (DSA-, RHSA-...) are vendor advisories, not aliases: one advisory may
    list several CVEs. A secret's matched text is never read into a finding.
    """
    r = _Reader(source)
    top = r.obj(doc, "(top level)")
    findings = []
    for i, result in enumerate(r.arr(top.get("Results"), "Results")):
        result = r.obj(result, f"Results[{i}]")
        target = str(result.get("Target") or "")
        vulns = r.arr(result.get("Vulnerabilities"), f"Results[{i}].Vulnerabilities")
        for j, vuln in enumerate(vulns):
            findings.append(_trivy_vulnerability(r, vuln, result, f"Results[{i}]."
                                                 f"Vulnerabilities[{j}]"))
        for j, secret in enumerate(r.arr(result.get("Secrets"), f"Results[{i}].Secrets")):
            where = f"Results[{i}].Secrets[{j}]"
            secret = r.obj(secret, where)
            line = secret.get("StartLine")
            findings.append(Finding(
                id=r.text(secret.get("RuleID"), f"{where}.RuleID"),
                package=target,
                installed=f"line {line}" if isinstance(line, int) else "",
                severity=Severity.parse(secret.get("Severity"), source=source,
                                        field=f"{where}.Severity"),
                source="trivy", kind=SECRET,
                title=str(secret.get("Title") or secret.get("Category") or ""),
            ))
        misconfs = r.arr(result.get("Misconfigurations"), f"Results[{i}].Misconfigurations")
        for j, misconf in enumerate(misconfs):
            where = f"Results[{i}].Misconfigurations[{j}]"
            misconf = r.obj(misconf, where)
            if str(misconf.get("Status") or "FAIL").upper() != "FAIL":
                continue  # PASS / EXCEPTION entries (--include-non-failures) are not findings
            check = misconf.get("ID") or misconf.get("AVDID")
            findings.append(Finding(
                id=r.text(check, f"{where}.ID"),
                package=target, installed="",
                severity=Severity.parse(misconf.get("Severity"), source=source,
                                        field=f"{where}.Severity"),
                source="trivy", kind=MISCONFIGURATION,
                aliases=tuple(x for x in [misconf.get("AVDID")] if x and x != check),
                ecosystem=str(result.get("Type") or ""),
                title=" ".join(str(misconf.get(k) or "") for k in ("Title", "Message")).strip(),
                extra={"resolution": str(misconf.get("Resolution") or "")},
            ))
    return findings


def _trivy_vulnerability(r: _Reader, vuln: Any, result: dict[str, Any], where: str) -> Finding:
    vuln = r.obj(vuln, where)
    severity = Severity.parse(vuln.get("Severity"), source=r.source, field=f"{where}.Severity")
    rank_source = ""
    if severity is Severity.UNKNOWN:
        scores = []
        for vendor, cvss in r.obj(vuln.get("CVSS"), f"{where}.CVSS", optional=True).items():
            cvss = r.obj(cvss, f"{where}.CVSS.{vendor}", optional=True)
            score = cvss.get("V3Score") or cvss.get("V40Score")
            if isinstance(score, (int, float)) and not isinstance(score, bool) and score > 0:
                scores.append((float(score), vendor))
        if scores:
            score, vendor = max(scores)
            severity = severity_from_cvss_score(score)
            rank_source = f"{vendor} CVSS base score {score}"
    status = str(vuln.get("Status") or "")
    fixed = r.text(vuln.get("FixedVersion"), f"{where}.FixedVersion", required=False)
    return Finding(
        id=r.text(vuln.get("VulnerabilityID"), f"{where}.VulnerabilityID"),
        package=r.text(vuln.get("PkgName"), f"{where}.PkgName"),
        installed=r.text(vuln.get("InstalledVersion"), f"{where}.InstalledVersion",
                         required=False),
        fixed=fixed,
        fix_state=status or ("fixed" if fixed else ""),
        severity=severity, severity_source=rank_source,
        source="trivy",
        advisories=tuple(str(x) for x in r.arr(vuln.get("VendorIDs"), f"{where}.VendorIDs")),
        ecosystem=str(result.get("Type") or ""),
        title=str(vuln.get("Title") or ""),
    )


# -- Grype ---------------------------------------------------------------------------------------
def parse_grype(doc: Any, source: str = "") -> list[Finding]:
    """Grype ``-o json``: matches[] with vulnerability, relatedVulnerabilities and artifact.

    ``relatedVulnerabilities`` are records of the same vulnerability (the NVD record of a
    distro CVE, the CVE of a GHSA): aliases. ``vulnerability.advisories`` are vendor
    advisories. Fix states: ``fixed``, ``not-fixed``, ``wont-fix``, ``unknown`` or empty.
    """
    r = _Reader(source)
    top = r.obj(doc, "(top level)")
    if "matches" not in top:
        raise r.fail("matches", "an array (Grype writes [] when nothing matched)")
    findings = []
    for i, match in enumerate(r.arr(top["matches"], "matches")):
        where = f"matches[{i}]"
        match = r.obj(match, where)
        vuln = r.obj(match.get("vulnerability"), f"{where}.vulnerability")
        artifact = r.obj(match.get("artifact"), f"{where}.artifact")
        fix = r.obj(vuln.get("fix"), f"{where}.vulnerability.fix", optional=True)
        versions = [str(v) for v in r.arr(fix.get("versions"), f"{where}.vulnerability.fix."
                                                                "versions")]
        related = [
            str(r.obj(x, f"{where}.relatedVulnerabilities[{k}]").get("id") or "")
            for k, x in enumerate(r.arr(match.get("relatedVulnerabilities"),
                                        f"{where}.relatedVulnerabilities"))
        ]
        advisories = [
            str(r.obj(x, f"{where}.vulnerability.advisories[{k}]").get("id") or "")
            for k, x in enumerate(r.arr(vuln.get("advisories"),
                                        f"{where}.vulnerability.advisories"))
        ]
        vid = r.text(vuln.get("id"), f"{where}.vulnerability.id")
        installed = r.text(artifact.get("version"), f"{where}.artifact.version", required=False)
        state = str(fix.get("state") or "")
        suggested = ""
        for k, detail in enumerate(r.arr(match.get("matchDetails"), f"{where}.matchDetails")):
            detail = r.obj(detail, f"{where}.matchDetails[{k}]")
            hint = r.obj(detail.get("fix"), f"{where}.matchDetails[{k}].fix", optional=True)
            suggested = suggested or str(hint.get("suggestedVersion") or "")
        fixed = ""
        if state == "fixed" or (versions and state in ("", "unknown")):
            fixed = suggested or _lowest_above(versions, installed)
        findings.append(
            Finding(
                id=vid,
                package=r.text(artifact.get("name"), f"{where}.artifact.name"),
                installed=installed,
                fixed=fixed,
                fix_state=state,
                severity=Severity.parse(vuln.get("severity"), source=source,
                                        field=f"{where}.vulnerability.severity"),
                source="grype",
                aliases=tuple(x for x in dict.fromkeys(related) if x and x != vid),
                advisories=tuple(x for x in dict.fromkeys(advisories) if x),
                ecosystem=str(artifact.get("type") or ""),
                title=str(vuln.get("description") or "")[:200],
            )
        )
    return findings


def _lowest_above(versions: list[str], installed: str) -> str:
    """The smallest of several fixed versions (release branches) above ``installed``."""
    from packaging.version import InvalidVersion, Version

    if len(versions) <= 1:
        return versions[0] if versions else ""
    try:
        have = Version(installed)
        above = sorted((Version(v), v) for v in versions if Version(v) > have)
        return above[0][1] if above else versions[0]
    except InvalidVersion:
        return versions[0]


# -- OSV-Scanner ---------------------------------------------------------------------------------
def parse_osv(doc: Any, source: str = "") -> list[Finding]:
    """OSV-Scanner ``--format json``: results[].packages[] with vulnerabilities[] and groups[].

    One finding per group (OSV-Scanner's own grouping of ids that are the same
    vulnerability; ``aliases`` may be ``null``). Severity from the group's ``max_severity``
    (a CVSS score as a string, possibly empty), else the highest of the group's advisories'
    ``database_specific.severity``, else unknown. The fix: the lowest fixed version above
    the installed one over every advisory of the group.
    """
    r = _Reader(source)
    top = r.obj(doc, "(top level)")
    if "results" not in top:
        raise r.fail("results", "an array")
    findings = []
    for i, result in enumerate(r.arr(top.get("results"), "results")):
        result = r.obj(result, f"results[{i}]")
        for j, entry in enumerate(r.arr(result.get("packages"), f"results[{i}].packages")):
            findings += _osv_package(r, entry, f"results[{i}].packages[{j}]")
    return findings


def _osv_package(r: _Reader, entry: Any, where: str) -> list[Finding]:
    entry = r.obj(entry, where)
    pkg = r.obj(entry.get("package"), f"{where}.package")
    name = r.text(pkg.get("name"), f"{where}.package.name")
    version = r.text(pkg.get("version"), f"{where}.package.version", required=False)
    ecosystem = str(pkg.get("ecosystem") or "")
    vulns: dict[str, dict[str, Any]] = {}
    for k, v in enumerate(r.arr(entry.get("vulnerabilities"), f"{where}.vulnerabilities")):
        v = r.obj(v, f"{where}.vulnerabilities[{k}]")
        r.arr(v.get("aliases"), f"{where}.vulnerabilities[{k}].aliases")
        vulns[r.text(v.get("id"), f"{where}.vulnerabilities[{k}].id")] = v
    groups = r.arr(entry.get("groups"), f"{where}.groups") or [{"ids": [vid]} for vid in vulns]
    findings = []
    for g, group in enumerate(groups):
        at = f"{where}.groups[{g}]"
        group = r.obj(group, at)
        ids = [str(x) for x in r.arr(group.get("ids"), f"{at}.ids")]
        if not ids:
            raise r.fail(f"{at}.ids", "at least one id")
        members = [vulns[x] for x in ids if x in vulns]
        aliases = [*ids[1:], *(str(a) for a in r.arr(group.get("aliases"), f"{at}.aliases"))]
        for member in members:
            aliases += [str(a) for a in member.get("aliases") or []]
        fixes = [f for m in members for f in _osv_fixes(m, name)]
        main = vulns.get(ids[0], members[0] if members else {})
        findings.append(Finding(
            id=ids[0],
            package=name,
            installed=version,
            fixed=_lowest_above(list(dict.fromkeys(fixes)), version),
            fix_state="fixed" if fixes else "",
            severity=_osv_severity(r, group, members, at),
            source="osv-scanner",
            aliases=tuple(a for a in dict.fromkeys(aliases) if a != ids[0]),
            ecosystem=ecosystem,
            title=str(main.get("summary") or "")[:200],
        ))
    return findings


def _osv_severity(r: _Reader, group: dict[str, Any], members: list[dict[str, Any]],
                  where: str) -> Severity:
    score = group.get("max_severity")
    if score not in (None, ""):
        try:
            return severity_from_cvss_score(float(score))
        except (TypeError, ValueError) as exc:
            raise BadInput("unexpected shape", source=r.source or None,
                           field=f"{where}.max_severity",
                           expected="a CVSS base score such as \"7.5\", or empty") from exc
    words = [(m.get("database_specific") or {}).get("severity") for m in members]
    ranked = [Severity.parse(w, source=r.source, field=f"{where} database_specific.severity")
              for w in words if isinstance(w, str)]
    return max(ranked, default=Severity.UNKNOWN)


def _osv_fixes(vuln: dict[str, Any], name: str) -> list[str]:
    """Every ``fixed`` event of the ranges that cover this package."""
    fixes = []
    for affected in vuln.get("affected") or []:
        if (affected.get("package") or {}).get("name") not in (name, None):
            continue
        for rng in affected.get("ranges") or []:
            fixes += [str(e["fixed"]) for e in rng.get("events") or [] if "fixed" in e]
    return fixes


# -- Clair v4 ------------------------------------------------------------------------------------
CLAIR_CVSS = "enricher=clair.cvss"


def parse_clair(doc: Any, source: str = "") -> list[Finding]:
    """Clair v4 vulnerability report: packages, vulnerabilities and package_vulnerabilities maps.

    Clair sends empty maps as ``{}`` or ``null``; both mean "nothing found". The rank is
    claircore's ``normalized_severity``; when that is ``Unknown``, the highest CVSS base
    score of the report's ``clair.cvss`` enrichment for that vulnerability decides, and the
    finding says so.
    """
    r = _Reader(source)
    top = r.obj(doc, "(top level)")
    r.text(top.get("manifest_hash"), "manifest_hash")
    packages = r.obj(top.get("packages"), "packages", optional=True)
    vulns = r.obj(top.get("vulnerabilities"), "vulnerabilities", optional=True)
    links = r.obj(top.get("package_vulnerabilities"), "package_vulnerabilities", optional=True)
    cvss = _clair_cvss(r, r.obj(top.get("enrichments"), "enrichments", optional=True))
    findings = []
    for pkg_id, vuln_ids in sorted(links.items()):
        pkg = r.obj(packages.get(pkg_id), f"packages.{pkg_id}")
        for vid in r.arr(vuln_ids, f"package_vulnerabilities.{pkg_id}"):
            vuln = r.obj(vulns.get(vid), f"vulnerabilities.{vid}")
            severity, rank_source = _clair_severity(r, vuln, f"vulnerabilities.{vid}",
                                                    cvss.get(str(vid), []))
            fixed = r.text(vuln.get("fixed_in_version"), f"vulnerabilities.{vid}."
                           "fixed_in_version", required=False)
            findings.append(
                Finding(
                    id=r.text(vuln.get("name"), f"vulnerabilities.{vid}.name").split()[0]
                    .rstrip(":"),
                    package=r.text(pkg.get("name"), f"packages.{pkg_id}.name"),
                    installed=str(pkg.get("version") or ""),
                    fixed=fixed,
                    fix_state="fixed" if fixed else "",
                    severity=severity,
                    severity_source=rank_source,
                    source="clair",
                    ecosystem=str(pkg.get("kind") or ""),
                    title=str(vuln.get("description") or "")[:200],
                    extra={"updater": vuln.get("updater", "")},
                )
            )
    return findings


def _clair_severity(r: _Reader, vuln: dict[str, Any], where: str,
                    scores: list[tuple[float, str]]) -> tuple[Severity, str]:
    word = vuln.get("normalized_severity")
    if word is not None and not isinstance(word, str):
        raise r.fail(f"{where}.normalized_severity", "one of Unknown, Negligible, Low, Medium, "
                     "High, Critical")
    severity = Severity.parse(word, source=r.source, field=f"{where}.normalized_severity")
    if severity is not Severity.UNKNOWN:
        return severity, ""
    if scores:
        score, vector = max(scores)
        return severity_from_cvss_score(score), f"clair.cvss enrichment ({vector} {score})"
    return Severity.UNKNOWN, ""


def _clair_cvss(r: _Reader, enrichments: dict[str, Any]) -> dict[str, list[tuple[float, str]]]:
    """vulnerability id -> [(CVSS base score, vector)] from the ``clair.cvss`` enrichment:
    ``{TYPE: [{vuln_id: [cvssData, ...]}]}`` (claircore enricher/cvss)."""
    scores: dict[str, list[tuple[float, str]]] = {}
    for kind, blobs in enrichments.items():
        if CLAIR_CVSS not in kind:
            continue
        where = f"enrichments[{kind!r}]"
        for n, blob in enumerate(r.arr(blobs, where)):
            for vid, items in r.obj(blob, f"{where}[{n}]").items():
                for k, item in enumerate(r.arr(items, f"{where}[{n}].{vid}")):
                    item = r.obj(item, f"{where}[{n}].{vid}[{k}]")
                    score = item.get("baseScore")
                    if not isinstance(score, (int, float)) or isinstance(score, bool):
                        raise r.fail(f"{where}[{n}].{vid}[{k}].baseScore",
                                     "a CVSS base score (a number)")
                    vector = str(item.get("vectorString") or f"CVSS {item.get('version', '')}")
                    scores.setdefault(str(vid), []).append((float(score), vector))
    return scores


PARSERS: dict[str, Callable[[Any, str], list[Finding]]] = {
    "trivy": parse_trivy,
    "grype": parse_grype,
    "osv-scanner": parse_osv,
    "clair": parse_clair,
}
