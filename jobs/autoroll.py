#!/usr/bin/env python3
"""Auto-roll job (seed 004): given a commit to the env-state repo, apply what it touched.

The environments touched are those whose file changed, and those whose apps use a chart
or manifests directory that changed. An environment rolled out through a branch
(``promotion.via_branch``, e.g. preprod via ``prod``) is applied only for commits on that
branch; the others only for commits on the default branch.

    python jobs/autoroll.py --repo URL --branch main --commit SHA
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from pipelinelib import Context, Job
from pipelinelib.cli import add_global_options
from pipelinelib.log import configure


def touched_environments(state: Any, commit: str, branch: str,
                         default_branch: str = "main") -> list[str]:
    """Environments a commit on ``branch`` changes and that roll out from that branch."""
    from pipelinelib.envspec.load import environment_path, list_environments, load_environment

    changed = state.changed_files(commit)
    names = []
    for name in list_environments(state.root):
        env = load_environment(environment_path(state.root, name), root=state.root)
        rolls_from = env.via_branch or default_branch
        if rolls_from != branch:
            continue
        used = {f"environments/{name}.yaml"}
        for app in env.apps.values():
            for local in (app.manifests, app.chart.repository if app.chart and
                          app.chart.kind == "local" else None):
                if local:
                    used.add(local.rstrip("/") + "/")
        if any(path in used or any(path.startswith(u) for u in used if u.endswith("/"))
               for path in changed):
            names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(prog="jobs/autoroll.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=env.get("PIPELINE_ENV_REPO"),
                        required=not env.get("PIPELINE_ENV_REPO"),
                        help="env-state repository (default $PIPELINE_ENV_REPO)")
    parser.add_argument("--branch", default=env.get("PIPELINE_ENV_BRANCH", "main"),
                        help="the env-state branch the commit is on (default "
                        "$PIPELINE_ENV_BRANCH or main)")
    parser.add_argument("--default-branch", default="main",
                        help="branch the environments without via_branch roll out from")
    parser.add_argument("--commit", default=env.get("GIT_COMMIT") or env.get(
        "GO_REVISION_ENV_STATE") or "HEAD")
    add_global_options(parser)
    args = parser.parse_args(argv)

    from pipelinelib.commands.promote import _origin
    from pipelinelib.envspec.load import environment_path, load_environment
    from pipelinelib.envspec.staterepo import EnvStateRepo
    from pipelinelib.steps.apply import apply_environment, exit_code

    ctx = Context(dry_run=args.dry_run, secrets=configure(args.log_format, args.log_level))
    import tempfile

    scratch = tempfile.TemporaryDirectory(prefix="pipelinelib-autoroll-")
    with scratch, Job("autoroll", ctx, report_dir=args.report_dir) as job:
        state = EnvStateRepo.checkout(_origin(args.repo), args.branch, f"{scratch.name}/repo")
        state.repo.git.checkout("--detach", args.commit)
        names = touched_environments(state, args.commit, args.branch, args.default_branch)
        ctx.log.info("environments touched", commit=args.commit[:12], branch=args.branch,
                     environments=names)
        for name in names:
            ctx.environment = name
            spec = load_environment(environment_path(state.root, name), root=state.root)
            job.run(apply_environment, ctx, spec)
    return exit_code(job)


if __name__ == "__main__":
    sys.exit(main())
