"""Attestations: scan and gate results recorded against an image digest, in the registry.

Each result is a small OCI artifact next to the image, under the cosign-style tag
``sha256-<hex>.<kind>`` (e.g. ``sha256-ab12….scan``): an OCI image manifest whose one
layer is the JSON payload (media type ``application/vnd.pipelinelib.<kind>.v1+json``).
Promotion reads it back with ``read_attestation`` to check an image passed its gates.

Writing is idempotent: the same payload under the same tag is ``changed=False``. A new
payload for the same digest and kind replaces the tag (the latest result wins; the older
artifact stays reachable by its own digest).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from pipelinelib.errors import BadInput, StepFailed

__all__ = ["attestation_tag", "read_attestation", "registry_for", "write_attestation"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_DIGEST = re.compile(r"sha256:([a-f0-9]{64})")
_KIND = re.compile(r"[a-z0-9][a-z0-9_-]{0,40}")


def attestation_tag(digest: str, kind: str) -> str:
    """``sha256-<hex>.<kind>`` for an image digest."""
    match = _DIGEST.fullmatch(digest or "")
    if not match:
        raise BadInput(f"not an image digest: {digest!r}", field="digest",
                       expected="sha256:<64 hex>")
    if not _KIND.fullmatch(kind or ""):
        raise BadInput(f"bad attestation kind {kind!r}", field="kind",
                       expected="lower-case letters, digits, - or _")
    return f"sha256-{match.group(1)}.{kind}"


def registry_for(ctx: Any, host: str) -> Any:
    """A registry client for ``host`` with PIPELINE_REGISTRY_USER/_PASSWORD (secrets)."""
    from pipelinelib.adapters.registry import RegistryClient

    user = os.environ.get("PIPELINE_REGISTRY_USER")
    password = os.environ.get("PIPELINE_REGISTRY_PASSWORD")
    if password:
        ctx.secrets.add(password)
    return RegistryClient(host, user, password)


def _split(image_repo_ref: str) -> tuple[str, str]:
    from pipelinelib.imageref import parse

    ref = parse(image_repo_ref, "image repository")
    if not ref.registry:
        raise BadInput(f"{image_repo_ref!r} names no registry", field="image",
                       expected="REGISTRY/REPOSITORY")
    return ref.registry, ref.repository


def _payload_bytes(ctx: Any, payload: dict[str, Any]) -> bytes:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return ctx.secrets.redact_text(text).encode()


def write_attestation(ctx: Any, image_repo_ref: str, digest: str, kind: str,
                      payload: dict[str, Any], *, registry: Any = None) -> dict[str, Any]:
    """Store ``payload`` for ``digest`` as ``REPO:sha256-<hex>.<kind>``.

    Returns ``{"tag", "reference", "manifest_digest", "changed"}``. In a dry run nothing is
    written and ``changed`` says whether it would be.
    """
    host, repo = _split(image_repo_ref)
    tag = attestation_tag(digest, kind)
    registry = registry or registry_for(ctx, host)
    body = _payload_bytes(ctx, payload)
    current = read_attestation(ctx, image_repo_ref, digest, kind, registry=registry)
    reference = f"{host}/{repo}:{tag}"
    if current is not None and _payload_bytes(ctx, current) == body:
        return {"tag": tag, "reference": reference, "changed": False,
                "manifest_digest": registry.manifest_digest(repo, tag) or ""}
    if ctx.dry_run:
        return {"tag": tag, "reference": reference, "changed": True, "manifest_digest": ""}
    config = b"{}"
    config_digest = registry.upload_blob(repo, config)
    layer_digest = registry.upload_blob(repo, body)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{
            "mediaType": f"application/vnd.pipelinelib.{kind}.v1+json",
            "digest": layer_digest,
            "size": len(body),
            "annotations": {"org.opencontainers.image.title": f"{kind}.json"},
        }],
        "annotations": {
            "dev.pipelinelib.subject": digest,
            "dev.pipelinelib.kind": kind,
        },
    }
    raw = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    written = registry.put_manifest(repo, tag, raw, OCI_MANIFEST)
    return {"tag": tag, "reference": reference, "changed": True, "manifest_digest": written}


def read_attestation(ctx: Any, repo: str, digest: str, kind: str, *,
                     registry: Any = None) -> dict[str, Any] | None:
    """The payload recorded for ``digest`` and ``kind`` in ``repo`` (REGISTRY/REPOSITORY),
    or None when there is none."""
    host, repository = _split(repo)
    tag = attestation_tag(digest, kind)
    registry = registry or registry_for(ctx, host)
    if registry.manifest_digest(repository, tag) is None:
        return None
    manifest, _, _ = registry.manifest(repository, tag)
    layers = manifest.get("layers") or []
    if not layers:
        raise StepFailed(f"attestation {host}/{repository}:{tag} has no payload layer")
    data = registry.get_blob(repository, layers[0]["digest"])
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise StepFailed(f"attestation {host}/{repository}:{tag} is not JSON") from exc
    if not isinstance(payload, dict):
        raise StepFailed(f"attestation {host}/{repository}:{tag} is not a JSON object")
    return payload
