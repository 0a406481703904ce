"""``pipeline scan``: the security gate over scanner reports, OSV-Scanner or Clair."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from pipelinelib.context import Context

if TYPE_CHECKING:
    from pipelinelib.pipelines.scan import ScanOptions

DESCRIPTION = """\
Security gate: read vulnerability findings, apply the policy, record the verdict
against the image digest, fail on what the policy does not accept.

Findings come from any mix of:
  --report FILE        a Trivy, Grype, OSV-Scanner or Clair v4 JSON report (repeatable;
                       the format is detected, or give FORMAT:FILE, e.g. trivy:out.json)
  --osv-image IMAGE    run OSV-Scanner on IMAGE exported from the Docker engine
                       (`osv-scanner scan image --archive`); with --local-db DIR fully offline
  --lockfile PATH      run OSV-Scanner on a lockfile (requirements.txt, poetry.lock,
                       package-lock.json, go.mod...; repeatable; PARSER:PATH for an
                       unusual name); with --local-db DIR fully offline
  --clair URL          index IMAGE in Clair v4 and read its vulnerability report

Policy (--policy FILE, YAML): fail_on (severity), only_fixable, unknown_severity,
secrets (fail|warn; Trivy secrets fail by default), misconfigurations (a severity, default
fail_on, or warn), and ignore entries with id, reason and expires; an expired ignore fails
the gate. An ignore names one vulnerability (its id or an alias), never a vendor advisory.
With --image REGISTRY/REPO and --digest sha256:... the verdict is stored in the registry
as REGISTRY/REPO:sha256-<hex>.scan, which promotion checks.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", action="append", default=[], metavar="[FORMAT:]FILE",
                        help="a scanner JSON report (repeatable)")
    parser.add_argument("--osv-image", metavar="IMAGE", help="scan this engine image with "
                        "OSV-Scanner")
    parser.add_argument("--lockfile", action="append", default=[], metavar="[PARSER:]PATH",
                        help="scan this lockfile with OSV-Scanner (repeatable)")
    parser.add_argument("--local-db", metavar="DIR",
                        default=os.environ.get("PIPELINE_OSV_DB") or None,
                        help="OSV offline database directory "
                        "(DIR/osv-scanner/<Ecosystem>/all.zip), or a directory of OSV "
                        "advisories (DIR/<Ecosystem>/*.json); default $PIPELINE_OSV_DB (an "
                        "agent's mirror when it has no internet)")
    parser.add_argument("--osv-scanner", metavar="PATH", help="the osv-scanner binary "
                        "(default $PIPELINELIB_OSV_SCANNER or PATH)")
    parser.add_argument("--clair", metavar="URL", help="Clair v4 indexer URL (combo mode)")
    parser.add_argument("--clair-matcher", metavar="URL", help="Clair matcher URL if apart")
    parser.add_argument("--policy", metavar="FILE", help="the scan policy (YAML)")
    parser.add_argument("--fail-on", help="override the policy's severity threshold")
    parser.add_argument("--only-fixable", action="store_true", default=None,
                        help="fail only on findings that have a fix")
    parser.add_argument("--image", metavar="REGISTRY/REPO", help="record the verdict here")
    parser.add_argument("--digest", metavar="sha256:...", help="the image digest to record "
                        "against")


def options(args: argparse.Namespace) -> ScanOptions:
    """The scan pipeline's options from the parsed flags."""
    from pipelinelib.pipelines.scan import ScanOptions

    return ScanOptions(reports=list(args.report), osv_image=args.osv_image,
                       lockfiles=list(args.lockfile), local_db=args.local_db,
                       osv_scanner=args.osv_scanner, clair=args.clair,
                       clair_matcher=args.clair_matcher, policy=args.policy,
                       fail_on=args.fail_on, only_fixable=args.only_fixable,
                       image=args.image, digest=args.digest, out_dir=args.report_dir or ".")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.errors import GateFailed
    from pipelinelib.job import Job
    from pipelinelib.pipelines.scan import scan
    from pipelinelib.report.checklist import show

    checklist: list[str] = []
    with Job("scan", ctx, args.report_dir) as job:
        checklist = scan(job, ctx, options(args))
    if isinstance(job.error, GateFailed):
        checklist = job.error.evidence
    show(ctx, "scan policy:", checklist)
    return job.exit_code
