"""The sign step: sign a pushed image digest with the CI server's attestation key.

The signature is stored as cosign stores it (``sha256-<hex>.sig``, see ``attest``), so
``cosign verify --key attestation.pub --insecure-ignore-tlog`` accepts it and
``pipeline promote`` can refuse an unsigned image into a protected environment.
Without ``PIPELINE_ATTEST_KEY`` there is nothing to sign with: ``unchanged``, with a warning.
"""

from __future__ import annotations

from pipelinelib.context import Context
from pipelinelib.result import StepResult
from pipelinelib.step import step


@step("sign")
def sign_image(ctx: Context, image: str, digest: str) -> StepResult:
    """Sign ``image`` (REGISTRY/REPOSITORY) at ``digest``; idempotent."""
    from pipelinelib.attest import KEY_ENV
    from pipelinelib.attest import sign_image as sign

    done = sign(ctx, image, digest)
    if not done["signed"]:
        ctx.log.warning("image not signed: no attestation key", key=KEY_ENV)
    actions = [f"sign {image}@{digest} ({done['reference']})"] if done["changed"] else []
    return StepResult.of("sign", actions, dry_run=ctx.dry_run, digest=digest,
                         image=f"{image}@{digest}", signature=done["reference"],
                         signed=done["signed"])
