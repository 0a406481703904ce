"""``pipeline apply ENV``: bring an environment to its desired-state spec."""

from __future__ import annotations

import argparse
import os

from pipelinelib.context import Context

DESCRIPTION = """\
Apply environments/ENV.yaml from the env-state repository to the cluster: only the apps
whose plan is not empty, in priority order (lowest number first), apps of equal priority
in parallel (at most --max-parallel, default the spec's max_parallel or 20). Each app goes
through the rollout step (wait for health, roll back on failure, prune). Fail fast: after
a failure no new app starts; every app's outcome is reported. Running it again after
success changes nothing and writes nothing. Blue/green apps (strategy: blue-green) get
the idle colour; with await_promotion the command stops there, the colour ready, and exits 5
so CI can pause for a person; `pipeline swap --env ENV --app APP` then switches.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", metavar="ENV", help="environment name (environments/ENV.yaml)")
    parser.add_argument("--repo", default=os.environ.get("PIPELINE_ENV_REPO", "."),
                        help="env-state repository checkout (default $PIPELINE_ENV_REPO or .)")
    parser.add_argument("--app", action="append", dest="apps", metavar="APP",
                        help="apply only this app (repeatable)")
    parser.add_argument("--max-parallel", type=int, help="apps of one priority applied at once")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from pipelinelib.envspec.load import environment_path, load_environment
    from pipelinelib.job import Job
    from pipelinelib.promotion.hotfix import warnings
    from pipelinelib.steps.apply import apply_environment

    ctx.environment = args.env
    with Job("apply", ctx, args.report_dir) as job:
        env = load_environment(environment_path(args.repo, args.env), root=args.repo)
        for warning in warnings(env.root or Path(args.repo), env.name):
            ctx.log.warning(warning)
        job.run(apply_environment, ctx, env, args.apps, args.max_parallel)
    return job.exit_code
