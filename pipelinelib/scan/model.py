"""One findings model for every scanner: advisory, package, versions, severity, source."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from pipelinelib.errors import BadInput


class Severity(int, enum.Enum):
    """Ordered severities; scanners' spellings are mapped with ``Severity.parse``."""

    UNKNOWN = 0
    NEGLIGIBLE = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str | None, *, source: str = "", field: str = "severity") -> Severity:
        """A severity from any scanner's spelling; an unknown word is ``BadInput``."""
        word = (text or "").strip().lower()
        if word in _ALIASES:
            return _ALIASES[word]
        raise BadInput(
            f"unknown severity {text!r}",
            source=source or None,
            field=field,
            expected="one of " + ", ".join(sorted(_ALIASES)),
        )


_ALIASES = {
    "": Severity.UNKNOWN,
    "unknown": Severity.UNKNOWN,
    "unspecified": Severity.UNKNOWN,
    "negligible": Severity.NEGLIGIBLE,
    "none": Severity.NEGLIGIBLE,
    "informational": Severity.NEGLIGIBLE,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "high": Severity.HIGH,
    "important": Severity.HIGH,
    "critical": Severity.CRITICAL,
}


def severity_from_cvss_score(score: float) -> Severity:
    """CVSS v3 qualitative rating of a base score."""
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0.0:
        return Severity.LOW
    return Severity.NEGLIGIBLE


VULNERABILITY, SECRET, MISCONFIGURATION = "vulnerability", "secret", "misconfiguration"
# fix states as the scanners spell them (Grype: fixed, not-fixed, wont-fix, unknown, "";
# Trivy: fixed, affected, will_not_fix, fix_deferred, end_of_life, under_investigation, ...)
NO_FIX_STATES = {"not-fixed", "wont-fix", "will_not_fix", "fix_deferred", "end_of_life",
                 "affected", "under_investigation"}


@dataclass(frozen=True)
class Finding:
    """One advisory (or leaked secret, or misconfiguration) affecting one installed package.

    Attributes:
        id: the vulnerability id as the scanner reports it (CVE-, GHSA-, DSA-, PYSEC-...);
            for a secret the scanner's rule id, for a misconfiguration the check id.
        aliases: other ids of the *same* vulnerability (never of a sibling vulnerability).
        advisories: vendor advisories that list this vulnerability (RHSA-, DSA-...); one
            advisory may list several vulnerabilities, so these never link findings.
        package: the affected package name (for a secret or misconfiguration: the file).
        installed: the installed version (for a secret: ``line N``).
        fixed: the first version with the fix, or "" when none is known.
        fix_state: the scanner's fix state (``fixed``, ``not-fixed``, ``wont-fix``...) or "".
        severity: normalized severity; ``severity_source`` says where it came from when
            it is not the scanner's own word (e.g. Clair's CVSS enrichment).
        source: the scanner (``trivy``, ``grype``, ``osv-scanner``, ``clair``).
        kind: ``vulnerability``, ``secret`` or ``misconfiguration``.
        merged: ``scanner:id`` of every record de-duplication merged into this one.
    """

    id: str
    package: str
    installed: str
    severity: Severity
    source: str
    aliases: tuple[str, ...] = ()
    fixed: str = ""
    ecosystem: str = ""
    title: str = ""
    advisories: tuple[str, ...] = ()
    fix_state: str = ""
    severity_source: str = ""
    kind: str = VULNERABILITY
    merged: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def fixable(self) -> bool:
        return bool(self.fixed)

    @property
    def ids(self) -> tuple[str, ...]:
        """The id and every alias (ids of this one vulnerability)."""
        return (self.id, *self.aliases)

    def line(self) -> str:
        """One human line: ``HIGH CVE-... in pkg 1.0 (fixed in 1.1)``."""
        if self.kind == SECRET:
            return (f"{self.severity.name} secret {self.id} ({self.title}) in "
                    f"{self.package}:{self.installed.removeprefix('line ')}")
        if self.kind == MISCONFIGURATION:
            return (f"{self.severity.name} misconfiguration {self.id} in {self.package}: "
                    f"{self.title}")
        fix = f"fixed in {self.fixed}" if self.fixed else (
            f"no fix: {self.fix_state}" if self.fix_state in NO_FIX_STATES else "no fix")
        also = f" [{', '.join(self.aliases)}]" if self.aliases else ""
        rank = f"; severity from {self.severity_source}" if self.severity_source else ""
        return (f"{self.severity.name} {self.id}{also} in {self.package} {self.installed} "
                f"({fix}){rank}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = str(self.severity)
        for key in ("aliases", "advisories", "merged"):
            data[key] = list(getattr(self, key))
        data.pop("extra")
        return data


def vulnerability_key(ids: Any) -> frozenset[str]:
    """The CVE ids among ``ids``: a CVE names one vulnerability, so two different CVEs are
    never the same finding even when some record lists both."""
    return frozenset(i for i in ids if i.upper().startswith("CVE-"))


def dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per (package, installed version, vulnerability); nothing is lost.

    Records of one package and version are linked when their ids or aliases overlap
    (a GHSA record listing its CVE, Trivy's and Grype's record of the same CVE), never
    through a vendor advisory and never so that two different CVEs end up in one
    finding. A merged finding keeps the highest severity, the best-known fix, every id
    as id or alias, every advisory, and names each record it merged in ``merged``.
    """
    order = sorted(findings, key=lambda f: (-f.severity, f.package, f.installed, f.kind, f.id))
    groups: list[list[Finding]] = []
    by_slot: dict[tuple[str, str, str], list[int]] = {}
    for item in order:
        slot = (item.kind, item.package, item.installed)
        candidates = by_slot.setdefault(slot, [])
        hits = [g for g in candidates if _links(groups[g], item)]
        if not hits:
            candidates.append(len(groups))
            groups.append([item])
            continue
        target = hits[0]
        groups[target].append(item)
        for other in hits[1:]:  # the new record bridges two groups: join them if allowed
            if _compatible(groups[target], groups[other]):
                groups[target] += groups[other]
                groups[other] = []
        by_slot[slot] = [g for g in candidates if groups[g]]
    return [_merge(g) for g in groups if g]


def _group_ids(group: list[Finding]) -> set[str]:
    return {i for f in group for i in f.ids}


def _compatible(a: list[Finding], b: list[Finding]) -> bool:
    ca, cb = vulnerability_key(_group_ids(a)), vulnerability_key(_group_ids(b))
    return not ca or not cb or ca == cb


def _links(group: list[Finding], item: Finding) -> bool:
    if not _group_ids(group) & set(item.ids):
        return False
    return _compatible(group, [item])


def _merge(group: list[Finding]) -> Finding:
    if len(group) == 1:
        return group[0]
    first = group[0]  # the highest severity comes first
    ids = list(dict.fromkeys(i for f in group for i in f.ids))
    fixes = [f for f in group if f.fixed]
    best = _best_fix(fixes, first.installed)
    ranked = max(group, key=lambda f: f.severity)
    return Finding(
        id=first.id,
        package=first.package,
        installed=first.installed,
        severity=ranked.severity,
        severity_source=ranked.severity_source,
        source="+".join(dict.fromkeys(f.source for f in group)),
        aliases=tuple(i for i in ids if i != first.id),
        advisories=tuple(dict.fromkeys(a for f in group for a in f.advisories)),
        fixed=best.fixed if best else "",
        fix_state=best.fix_state if best else first.fix_state,
        ecosystem=first.ecosystem or next((f.ecosystem for f in group if f.ecosystem), ""),
        title=first.title or next((f.title for f in group if f.title), ""),
        kind=first.kind,
        merged=tuple(dict.fromkeys(m for f in group
                                   for m in (f.merged or (f"{f.source}:{f.id}",)))),
        extra=first.extra,
    )


def _best_fix(fixes: list[Finding], installed: str) -> Finding | None:
    """The lowest fixed version above the installed one when the versions compare, else the
    first record's fix."""
    if not fixes:
        return None
    from packaging.version import InvalidVersion, Version

    try:
        have = Version(installed) if installed else None
        above = [(Version(f.fixed), f) for f in fixes]
    except InvalidVersion:
        return fixes[0]
    above = [(v, f) for v, f in above if have is None or v > have] or above
    return min(above, key=lambda pair: pair[0])[1]
