"""``pipeline build``: fingerprint assets, build, smoke-test, tag and push an app's image."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `pipeline build --help` imports neither the context nor structlog
    from pipelinelib.context import Context
    from pipelinelib.pipelines.build import BuildOptions

DESCRIPTION = """\
Build an app's image and publish it under its immutable name
  {container-namespace}/{project-namespace}-{container-name}:{git-hash}
reading everything variable from the app's env file (default APP_DIR/release.env).

Steps: validate -> assets (if ASSETS_DIR) -> build -> smoke (if SMOKE_*) -> tag -> push.
When the registry already has the git-hash tag built from this revision, every
step is `unchanged` and nothing is built or pushed. A tag that points at another
revision is never overwritten.

Registry credentials come from REGISTRY_USER / REGISTRY_PASSWORD in the env file
(mark the password `# secret`, leave it empty to read it from the environment) or
from the PIPELINE_REGISTRY_USER / PIPELINE_REGISTRY_PASSWORD environment variables.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app-dir", default=".", help="the app's directory (default: .)")
    parser.add_argument("--env-file", help="the env file (default: APP_DIR/release.env)")
    parser.add_argument("--revision", help="git revision to label and tag (default: HEAD)")
    parser.add_argument("--registry", help="override REGISTRY from the env file")
    parser.add_argument("--hash-length", type=int, help="git-hash tag length (default 7)")
    parser.add_argument(
        "--branch-tag",
        action="store_true",
        help="also push a (mutable) tag named after the current branch",
    )
    parser.add_argument("--no-push", action="store_true", help="build and test only")
    parser.add_argument("--no-smoke", action="store_true", help="skip the smoke test")
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="build although the app directory has uncommitted changes",
    )


def options(args: argparse.Namespace) -> BuildOptions:
    """The build pipeline's options from the parsed flags."""
    from pipelinelib.pipelines.build import BuildOptions

    return BuildOptions(app_dir=args.app_dir, env_file=args.env_file, revision=args.revision,
                        registry=args.registry, hash_length=args.hash_length,
                        branch_tag=args.branch_tag, allow_dirty=args.allow_dirty,
                        push=not args.no_push, smoke=not args.no_smoke)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.job import Job
    from pipelinelib.pipelines.build import build

    with Job("build", ctx, args.report_dir) as job:
        build(job, ctx, options(args))
    return job.exit_code
