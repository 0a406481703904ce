"""`pipeline build` against the real testbed engine and registries."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

import pytest
import requests

from pipelinelib.adapters.docker_engine import DockerEngine, PushFailed
from pipelinelib.adapters.registry import MANIFEST_TYPES
from tests.helpers.cli import run_pipeline
from tests.helpers.git import commit_all, git

PLANTED = "planted-build-secret-7f3a"


@pytest.fixture(scope="session")
def engine(registry_env) -> DockerEngine:
    return DockerEngine.from_env(registry_env["DOCKER_HOST"])


@pytest.fixture
def app(hello_repo: Path) -> Path:
    """The hello app with a unique project namespace, so tests never share registry tags,
    and its own smoke port (the image's httpd listens on the host network: the demo and the
    other workers' builds probe 18080 at the same time)."""
    env_file = hello_repo / "release.env"
    port = free_port()
    text = env_file.read_text().replace(
        "PROJECT_NAMESPACE=hello-example-org", f"PROJECT_NAMESPACE=t{uuid.uuid4().hex[:10]}"
    ).replace("HTTP_PORT=18080", f"HTTP_PORT={port}")
    env_file.write_text(text + f"DB_PASSWORD='{PLANTED}'  # secret\n")
    commit_all(hello_repo, "unique namespace")
    return hello_repo


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def env_value(app: Path, key: str) -> str:
    lines = (app / "release.env").read_text().splitlines()
    line = next(x for x in lines if x.startswith(key + "="))
    return line.split("=", 1)[1]


def repository(app: Path) -> str:
    return f"pipelinelib/{env_value(app, 'PROJECT_NAMESPACE')}-web"


def remote_digest(registry: str, repo: str, tag: str, auth=None) -> str | None:
    r = requests.head(
        f"http://{registry}/v2/{repo}/manifests/{tag}",
        auth=auth,
        timeout=5,
        headers={"Accept": MANIFEST_TYPES},
    )
    return r.headers["Docker-Content-Digest"] if r.status_code == 200 else None


def build(app: Path, env: dict, tmp_path: Path, *extra: str, report: str = "report"):
    out = run_pipeline(
        "--report-dir", str(tmp_path / report), "build", "--app-dir", str(app), *extra, env=env
    )
    summary_path = tmp_path / report / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return out, summary


def steps(summary) -> dict[str, dict]:
    return {s["step"]: s for s in summary["steps"]}


def test_build_publishes_immutable_tags_and_records_the_registry_digest(
    app, registry_env, engine, tmp_path
):
    registry = registry_env["PIPELINELIB_REGISTRY"]
    out, summary = build(app, registry_env, tmp_path, "--registry", registry)
    assert out.returncode == 0, out.stderr[-3000:]
    revision = git(app, "rev-parse", "HEAD")
    push = steps(summary)["push"]
    digest = remote_digest(registry, repository(app), revision[:7])
    assert push["status"] == "changed" and push["outputs"]["digest"] == digest
    assert push["outputs"]["image"] == f"{registry}/{repository(app)}@{digest}"
    assert remote_digest(registry, repository(app), "1.0.0") == digest, "version tag"
    labels = engine.inspect_image(f"{registry}/{repository(app)}:{revision[:7]}")["Config"][
        "Labels"
    ]
    assert labels["org.opencontainers.image.revision"] == revision
    assert labels["org.opencontainers.image.version"] == "1.0.0"
    assert labels["io.pipelinelib.env.busybox_version"] == "1.35.0"
    assert {"created", "source", "title"} <= {k.rsplit(".", 1)[1] for k in labels}
    assert steps(summary)["smoke"]["summary"].startswith("passed: GET /index.html -> 200")
    assert steps(summary)["assets"]["status"] == "changed"


def test_rerun_is_unchanged_and_pushes_nothing(app, registry_env, tmp_path):
    registry = registry_env["PIPELINELIB_REGISTRY"]
    first, _ = build(app, registry_env, tmp_path, "--registry", registry, report="one")
    assert first.returncode == 0, first.stderr[-3000:]
    digest = remote_digest(registry, repository(app), git(app, "rev-parse", "--short=7", "HEAD"))
    again, summary = build(app, registry_env, tmp_path, "--registry", registry, report="two")
    assert again.returncode == 0, again.stderr[-3000:]
    statuses = {name: s["status"] for name, s in steps(summary).items()}
    assert statuses.get("build") == "unchanged" and statuses.get("push") == "unchanged"
    assert "smoke" not in statuses and "tag" not in statuses, "nothing rebuilt, nothing retested"
    assert steps(summary)["build"]["outputs"]["digest"] == digest


def test_a_tag_holding_another_revision_is_never_overwritten(app, registry_env, engine, tmp_path):
    registry = registry_env["PIPELINELIB_REGISTRY"]
    repo = f"{registry}/{repository(app)}"
    tag = git(app, "rev-parse", "--short=7", "HEAD")
    engine.tag(registry_env["PIPELINELIB_BASE_IMAGE"], repo, tag)
    engine.push(repo, tag)
    squatter = remote_digest(registry, repository(app), tag)
    out, summary = build(app, registry_env, tmp_path, "--registry", registry)
    assert out.returncode == 1
    assert "already exists, built from revision unknown" in out.stderr
    assert steps(summary)["build"]["status"] == "failed" and "push" not in steps(summary)
    assert remote_digest(registry, repository(app), tag) == squatter


def test_version_tag_is_immutable_across_commits(app, registry_env, tmp_path):
    registry = registry_env["PIPELINELIB_REGISTRY"]
    first, _ = build(app, registry_env, tmp_path, "--registry", registry, report="one")
    assert first.returncode == 0, first.stderr[-3000:]
    released = remote_digest(registry, repository(app), "1.0.0")
    (app / "public" / "index.html").write_text("<p>changed but still 1.0.0</p>")
    new_tag = commit_all(app, "change without a version bump")[:7]
    out, _ = build(app, registry_env, tmp_path, "--registry", registry, report="two")
    assert out.returncode == 1 and "1.0.0 already points at" in out.stderr
    assert remote_digest(registry, repository(app), "1.0.0") == released
    assert remote_digest(registry, repository(app), new_tag) is None, "nothing pushed"


def test_authenticated_registry_and_secrets_stay_out_of_logs_labels_and_reports(
    app, registry_env, engine, tmp_path
):
    registry = registry_env["PIPELINELIB_AUTH_REGISTRY"]
    password = registry_env["PIPELINELIB_AUTH_REGISTRY_PASSWORD"]
    creds = {
        "PIPELINE_REGISTRY_USER": registry_env["PIPELINELIB_AUTH_REGISTRY_USER"],
        "PIPELINE_REGISTRY_PASSWORD": password,
    }
    out, _ = build(
        app, {**registry_env, **creds}, tmp_path, "--registry", registry, "--log-level", "debug"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    user = registry_env["PIPELINELIB_AUTH_REGISTRY_USER"]
    tag = git(app, "rev-parse", "--short=7", "HEAD")
    assert remote_digest(registry, repository(app), tag, auth=(user, password))
    labels = engine.inspect_image(f"{registry}/{repository(app)}:{tag}")["Config"]["Labels"]
    history = json.dumps(engine.api.history(f"{registry}/{repository(app)}:{tag}"))
    written = [out.stdout, out.stderr, json.dumps(labels), history]
    written += [p.read_text() for p in (tmp_path / "report").iterdir()]
    for text in written:
        assert PLANTED not in text and password not in text


def test_wrong_or_missing_credentials_fail_with_a_clear_message(app, registry_env, tmp_path):
    registry = registry_env["PIPELINELIB_AUTH_REGISTRY"]
    wrong = {"PIPELINE_REGISTRY_USER": "pipeline", "PIPELINE_REGISTRY_PASSWORD": "wrong-password-1"}
    out, _ = build(app, {**registry_env, **wrong}, tmp_path, "--registry", registry, report="a")
    assert out.returncode == 1 and "refused the credentials of 'pipeline'" in out.stderr
    assert "wrong-password-1" not in out.stderr
    out, _ = build(app, registry_env, tmp_path, "--registry", registry, report="b")
    assert out.returncode == 1 and "requires credentials" in out.stderr


def test_push_error_inside_the_stream_is_detected(registry_env, engine):
    repo = f"{registry_env['PIPELINELIB_AUTH_REGISTRY']}/pipelinelib/stream-error"
    engine.tag(registry_env["PIPELINELIB_BASE_IMAGE"], repo, "x")
    with pytest.raises(PushFailed) as err:
        engine.push(repo, "x")
    assert "no basic auth credentials" in str(err.value)


def test_unreachable_registry_exits_3(app, registry_env, tmp_path):
    out, _ = build(app, registry_env, tmp_path, "--registry", "127.0.0.1:9")
    assert out.returncode == 3 and "registry 127.0.0.1:9 is unreachable" in out.stderr


def test_failing_build_exits_1_with_the_log_tail(app, registry_env, engine, tmp_path):
    dockerfile = app / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text() + 'RUN ["/bin/sh", "-c", "echo boom-marker; exit 3"]\n'
    )
    commit_all(app, "break the build")
    out, summary = build(
        app, registry_env, tmp_path, "--registry", registry_env["PIPELINELIB_REGISTRY"]
    )
    assert out.returncode == 1
    failed = steps(summary)["build"]
    assert failed["status"] == "failed" and any(
        "boom-marker" in line for line in failed["evidence"]
    )
    assert "docker build failed" in (tmp_path / "report" / "junit.xml").read_text()


def test_failing_smoke_test_removes_its_container_and_pushes_nothing(
    app, registry_env, engine, tmp_path
):
    env_file = app / "release.env"
    env_file.write_text(
        env_file.read_text().replace(
            "SMOKE_HTTP_PATH=/index.html", "SMOKE_HTTP_PATH=/missing.html\nSMOKE_TIMEOUT=3"
        )
    )
    commit_all(app, "probe a missing page")
    registry = registry_env["PIPELINELIB_REGISTRY"]
    out, summary = build(app, registry_env, tmp_path, "--registry", registry)
    assert out.returncode == 1 and "did not answer 2xx within 3s (last: HTTP 404)" in out.stderr
    assert "push" not in steps(summary)
    assert engine.containers_with_label("io.pipelinelib.smoke") == []
    assert (
        remote_digest(registry, repository(app), git(app, "rev-parse", "--short=7", "HEAD")) is None
    )


def test_dry_run_builds_and_pushes_nothing(app, registry_env, engine, tmp_path):
    registry = registry_env["PIPELINELIB_REGISTRY"]
    out, summary = build(app, registry_env, tmp_path, "--registry", registry, "--dry-run")
    assert out.returncode == 0, out.stderr[-3000:]
    assert steps(summary)["build"]["summary"].startswith("would: build")
    tag = git(app, "rev-parse", "--short=7", "HEAD")
    assert engine.inspect_image(f"{registry}/{repository(app)}:{tag}") is None
    assert remote_digest(registry, repository(app), tag) is None
    assert not (app / "build").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("CONTAINER_NAME=web", "CONTAINER_NAME=Web_"),
            "CONTAINER_NAME: 'Web_' cannot be part of an image name",
        ),
        (
            ("CONTAINER_NAME=web", "CONTAINER_NAME=$(id)"),
            "unquoted value has characters a shell would interpret",
        ),
        (("CONTAINER_NAME=web", ""), "CONTAINER_NAME: missing key"),
        (("HASH_LENGTH", "HASH_LENGTH"), None),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(app, registry_env, engine, tmp_path, edit, message):
    env_file = app / "release.env"
    if message is None:  # missing Dockerfile
        (app / "Dockerfile").unlink()
        message = "release.env DOCKERFILE: "
    else:
        env_file.write_text(env_file.read_text().replace(*edit))
    commit_all(app, "bad input")
    out, summary = build(
        app, registry_env, tmp_path, "--registry", registry_env["PIPELINELIB_REGISTRY"]
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert message in out.stderr
    assert [s["step"] for s in summary["steps"]] == ["validate"]
    assert not (app / "build").exists()
