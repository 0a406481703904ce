"""``pipeline history``: who deployed what, where and when, from git records alone."""

from __future__ import annotations

import argparse

from pipelinelib.commands import metrics
from pipelinelib.context import Context

DESCRIPTION = """\
Every deployment in the window (default: the last 30 days) from the deployment tags and
state notes in git (plus the audit JSONL with --audit-file), followed by the DORA figures.
The same as `pipeline metrics --history`; see `pipeline metrics --help`.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    metrics.add_arguments(parser)
    parser.set_defaults(history=True)


def run(args: argparse.Namespace, ctx: Context) -> int:
    return metrics.run(args, ctx)
