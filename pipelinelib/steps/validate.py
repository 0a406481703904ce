"""Validate a build's inputs before anything is written anywhere."""

from __future__ import annotations

from typing import Any

from pipelinelib import buildspec
from pipelinelib.context import Context
from pipelinelib.errors import BadInput
from pipelinelib.result import StepResult
from pipelinelib.step import step


@step("validate")
def validate_build(ctx: Context, options: dict[str, Any], *, push: bool = True) -> StepResult:
    """Load the build spec (env file, names, Dockerfile, git) and the registry client.

    Outputs ``_spec`` and ``_registry`` for the next steps (removed before reporting).
    """
    from pipelinelib.adapters.registry import RegistryClient

    spec = buildspec.load(**options)
    spec.env.register_secrets(ctx.secrets)
    ctx.app = ctx.app or spec.name.container_name
    ctx.revision = spec.revision
    registry = None
    if push:
        if not spec.name.registry:
            raise BadInput(
                "no registry to push to",
                source=spec.env.path,
                field="REGISTRY",
                expected="host[:port], or --no-push",
            )
        user, password = buildspec.registry_credentials(spec.env)
        ctx.secrets.add(password)
        if bool(user) != bool(password):
            raise BadInput(
                "registry user and password must be given together",
                source=spec.env.path,
                field="REGISTRY_USER/REGISTRY_PASSWORD",
            )
        registry = RegistryClient(spec.name.registry, user, password)
    return StepResult.of(
        "validate",
        [],
        summary=f"{spec.ref} (revision {spec.revision[:12]})",
        image=str(spec.ref),
        tags=list(spec.all_tags),
        _spec=spec,
        _registry=registry,
    )
