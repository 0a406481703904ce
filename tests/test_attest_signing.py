"""Signed verdicts: scan/gate/perf results and images signed by the CI attestation key,
verified when promotion reads them; forged records in the real registry are refused."""

from __future__ import annotations

import dataclasses
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
from pipelinelib.context import CIInfo, Context, Credentials
from pipelinelib.errors import Refused
from pipelinelib.secrets import Secrets
from tests.helpers.cli import run_pipeline
from tests.helpers.paths import FIXTURES, ROOT
from tests.helpers.registry import push_image
from tests.helpers.trust import ec_key, make_trust

POLICY = "environments:\n  prod: {promote: ['*'], protected: true}\n"


@pytest.fixture
def world(tmp_path, registry_env, monkeypatch):
    registry = registry_env["PIPELINELIB_REGISTRY"]
    repo = f"att{uuid.uuid4().hex[:8]}/api"
    digest = push_image(registry, repo, "1.0.0", "1" * 40)
    trust = make_trust(tmp_path, POLICY, people=("rm-alice", "rm-bob"))
    for name, value in trust.env(attest=True).items():  # for `pipeline perf` below
        monkeypatch.setenv(name, value)
    ctx = Context(secrets=Secrets(), ci=CIInfo(provider="jenkins", user="rm-alice"),
                  credentials=Credentials(attest_key=str(trust.keys["attest"])))
    return {"ctx": ctx, "image": f"{registry}/{repo}", "repo": repo, "digest": digest,
            "client": RegistryClient(registry), "trust": trust, "tmp": tmp_path}


def _use_attest_key(world, key: str | None) -> None:
    """The run's attestation key (``credentials.attest_key``) is ``key`` from here on."""
    ctx = world["ctx"]
    ctx.credentials = dataclasses.replace(ctx.credentials, attest_key=key)


def _forge(world, kind: str, payload: dict, *, key: str | None) -> None:
    """Someone who can push to the registry records a result: unsigned, or signed with a
    key of their own."""
    _use_attest_key(world, key)
    write_attestation(world["ctx"], world["image"], world["digest"], kind, payload)
    _use_attest_key(world, str(world["trust"].keys["attest"]))


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
def test_a_forged_passed_verdict_is_refused(world, forger):
    ctx, image, digest = world["ctx"], world["image"], world["digest"]
    write_attestation(ctx, image, digest, "scan", {"passed": False, "total": 3})
    other = None
    if forger == "other key":
        other = str(ec_key(world["tmp"] / "mallory.pem", world["tmp"] / "mallory.pub"))
    _forge(world, "scan", {"passed": True, "total": 0}, key=other)
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


def test_images_are_signed_as_cosign_does_and_verified(world):
    ctx, image, digest = world["ctx"], world["image"], world["digest"]
    with pytest.raises(Refused, match="not signed by the attestation key"):
        verify_image(ctx, image, digest)
    _use_attest_key(world, str(ec_key(world["tmp"] / "m.pem", world["tmp"] / "m.pub")))
    assert sign_image(ctx, image, digest)["changed"]
    with pytest.raises(Refused, match="unsigned or signed by another key"):
        verify_image(ctx, image, digest)
    _use_attest_key(world, str(world["trust"].keys["attest"]))
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


GATE_PLANTED = {
    "env-file": "env-file-secret-gate-61b9",       # release.env `# secret`
    "report-url": "report-url-password-0d3e",      # credentials in a URL inside a JUnit report
    "build-url": "build-url-password-gate-7f12",   # BUILD_URL user:password@
}


def test_the_signed_gate_verdict_carries_no_planted_secret(world, hello_repo, postgres_db):
    """A secret planted in each input the gate reads — the env file, a JUnit report (an
    env-file secret and a URL with credentials in failed test names), the database DSN's
    password, BUILD_URL's credentials — is in no decoded DSSE payload (the ``.gate`` record
    and the cosign ``.att`` layer), nor in the console, JSON log or report files."""
    import base64
    import subprocess

    planted = {**GATE_PLANTED, "dsn": postgres_db.split("://", 1)[1].split("@")[0]
               .split(":", 1)[1]}
    env_file = hello_repo / "release.env"
    env_file.write_text(env_file.read_text()
                        + f"DB_PASSWORD='{planted['env-file']}'  # secret\n")
    results = hello_repo / "build" / "test-results"
    results.mkdir(parents=True)
    (results / "unit.xml").write_text(
        '<testsuite name="api" tests="3" failures="2">'
        f'<testcase classname="api.db" name="test_login[{planted["env-file"]}]">'
        "<failure message='login refused'/></testcase>"
        '<testcase classname="api.db" name="test_connect[postgresql://app:'
        f'{planted["report-url"]}@db.internal:5432/app]"><failure message="timeout"/>'
        '</testcase><testcase classname="api.db" name="test_ok"/></testsuite>')
    subprocess.run(["git", "-C", str(hello_repo), "-c", "user.name=t", "-c",
                    "user.email=t@example.org", "commit", "-q", "-am", "plant"], check=True)
    report = world["tmp"] / "report"
    out = run_pipeline(
        "--report-dir", str(report), "gate", "--app-dir", str(hello_repo), "--marks", "1,2",
        "--migrate-next", "--build-result", "SUCCESS", "--database-dsn", postgres_db,
        "--image", world["image"], "--digest", world["digest"],
        env={"JENKINS_URL": "https://ci.example/", "JOB_NAME": "hello", "BUILD_NUMBER": "7",
             "BUILD_URL": f"https://ci-bot:{planted['build-url']}@ci.example/job/hello/7/"},
        cwd=hello_repo)
    assert out.returncode == 1, out.stderr[-3000:]  # mark 1 fails: two failed test cases
    verdict = read_attestation(world["ctx"], world["image"], world["digest"], "gate",
                               require_signed=True)
    assert verdict["passed"] is False
    evidence = [line for mark in verdict["marks"] for line in mark["evidence"]]
    assert any(line.startswith("failed: api.db.test_login[") for line in evidence), evidence
    assert any("db.internal:5432/app" in line for line in evidence), evidence

    client, repo, hexdigest = world["client"], world["repo"], world["digest"].split(":")[1]
    payloads = {}
    record, _, _ = client.manifest(repo, f"sha256-{hexdigest}.gate")
    att, _, _ = client.manifest(repo, f"sha256-{hexdigest}.att")
    for name, manifest in (("gate record", record), ("cosign .att", att)):
        for layer in manifest["layers"]:
            envelope = json.loads(client.get_blob(repo, layer["digest"]))
            payloads[f"{name} {layer['digest'][:19]}"] = base64.b64decode(
                envelope["payload"]).decode()
    assert any("pipelinelib.dev/attestation/gate/v1" in p for p in payloads.values())
    outputs = {**{f"DSSE payload of the {k}": v for k, v in payloads.items()},
               "stdout": out.stdout, "stderr": out.stderr,
               **{f"report {p.name}": p.read_text() for p in sorted(report.glob("*"))
                  if p.is_file()}}
    leaks = [f"{where} shows the {name} value" for where, text in outputs.items()
             for name, value in planted.items()
             for form in (value, base64.b64encode(value.encode()).decode()) if form in text]
    assert not leaks, "\n".join(leaks)


@pytest.fixture(scope="module")
def sigstore_verify() -> str:
    """sigstore-verify (testbed/tools/sigstore-verify): cosign's key-based checks done by
    sigstore's own Go library (built once and cached; `make testbed-up` builds it)."""
    import os
    import subprocess

    if os.environ.get("PIPELINELIB_SIGSTORE_VERIFY"):
        return os.environ["PIPELINELIB_SIGSTORE_VERIFY"]
    tool = ROOT / "testbed" / "tools" / "sigstore-verify"
    out = subprocess.run([str(tool)], capture_output=True, text=True, check=True, timeout=1800)
    return out.stdout.strip().split("=", 1)[1]


def test_sigstores_own_verifier_accepts_our_signatures_as_cosign_would(world, sigstore_verify):
    """The cosign interop check: the image signature (``cosign verify --key … --insecure-
    ignore-tlog``) and the scan/gate attestations (``cosign verify-attestation --type …``)
    verify with sigstore's library and the trust root's attestation.pub; another key, a
    forged record, another predicate type and another image's digest do not."""
    import subprocess

    ctx, image, digest, tmp = world["ctx"], world["image"], world["digest"], world["tmp"]
    public = str(world["trust"].directory / "attestation.pub")

    def verify(*args: str, key: str = public) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sigstore_verify, *args[:-1], "--key", key, args[-1]],
                              capture_output=True, text=True, timeout=60, check=False)

    ref = f"{image}@{digest}"
    unsigned = verify("image", ref)
    assert unsigned.returncode == 1 and "no signatures found" in unsigned.stderr
    sign_image(ctx, image, digest)
    write_attestation(ctx, image, digest, "scan", {"passed": False, "total": 3})
    write_attestation(ctx, image, digest, "gate", {"passed": True, "marks": []})

    signed = verify("image", ref)
    assert signed.returncode == 0, signed.stderr
    claim = json.loads(signed.stdout.splitlines()[0])
    assert claim["critical"]["image"]["docker-manifest-digest"] == digest
    for kind, passed in (("scan", False), ("gate", True)):
        out = verify("attestation", "--type", f"https://pipelinelib.dev/attestation/{kind}/v1",
                     ref)
        assert out.returncode == 0, out.stderr
        statements = [json.loads(line) for line in out.stdout.splitlines()]
        assert [s["predicate"]["passed"] for s in statements] == [passed], statements
        assert statements[0]["subject"][0]["digest"]["sha256"] == digest.split(":")[1]
    other = verify("attestation", "--type", "https://pipelinelib.dev/attestation/perf/v1", ref)
    assert other.returncode == 1 and "no matching attestations" in other.stderr

    mallory = str(ec_key(tmp / "mallory.pem", tmp / "mallory.pub"))
    for args in (("image", ref),
                 ("attestation", "--type", "https://pipelinelib.dev/attestation/scan/v1", ref)):
        wrong = verify(*args, key=str(tmp / "mallory.pub"))
        assert wrong.returncode == 1 and "no matching" in wrong.stderr, wrong.stderr
    # a registry writer replaces the failed scan verdict with a passed one signed by their key
    _forge(world, "scan", {"passed": True, "total": 0}, key=mallory)
    forged = verify("attestation", "--type", "https://pipelinelib.dev/attestation/scan/v1", ref)
    assert forged.returncode == 1 and "no matching attestations" in forged.stderr, forged.stdout
    elsewhere = push_image(image.split("/", 1)[0], world["repo"], "1.0.1", "2" * 40)
    assert verify("image", f"{image}@{elsewhere}").returncode == 1
