"""``pipeline rollback``: return an app to an earlier revision (or blue/green colour)."""

from __future__ import annotations

import argparse

from pipelinelib.commands import add_app_target
from pipelinelib.context import Context

DESCRIPTION = """\
Roll APP in NAMESPACE back. Every Deployment, StatefulSet and DaemonSet the app owns gets
the pod template of an earlier revision, as its controller keeps them (ReplicaSets,
ControllerRevisions): the one before the live revision by default, --to-revision N, or
--to-git-revision SHA (the revision our record says was built from that commit). Then it
waits with watches, like a rollout. A blue/green app rolls back by switching its Services
to the colour that was live before (refused when that colour is not healthy).

Holds the app's deploy lock, so it never races a rollout. Idempotent: a re-run after
success (or after being killed) changes nothing; the next `pipeline rollout` clears the
rolled-back mark. --list shows the revisions kept (number, git revision, who, when,
image digest). --dry-run shows what would change. Audited as action "rollback".

By environment (--env ENV --repo ENV_STATE): the namespace and cluster come from
environments/ENV.yaml and the CI user must hold the swap role of ENV in the policy (default
its promote role). In a protected environment the target must run only digests that a
valid signed promotion (and, under four eyes, approval) carried into ENV before (the
promotion records in the env-state repository's history, checked against the trust root):
otherwise refused, exit 2, naming environment, app and revision, audited, nothing written.
Without --env, a namespace labelled pipelinelib.dev/protected=true refuses the rollback.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_app_target(parser)
    parser.add_argument("--to-revision", type=int, metavar="N",
                        help="the controller's revision number (see --list)")
    parser.add_argument("--to-git-revision", metavar="SHA",
                        help="the revision deployed from this git commit (7+ hex digits)")
    parser.add_argument("--list", "--history", dest="list", action="store_true",
                        help="list the kept revisions and change nothing")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for readiness (default 300)")
    parser.add_argument("--lock-timeout", type=float, default=300.0,
                        help="seconds to queue behind a running rollout (default 300)")
    parser.add_argument("--lock-ttl", type=int, default=30,
                        help="seconds a lease outlives a holder that stopped renewing")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.commands.rollout import kube_from_args
    from pipelinelib.errors import BadInput
    from pipelinelib.job import Job
    from pipelinelib.pipelines.rollback import RollbackOptions, rollback
    from pipelinelib.steps.rollback import revision_history

    if args.environment and args.list:
        raise BadInput("--list reads one namespace", field="--list",
                       expected="--list with -n NAMESPACE, without --env")
    ctx.app = ctx.app or args.app
    kube_from_args(args, ctx)
    if args.list:
        for revision in revision_history(ctx, app=args.app, namespace=args.namespace or args.app):
            print(revision.describe())
        return 0
    options = RollbackOptions(
        app=args.app, environment=args.environment, repo=args.repo, branch=args.branch,
        namespace=args.namespace, to_revision=args.to_revision,
        to_git_revision=args.to_git_revision, timeout=args.timeout,
        lock_timeout=args.lock_timeout, lock_ttl=args.lock_ttl)
    with Job("rollback", ctx, args.report_dir) as job:
        rollback(job, ctx, options)
    return job.exit_code
