"""``pipeline perf``: the performance budget over Lighthouse (and coach) JSON reports."""

from __future__ import annotations

import argparse
import os

from pipelinelib.context import Context

DESCRIPTION = """\
Check Lighthouse JSON reports (lighthouse --output json) and sitespeed.io coach
reports against a budget: minimum category scores (performance, accessibility,
best-practices, seo; coach-<category>) and maximum metrics such as
largest-contentful-paint, total-blocking-time, cumulative-layout-shift and
total-byte-weight. A report that could not measure something the budget names fails.

Several reports of the same URL (repeat --report, or a glob such as
'reports/lighthouse-*.json') are runs of one measurement: as Lighthouse does
(computeMedianRun), runs with a runtime error or without FCP/TTI are dropped and
the median run (closest to the median FCP and TTI) is judged; the evidence shows
every run's values and which run was judged. Run Lighthouse 3 times or more: one
run is a noisy sample on a busy machine.
With --image and --digest the result is recorded against the image as a signed perf
attestation (see docs/security.md), which promotion can require (policy `gates: [perf]`).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", action="append", required=True, metavar="FILE",
                        help="a Lighthouse or coach JSON report, or a glob of them (repeatable; "
                             "several runs of one URL: the median run is judged)")
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
        reports = [(path, read_report(path)) for path in report_files(args.report)]
        result = job.run(perf_budget, ctx, reports, budget, image=args.image,
                         digest=args.digest)
        lines = result.outputs["checklist"]
    if isinstance(job.error, GateFailed):
        lines = job.error.evidence
    show(ctx, "performance budget:", lines)
    return job.exit_code


def report_files(patterns: list[str]) -> list[str]:
    """Each --report as given, or the files its glob matches (sorted); none is bad input."""
    import glob

    from pipelinelib.errors import BadInput

    files: list[str] = []
    unmatched: list[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern) and not os.path.exists(pattern):
            matched = sorted(glob.glob(pattern))
            files += matched
            if not matched:
                unmatched.append(pattern)
        else:
            files.append(pattern)
    if unmatched:
        raise BadInput(f"no report matches {', '.join(map(repr, unmatched))}", field="--report",
                       expected="a Lighthouse or coach JSON report, or a glob matching some")
    return files
