"""``pipeline annotate``: record a deployment's outcome in git, Kubernetes, CI and the audit."""

from __future__ import annotations

import argparse
import json
import sys

from pipelinelib.context import Context

DESCRIPTION = """\
Record a deployment as "Successfully Deployed" or "Failed Deployment":

  git         tag deployment-NNNN on the commit (success; --per-environment numbers
              deployment-ENV-NNNN) pushed to origin, and the state note
              (refs/notes/pipelinelib-state: deployed or broken) pushed to origin
  kubernetes  annotations pipelinelib.dev/deployment-status ... on --workload
  CI server   the Jenkins build description / GoCD comment (when running there with
              PIPELINELIB_JENKINS_TOKEN / PIPELINELIB_GOCD_TOKEN)
  audit       one `deployment` event (PIPELINE_AUDIT_FILE, PIPELINE_AUDIT_URL ...)

A re-run for the same deployment (same commit, environment and CI build) writes nothing.
Racing jobs get unique tag numbers. A sink outage spools the audit event and shows as a
warning. In a job, register the annotate step with job.always(...) so the failure
annotation is written even when an earlier step failed.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="the environment deployed to")
    parser.add_argument("--result", choices=("success", "failure"), required=True)
    parser.add_argument("--app", default="", help="the app (audit target)")
    parser.add_argument("--revision", default="",
                        help="the deployed commit (default: the CI server's GIT_COMMIT / "
                        "GO_REVISION, else HEAD)")
    parser.add_argument("--repo", default=".", help="the git clone (default: .)")
    parser.add_argument("--digest", default="", help="the deployed image digest (sha256:...)")
    parser.add_argument("--workload", default="",
                        help="the Kubernetes workload to annotate, e.g. deployment/hello")
    parser.add_argument("--namespace", default="", help="the workload's namespace")
    parser.add_argument("--workload-from", metavar="REPORT_DIR", default="",
                        help="annotate the workload a `rollout` or `swap` run deployed, read "
                        "from its report directory (blue/green: deployment/APP-COLOUR, the "
                        "colour rolled out or now live; else deployment/APP) and its namespace")
    parser.add_argument("--per-environment", action="store_true",
                        default=None, help="number tags per environment (deployment-ENV-NNNN);"
                        " default from PIPELINE_TAG_PER_ENVIRONMENT=1")
    parser.add_argument("--reason", default="", help="why (e.g. the failure's message)")
    parser.add_argument("--output", choices=("text", "json"), default="text")


def run(args: argparse.Namespace, ctx: Context) -> int:
    import os

    from pipelinelib.job import Job
    from pipelinelib.steps.annotate import annotate_deployment

    ctx.environment, ctx.app = args.env, args.app
    ctx.revision = args.revision or ctx.ci.revision
    per_env = args.per_environment
    if per_env is None:
        per_env = os.environ.get("PIPELINE_TAG_PER_ENVIRONMENT", "") in ("1", "true", "yes")
    with Job("annotate", ctx, args.report_dir) as job:
        workload, namespace = args.workload, args.namespace
        if args.workload_from:
            from pipelinelib.steps.annotate import workload_from_report

            workload, namespace = workload_from_report(args.workload_from, args.app,
                                                       namespace, required=args.result ==
                                                       "success")
        result = job.run(annotate_deployment, ctx, repo=args.repo, digest=args.digest,
                         workload=workload, namespace=namespace,
                         result=args.result, per_environment=per_env, reason=args.reason)
        if args.output == "json":
            json.dump(ctx.secrets.redact(result.to_dict()), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(result.summary)
    return job.exit_code
