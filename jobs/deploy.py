#!/usr/bin/env python3
"""Deploy job: roll an app's manifests out to a cluster (seeds 000-003).

Thin: `pipeline rollout`'s own parser (same options, same environment defaults: APP,
NAMESPACE, PIPELINE_FROM_BUILD, PIPELINE_ALLOWED_NAMESPACES, PIPELINE_REPORT_DIR, ...), one
rollout step, the exit code (5 when a blue/green rollout awaits promotion). Copy it to
compose your own job from steps.

    python jobs/deploy.py deploy/ --app web --namespace web
    python jobs/deploy.py k8s/ --app web --from-build reports/build
    python jobs/deploy.py k8s/ --app uro --blue-green --await-promotion  # exit 5

Cluster: PIPELINE_KUBECONFIG or KUBECONFIG (--kubeconfig, --context). Identity and build URL
come from the CI server (BUILD_USER_ID, GO_TRIGGER_USER, ...).
"""

from __future__ import annotations

import sys

from pipelinelib import Context, Job
from pipelinelib.cli import command_parser
from pipelinelib.commands.rollout import kube_from_args, rollout_options
from pipelinelib.errors import BadInput, PipelineError
from pipelinelib.log import configure
from pipelinelib.steps.rollout import rollout


def main(argv: list[str] | None = None) -> int:
    args = command_parser("rollout", prog="jobs/deploy.py").parse_args(argv)
    secrets = configure(args.log_format, args.log_level)
    ctx = Context(app=args.app, revision=args.revision or "", dry_run=args.dry_run,
                  secrets=secrets)
    try:
        if args.undo:
            raise BadInput("the deploy job only rolls out", field="--undo",
                           expected="`pipeline rollback` to return to a revision")
        options = rollout_options(args)
        kube_from_args(args, ctx)
    except PipelineError as exc:
        print(f"deploy: {secrets.redact_text(exc.one_line())}", file=sys.stderr)
        return int(exc.exit_code)
    with Job("deploy", ctx, report_dir=args.report_dir) as job:
        job.run(rollout, ctx, args.manifests, app=args.app, namespace=args.namespace or args.app,
                **options)
    return job.exit_code  # 5 when a blue/green rollout awaits promotion (Job's rule)


if __name__ == "__main__":
    sys.exit(main())
