"""``pipeline swap``: blue/green — switch which colour the app's Services select."""

from __future__ import annotations

import argparse
import os

from pipelinelib.context import Context

DESCRIPTION = """\
Switch every Service of APP (in NAMESPACE) to the other colour (staging <-> live), or to
--to COLOR. Refuses (exit 2) when the target colour's Deployments are not all ready.
Idempotent: when the Services already select the target, nothing is written.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.add_argument("--app", default=env.get("APP"), required=not env.get("APP"))
    parser.add_argument("--namespace", "-n", default=env.get("NAMESPACE"),
                        help="namespace (default: the app's name)")
    parser.add_argument("--to", choices=("blue", "green"), help="target colour")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.commands.rollout import kube_from_args
    from pipelinelib.job import Job
    from pipelinelib.steps.swap import swap

    ctx.app = ctx.app or args.app
    kube_from_args(args, ctx)
    with Job("swap", ctx, args.report_dir) as job:
        job.run(swap, ctx, app=args.app, namespace=args.namespace or args.app, to=args.to)
    return job.exit_code
