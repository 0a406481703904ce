"""``pipeline perf``: the performance budget over Lighthouse (and coach) JSON reports."""

from __future__ import annotations

import argparse

from pipelinelib.context import Context

DESCRIPTION = """\
Check Lighthouse JSON reports (lighthouse --output json) and sitespeed.io coach
reports against a budget: minimum category scores (performance, accessibility,
best-practices, seo; coach-<category>) and maximum metrics such as
largest-contentful-paint, total-blocking-time, cumulative-layout-shift and
total-byte-weight. A report that could not measure something the budget names fails.
With --image and --digest the result is recorded against the image as a signed perf
attestation (see docs/security.md), which promotion can require (policy `gates: [perf]`).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", action="append", required=True, metavar="FILE",
                        help="a Lighthouse or coach JSON report (repeatable)")
    parser.add_argument("--budget", required=True, metavar="FILE", help="the budget (YAML)")
    parser.add_argument("--image", metavar="REGISTRY/REPOSITORY",
                        help="record the result, signed, against this image (with --digest)")
    parser.add_argument("--digest", metavar="sha256:...", help="the image digest measured")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.errors import GateFailed
    from pipelinelib.job import Job
    from pipelinelib.perf.lighthouse import load_budget, read_report
    from pipelinelib.report.checklist import show
    from pipelinelib.steps.perf import perf_budget

    lines: list[str] = []
    with Job("perf", ctx, args.report_dir) as job:
        budget = load_budget(args.budget)
        reports = [(path, read_report(path)) for path in args.report]
        result = job.run(perf_budget, ctx, reports, budget, image=args.image,
                         digest=args.digest)
        lines = result.outputs["checklist"]
    if isinstance(job.error, GateFailed):
        lines = job.error.evidence
    show(ctx, "performance budget:", lines)
    return job.exit_code
