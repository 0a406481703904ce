"""The build job: validate, assets, build, smoke, tag, push (and sign)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pipelinelib.context import Context
from pipelinelib.job import Job


@dataclass(frozen=True)
class BuildOptions:
    """What to build and how far: the app directory and env file, the revision, registry
    overrides, and whether to smoke-test and push."""

    app_dir: str = "."
    env_file: str | None = None
    revision: str | None = None
    registry: str | None = None
    hash_length: int | None = None
    branch_tag: bool = False
    allow_dirty: bool = False
    push: bool = True
    smoke: bool = True

    def spec_options(self) -> dict[str, Any]:
        """The options the build spec is validated from (all but push/smoke)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("push", "smoke")}


def build(job: Job, ctx: Context, options: BuildOptions) -> dict[str, Any]:
    """Validate, assets, build, smoke, tag, push; returns the outputs (image id, digest)."""
    from pipelinelib.steps import assets
    from pipelinelib.steps import build as build_step
    from pipelinelib.steps import push as push_step
    from pipelinelib.steps import smoke as smoke_step
    from pipelinelib.steps.validate import validate_build

    push = options.push
    validated = job.run(validate_build, ctx, options.spec_options(), push=push)
    spec = validated.outputs.pop("_spec")
    if spec.assets:
        job.run(assets.fingerprint_assets, ctx, spec.assets)
    built = job.run(build_step.build_image, ctx, spec, published=push)
    outputs: dict[str, Any] = dict(built.outputs)
    if not built.outputs.get("published"):
        image_id = built.outputs.get("image_id")
        if options.smoke:
            job.run(smoke_step.smoke_test, ctx, image_id or str(spec.ref), spec.smoke)
        job.run(push_step.tag_image, ctx, spec, image_id)
    if push and spec.name.registry:
        outputs.update(job.run(push_step.push_image, ctx, spec).outputs)
        if outputs.get("digest") and ctx.credentials.attest_key:
            from pipelinelib.steps.sign import sign_image

            job.run(sign_image, ctx, f"{spec.name.registry}/{spec.name.repository}",
                    outputs["digest"])
    return outputs
