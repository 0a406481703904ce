"""CLI commands: each module has ``DESCRIPTION``, ``add_arguments(parser)`` and
``run(args, ctx) -> exit code``. Keep their imports light; import steps inside ``run``."""

from __future__ import annotations

import argparse
import os


def add_app_target(parser: argparse.ArgumentParser) -> None:
    """``--app`` and where it runs: ``--env ENV --repo ENV_STATE [--branch]`` (namespace and
    cluster from the environment's spec, privilege checked) or ``--namespace``."""
    env = os.environ
    parser.add_argument("--app", default=env.get("APP"), required=not env.get("APP"))
    parser.add_argument("--env", dest="environment", metavar="ENV",
                        help="environment whose spec names the namespace and cluster")
    parser.add_argument("--repo", "--env-repo", "--root", dest="repo",
                        default=env.get("PIPELINE_ENV_REPO"),
                        help="--env: env-state checkout or origin URL (default "
                        "$PIPELINE_ENV_REPO)")
    parser.add_argument("--branch", default=env.get("PIPELINE_ENV_BRANCH", "main"),
                        help="--env with an origin URL: env-state branch (default main)")
    parser.add_argument("--namespace", "-n", default=env.get("NAMESPACE"),
                        help="namespace (default: the app's name); --env reads it from the spec")
