"""Build the app's image, unless the registry already has it.

Observe: does the registry hold ``{ns}/{project}-{container}:{git-hash}`` built
from this revision (its ``org.opencontainers.image.revision`` label)? Then the
whole build/tag/push is unchanged and nothing is built or pushed. A tag holding
a *different* revision is never overwritten (images are immutable).
"""

from __future__ import annotations

import datetime as dt

from pipelinelib.buildspec import OCI, BuildSpec
from pipelinelib.context import Context
from pipelinelib.errors import ImmutableTagConflict
from pipelinelib.result import StepResult
from pipelinelib.step import step


@step("build")
def build_image(ctx: Context, spec: BuildSpec, *, published: bool = True) -> StepResult:
    """Build ``spec`` with the engine; ``unchanged`` when the registry already has it.

    ``published=False`` (``--no-push``): the registry is not asked; only a local image
    built from this revision makes the build ``unchanged``.
    """
    ref = spec.ref
    if published and spec.name.registry:
        registry = ctx.registry(spec.name.registry)
        digest = registry.manifest_digest(spec.name.repository, spec.hash_tag)
        if digest:
            built_from = registry.labels(spec.name.repository, spec.hash_tag).get(f"{OCI}revision")
            if built_from != spec.revision:
                raise ImmutableTagConflict(
                    f"{ref} already exists, built from revision {built_from or 'unknown'}",
                    hint="tags are immutable: build a new commit instead of overwriting",
                )
            return StepResult.of(
                "build",
                [],
                summary=f"{ref} already published ({digest})",
                published=True,
                digest=digest,
                image=str(ref.with_digest(digest)),
            )
    local = ctx.engine.inspect_image(str(ref))
    if (
        local
        and (local.get("Config", {}).get("Labels") or {}).get(f"{OCI}revision") == spec.revision
    ):
        return StepResult.of(
            "build",
            [],
            summary=f"{ref} already built locally",
            image_id=local["Id"],
            published=False,
        )
    action = f"build {ref} from {spec.dockerfile}"
    if ctx.dry_run:
        return StepResult.of("build", [action], dry_run=True, published=False)
    log = ctx.log.bind(image=str(ref))
    log.info("building", dockerfile=spec.dockerfile)
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    image_id = ctx.engine.build(
        str(spec.app_dir),
        spec.dockerfile,
        tag=str(ref),
        buildargs=spec.build_args(),
        labels=spec.labels(created),
        network_mode=spec.network_mode,
        on_line=lambda line: log.info("build", line=ctx.secrets.redact_text(line)),
    )
    return StepResult.of("build", [action], image_id=image_id, published=False)
