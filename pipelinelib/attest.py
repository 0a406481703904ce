"""Attestations: scan, perf and gate results signed against an image digest, in the registry.

Each result is an in-toto Statement (subject: the image digest; predicate: the result;
predicate type ``https://pipelinelib.dev/attestation/<kind>/v1``) in a DSSE envelope
signed with the CI server's attestation key (ECDSA P-256, ``PIPELINE_ATTEST_KEY``, a PEM
private key held as a CI credential) — with securesystemslib's DSSE and signer.

Stored where cosign looks for them, so ``cosign verify-attestation --key attestation.pub
--insecure-ignore-tlog --type <predicate type>`` verifies them too:

- ``sha256-<hex>.att``: one OCI manifest whose layers are the DSSE envelopes (media type
  ``application/vnd.dsse.envelope.v1+json``), one per kind, the newest of each kind;
- ``sha256-<hex>.<kind>``: the same envelope alone, which promotion reads.

Images are signed the same way cosign signs them (``sign_image``: a simple-signing payload
under ``sha256-<hex>.sig``); ``verify_image`` checks that signature.

Reading verifies: with a public key (the trust root's ``attestation.pub`` or
``PIPELINE_ATTEST_PUBLIC_KEY``) an unsigned, altered or wrongly signed record is refused;
``require_signed`` refuses when there is no key to verify with.

Writing is idempotent: the same result for the same digest and kind is ``changed=False``.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

from pipelinelib.errors import BadInput, Refused, StepFailed

__all__ = ["attestation_tag", "public_key", "read_attestation", "registry_for",
           "sign_image", "verify_image", "write_attestation"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
STATEMENT = "https://in-toto.io/Statement/v1"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
KEY_ENV = "PIPELINE_ATTEST_KEY"
KEY_PASSWORD_ENV = "PIPELINE_ATTEST_KEY_PASSWORD"  # noqa: S105 — a variable name
PUBLIC_KEY_ENV = "PIPELINE_ATTEST_PUBLIC_KEY"
PUBLIC_KEY_FILE = "attestation.pub"
_DIGEST = re.compile(r"sha256:([a-f0-9]{64})")
_KIND = re.compile(r"[a-z0-9][a-z0-9_-]{0,40}")


def predicate_type(kind: str) -> str:
    return f"https://pipelinelib.dev/attestation/{kind}/v1"


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
    """The context's registry client for ``host`` (``ctx.registry``: the run's login)."""
    return ctx.registry(host)


def _split(image_repo_ref: str) -> tuple[str, str]:
    from pipelinelib.imageref import parse

    ref = parse(image_repo_ref, "image repository")
    if not ref.registry:
        raise BadInput(f"{image_repo_ref!r} names no registry", field="image",
                       expected="REGISTRY/REPOSITORY")
    return ref.registry, ref.repository


# keys --------------------------------------------------------------------------------------

def _signer(ctx: Any) -> Any | None:
    """The attestation signer from the context's ``credentials.attest_key``
    (``PIPELINE_ATTEST_KEY``; None when unset)."""
    path = ctx.credentials.attest_key
    if not path:
        return None
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner

    password = ctx.credentials.attest_key_password
    try:
        key = load_pem_private_key(Path(path).read_bytes(),
                                   password.encode() if password else None)
    except (OSError, ValueError, TypeError) as exc:
        raise BadInput(f"cannot read the attestation key: {exc}"[:200], source=path,
                       field=KEY_ENV, expected="a PEM private key (ECDSA P-256)") from exc
    return CryptoSigner(key)


def public_key() -> Any | None:
    """The attestation public key (securesystemslib ``SSlibKey``) or None when none is set:
    ``PIPELINE_ATTEST_PUBLIC_KEY``, else ``attestation.pub`` in the trust root."""
    from pipelinelib.promotion.trust import trust_root

    path = os.environ.get(PUBLIC_KEY_ENV)
    if not path:
        trust = trust_root()
        if trust is None or not (trust.directory / PUBLIC_KEY_FILE).is_file():
            return None
        path = str(trust.directory / PUBLIC_KEY_FILE)
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.signer import SSlibKey

    try:
        return SSlibKey.from_crypto(load_pem_public_key(Path(path).read_bytes()))
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot read the attestation public key: {exc}"[:200], source=path,
                       field=PUBLIC_KEY_ENV, expected="a PEM public key") from exc


# statements --------------------------------------------------------------------------------

def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()


def _statement(ctx: Any, name: str, digest: str, kind: str,
               payload: dict[str, Any]) -> dict[str, Any]:
    predicate = json.loads(ctx.secrets.redact_text(_canonical(payload).decode()))
    return {"_type": STATEMENT, "subject": [{"name": name, "digest": {
        "sha256": digest.split(":", 1)[1]}}], "predicateType": predicate_type(kind),
        "predicate": predicate}


def _envelope(signer: Any, statement: dict[str, Any]) -> bytes:
    from securesystemslib.dsse import Envelope

    envelope = Envelope(_canonical(statement), IN_TOTO, {})
    envelope.sign(signer)
    return _canonical(envelope.to_dict())


def _open_envelope(raw: bytes, where: str, key: Any | None) -> dict[str, Any]:
    """The statement inside a DSSE envelope, verified with ``key`` when given."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError

    try:
        envelope = Envelope.from_dict(json.loads(raw))
        statement = json.loads(envelope.payload)
    except (ValueError, KeyError, TypeError) as exc:
        raise Refused(f"attestation {where} is not a DSSE envelope", field="attestation"
                      ) from exc
    if key is not None:
        try:
            envelope.verify([key], 1)
        except VerificationError as exc:
            raise Refused(f"attestation {where} is not signed by the attestation key "
                          "(forged or altered)", field="attestation",
                          hint="only the CI server's attestation key may record results"
                          ) from exc
    if not isinstance(statement, dict):
        raise Refused(f"attestation {where} holds no in-toto statement", field="attestation")
    return statement


# write / read ------------------------------------------------------------------------------

def write_attestation(ctx: Any, image_repo_ref: str, digest: str, kind: str,
                      payload: dict[str, Any], *, registry: Any = None) -> dict[str, Any]:
    """Store ``payload`` for ``digest``, signed, as ``REPO:sha256-<hex>.<kind>`` and in the
    cosign ``.att`` manifest.

    Returns ``{"tag", "reference", "manifest_digest", "changed", "signed"}``. In a dry run
    nothing is written and ``changed`` says whether it would be. Without an attestation key
    the record is written unsigned (promotion into a protected environment refuses it).
    """
    host, repo = _split(image_repo_ref)
    tag = attestation_tag(digest, kind)
    registry = registry or registry_for(ctx, host)
    signer = _signer(ctx)
    statement = _statement(ctx, f"{host}/{repo}", digest, kind, payload)
    reference = f"{host}/{repo}:{tag}"
    try:
        current = read_attestation(ctx, image_repo_ref, digest, kind, registry=registry,
                                   signed_only=signer is not None)
    except Refused:
        current = None  # a forged or unsigned record is replaced
    if current is not None and _canonical(current) == _canonical(statement["predicate"]):
        return {"tag": tag, "reference": reference, "changed": False, "signed": bool(signer),
                "manifest_digest": registry.manifest_digest(repo, tag) or ""}
    if ctx.dry_run:
        return {"tag": tag, "reference": reference, "changed": True, "manifest_digest": "",
                "signed": bool(signer)}
    if signer is not None:
        body = _envelope(signer, statement)
        layer_type = DSSE_LAYER
    else:
        ctx.log.warning("attestation written unsigned: no attestation key", kind=kind,
                        key=KEY_ENV)
        body = _canonical(statement["predicate"])
        layer_type = f"application/vnd.pipelinelib.{kind}.v1+json"
    layer = _layer(registry, repo, body, layer_type, kind)
    written = _put(registry, repo, tag, [layer], digest, kind)
    if signer is not None:
        _merge_att(registry, repo, digest, layer, kind)
    return {"tag": tag, "reference": reference, "changed": True, "manifest_digest": written,
            "signed": bool(signer)}


def _layer(registry: Any, repo: str, body: bytes, media_type: str, kind: str
           ) -> dict[str, Any]:
    annotations = {"org.opencontainers.image.title": f"{kind}.json"}
    if media_type == DSSE_LAYER:
        annotations.update({COSIGN_SIGNATURE: "", "predicateType": predicate_type(kind)})
    return {"mediaType": media_type, "digest": registry.upload_blob(repo, body),
            "size": len(body), "annotations": annotations}


def _put(registry: Any, repo: str, tag: str, layers: list[dict[str, Any]], digest: str,
         kind: str) -> str:
    config = b"{}"
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": registry.upload_blob(repo, config),
                   "size": len(config)},
        "layers": layers,
        "annotations": {"dev.pipelinelib.subject": digest, "dev.pipelinelib.kind": kind},
    }
    return registry.put_manifest(repo, tag, _canonical(manifest), OCI_MANIFEST)


def _merge_att(registry: Any, repo: str, digest: str, layer: dict[str, Any], kind: str
               ) -> None:
    """The cosign ``.att`` manifest: this kind's newest envelope beside the other kinds'."""
    tag = attestation_tag(digest, "att")
    layers = []
    if registry.manifest_digest(repo, tag) is not None:
        manifest, _, _ = registry.manifest(repo, tag)
        layers = [x for x in manifest.get("layers") or []
                  if (x.get("annotations") or {}).get("predicateType") != predicate_type(kind)]
    _put(registry, repo, tag, [*layers, layer], digest, "att")


def read_attestation(ctx: Any, repo: str, digest: str, kind: str, *,
                     registry: Any = None, require_signed: bool = False,
                     signed_only: bool | None = None) -> dict[str, Any] | None:
    """The result recorded for ``digest`` and ``kind`` in ``repo`` (REGISTRY/REPOSITORY),
    or None when there is none.

    Verified: with an attestation public key configured (or ``require_signed``), a record
    that is unsigned, signed by another key, altered, or about another digest or kind
    raises ``Refused``; ``require_signed`` without a key to verify with refuses too.
    """
    host, repository = _split(repo)
    tag = attestation_tag(digest, kind)
    where = f"{host}/{repository}:{tag}"
    registry = registry or registry_for(ctx, host)
    key = public_key()
    if require_signed and key is None:
        raise Refused(f"cannot verify {where}: no attestation public key",
                      field=PUBLIC_KEY_ENV, hint="the trust root holds attestation.pub")
    must_verify = (require_signed or key is not None) if signed_only is None else signed_only
    if registry.manifest_digest(repository, tag) is None:
        return None
    manifest, _, _ = registry.manifest(repository, tag)
    layers = manifest.get("layers") or []
    if not layers:
        raise StepFailed(f"attestation {where} has no payload layer")
    data = registry.get_blob(repository, layers[0]["digest"])
    if layers[0].get("mediaType") != DSSE_LAYER:
        if must_verify:
            raise Refused(f"attestation {where} is not signed", field="attestation",
                          hint="record results with the CI server's attestation key")
        return _legacy(data, where)
    statement = _open_envelope(data, where, key if must_verify else None)
    subjects = [s.get("digest", {}).get("sha256") for s in statement.get("subject") or []]
    if digest.split(":", 1)[1] not in subjects or \
            statement.get("predicateType") != predicate_type(kind):
        raise Refused(f"attestation {where} is about another image or kind",
                      field="attestation")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise StepFailed(f"attestation {where} holds no result")
    return predicate


def _legacy(data: bytes, where: str) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise StepFailed(f"attestation {where} is not JSON") from exc
    if not isinstance(payload, dict):
        raise StepFailed(f"attestation {where} is not a JSON object")
    return payload


# image signatures (cosign's simple signing) ----------------------------------------------

def _simple_signing(name: str, digest: str) -> bytes:
    return _canonical({"critical": {"identity": {"docker-reference": name},
                                    "image": {"docker-manifest-digest": digest},
                                    "type": "cosign container image signature"},
                       "optional": None})


def sign_image(ctx: Any, image_repo_ref: str, digest: str, *, registry: Any = None
               ) -> dict[str, Any]:
    """Sign ``digest`` as cosign does (``sha256-<hex>.sig``); unchanged when it already
    carries a valid signature by our key; skipped (``signed: False``) without a key."""
    host, repo = _split(image_repo_ref)
    tag = attestation_tag(digest, "sig")
    reference = f"{host}/{repo}:{tag}"
    signer = _signer(ctx)
    if signer is None:
        return {"reference": reference, "changed": False, "signed": False}
    registry = registry or registry_for(ctx, host)
    key = signer.public_key
    if _image_signed_by(registry, repo, digest, f"{host}/{repo}", key):
        return {"reference": reference, "changed": False, "signed": True}
    if ctx.dry_run:
        return {"reference": reference, "changed": True, "signed": True}
    payload = _simple_signing(f"{host}/{repo}", digest)
    signature = base64.b64encode(bytes.fromhex(signer.sign(payload).signature)).decode()
    layer = {"mediaType": SIMPLE_SIGNING, "digest": registry.upload_blob(repo, payload),
             "size": len(payload), "annotations": {COSIGN_SIGNATURE: signature}}
    _put(registry, repo, tag, [layer], digest, "sig")
    return {"reference": reference, "changed": True, "signed": True}


def _image_signed_by(registry: Any, repo: str, digest: str, name: str, key: Any) -> bool:
    from securesystemslib.exceptions import UnverifiedSignatureError
    from securesystemslib.signer import Signature

    tag = attestation_tag(digest, "sig")
    if registry.manifest_digest(repo, tag) is None:
        return False
    manifest, _, _ = registry.manifest(repo, tag)
    for layer in manifest.get("layers") or []:
        sig = (layer.get("annotations") or {}).get(COSIGN_SIGNATURE)
        if layer.get("mediaType") != SIMPLE_SIGNING or not sig:
            continue
        payload = registry.get_blob(repo, layer["digest"])
        try:
            claim = json.loads(payload)["critical"]
            raw = base64.b64decode(sig)
        except (ValueError, KeyError, TypeError):
            continue
        if claim.get("image", {}).get("docker-manifest-digest") != digest:
            continue
        try:
            key.verify_signature(Signature(key.keyid, raw.hex()), payload)
            return True
        except UnverifiedSignatureError:
            continue
    return False


def verify_image(ctx: Any, image_repo_ref: str, digest: str, *, registry: Any = None
                 ) -> None:
    """Refuse unless ``digest`` carries a valid signature by the attestation key."""
    host, repo = _split(image_repo_ref)
    key = public_key()
    if key is None:
        raise Refused(f"cannot verify the signature of {host}/{repo}@{digest[:19]}: no "
                      "attestation public key", field=PUBLIC_KEY_ENV,
                      hint="the trust root holds attestation.pub")
    registry = registry or registry_for(ctx, host)
    if not _image_signed_by(registry, repo, digest, f"{host}/{repo}", key):
        raise Refused(f"{host}/{repo}@{digest[:19]} is not signed by the attestation key "
                      "(unsigned or signed by another key)", field="image",
                      hint="promote images built and signed by the build job")

