"""`pipeline build` (build, tag, push) against a registry of the test's own, with faults:
Toxiproxy between the engine and the registry, the registry's storage made read-only (real
5xx), the registry restarted mid-push, and the build killed right after each of its
registry writes (read from the registry's access log)."""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from pipelinelib.adapters.registry import MANIFEST_TYPES
from pipelinelib.testing.faults import Proxy, clear_reason, count_retries
from pipelinelib.testing.kill import KillHarness, RegistryWrites, Write
from tests.helpers.cli import run_pipeline
from tests.helpers.git import commit_all, git
from tests.helpers.wait import wait_until


@pytest.fixture
def app(hello_repo: Path) -> Path:
    env_file = hello_repo / "release.env"
    env_file.write_text(env_file.read_text().replace(
        "PROJECT_NAMESPACE=hello-example-org", f"PROJECT_NAMESPACE=f{uuid.uuid4().hex[:10]}"))
    commit_all(hello_repo, "unique namespace")
    return hello_repo


def repository(app: Path) -> str:
    line = next(x for x in (app / "release.env").read_text().splitlines()
                if x.startswith("PROJECT_NAMESPACE="))
    return f"pipelinelib/{line.split('=', 1)[1]}-web"


def tags_of(registry: str, repo: str) -> dict[str, str]:
    """tag -> digest, read from the registry (the truth, not our report)."""
    listed = requests.get(f"http://{registry}/v2/{repo}/tags/list", timeout=5)
    if listed.status_code != 200:
        return {}
    out = {}
    for tag in listed.json().get("tags") or []:
        head = requests.head(f"http://{registry}/v2/{repo}/manifests/{tag}", timeout=5,
                             headers={"Accept": MANIFEST_TYPES})
        out[tag] = head.headers.get("Docker-Content-Digest", "")
    return out


def build(app: Path, env: dict[str, str], registry: str, tmp_path: Path, name: str):
    started = time.monotonic()
    out = run_pipeline("--report-dir", str(tmp_path / name), "build", "--app-dir", str(app),
                       "--registry", registry, "--no-smoke", env=env)
    return out, round(time.monotonic() - started, 2)


def assert_published_once(app: Path, registry: str) -> dict[str, str]:
    """The revision's tag and the version tag are there and name the same image."""
    tags = tags_of(registry, repository(app))
    revision = git(app, "rev-parse", "HEAD")
    version = next(x for x in (app / "release.env").read_text().splitlines()
                   if x.startswith("APP_VERSION=")).split("=", 1)[1]
    assert revision[:7] in tags and version in tags, tags
    assert tags[revision[:7]] == tags[version], f"both tags name one image: {tags}"
    return tags


# name -> (add the fault, expected exit code of the faulted run)
FAULTS: dict[str, tuple[Callable[[Proxy], Any], int]] = {
    "latency 100 ms": (lambda p: p.add("latency", latency=100), 0),
    "bandwidth 512 KB/s": (lambda p: p.add("bandwidth", rate=512), 0),
    "slicer: 1 KB slices": (lambda p: p.add("slicer", average_size=1024, size_variation=512,
                                            delay=100, stream="upstream"), 0),
    "registry down (proxy disabled)": (lambda p: p.set_enabled(False), 3),
    "reset_peer: every connection reset": (lambda p: p.add("reset_peer", timeout=0), 3),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_build_and_push_through_a_registry_fault(app, registry_env, private_registry,
                                                  fault_proxy, tmp_path, scenario, fault):
    row = scenario("build+push", fault, "registry")
    proxy = fault_proxy("registry", private_registry.addr)
    add, code = FAULTS[fault]
    add(proxy)
    out, row.seconds = build(app, registry_env, proxy.listen, tmp_path, "faulted")
    row.retries = count_retries(out.stderr)
    reason = clear_reason(out.stderr)
    assert out.returncode == code, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    if code:
        row.outcome = f"exit {code}: {reason}"
        assert "registry" in reason.lower(), reason
    else:
        row.outcome = "survived" + (f" ({row.retries} retries)" if row.retries else "")
        assert_published_once(app, private_registry.addr)
    proxy.clear()
    rerun, _ = build(app, registry_env, proxy.listen, tmp_path, "rerun")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_published_once(app, private_registry.addr)
    row.rerun = "converged" if code else "unchanged (converged on the first run)"
    row.passed = True


def upload_attempts(log: Path) -> list[int]:
    """The status of every blob upload start (POST .../blobs/uploads/) in a registry's access
    log, in order."""
    import re

    return [int(m.group(2)) for m in re.finditer(
        r'"POST (/v2/\S+/blobs/uploads/\S*) HTTP/[\d.]+" (\d{3})', log.read_text(errors="replace"))]


def layer_count(env: dict[str, str], image: str) -> int:
    """Layers of a built image, as the engine has it."""
    import docker

    client = docker.APIClient(base_url=env["DOCKER_HOST"], version="auto")
    try:
        return len(client.inspect_image(image)["RootFS"]["Layers"])
    finally:
        client.close()


def test_push_to_read_only_storage_fails_clearly_then_converges(
        app, registry_env, private_registry, tmp_path, scenario):
    """The registry answers every upload 500 "filesystem: ... permission denied": a refusal
    that does not clear by itself. The engine would retry each layer five times (5 + 10 + 15
    + 20 s apart: the 63.6 s this scenario took before); at its first "Retrying in" the push
    step asks the registry once itself, reads the storage failure and stops. Counted in the
    registry's access log: one refused upload start per layer the engine began, plus the
    step's one question, and no second round."""
    row = scenario("build+push", "registry storage read-only (5xx on upload)", "registry")
    private_registry.read_only(True)
    try:
        out, row.seconds = build(app, registry_env, private_registry.addr, tmp_path, "ro")
    finally:
        private_registry.read_only(False)
    row.retries = count_retries(out.stderr)
    reason = clear_reason(out.stderr)
    row.outcome = f"exit {out.returncode}: {reason}"
    assert out.returncode == 3, out.stderr[-3000:]
    assert "registry" in reason.lower() and "Traceback" not in out.stderr
    assert "storage refuses writes" in out.stderr, out.stderr[-3000:]
    attempts = upload_attempts(private_registry.log)
    assert attempts and set(attempts) == {500}, attempts
    layers = layer_count(registry_env, f"{private_registry.addr}/{repository(app)}:"
                                       f"{git(app, 'rev-parse', 'HEAD')[:7]}")
    assert len(attempts) <= layers + 1, f"no retry ladder: {len(attempts)} upload starts"
    row.retries = len(attempts) - 1
    assert tags_of(private_registry.addr, repository(app)) == {}, "nothing half-published"
    rerun, _ = build(app, registry_env, private_registry.addr, tmp_path, "rerun")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_published_once(app, private_registry.addr)
    row.rerun = "converged"
    row.passed = True


def test_registry_restarted_mid_push_then_rerun_converges(
        app, registry_env, private_registry, tmp_path, scenario):
    """The registry is restarted as soon as its access log shows the first blob upload."""
    row = scenario("build+push", "registry restarted mid-push", "registry")
    writes = RegistryWrites(private_registry.log)
    writes.mark()
    restarted: list[str] = []

    def restart_on_first_upload() -> None:
        wait_until(lambda: any("/blobs/uploads" in w.what for w in writes.poll()), 300,
                   "the first blob upload", interval=0.01)
        private_registry.restart()
        restarted.append("yes")

    watcher = threading.Thread(target=restart_on_first_upload, daemon=True)
    watcher.start()
    out, row.seconds = build(app, registry_env, private_registry.addr, tmp_path, "restart")
    watcher.join(60)
    assert restarted == ["yes"]
    row.retries = count_retries(out.stderr)
    row.outcome = ("survived" if out.returncode == 0
                   else f"exit {out.returncode}: {clear_reason(out.stderr)}")
    assert out.returncode in (0, 3), out.stderr[-3000:]
    rerun, _ = build(app, registry_env, private_registry.addr, tmp_path, "rerun")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_published_once(app, private_registry.addr)
    row.rerun = "converged"
    row.passed = True


def kind(write: Write) -> str:
    """blob upload start, chunk, blob commit, or manifest."""
    method, path = write.what.split(" ", 1)
    if "/manifests/" in path:
        return "manifest PUT"
    return {"POST": "blob upload start (POST)", "PATCH": "blob chunk (PATCH)",
            "PUT": "blob commit (PUT)"}.get(method, method)


@pytest.mark.timeout(1200)
def test_build_killed_after_each_kind_of_registry_write_converges(
        app, registry_env, private_registry, fault_proxy, tmp_path, scenario):
    """The build's writes as the registry's access log shows them: blob upload start, chunk,
    blob commit, and the manifest PUT of each tag. For the first write of each kind and for
    each manifest PUT, a fresh app version is built and the build killed as soon as the
    access log shows that write (the engine's connection goes through a latency toxic),
    then re-run: both tags name the one image, nothing missing. Which layers a build uploads
    depends on what the registry already has, so kill points are named by kind, not by
    position; the engine pushes layers in parallel and finishes or cancels a push on its
    own after its client died, so the kill lands after the write, not always before the
    next one."""
    import os
    import sys

    proxy = fault_proxy("registry", private_registry.addr)
    proxy.add("latency", latency=150)
    env = {**registry_env, "PIPELINE_LOG_FORMAT": "json"}
    counter = [0]

    def fresh() -> None:  # a new revision and version: a new image, new tags
        counter[0] += 1
        (app / "public" / "kill.txt").write_text(f"{counter[0]}\n")
        env_file = app / "release.env"
        env_file.write_text(env_file.read_text().replace(
            f"APP_VERSION=1.0.{counter[0] - 1}", f"APP_VERSION=1.0.{counter[0]}"))
        commit_all(app, f"kill trial {counter[0]}")

    cmd = [sys.executable, "-m", "pipelinelib", "build", "--app-dir", str(app), "--registry",
           proxy.listen, "--no-smoke"]
    harness = KillHarness(cmd, {**os.environ, **env}, [RegistryWrites(private_registry.log)],
                          timeout_s=600)
    fresh()
    done, writes = harness.record()
    assert done.returncode == 0, done.stderr[-3000:]
    manifests = sum(1 for w in writes if kind(w) == "manifest PUT")
    assert manifests == 2, "one manifest PUT per tag (revision, version)"
    points = [(k, 1) for k in dict.fromkeys(kind(w) for w in writes) if k != "manifest PUT"]
    points += [("manifest PUT", n) for n in range(1, manifests + 1)]
    for what, nth in points:
        fresh()
        trial = harness.kill_after(0, when=lambda ws, what=what, nth=nth: sum(
            1 for w in ws if kind(w) == what) >= nth)
        row = scenario("build+push", f"SIGKILL after {what} #{nth}", "registry")
        row.outcome = f"killed after {trial.landed} registry write(s)"
        assert trial.killed, trial.stderr_tail[-2000:]
        started = time.monotonic()
        rerun = run_pipeline("build", "--app-dir", str(app), "--registry", proxy.listen,
                             "--no-smoke", env=env)
        row.seconds = round(time.monotonic() - started, 2)
        row.retries = count_retries(rerun.stderr)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert_published_once(app, private_registry.addr)
        row.rerun = "converged"
        row.passed = True


def test_connection_cut_half_way_through_a_blob_upload_is_retried(
        app, registry_env, private_registry, fault_proxy, tmp_path, scenario):
    """Toxiproxy ``limit_data`` on the engine's connection to the registry: the connection
    is closed after 256 KB went up, half-way through the first large layer's upload. The
    toxic is removed as soon as the registry's access log shows that cut upload, so the
    fault happens once: the engine uploads the layer again (a new upload session), and the
    registry ends with exactly one image under both tags, every blob whole and linked once.
    (The cut session stays in the registry's _uploads until its upload purging, a week by
    default: neither the engine nor the library knows it any more.)"""
    row = scenario("build+push", "limit_data: connection cut after 256 KB of a blob upload",
                   "registry")
    proxy = fault_proxy("registry", private_registry.addr)
    toxic = proxy.add("limit_data", stream="upstream", bytes=256 * 1024)
    writes = RegistryWrites(private_registry.log)
    writes.mark()
    cut: list[str] = []

    def the_cut_upload() -> re.Match[str] | None:
        """A PATCH or PUT of a blob the registry answered >= 400, in its log."""
        text = private_registry.log.read_text(errors="replace")
        return re.search(r'"(PATCH|PUT) (/v2/\S+/blobs/uploads/\S*) HTTP/[\d.]+" '
                         r'([45]\d\d)', text)

    def lift_after_the_cut() -> None:
        found = wait_until(the_cut_upload, 300, "the cut upload", interval=0.02)
        proxy.remove(toxic)
        cut.append(f"{found.group(1)} answered {found.group(3)}")

    watcher = threading.Thread(target=lift_after_the_cut, daemon=True)
    watcher.start()
    out, row.seconds = build(app, registry_env, proxy.listen, tmp_path, "cut")
    watcher.join(30)
    row.retries = count_retries(out.stderr)
    assert cut, "the toxic cut an upload (the registry logged it)\n" + out.stderr[-2000:]
    row.outcome = ("survived: the engine uploaded the blob again" if out.returncode == 0
                   else f"exit {out.returncode}: {clear_reason(out.stderr)}")
    assert out.returncode in (0, 3), out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    if out.returncode == 3:
        assert "registry" in clear_reason(out.stderr).lower()
        rerun, _ = build(app, registry_env, proxy.listen, tmp_path, "rerun")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        row.rerun = "converged"
    else:
        row.rerun = "unchanged (converged on the first run)"
    tags = assert_published_once(app, private_registry.addr)
    assert len(set(tags.values())) == 1, f"one image, both tags: {tags}"
    repo = repository(app)
    manifest = requests.get(f"http://{private_registry.addr}/v2/{repo}/manifests/"
                            f"{next(iter(tags.values()))}", headers={"Accept": MANIFEST_TYPES},
                            timeout=10).json()
    wanted = {manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])}
    for digest in wanted:  # every blob whole and correct: its bytes hash to its name
        blob = requests.get(f"http://{private_registry.addr}/v2/{repo}/blobs/{digest}",
                            timeout=30)
        assert blob.status_code == 200
        assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == digest
    linked = {f"sha256:{p.name}" for p in Path(
        private_registry.data, "docker/registry/v2/repositories", repo, "_layers",
        "sha256").iterdir()}
    assert linked == wanted, "exactly the image's blobs, nothing half-uploaded linked"
    row.outcome += f" ({cut[0]}; {len(wanted)} blobs, each once and whole)"
    row.passed = True
