"""The scan policy: a severity threshold, only-fixable, and an ignore list that expires.

::

    fail_on: high            # fail on findings at or above this severity
    only_fixable: false      # true: fail only when a fixed version exists
    unknown_severity: high   # how to rank findings whose severity the scanner did not know
    secrets: fail            # a leaked secret (Trivy Secrets) fails the gate; "warn" reports it
    misconfigurations: high  # fail on misconfigurations at or above this severity (default:
                             # fail_on); "warn" reports them only
    ignore:
      - id: CVE-2023-32681   # the advisory id or any of its aliases
        package: requests    # optional: only for this package
        reason: proxy auth is not used; upgrade planned in PROJ-12
        expires: 2026-12-31  # after this date the entry fails the gate, loudly

Unknown keys, a missing reason or expiry, and bad dates are ``BadInput`` with the line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelinelib.errors import BadInput
from pipelinelib.scan.model import MISCONFIGURATION, SECRET, VULNERABILITY, Finding, Severity

TOP_KEYS = {"fail_on", "only_fixable", "unknown_severity", "ignore", "secrets",
            "misconfigurations"}
WARN = "warn"
IGNORE_KEYS = {"id", "package", "reason", "expires"}


@dataclass(frozen=True)
class Ignore:
    """One accepted finding: why, and until when."""

    id: str
    reason: str
    expires: dt.date
    package: str = ""
    line: int | None = None

    def matches(self, finding: Finding) -> bool:
        return self.id in finding.ids and (not self.package or self.package == finding.package)

    def expired(self, today: dt.date) -> bool:
        return today > self.expires


@dataclass(frozen=True)
class ScanPolicy:
    fail_on: Severity = Severity.HIGH
    only_fixable: bool = False
    unknown_severity: Severity = Severity.HIGH
    ignore: tuple[Ignore, ...] = ()
    source: str = ""
    secrets: str = "fail"  # "fail" or "warn"
    misconfigurations: Severity | None = None  # threshold; None: fail_on; see misconfig_warn
    misconfig_warn: bool = False

    def blocks(self, finding: Finding) -> bool:
        """Whether ``finding`` (not ignored) fails the gate under this policy."""
        if finding.kind == SECRET:
            return self.secrets != WARN
        if finding.kind == MISCONFIGURATION:
            threshold = self.misconfig_threshold
            return not self.misconfig_warn and self.rank(finding) >= threshold
        return self.rank(finding) >= self.fail_on and (not self.only_fixable or finding.fixable)

    @property
    def misconfig_threshold(self) -> Severity:
        return self.fail_on if self.misconfigurations is None else self.misconfigurations

    def rank(self, finding: Finding) -> Severity:
        if finding.severity is Severity.UNKNOWN:
            return self.unknown_severity
        return finding.severity

    def line(self, finding: Finding) -> str:
        """``finding.line()``, saying how a finding of unknown severity was ranked."""
        if finding.severity is Severity.UNKNOWN:
            return (f"{finding.line()}; severity unknown, ranked {self.unknown_severity.name} "
                    "(policy unknown_severity)")
        return finding.line()


@dataclass
class Verdict:
    """What the policy decided, with the reasons."""

    blocking: list[Finding] = field(default_factory=list)
    ignored: list[tuple[Finding, Ignore]] = field(default_factory=list)
    expired: list[Ignore] = field(default_factory=list)
    tolerated: list[Finding] = field(default_factory=list)  # below threshold or not fixable
    total: int = 0

    @property
    def passed(self) -> bool:
        return not self.blocking and not self.expired

    def evidence(self, policy: ScanPolicy) -> list[str]:
        lines = [f"{policy.line(f)} >= {policy.fail_on.name}" for f in self.blocking]
        lines += [
            f"EXPIRED IGNORE {i.id}{f' ({i.package})' if i.package else ''} expired on "
            f"{i.expires.isoformat()} ({policy.source}:{i.line}); reason was: {i.reason}"
            for i in self.expired
        ]
        lines += [f"ignored {f.id} in {f.package} until {i.expires}: {i.reason}"
                  for f, i in self.ignored]
        return lines

    def checklist(self, policy: ScanPolicy) -> list[str]:
        """The policy's checks with ✓/✗ and their evidence, rendered as `pipeline gate` does."""
        from pipelinelib.report.checklist import item

        scope = " with a fix" if policy.only_fixable else ""
        expired = [line for line in self.evidence(policy) if line.startswith("EXPIRED")]
        found = self.blocking + self.tolerated + [f for f, _ in self.ignored]
        vulns = [f for f in self.blocking if f.kind == VULNERABILITY]
        secrets = [f for f in found if f.kind == SECRET]
        misconfs = [f for f in found if f.kind == MISCONFIGURATION]
        bar = policy.misconfig_threshold.name
        checks = []
        if secrets or policy.secrets != WARN:
            blocked = [f for f in secrets if f in self.blocking]
            note = ", reported only (policy secrets: warn)" if policy.secrets == WARN else ""
            checks += item(not blocked, f"no leaked secret ({len(secrets)} found{note})",
                           [policy.line(f) for f in secrets])
        if misconfs:
            blocked = [f for f in misconfs if f in self.blocking]
            what = "reported only (policy misconfigurations: warn)" if policy.misconfig_warn \
                else f"{len(blocked)} at or above {bar}"
            checks += item(not blocked, f"no misconfiguration at or above {bar} "
                           f"({len(misconfs)} found, {what})",
                           [policy.line(f) for f in misconfs])
        vuln_total = self.total - len(secrets) - len(misconfs)
        return [
            *item(not vulns, f"no finding at or above {policy.fail_on.name}{scope} "
                  f"({len(vulns)} of {vuln_total})",
                  [policy.line(f) for f in vulns]),
            *checks,
            *item(not self.expired, f"no expired ignore ({len(self.expired)})", expired),
            *item(True, f"{len(self.ignored)} ignored, each with a reason and an expiry",
                  [f"{f.id} in {f.package} until {i.expires}: {i.reason}"
                   for f, i in self.ignored]),
            *item(True, f"{len(self.tolerated)} tolerated (below {policy.fail_on.name}"
                  f"{' or without a fix' if policy.only_fixable else ''})"),
        ]

    def to_dict(self, policy: ScanPolicy) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "fail_on": str(policy.fail_on),
            "only_fixable": policy.only_fixable,
            "total": self.total,
            "blocking": [f.to_dict() for f in self.blocking],
            "ignored": [{**f.to_dict(), "reason": i.reason, "expires": i.expires.isoformat()}
                        for f, i in self.ignored],
            "expired_ignores": [{"id": i.id, "package": i.package, "reason": i.reason,
                                 "expires": i.expires.isoformat()} for i in self.expired],
            "tolerated": len(self.tolerated),
        }


def evaluate(findings: list[Finding], policy: ScanPolicy, today: dt.date | None = None) -> Verdict:
    """Apply ``policy`` to ``findings``; see ``Verdict.passed``."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    verdict = Verdict(total=len(findings))
    verdict.expired = [i for i in policy.ignore if i.expired(today)]
    active = [i for i in policy.ignore if not i.expired(today)]
    for finding in findings:
        entry = next((i for i in active if i.matches(finding)), None)
        if entry is not None:
            verdict.ignored.append((finding, entry))
        elif policy.blocks(finding):
            verdict.blocking.append(finding)
        else:
            verdict.tolerated.append(finding)
    return verdict


def load_policy(path: str | Path | None, **overrides: Any) -> ScanPolicy:
    """Read a policy file (YAML or JSON); ``overrides`` (CLI flags) win when not None."""
    data: dict[str, Any] = {}
    lines: dict[str, int] = {}
    source = str(path or "")
    if path:
        data, lines = _read_with_lines(Path(path))
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise BadInput(f"unknown key {unknown[0]!r}", source=source, line=lines.get(unknown[0]),
                       expected=", ".join(sorted(TOP_KEYS)))
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
    fail_on = Severity.parse(str(data.get("fail_on", "high")), source=source, field="fail_on")
    unknown_sev = Severity.parse(str(data.get("unknown_severity", "high")), source=source,
                                 field="unknown_severity")
    only = data.get("only_fixable", False)
    if not isinstance(only, bool):
        raise BadInput("must be true or false", source=source, field="only_fixable",
                       line=lines.get("only_fixable"))
    secrets = str(data.get("secrets", "fail")).strip().lower()
    if secrets not in ("fail", WARN):
        raise BadInput(f"bad value {data.get('secrets')!r}", source=source, field="secrets",
                       line=lines.get("secrets"), expected="fail or warn")
    misconf_raw = data.get("misconfigurations")
    misconf_warn = str(misconf_raw).strip().lower() == WARN
    misconf = None
    if misconf_raw is not None and not misconf_warn:
        misconf = Severity.parse(str(misconf_raw), source=source, field="misconfigurations")
    raw = data.get("ignore") or []
    if not isinstance(raw, list):
        raise BadInput("must be a list", source=source, field="ignore", line=lines.get("ignore"))
    ignores = tuple(_ignore(e, n, source, lines) for n, e in enumerate(raw))
    return ScanPolicy(fail_on, only, unknown_sev, ignores, source, secrets, misconf, misconf_warn)


def _ignore(entry: Any, n: int, source: str, lines: dict[str, int]) -> Ignore:
    line = lines.get(f"ignore[{n}]")
    where = f"ignore[{n}]"
    if not isinstance(entry, dict):
        raise BadInput("must be a mapping", source=source, field=where, line=line,
                       expected="id, reason, expires")
    unknown = sorted(set(entry) - IGNORE_KEYS)
    if unknown:
        raise BadInput(f"unknown key {unknown[0]!r}", source=source, field=where, line=line,
                       expected=", ".join(sorted(IGNORE_KEYS)))
    for key in ("id", "reason", "expires"):
        if not str(entry.get(key) or "").strip():
            raise BadInput(f"{key} is required", source=source, field=f"{where}.{key}", line=line,
                           expected="every ignore to name the advisory, a reason and an expiry")
    expires = entry["expires"]
    if isinstance(expires, dt.datetime):
        expires = expires.date()
    if not isinstance(expires, dt.date):
        try:
            expires = dt.date.fromisoformat(str(expires))
        except ValueError as exc:
            raise BadInput(f"bad date {expires!r}", source=source, field=f"{where}.expires",
                           line=line, expected="YYYY-MM-DD") from exc
    return Ignore(str(entry["id"]), str(entry["reason"]).strip(), expires,
                  str(entry.get("package") or ""), line)


def _read_with_lines(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    import yaml

    from pipelinelib import yamlsafe

    source = str(path)
    try:
        text, _ = yamlsafe.read(path)
        node = yamlsafe.compose(text, source)
        data = yamlsafe.safe_load(text, source)
    except FileNotFoundError as exc:
        raise BadInput("policy file not found", source=source) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BadInput(f"not valid YAML: {getattr(exc, 'problem', exc)}", source=source,
                       line=mark.line + 1 if mark else None) from exc
    if data is None:
        return {}, {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise BadInput("a policy is a mapping", source=source, expected=", ".join(sorted(TOP_KEYS)))
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        lines[key_node.value] = key_node.start_mark.line + 1
        if key_node.value == "ignore" and isinstance(value_node, yaml.SequenceNode):
            for n, item in enumerate(value_node.value):
                lines[f"ignore[{n}]"] = item.start_mark.line + 1
    return data, lines
