"""Helm charts rendered by the real helm: local path, chart repository (http) and OCI."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from pipelinelib.adapters import helm
from pipelinelib.envspec.load import parse_environment
from pipelinelib.envspec.render import render_app
from pipelinelib.errors import StepFailed
from pipelinelib.kube.labels import ENV_LABEL
from tests.helpers.paths import ROOT

CHART = ROOT / "tests" / "fixtures" / "charts" / "greeter"
DIGEST = "sha256:" + "c" * 64


def spec(repository: str, version: str = "1.2.3", root: Path | None = None):
    text = f"""\
apiVersion: pipelinelib.dev/v1
kind: Environment
name: staging
namespaces: [greet]
apps:
  greeter:
    image: {{repository: 127.0.0.1:5001/t/greeter, tag: "1.0", digest: "{DIGEST}"}}
    chart: {{name: greeter, repository: "{repository}", version: "{version}"}}
    values: {{greeting: bonjour}}
    replicas: 3
    env: {{MODE: test}}
"""
    return parse_environment(text, "environments/staging.yaml", "staging", root)


def _by_kind(docs):
    return {d["kind"]: d for d in docs}


def check_rendered(docs):
    kinds = _by_kind(docs)
    deployment, config = kinds["Deployment"], kinds["ConfigMap"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"127.0.0.1:5001/t/greeter@{DIGEST}"
    assert deployment["spec"]["replicas"] == 3
    assert {"name": "MODE", "value": "test"} in container["env"]
    assert config["data"] == {"GREETING": "bonjour", "CHART": "greeter-1.2.3"}
    for doc in docs:
        assert doc["metadata"]["namespace"] == "greet"
        assert doc["metadata"]["labels"][ENV_LABEL] == "staging"


def test_the_pinned_helm_is_built_and_reports_its_version(helm_bin):
    out = subprocess.run([helm_bin, "version", "--short"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().startswith(helm.PINNED_VERSION)


def test_a_local_chart_is_rendered_with_the_spec_laid_over_it(helm_bin, tmp_path):
    shutil.copytree(CHART, tmp_path / "charts" / "greeter")
    env = spec("charts/greeter", root=tmp_path)
    check_rendered(render_app(env, env.apps["greeter"]))


def _serve(directory: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_chart_from_a_chart_repository_is_rendered(helm_bin, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    archive = helm.package(CHART, repo)
    assert archive.is_file()
    server = _serve(repo)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        helm.index(repo, url)
        assert "greeter-1.2.3.tgz" in (repo / "index.yaml").read_text()
        env = spec(url)
        check_rendered(render_app(env, env.apps["greeter"]))
        with pytest.raises(StepFailed) as info:
            env = spec(url, version="9.9.9")
            render_app(env, env.apps["greeter"])
        assert "helm template failed" in info.value.message and "9.9.9" in str(info.value)
    finally:
        server.shutdown()


def test_a_chart_pushed_to_the_oci_registry_is_rendered(helm_bin, registry_env, tmp_path):
    registry = registry_env["PIPELINELIB_REGISTRY"]
    archive = helm.package(CHART, tmp_path)
    target = f"oci://{registry}/t{uuid.uuid4().hex[:10]}/charts"
    helm.push(archive, target)
    env = spec(target)
    check_rendered(render_app(env, env.apps["greeter"]))


def test_helm_runs_with_its_own_homes_and_never_touches_the_users(helm_bin, tmp_path,
                                                                  monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    shutil.copytree(CHART, tmp_path / "charts" / "greeter")
    env = spec("charts/greeter", root=tmp_path)
    render_app(env, env.apps["greeter"])
    assert list(home.iterdir()) == []

