"""Signed verdicts: scan/gate/perf results and images signed by the CI attestation key,
verified when promotion reads them; forged records in the real registry are refused."""

from __future__ import annotations

import json
import uuid

import pytest

from pipelinelib.adapters.registry import RegistryClient
from pipelinelib.attest import (
    DSSE_LAYER,
    read_attestation,
    sign_image,
    verify_image,
    write_attestation,
)
from pipelinelib.context import CIInfo, Context
from pipelinelib.errors import Refused
from pipelinelib.secrets import Secrets
from tests.helpers.cli import run_pipeline
from tests.helpers.paths import FIXTURES
from tests.helpers.registry import push_image
from tests.helpers.trust import ec_key, make_trust

POLICY = "environments:\n  prod: {promote: ['*'], protected: true}\n"


@pytest.fixture
def world(tmp_path, registry_env, monkeypatch):
    registry = registry_env["PIPELINELIB_REGISTRY"]
    repo = f"att{uuid.uuid4().hex[:8]}/api"
    digest = push_image(registry, repo, "1.0.0", "1" * 40)
    trust = make_trust(tmp_path, POLICY, people=("rm-alice", "rm-bob"))
    for name, value in trust.env(attest=True).items():
        monkeypatch.setenv(name, value)
    ctx = Context(secrets=Secrets(), ci=CIInfo(provider="jenkins", user="rm-alice"))
    return {"ctx": ctx, "image": f"{registry}/{repo}", "repo": repo, "digest": digest,
            "client": RegistryClient(registry), "trust": trust, "tmp": tmp_path}


def _forge(world, monkeypatch, kind: str, payload: dict, *, key: str | None) -> None:
    """Someone who can push to the registry records a result: unsigned, or signed with a
    key of their own."""
    if key is None:
        monkeypatch.delenv("PIPELINE_ATTEST_KEY")
    else:
        monkeypatch.setenv("PIPELINE_ATTEST_KEY", key)
    write_attestation(world["ctx"], world["image"], world["digest"], kind, payload)
    monkeypatch.setenv("PIPELINE_ATTEST_KEY", str(world["trust"].keys["attest"]))


def test_a_signed_result_is_verified_on_read_and_laid_out_for_cosign(world):
    ctx, image, digest = world["ctx"], world["image"], world["digest"]
    first = write_attestation(ctx, image, digest, "scan", {"passed": True, "total": 0})
    assert first["changed"] and first["signed"]
    again = write_attestation(ctx, image, digest, "scan", {"passed": True, "total": 0})
    assert not again["changed"], "the same result again: unchanged (ECDSA is randomized)"
    write_attestation(ctx, image, digest, "gate", {"passed": True})
    assert read_attestation(ctx, image, digest, "scan", require_signed=True) == {
        "passed": True, "total": 0}
    client, repo, hexdigest = world["client"], world["repo"], digest.split(":")[1]
    att, _, _ = client.manifest(repo, f"sha256-{hexdigest}.att")
    types = sorted(layer["annotations"]["predicateType"] for layer in att["layers"])
    assert types == ["https://pipelinelib.dev/attestation/gate/v1",
                     "https://pipelinelib.dev/attestation/scan/v1"]
    assert {layer["mediaType"] for layer in att["layers"]} == {DSSE_LAYER}
    envelope = json.loads(client.get_blob(repo, att["layers"][0]["digest"]))
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert len(envelope["signatures"]) == 1


@pytest.mark.parametrize("forger", ["unsigned", "other key"])
def test_a_forged_passed_verdict_is_refused(world, monkeypatch, forger):
    ctx, image, digest = world["ctx"], world["image"], world["digest"]
    write_attestation(ctx, image, digest, "scan", {"passed": False, "total": 3})
    other = None
    if forger == "other key":
        other = str(ec_key(world["tmp"] / "mallory.pem", world["tmp"] / "mallory.pub"))
    _forge(world, monkeypatch, "scan", {"passed": True, "total": 0}, key=other)
    with pytest.raises(Refused, match="not signed"):
        read_attestation(ctx, image, digest, "scan")
    rewritten = write_attestation(ctx, image, digest, "scan", {"passed": False, "total": 3})
    assert rewritten["changed"], "the CI run replaces a forged record"


def test_without_a_public_key_a_required_signature_is_refused(world, monkeypatch):
    ctx, image, digest = world["ctx"], world["image"], world["digest"]
    write_attestation(ctx, image, digest, "scan", {"passed": True})
    monkeypatch.delenv("PIPELINE_TRUST_DIR")
    with pytest.raises(Refused, match="no attestation public key"):
        read_attestation(ctx, image, digest, "scan", require_signed=True)


def test_images_are_signed_as_cosign_does_and_verified(world, monkeypatch):
    ctx, image, digest = world["ctx"], world["image"], world["digest"]
    with pytest.raises(Refused, match="not signed by the attestation key"):
        verify_image(ctx, image, digest)
    monkeypatch.setenv("PIPELINE_ATTEST_KEY", str(ec_key(world["tmp"] / "m.pem",
                                                          world["tmp"] / "m.pub")))
    assert sign_image(ctx, image, digest)["changed"]
    with pytest.raises(Refused, match="unsigned or signed by another key"):
        verify_image(ctx, image, digest)
    monkeypatch.setenv("PIPELINE_ATTEST_KEY", str(world["trust"].keys["attest"]))
    assert sign_image(ctx, image, digest)["changed"]
    assert not sign_image(ctx, image, digest)["changed"], "idempotent"
    verify_image(ctx, image, digest)
    sig, _, _ = world["client"].manifest(world["repo"], f"sha256-{digest.split(':')[1]}.sig")
    layer = sig["layers"][0]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = json.loads(world["client"].get_blob(world["repo"], layer["digest"]))
    assert payload["critical"]["image"]["docker-manifest-digest"] == digest


def test_pipeline_perf_records_a_signed_perf_verdict_for_the_image(world):
    fixtures = FIXTURES / "perf"
    out = run_pipeline("perf", "--report", str(fixtures / "lighthouse-hello.json"), "--budget",
                       str(fixtures / "budget.yaml"), "--image", world["image"], "--digest",
                       world["digest"])
    assert out.returncode == 0, out.stderr[-2000:]
    verdict = read_attestation(world["ctx"], world["image"], world["digest"], "perf",
                               require_signed=True)
    assert verdict["passed"] is True and verdict["digest"] == world["digest"]
    assert any("largest-contentful-paint" in line for line in verdict["checks"])
