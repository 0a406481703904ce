"""``pipeline queue``: the deploy queue of seed 003 (deployable refspecs -> master)."""

from __future__ import annotations

import argparse
import os

from pipelinelib.context import Context

DESCRIPTION = """\
Deploy the refspecs marked `deployable` (pipeline state set deployable), one after the
other in the order they became deployable: rebase onto master (a conflict marks the
refspec `broken`, naming the conflicting files in its note, as a commit status and in
the CI build), run the app's pipeline from .pipeline/queue.yaml on master (check stages:
build, scan, gate; deploy stages: migrate, rollout), then land it: master moves to it,
tag deployment-NNNN and note `deployed` "Successfully Deployed", in one atomic push.
A failed pipeline notes "Failed Deployment" and returns the refspec to `development`.
Then every `deployable` and `staged` refspec is rebased onto the new master (pushed with
a lease: a developer's concurrent push is never overwritten; it is retried next run).
--speculative N checks the next N refspecs in parallel, each on top of the ones ahead of
it (as Zuul's gate does), and still deploys strictly in order. One runner at a time
(a lease on refs/pipelinelib/queue-lock). Killed anywhere, a re-run converges.
Git server commit statuses: set PIPELINELIB_GITEA_URL and PIPELINELIB_GITEA_TOKEN.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.add_argument("--repo", default=env.get("PIPELINE_APP_REPO"),
                        help="the app repository's URL, or a clone whose origin is used "
                        "(default $PIPELINE_APP_REPO)")
    parser.add_argument("--config", help="queue configuration file (default: "
                        ".pipeline/queue.yaml as it is on the default branch)")
    parser.add_argument("--speculative", type=int, default=1, metavar="N",
                        help="check the next N refspecs in parallel (default 1: serial)")
    parser.add_argument("--rebase-only", action="store_true",
                        help="only rebase deployable and staged refspecs onto master "
                        "(run on every push to master)")
    parser.add_argument("--lock-ttl", type=float, default=600.0, metavar="SECONDS",
                        help="queue lock lease, renewed between refspecs (default 600)")
    parser.add_argument("--lock-wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for another runner to finish (default 0)")
    parser.add_argument("--workdir", help="scratch directory (default: a temporary one)")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.errors import BadInput
    from pipelinelib.job import Job

    problems = []
    if not args.repo:
        problems.append("--repo: no app repository (expected a URL or clone, or set "
                        "PIPELINE_APP_REPO)")
    if not 1 <= args.speculative <= 16:
        problems.append("--speculative: expected 1..16")
    if args.lock_ttl < 5:
        problems.append("--lock-ttl: expected at least 5 seconds")
    if problems:
        raise BadInput("; ".join(problems), field="; ".join(p.split(":")[0] for p in problems))
    with Job("queue", ctx, args.report_dir) as job:
        from pipelinelib.pipelines.queue import run_queue

        job.run(run_queue, ctx, repo=args.repo, config_path=args.config,
                window=args.speculative, rebase_only=args.rebase_only,
                lock_ttl_s=args.lock_ttl, lock_wait_s=args.lock_wait, workdir=args.workdir,
                report_dir=args.report_dir)
    return job.exit_code
