"""The scan job: read scanner reports and/or run scanners, apply the policy, record the
verdict against the image digest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipelinelib.context import Context
from pipelinelib.errors import BadInput
from pipelinelib.job import Job


@dataclass(frozen=True)
class ScanOptions:
    """Where findings come from (reports, OSV-Scanner on an image or lockfiles, Clair),
    the policy, and the image the verdict is recorded against."""

    reports: list[str] = field(default_factory=list)  # [FORMAT:]FILE
    osv_image: str | None = None
    lockfiles: list[str] = field(default_factory=list)  # [PARSER:]PATH
    local_db: str | None = None
    osv_scanner: str | None = None
    clair: str | None = None
    clair_matcher: str | None = None
    policy: str | None = None
    fail_on: str | None = None
    only_fixable: bool | None = None
    image: str | None = None
    digest: str | None = None
    out_dir: str = "."


def scan(job: Job, ctx: Context, options: ScanOptions) -> list[str]:
    """Validate every input, scan, gate; returns the policy checklist (one line a finding
    or rule) for the console."""
    from pipelinelib.scan.model import dedupe
    from pipelinelib.scan.parsers import FORMATS, parse_report
    from pipelinelib.scan.policy import load_policy
    from pipelinelib.steps import scan as steps

    policy = load_policy(options.policy, fail_on=options.fail_on,
                         only_fixable=options.only_fixable)
    reports = []
    for item in options.reports:
        fmt, _, path = item.partition(":") if item.split(":", 1)[0] in FORMATS else (
            "auto", "", item)
        reports.append((path, fmt))
    if not (reports or options.osv_image or options.clair or options.lockfiles):
        raise BadInput("nothing to scan", field="--report/--osv-image/--lockfile/--clair",
                       expected="at least one report or scanner")
    if options.clair and not options.image:
        raise BadInput("--clair needs --image REGISTRY/REPO", field="--image")
    bad_lockfiles = steps.lockfile_problems(options.lockfiles)
    if bad_lockfiles:
        raise BadInput("; ".join(bad_lockfiles))
    findings = steps.read_findings(reports)  # validates every report before any write
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if options.osv_image:
        from pipelinelib.adapters.osv_scanner import find_binary

        out = out_dir / "osv-scanner.json"
        job.run(steps.osv_scan_image, ctx, options.osv_image, local_db=options.local_db,
                binary=find_binary(options.osv_scanner), out=out)
        findings = dedupe([*findings, *parse_report(out, "osv-scanner")])
    if options.lockfiles:
        from pipelinelib.adapters.osv_scanner import find_binary

        scanned = job.run(steps.osv_scan_lockfiles, ctx, options.lockfiles,
                          local_db=options.local_db, binary=find_binary(options.osv_scanner),
                          out_dir=out_dir)
        findings = dedupe([*findings, *(
            f for out in scanned.outputs["reports"]
            for f in parse_report(out, "osv-scanner"))])
    if options.clair and options.image:
        from pipelinelib.imageref import parse

        ref = parse(options.image)
        out = out_dir / "clair.json"
        job.run(steps.clair_scan_image, ctx, ref.registry, ref.repository,
                options.digest or ref.digest or ref.tag or "latest", out,
                clair=options.clair, clair_matcher=options.clair_matcher)
        findings = dedupe([*findings, *parse_report(out, "clair")])
    result = job.run(steps.scan_gate, ctx, findings, policy, image=options.image or "",
                     digest=options.digest or "")
    return list(result.outputs["checklist"])
