"""``pipeline promote APP --from ENV --to ENV``: promote an image digest, by commit."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from pipelinelib.context import Context

if TYPE_CHECKING:
    from pipelinelib.pipelines.promote import PromoteOptions

DESCRIPTION = """\
Copy APP's exact image digest from the --from environment's spec to the --to
environment's spec (never rebuilt), after checking: the CI user may promote into --to
(policy.yaml), the registry still has the image, its gates passed, and — where the policy
asks for four eyes — someone else approved this exact digest and spec (--approve).
The change is one commit to the env-state repository, pushed to its origin (concurrent
promotions are serialized: a rejected push is redone on the new head), then applied.
--all promotes every app both environments share; several apps into an environment with
four eyes are approved once, as one set (every app, digest and resulting spec), and
promoted in one commit; any member changing makes that approval stale. A hot-fix
(--hotfix --image REF --reason TEXT) goes straight to --to and warns until its commit is
in the main branch.
Identity comes from the CI server (Jenkins BUILD_USER_ID, GoCD GO_TRIGGER_USER) only.
Refusals exit 2, change nothing and are audited.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("apps", metavar="APP", nargs="*", help="app(s) to promote")
    parser.add_argument("--all", action="store_true", help="every app of --from also in --to")
    parser.add_argument("--from", dest="source", metavar="ENV", help="source environment")
    parser.add_argument("--to", dest="target", metavar="ENV", required=True,
                        help="target environment")
    parser.add_argument("--repo", default=os.environ.get("PIPELINE_ENV_REPO"),
                        help="env-state repository: a clone whose origin receives the commit, "
                        "or the origin URL (default $PIPELINE_ENV_REPO)")
    parser.add_argument("--branch", default=os.environ.get("PIPELINE_ENV_BRANCH", "main"),
                        help="env-state branch (default main)")
    parser.add_argument("--approve", action="store_true",
                        help="record your approval of this promotion (four eyes)")
    parser.add_argument("--hotfix", action="store_true", help="promote a hot-fix build")
    parser.add_argument("--image", help="hot-fix: the image (REPOSITORY@DIGEST or :TAG)")
    parser.add_argument("--reason", default="", help="hot-fix: why (mandatory)")
    parser.add_argument("--source-repo",
                        help="hot-fix: the app's git repository (back-merge check)")
    parser.add_argument("--main-branch", default="main", help="hot-fix: the app's main branch")
    parser.add_argument("--no-apply", action="store_true", help="commit only; do not apply")
    parser.add_argument("--via-pull-request", action="store_true",
                        help="an environment promoted through a branch (preprod via prod): "
                        "open/update the pull request, merge it when its reviews approve, "
                        "apply when merged (docs/queue.md)")


def options(args: argparse.Namespace) -> PromoteOptions:
    """The promote pipeline's options from the parsed flags (checked: ``BadInput``)."""
    from pipelinelib.pipelines.promote import PromoteOptions

    options = PromoteOptions(
        target=args.target, repo=args.repo, branch=args.branch, apps=list(args.apps),
        all_apps=args.all, source=args.source, approve=args.approve, hotfix=args.hotfix,
        image=args.image, reason=args.reason, source_repo=args.source_repo,
        main_branch=args.main_branch, apply=not args.no_apply,
        via_pull_request=args.via_pull_request)
    options.check()
    return options


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.job import Job
    from pipelinelib.pipelines.promote import promote

    promote_options = options(args)
    ctx.environment = args.target
    with Job("promote", ctx, args.report_dir) as job:
        promote(job, ctx, promote_options)
    return job.exit_code
