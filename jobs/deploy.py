#!/usr/bin/env python3
"""Deploy job: roll an app's manifests out to a cluster (seeds 000-003).

Thin: parameters from the CI environment or flags, one rollout step, the exit code.

    python jobs/deploy.py --app web --manifests deploy/ --namespace web
    python jobs/deploy.py --app web --manifests k8s/ --from-build reports/build
    python jobs/deploy.py --app uro --manifests k8s/ --blue-green --await-promotion  # exit 5

Environment: APP, MANIFESTS, NAMESPACE, PIPELINE_FROM_BUILD (a build's report dir whose
pushed digests pin the manifests' images), GIT_COMMIT / GO_REVISION_*, KUBECONFIG or
PIPELINE_KUBECONFIG (+ PIPELINE_KUBE_CONTEXT), PIPELINE_ALLOWED_NAMESPACES,
PIPELINE_REPORT_DIR. Identity and build URL come from the CI server (BUILD_USER_ID, ...).
"""

from __future__ import annotations

import argparse
import os
import sys

from pipelinelib import Context, Job
from pipelinelib.errors import EXIT_AWAITING_PROMOTION, EXIT_OK
from pipelinelib.log import configure


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", default=env.get("APP"), required=not env.get("APP"))
    parser.add_argument("--manifests", default=env.get("MANIFESTS"),
                        required=not env.get("MANIFESTS"))
    parser.add_argument("--namespace", default=env.get("NAMESPACE"))
    parser.add_argument("--revision", default=env.get("GIT_COMMIT", ""))
    parser.add_argument("--timeout", type=float, default=float(env.get("ROLLOUT_TIMEOUT", 300)))
    parser.add_argument("--from-build", default=env.get("PIPELINE_FROM_BUILD"),
                        help="pin images to what `pipeline build` pushed (its report dir)")
    parser.add_argument("--image", action="append", default=[], help="NAME=REF@sha256:...")
    parser.add_argument("--blue-green", action="store_true")
    parser.add_argument("--await-promotion", action="store_true")
    parser.add_argument("--no-rollback", action="store_true")
    parser.add_argument("--report-dir", default=env.get("PIPELINE_REPORT_DIR"))
    parser.add_argument("--log-format", default="auto", choices=("auto", "console", "json"))
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)

    ctx = Context(app=args.app, revision=args.revision, dry_run=args.dry_run,
                  secrets=configure(args.log_format))
    allowed = [n for n in env.get("PIPELINE_ALLOWED_NAMESPACES", "").split(",") if n]
    awaiting = False
    with Job("deploy", ctx, report_dir=args.report_dir) as job:
        from pipelinelib.kube.images import pins_from
        from pipelinelib.steps.rollout import rollout

        result = job.run(rollout, ctx, args.manifests, app=args.app,
                         images=pins_from(args.from_build, args.image),
                         namespace=args.namespace or args.app, timeout=args.timeout,
                         rollback_on_failure=not args.no_rollback,
                         allowed_namespaces=allowed or None, blue_green=args.blue_green,
                         await_promotion=args.await_promotion)
        awaiting = bool(result.outputs.get("awaiting_promotion"))
    if job.exit_code == EXIT_OK and awaiting:
        return EXIT_AWAITING_PROMOTION
    return job.exit_code


if __name__ == "__main__":
    sys.exit(main())
