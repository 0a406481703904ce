"""``pipeline build``: fingerprint assets, build, smoke-test, tag and push an app's image."""

from __future__ import annotations

import argparse
import os
from typing import Any

from pipelinelib.context import Context

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


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.job import Job

    with Job("build", ctx, args.report_dir) as job:
        build_pipeline(job, ctx, **build_options(args))
    return job.exit_code


def build_options(args: argparse.Namespace) -> dict[str, Any]:
    """build_pipeline's keyword arguments from the parsed flags."""
    return {
        k: getattr(args, k)
        for k in (
            "app_dir",
            "env_file",
            "revision",
            "registry",
            "hash_length",
            "branch_tag",
            "allow_dirty",
        )
    } | {"push": not args.no_push, "smoke": not args.no_smoke}


def build_pipeline(
    job: Any, ctx: Context, *, push: bool = True, smoke: bool = True, **spec_options: Any
) -> dict[str, Any]:
    """The build job: validate, assets, build, smoke, tag, push. Returns the outputs."""
    from pipelinelib.steps import assets, build
    from pipelinelib.steps import push as push_step
    from pipelinelib.steps import smoke as smoke_step
    from pipelinelib.steps.validate import validate_build

    validated = job.run(validate_build, ctx, spec_options, push=push)
    spec = validated.outputs.pop("_spec")
    if spec.assets:
        job.run(assets.fingerprint_assets, ctx, spec.assets)
    built = job.run(build.build_image, ctx, spec, published=push)
    outputs: dict[str, Any] = dict(built.outputs)
    if not built.outputs.get("published"):
        image_id = built.outputs.get("image_id")
        if smoke:
            job.run(smoke_step.smoke_test, ctx, image_id or str(spec.ref), spec.smoke)
        job.run(push_step.tag_image, ctx, spec, image_id)
    if push and spec.name.registry:
        outputs.update(job.run(push_step.push_image, ctx, spec).outputs)
        if outputs.get("digest") and os.environ.get("PIPELINE_ATTEST_KEY"):
            from pipelinelib.steps.sign import sign_image

            job.run(sign_image, ctx, f"{spec.name.registry}/{spec.name.repository}",
                    outputs["digest"])
    return outputs
