"""``pipeline plan ENV``: what `apply` would change in an environment (and drift)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from pipelinelib.context import Context

DESCRIPTION = """\
Compare the environment's desired-state spec (environments/ENV.yaml in the env-state
repository) with the live cluster and print, per app, what `pipeline apply ENV` would
change: image, replicas, config, resources, env, ports, DNS. Secret values are masked.
Fields changed by hand in the cluster since the last apply are flagged as drift.
Writes nothing. Exit 0: no changes; exit 4: changes pending.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", metavar="ENV", help="environment name (environments/ENV.yaml)")
    parser.add_argument("--repo", default=os.environ.get("PIPELINE_ENV_REPO", "."),
                        help="env-state repository checkout (default $PIPELINE_ENV_REPO or .)")
    parser.add_argument("--output", choices=("text", "json"), default="text",
                        help="text (like terraform plan) or json on stdout")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.envspec.load import environment_path, load_environment
    from pipelinelib.envspec.show import format_plan
    from pipelinelib.errors import EXIT_CHANGES_PENDING, EXIT_OK
    from pipelinelib.job import Job
    from pipelinelib.steps.plan import plan_environment

    ctx.environment = args.env
    with Job("plan", ctx, args.report_dir) as job:
        env = load_environment(environment_path(args.repo, args.env), root=args.repo)
        result = job.run(plan_environment, ctx, env)
    if job.error is not None:
        return job.exit_code
    plans = result.outputs["plans"]
    if args.output == "json":
        json.dump({"environment": args.env, "changes_pending": result.changed,
                   "counts": result.outputs["counts"], "drifted": result.outputs["drifted"],
                   "awaiting_promotion": result.outputs.get("awaiting_promotion", []),
                   "namespaces": result.outputs.get("namespaces", []),
                   "apps": plans}, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(ctx.secrets.redact_text(format_plan(args.env, plans,
                                                  result.outputs.get("namespaces"))))
    return EXIT_CHANGES_PENDING if result.changed else EXIT_OK
