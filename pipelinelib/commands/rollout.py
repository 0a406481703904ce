"""``pipeline rollout``: apply an app's manifests, wait for health, roll back on failure."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `pipeline rollout --help` imports neither the context nor structlog
    from pipelinelib.context import Context

DESCRIPTION = """\
Deploy APP's Kubernetes manifests (a file or directory of multi-document YAML; images
pinned by digest) into NAMESPACE with server-side apply (field manager pipelinelib):
ConfigMaps/Secrets get a content-hash name suffix, dependencies go first, then workloads,
then Services. Waits with watches and fails fast (crash loops, image pulls, unschedulable,
missing config, failed Jobs, progress deadline, readiness timeout) with the pod's events
and log tail, rolls back to the previous revision, then prunes what this app owns and no
longer ships. A rollout whose objects already match writes nothing (`unchanged`).
A Lease per app and namespace serializes concurrent rollouts.
--blue-green deploys the idle colour and switches every Service once it is ready;
with --await-promotion it stops at "ready" with exit 5 (then `pipeline swap`).
--dry-run prints the server-side diff (Secret values masked) and the prune list.
Images: manifests may name images without a digest when --from-build DIR (the report
directory of `pipeline build`) or --image NAME=REF@sha256:... pins them (kbld-style);
every container must end up pinned by digest, and a pin that matches nothing is an error.
--undo is `pipeline rollback` (kept for kubectl habits).
Cluster: $PIPELINE_KUBECONFIG or $KUBECONFIG (--kubeconfig, --context).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.add_argument("manifests", nargs="?", help="manifest file or directory")
    parser.add_argument("--app", default=env.get("APP"), required=not env.get("APP"))
    parser.add_argument("--namespace", "-n", default=env.get("NAMESPACE"),
                        help="target namespace (default: the app's name)")
    parser.add_argument("--revision", default=None, help="git revision being deployed")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for readiness (default 300)")
    parser.add_argument("--no-prune", action="store_true", help="keep owned objects not shipped")
    parser.add_argument("--no-rollback", action="store_true", help="leave a failed rollout")
    parser.add_argument("--allowed-namespaces", default=env.get("PIPELINE_ALLOWED_NAMESPACES"),
                        help="comma-separated namespaces this pipeline may deploy to")
    parser.add_argument("--blue-green", action="store_true", help="deploy as blue/green")
    parser.add_argument("--await-promotion", action="store_true",
                        help="blue/green: do not switch; exit 5 when the new colour is ready")
    parser.add_argument("--lock-timeout", type=float, default=300.0,
                        help="seconds to queue behind another rollout (default 300)")
    parser.add_argument("--lock-ttl", type=int, default=30,
                        help="seconds a lease outlives a holder that stopped renewing")
    parser.add_argument("--image", action="append", default=[], metavar="NAME=REF@DIGEST",
                        help="pin containers whose image is NAME (repeatable)")
    parser.add_argument("--from-build", metavar="REPORT_DIR",
                        default=env.get("PIPELINE_FROM_BUILD"),
                        help="pin the images a `pipeline build` pushed (its --report-dir)")
    parser.add_argument("--undo", action="store_true",
                        help="same as `pipeline rollback` (the previous revision)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context")


def kube_from_args(args: argparse.Namespace, ctx: Context) -> None:
    """Point ``ctx.kube`` at --kubeconfig/--context when given."""
    ctx.use_kube(getattr(args, "kubeconfig", None), getattr(args, "context", None))


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.job import Job

    ctx.app = ctx.app or args.app
    if args.revision:
        ctx.revision = args.revision
    kube_from_args(args, ctx)
    namespace = args.namespace or args.app
    with Job("rollout", ctx, args.report_dir) as job:
        if args.undo:
            from pipelinelib.steps.rollback import rollback

            job.run(rollback, ctx, app=args.app, namespace=namespace, timeout=args.timeout,
                    lock_timeout=args.lock_timeout)
        else:
            from pipelinelib.steps.rollout import rollout

            job.run(rollout, ctx, args.manifests, app=args.app, namespace=namespace,
                    **rollout_options(args))
    return job.exit_code  # 5 when a blue/green rollout awaits promotion (Job's rule)


def rollout_options(args: argparse.Namespace) -> dict:
    """The rollout step's keyword arguments from the parsed flags (validated: BadInput)."""
    from pipelinelib.errors import BadInput
    from pipelinelib.kube.images import pins_from

    if not args.manifests:
        raise BadInput("no manifests given", field="MANIFESTS",
                       expected="a manifest file or directory")
    allowed = [n.strip() for n in (args.allowed_namespaces or "").split(",") if n.strip()]
    return {"timeout": args.timeout, "prune": not args.no_prune,
            "rollback_on_failure": not args.no_rollback,
            "allowed_namespaces": allowed or None, "blue_green": args.blue_green,
            "await_promotion": args.await_promotion, "lock_timeout": args.lock_timeout,
            "lock_ttl": args.lock_ttl, "images": pins_from(args.from_build, args.image)}
