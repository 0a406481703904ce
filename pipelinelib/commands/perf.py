"""``pipeline perf``: measure a page with Lighthouse (or read JSON reports made elsewhere)
and check the performance budget."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from pipelinelib.context import Context

if TYPE_CHECKING:
    from pipelinelib.perf.collect import Measure

DESCRIPTION = """\
Measure a page with Lighthouse, as Lighthouse CI's `lhci collect` does, and check
it against a budget: --serve DIR serves a static directory on a free loopback
port for the measurement, --url measures a page already up. Lighthouse (the
`lighthouse` CLI on PATH or in PIPELINELIB_LIGHTHOUSE; Chromium from CHROME_PATH or
PIPELINELIB_CHROMIUM) runs --runs times (default 3); each report is kept as
REPORT_DIR/lighthouse-<attempt>.json. A run that did not measure the page (a
runtime error) or ran on a CPU-starved host (Lighthouse's own slow-CPU warning:
benchmarkIndex at most 1000, which inflates blocking time) does not count: it is
measured again, up to 2 x --runs attempts within --timeout. The median of the
good runs is judged; if every run was starved they are all judged and the
evidence says so.

Or check Lighthouse JSON reports (lighthouse --output json) and sitespeed.io coach
reports against a budget: minimum category scores (performance, accessibility,
best-practices, seo; coach-<category>) and maximum metrics such as
largest-contentful-paint, total-blocking-time, cumulative-layout-shift and
total-byte-weight. A report that could not measure something the budget names fails.

Several reports of the same URL (repeat --report, or a glob such as
'reports/lighthouse-*.json') are runs of one measurement: as Lighthouse does
(computeMedianRun), runs with a runtime error or without FCP/TTI are dropped and
the median run (closest to the median FCP and TTI) is judged; the evidence shows
every run's values and which run was judged. Run Lighthouse 3 times or more: one
run is a noisy sample on a busy machine. The budget's `aggregation:` changes what
is judged, as Lighthouse CI's aggregationMethod does: `median-run` (the default,
above), `optimistic` (each check on its best value of the runs: lhci's default,
for shared CI agents, where load spoils some runs while a regression in the page
shows in all), `pessimistic` (its worst) or `median` (its median value).

With --image and --digest the result is recorded against the image as a signed perf
attestation (see docs/security.md), which promotion can require (policy `gates: [perf]`).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--serve", metavar="DIR",
                        help="serve this static directory on a free loopback port and measure "
                             "it")
    parser.add_argument("--url", metavar="URL", help="measure this page (http or https)")
    parser.add_argument("--report", action="append", metavar="FILE",
                        help="a Lighthouse or coach JSON report, or a glob of them (repeatable; "
                             "several runs of one URL: the median run is judged)")
    parser.add_argument("--budget", required=True, metavar="FILE", help="the budget (YAML)")
    parser.add_argument("--runs", type=int, default=3, metavar="N",
                        help="good Lighthouse runs to judge the median of (default 3; with "
                             "--serve or --url)")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                        help="deadline for all Lighthouse runs (default 600)")
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
        measure = measure_of(args)
        if measure is not None:
            ctx.lighthouse  # noqa: B018 - finds the binary now: exit 2 before serving anything
        reports = [(path, read_report(path)) for path in report_files(args.report or [])]
        result = job.run(perf_budget, ctx, reports, budget, image=args.image,
                         digest=args.digest, measure=measure)
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


def measure_of(args: argparse.Namespace) -> Measure | None:
    """What to measure (--serve/--url, --runs, --timeout), checked before anything runs;
    every problem reported at once."""
    from pathlib import Path
    from urllib.parse import urlsplit

    from pipelinelib.errors import BadInput
    from pipelinelib.perf.collect import Measure
    from pipelinelib.secrets import clean_url

    given = [f"--{name}" for name in ("serve", "url", "report") if getattr(args, name)]
    if len(given) != 1:
        raise BadInput(f"{' and '.join(given) or 'none of them'} given", field="perf",
                       expected="one of --serve DIR, --url URL or --report FILE")
    if args.report:
        return None
    problems: list[str] = []
    if args.serve and not Path(args.serve, "index.html").is_file():
        problems.append(f"--serve {args.serve!r}: no index.html there "
                        "(expected the static site's directory)")
    if args.url:
        parts = urlsplit(args.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"--url {clean_url(args.url)!r}: expected an http:// or https:// "
                            "URL")
        elif parts.username or parts.password:
            problems.append(f"--url {clean_url(args.url)!r}: no user or password in the URL "
                            "(Lighthouse writes the URL into every report)")
    if not 1 <= args.runs <= 20:
        problems.append(f"--runs {args.runs}: expected 1 to 20")
    if not 0 < args.timeout <= 24 * 3600:
        problems.append(f"--timeout {args.timeout:g}: expected seconds, more than 0")
    if problems:
        raise BadInput("; ".join(problems))
    return Measure(runs=args.runs, out_dir=Path(args.report_dir) if args.report_dir else None,
                   timeout=args.timeout, serve=Path(args.serve) if args.serve else None,
                   url=args.url)
