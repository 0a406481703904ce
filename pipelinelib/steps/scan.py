"""The scan gate: collect findings (reports, OSV-Scanner, Clair), apply the policy, record it.

Procedure: read every input and the policy (bad input -> exit 2, nothing recorded) ->
run scanners that were asked for -> evaluate -> record the verdict against the image
digest (attestation ``scan``) -> fail with the blocking findings as evidence.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from pipelinelib.context import Context
from pipelinelib.errors import GateFailed
from pipelinelib.result import StepResult
from pipelinelib.scan.model import MISCONFIGURATION, SECRET, VULNERABILITY, Finding, dedupe
from pipelinelib.scan.parsers import parse_doc, parse_report
from pipelinelib.scan.policy import ScanPolicy, evaluate
from pipelinelib.step import step


@step("osv-scan")
def osv_scan_image(ctx: Context, image: str, *, local_db: str | None, binary: str | None,
                   out: str | Path) -> StepResult:
    """Export ``image`` from the engine (``docker save``) and scan it with OSV-Scanner."""
    import json

    from pipelinelib.adapters.osv_scanner import prepare_local_db

    scanner = ctx.scanner("osv-scanner", binary=binary)
    with tempfile.TemporaryDirectory(prefix="pipelinelib-scan-") as tmp:
        if local_db:
            local_db = str(prepare_local_db(local_db, tmp))
        archive = Path(tmp) / "image.tar"
        ctx.engine.save(image, str(archive))
        report = scanner.scan_archive(archive, local_db=local_db, offline=bool(local_db))
    Path(out).write_text(json.dumps(report, indent=1))
    findings = parse_doc(report, "osv-scanner", str(out))
    return StepResult.of("osv-scan", [], summary=f"osv-scanner: {len(findings)} finding(s)",
                         report=str(out), findings=len(findings))


@step("osv-scan-lockfile")
def osv_scan_lockfiles(ctx: Context, lockfiles: list[str], *, local_db: str | None,
                       binary: str | None, out_dir: str | Path) -> StepResult:
    """Scan each lockfile with OSV-Scanner (``scan source --lockfile``); one report each,
    ``OUT_DIR/osv-scanner-lockfile-N.json``."""
    import json

    from pipelinelib.adapters.osv_scanner import prepare_local_db

    scanner = ctx.scanner("osv-scanner", binary=binary)
    reports, total = [], 0
    with tempfile.TemporaryDirectory(prefix="pipelinelib-scan-") as tmp:
        if local_db:
            local_db = str(prepare_local_db(local_db, tmp))
        for n, lockfile in enumerate(lockfiles, 1):
            report = scanner.scan_lockfile(lockfile, local_db=local_db,
                                           offline=bool(local_db))
            out = Path(out_dir) / f"osv-scanner-lockfile-{n}.json"
            out.write_text(json.dumps(report, indent=1))
            found = len(parse_doc(report, "osv-scanner", str(out)))
            ctx.log.info("osv-scanner lockfile", lockfile=lockfile, findings=found)
            reports.append(str(out))
            total += found
    return StepResult.of("osv-scan-lockfile", [],
                         summary=f"osv-scanner: {total} finding(s) in {len(lockfiles)} "
                                 "lockfile(s)", reports=reports, findings=total)


def lockfile_problems(lockfiles: list[str]) -> list[str]:
    """What is wrong with ``--lockfile`` values (``PATH`` or OSV-Scanner's ``PARSER:PATH``)."""
    problems = []
    for item in lockfiles:
        path = Path(item)
        if not path.exists() and ":" in item:
            path = Path(item.split(":", 1)[1])
        if not path.is_file():
            problems.append(f"--lockfile {item}: no such file (expected a lockfile such as "
                            "requirements.txt, poetry.lock, package-lock.json, go.mod)")
    return problems


@step("clair-scan")
def clair_scan_image(ctx: Context, registry: str, repository: str, reference: str,
                     out: str | Path, *, clair: str, clair_matcher: str | None = None
                     ) -> StepResult:
    """Index ``registry/repository:reference`` with Clair (at ``clair``; its matcher at
    ``clair_matcher`` when apart) and save its vulnerability report (seed 003)."""
    import json

    scanner = ctx.scanner("clair", indexer=clair, matcher=clair_matcher)
    digest, report = scanner.scan_image(ctx.registry(registry), repository, reference)
    Path(out).write_text(json.dumps(report, indent=1))
    findings = parse_doc(report, "clair", str(out))
    return StepResult.of("clair-scan", [], summary=f"clair: {len(findings)} finding(s)",
                         report=str(out), findings=len(findings), digest=digest)


def read_findings(reports: list[tuple[str, str]]) -> list[Finding]:
    """Every report parsed (all validated before anything is written)."""
    found: list[Finding] = []
    for path, fmt in reports:
        found += parse_report(path, fmt)
    return dedupe(found)


@step("scan")
def scan_gate(ctx: Context, findings: list[Finding], policy: ScanPolicy, *,
              image: str = "", digest: str = "", today: dt.date | None = None) -> StepResult:
    """Apply ``policy``; record the verdict against ``image``@``digest``; fail when it blocks."""
    verdict = evaluate(findings, policy, today)
    payload = {
        "kind": "scan",
        "digest": digest,
        "app": ctx.app,
        "revision": ctx.revision,
        "scanners": sorted({f.source for f in findings}),
        **verdict.to_dict(policy),
    }
    actions: list[str] = []
    attested = ""
    if image and digest:
        from pipelinelib.attest import write_attestation

        written = write_attestation(ctx, image, digest, "scan", payload)
        attested = written["reference"]
        if written["changed"]:
            actions.append(f"record scan result as {written['reference']}")
    summary = (
        f"{verdict.total} finding(s): {len(verdict.blocking)} blocking at or above "
        f"{policy.fail_on.name}, {len(verdict.ignored)} ignored, {len(verdict.expired)} "
        f"expired ignore(s)"
    )
    for line in verdict.evidence(policy):
        ctx.log.warning(line) if verdict.passed else ctx.log.error(line)
    checklist = verdict.checklist(policy)
    if not verdict.passed:
        reasons = []
        vulns = [f for f in verdict.blocking if f.kind == VULNERABILITY]
        if vulns:
            reasons.append(f"{len(vulns)} finding(s) at or above {policy.fail_on.name}"
                           f" (first: {policy.line(vulns[0])})")
        for kind, label in ((SECRET, "leaked secret(s)"),
                            (MISCONFIGURATION, "misconfiguration(s)")):
            found = [f for f in verdict.blocking if f.kind == kind]
            if found:
                reasons.append(f"{len(found)} {label} (first: {found[0].line()})")
        if verdict.expired:
            ids = ", ".join(i.id for i in verdict.expired)
            reasons.append(f"EXPIRED ignore(s): {ids}")
        raise GateFailed(
            "scan gate failed: " + "; ".join(reasons),
            hint="upgrade the packages, or add an ignore with a reason and an expiry",
            evidence=checklist,
        )
    return StepResult.of("scan", actions, dry_run=ctx.dry_run, summary=summary,
                         blocking=0, total=verdict.total, ignored=len(verdict.ignored),
                         attestation=attested, checklist=checklist)

