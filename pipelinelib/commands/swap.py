"""``pipeline swap``: blue/green — switch which colour the app's Services select."""

from __future__ import annotations

import argparse

from pipelinelib.commands import add_app_target
from pipelinelib.context import Context

DESCRIPTION = """\
Switch every Service of APP to the other colour (staging <-> live), or to --to COLOR.
By environment (--env ENV --repo ENV_STATE): the namespace and cluster come from
environments/ENV.yaml (the app must have strategy: blue-green) and the CI user must hold
the swap role of ENV in policy.yaml (default: its promote role); refusals exit 2, change
nothing and are audited, and so is every swap. Without --env: --namespace (default the
app's name) on the current cluster. Refuses (exit 2) when the target colour's Deployments
are not all ready. Idempotent: when the Services already select the target, nothing is
written.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_app_target(parser)
    parser.add_argument("--to", choices=("blue", "green"), help="target colour")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.commands.rollout import kube_from_args
    from pipelinelib.job import Job
    from pipelinelib.pipelines.swap import SwapOptions, swap

    ctx.app = ctx.app or args.app
    kube_from_args(args, ctx)
    options = SwapOptions(app=args.app, environment=args.environment, repo=args.repo,
                          branch=args.branch, namespace=args.namespace, to=args.to)
    with Job("swap", ctx, args.report_dir) as job:
        swap(job, ctx, options)
    return job.exit_code
