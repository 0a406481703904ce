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
    import re

    from pipelinelib.commands.rollout import kube_from_args
    from pipelinelib.errors import BadInput
    from pipelinelib.job import Job
    from pipelinelib.steps.rollback import revision_history, rollback

    if args.environment and args.list:
        raise BadInput("--list reads one namespace", field="--list",
                       expected="--list with -n NAMESPACE, without --env")
    ctx.app = ctx.app or args.app
    kube_from_args(args, ctx)
    namespace = args.namespace or args.app
    if args.list:
        for revision in revision_history(ctx, app=args.app, namespace=namespace):
            print(revision.describe())
        return 0
    with Job("rollback", ctx, args.report_dir) as job:
        sha = args.to_git_revision
        if sha is not None and args.to_revision is not None:
            raise BadInput("two targets given", field="--to-revision/--to-git-revision",
                           expected="one of them, or neither (the previous revision)")
        if sha is not None and not re.fullmatch(r"[0-9a-f]{7,40}", sha):
            raise BadInput(f"{sha!r} is not a git revision", field="--to-git-revision",
                           expected="7 to 40 lowercase hex digits")
        step_args = dict(to_revision=args.to_revision, to_git_revision=sha,
                         timeout=args.timeout, lock_timeout=args.lock_timeout,
                         lock_ttl=args.lock_ttl)
        if args.environment:
            from pipelinelib.promotion.rollback import rollback_in_environment
            from pipelinelib.promotion.swap import env_state_root

            if not args.repo:
                raise BadInput("no env-state repository given", field="--repo",
                               expected="a checkout or origin URL (or set PIPELINE_ENV_REPO)")
            with env_state_root(args.repo, args.branch) as root:
                rollback_in_environment(job, ctx, root, args.environment, args.app,
                                        **step_args)
        else:
            job.run(rollback, ctx, app=args.app, namespace=namespace, **step_args)
    return job.exit_code
