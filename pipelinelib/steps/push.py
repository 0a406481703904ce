"""Tag the built image and push it: immutable tags are never moved.

The git-hash tag and the version tag are immutable: if the registry already has
one pointing at another revision, nothing is pushed at all. Branch tags move.
The digest recorded is the one the registry reports (``Docker-Content-Digest``).
"""

from __future__ import annotations

from pipelinelib.adapters.protocols import Registry
from pipelinelib.buildspec import OCI, BuildSpec
from pipelinelib.context import Context
from pipelinelib.errors import ImmutableTagConflict, StepFailed
from pipelinelib.result import StepResult
from pipelinelib.step import step


@step("tag")
def tag_image(ctx: Context, spec: BuildSpec, image_id: str | None) -> StepResult:
    """Point every local tag of ``spec`` at ``image_id``."""
    repository = spec.name.ref(spec.hash_tag).name
    actions = []
    for tag in spec.all_tags:
        current = ctx.engine.inspect_image(f"{repository}:{tag}")
        if image_id is None or current is None or current["Id"] != image_id:
            actions.append(f"tag {repository}:{tag}")
    if actions and not ctx.dry_run:
        if image_id is None:
            raise StepFailed(f"no local image to tag as {repository}",
                             hint="build it first (the build step reports its image id)")
        for tag in spec.all_tags:
            ctx.engine.tag(image_id, repository, tag)
    return StepResult.of("tag", actions, dry_run=ctx.dry_run, tags=list(spec.all_tags))


@step("push")
def push_image(ctx: Context, spec: BuildSpec) -> StepResult:
    """Push ``spec``'s tags that the registry lacks; refuse to move an immutable tag."""
    registry = ctx.registry(spec.name.registry)
    repo = spec.name.repository
    remote = {tag: registry.manifest_digest(repo, tag) for tag in spec.all_tags}
    immutable = (spec.hash_tag, *spec.extra_tags)
    for tag in immutable:
        if remote[tag]:
            built_from = registry.labels(repo, tag).get(f"{OCI}revision")
            if built_from != spec.revision:
                raise ImmutableTagConflict(
                    f"{spec.name.ref(tag)} already points at {remote[tag]} "
                    f"(revision {built_from or 'unknown'}); nothing was pushed",
                    hint="tags are immutable: release a new version instead",
                )
    target = remote[spec.hash_tag]
    actions = [] if target else [f"push {spec.name.ref(spec.hash_tag)}"]
    moves = [t for t in spec.all_tags[1:] if remote[t] is None or (target and remote[t] != target)]
    actions += [f"tag {spec.name.ref(t)} in the registry" for t in moves]
    if ctx.dry_run or not actions:
        return StepResult.of(
            "push",
            actions,
            dry_run=ctx.dry_run,
            digest=target or "",
            image=str(spec.ref.with_digest(target)) if target else "",
        )
    layers = 0
    if not target:
        outcome = ctx.engine.push(
            spec.ref.name,
            spec.hash_tag,
            auth_config=registry.auth_config,
            on_line=lambda line: ctx.log.debug("push", line=line),
            on_retry=lambda _layer: registry.check_uploads(repo),
        )
        layers = outcome.layers_pushed
        target = registry.manifest_digest(repo, spec.hash_tag)
        if not target:
            raise StepFailed(f"push of {spec.ref} reported success but the registry lacks it")
        if outcome.digest and outcome.digest != target:
            ctx.log.warning(
                "engine and registry disagree on the digest; using the registry's",
                engine=outcome.digest,
                registry=target,
            )
    if moves:
        body, media_type = _manifest_bytes(registry, repo, target)
        for tag in moves:
            registry.put_manifest(repo, tag, body, media_type)
    return StepResult.of(
        "push",
        actions,
        digest=target,
        layers_pushed=layers,
        image=str(spec.ref.with_digest(target)),
    )


def _manifest_bytes(registry: Registry, repo: str, digest: str) -> tuple[bytes, str]:
    _, media_type, body = registry.manifest(repo, digest)
    return body, media_type
