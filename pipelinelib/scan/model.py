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


@dataclass(frozen=True)
class Finding:
    """One advisory affecting one installed package.

    Attributes:
        id: the advisory id as the scanner reports it (CVE-, GHSA-, DSA-, PYSEC-...).
        aliases: other ids of the same advisory.
        package: the affected package name.
        installed: the installed version.
        fixed: the first version with the fix, or "" when none is known.
        severity: normalized severity.
        source: the scanner (``trivy``, ``grype``, ``osv-scanner``, ``clair``).
        ecosystem: the package's ecosystem or type (``PyPI``, ``Debian:12``, ``deb``...).
        title: one short line about the advisory.
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
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def fixable(self) -> bool:
        return bool(self.fixed)

    @property
    def ids(self) -> tuple[str, ...]:
        """The id and every alias."""
        return (self.id, *self.aliases)

    def line(self) -> str:
        """One human line: ``HIGH CVE-... in pkg 1.0 (fixed in 1.1)``."""
        fix = f"fixed in {self.fixed}" if self.fixed else "no fix"
        also = f" [{', '.join(self.aliases)}]" if self.aliases else ""
        return (
            f"{self.severity.name} {self.id}{also} in {self.package} {self.installed} ({fix})"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = str(self.severity)
        data["aliases"] = list(self.aliases)
        data.pop("extra")
        return data


def dedupe(findings: list[Finding]) -> list[Finding]:
    """Drop findings that name the same package+version under an id already seen as alias."""
    seen: dict[tuple[str, str], set[str]] = {}
    kept: list[Finding] = []
    for item in sorted(findings, key=lambda f: (-f.severity, f.package, f.id)):
        key = (item.package, item.installed)
        ids = seen.setdefault(key, set())
        if ids & set(item.ids):
            continue
        ids.update(item.ids)
        kept.append(item)
    return kept
