"""The adapter's lean HTTP client (pipelinelib.adapters.kube_http) against the real
apiserver: kubeconfigs with a server, a CA and a token or client certificate are served
without importing the official client; every other kubeconfig still goes through the
official loader, which keeps its behaviour and its error messages."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelinelib.adapters.kube import KubeClient
from pipelinelib.adapters.kube_http import LeanApiClient
from pipelinelib.errors import Unreachable

ROOT = Path(__file__).resolve().parents[1]


def _config(path: str) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _write(tmp_path: Path, doc: dict, name: str = "kubeconfig") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return str(path)


def _deployer(kube_env: dict[str, str]) -> tuple[dict, dict]:
    doc = _config(kube_env["PIPELINELIB_DEPLOYER_KUBECONFIG"])
    return doc["clusters"][0]["cluster"], doc["users"][0]["user"]


def _one(cluster: dict, user: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "t",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}]}


def test_token_and_client_certificate_kubeconfigs_never_import_the_official_client(kube_env):
    probe = ("import sys\n"
             "from pipelinelib.adapters.kube import KubeClient\n"
             "for path in sys.argv[1:]:\n"
             "    kube = KubeClient.from_kubeconfig(path)\n"
             "    assert kube.get('Namespace', 'default')['metadata']['name'] == 'default'\n"
             "    print(type(kube.api_client).__name__)\n"
             "print('kubernetes' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", probe, kube_env["KUBECONFIG"],
                          kube_env["PIPELINELIB_DEPLOYER_KUBECONFIG"]],
                         env={**os.environ, **kube_env, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["LeanApiClient", "LeanApiClient", "False"]


def test_files_named_relative_to_the_kubeconfig_a_token_file_and_a_ca_file(kube_env,
                                                                          tmp_path):
    cluster, user = _deployer(kube_env)
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    (tmp_path / "token").write_text(user["token"] + "\n")
    path = _write(tmp_path, _one({"server": cluster["server"],
                                  "certificate-authority": "ca.crt"}, {"tokenFile": "token"}))
    kube = KubeClient.from_kubeconfig(path)
    assert isinstance(kube.api_client, LeanApiClient)
    assert kube.get("Namespace", "default") is not None


def test_a_client_certificate_in_files_and_a_skipped_tls_verification(kube_env, tmp_path):
    admin = _config(kube_env["KUBECONFIG"])
    cluster, user = admin["clusters"][0]["cluster"], admin["users"][0]["user"]
    for field in ("client-certificate", "client-key"):
        (tmp_path / field).write_bytes(base64.b64decode(user[f"{field}-data"]))
    path = _write(tmp_path, _one({"server": cluster["server"], "insecure-skip-tls-verify": True},
                                 {"client-certificate": "client-certificate",
                                  "client-key": "client-key"}))
    kube = KubeClient.from_kubeconfig(path)
    assert isinstance(kube.api_client, LeanApiClient)
    assert kube.server_version().startswith("v1.")


def test_an_exec_plugin_kubeconfig_goes_through_the_official_loader(kube_env, tmp_path):
    cluster, user = _deployer(kube_env)
    plugin = tmp_path / "credential"
    plugin.write_text("#!/bin/sh\nprintf '%s' \"$CREDENTIAL\"\n")
    plugin.chmod(0o700)
    credential = ('{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",'
                  f' "status": {{"token": "{user["token"]}"}}}}')
    path = _write(tmp_path, _one(cluster, {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
        "env": [{"name": "CREDENTIAL", "value": credential}],
        "interactiveMode": "Never"}}))
    kube = KubeClient.from_kubeconfig(path)
    assert not isinstance(kube.api_client, LeanApiClient)
    assert kube.get("Namespace", "default") is not None


def test_a_proxy_in_the_environment_is_left_to_the_official_client(kube_env, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the official client bypasses it for us
    kube = KubeClient.from_kubeconfig(kube_env["PIPELINELIB_DEPLOYER_KUBECONFIG"])
    assert not isinstance(kube.api_client, LeanApiClient)
    assert kube.get("Namespace", "default") is not None


def test_a_missing_context_is_still_reported_by_the_official_loader(kube_env):
    with pytest.raises(Unreachable) as caught:
        KubeClient.from_kubeconfig(kube_env["PIPELINELIB_DEPLOYER_KUBECONFIG"], "no-such")
    assert "no usable kubeconfig" in caught.value.message
    assert "no-such" in caught.value.message

