"""The real ``helm`` binary: render charts (``helm template``), package, index and push.

Argument lists only. Each call gets its own HELM_* home directories so a user's helm
configuration (repositories, registry logins) is never read or written. Charts come
from a local path, an http(s) chart repository (``--repo``) or an OCI registry
(``oci://``; loopback registries are spoken to with ``--plain-http``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from pipelinelib.errors import BadInput, StepFailed

PINNED_VERSION = "v3.21.4"
_render_cache: dict[str, list[dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def helm_binary() -> str:
    """$PIPELINELIB_HELM, else ``helm`` on PATH, else the testbed build cache."""
    explicit = os.environ.get("PIPELINELIB_HELM")
    if explicit:
        return explicit
    found = shutil.which("helm")
    if found:
        return found
    cache = Path(os.environ.get("PIPELINELIB_CACHE") or Path.home() / ".cache" / "pipelinelib")
    built = cache / "helm" / PINNED_VERSION / "bin" / "helm"
    if built.is_file():
        return str(built)
    raise StepFailed("no helm binary found", hint="run testbed/tools/helm (builds the pinned "
                     "helm) or set PIPELINELIB_HELM")


def _is_loopback(target: str) -> bool:
    host = target.removeprefix("oci://").removeprefix("http://").split("/", 1)[0]
    return host.split(":", 1)[0] in ("127.0.0.1", "localhost", "[::1]")


def run_helm(*args: str, timeout: float = 120, stdin: str | None = None) -> str:
    """Run helm with isolated home directories; ``StepFailed`` with its stderr on failure."""
    with tempfile.TemporaryDirectory(prefix="pipelinelib-helm-") as home:
        env = {**os.environ, "HELM_CACHE_HOME": f"{home}/cache",
               "HELM_CONFIG_HOME": f"{home}/config", "HELM_DATA_HOME": f"{home}/data",
               "HELM_REGISTRY_CONFIG": f"{home}/registry.json"}
        try:
            proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True,
                                  env=env, timeout=timeout, input=stdin, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StepFailed(f"helm {args[0]} could not run", cause=str(exc)[:300]) from exc
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise StepFailed(f"helm {args[0]} failed", cause=(lines[-1] if lines else "")[:400],
                         evidence=lines[-10:])
    return proc.stdout


def template(release: str, chart: str, version: str | None, namespace: str,
             values: dict[str, Any], *, repo: str | None = None) -> list[dict[str, Any]]:
    """Render ``chart`` to a list of manifests (cached by chart, version and values).

    ``chart`` is a local directory, a chart name (with ``repo``) or ``oci://...``.
    """
    from pipelinelib import yamlsafe

    blob = json.dumps([release, chart, version, namespace, values, repo], sort_keys=True)
    key = hashlib.sha256(blob.encode()).hexdigest()
    local = not chart.startswith("oci://") and repo is None
    with _cache_lock:
        if key in _render_cache and not local:
            return _copy(_render_cache[key])
    args = ["template", release, chart, "--namespace", namespace, "--values", "-"]
    if version and not local:
        args += ["--version", version]
    if repo:
        args += ["--repo", repo]
    if (repo and repo.startswith("http://")) or (chart.startswith("oci://") and
                                                 _is_loopback(chart)):
        args += ["--plain-http"] if chart.startswith("oci://") else []
    out = run_helm(*args, stdin=json.dumps(values))
    docs = [d for d in yamlsafe.safe_load_all(out, f"helm template {chart}", plain=True)
            if isinstance(d, dict) and d.get("kind")]
    with _cache_lock:
        _render_cache[key] = docs
    return _copy(docs)


def _copy(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    copied: list[dict[str, Any]] = json.loads(json.dumps(docs))
    return copied


def chart_version(chart_dir: str | Path) -> str:
    """The ``version`` in a local chart's Chart.yaml."""
    import yaml

    from pipelinelib import yamlsafe

    try:
        data = yamlsafe.safe_load(Path(chart_dir) / "Chart.yaml")
        return str(data["version"])
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise BadInput("not a Helm chart", source=str(chart_dir),
                       expected="a directory with Chart.yaml naming a version") from exc


def package(chart_dir: str | Path, out_dir: str | Path) -> Path:
    """``helm package``: the chart archive written to ``out_dir``."""
    run_helm("package", str(chart_dir), "--destination", str(out_dir))
    name = Path(chart_dir).name
    return Path(out_dir) / f"{name}-{chart_version(chart_dir)}.tgz"


def index(repo_dir: str | Path, url: str) -> None:
    """``helm repo index``: make ``repo_dir`` (served at ``url``) a chart repository."""
    run_helm("repo", "index", str(repo_dir), "--url", url)


def push(archive: str | Path, target: str) -> str:
    """``helm push`` a chart archive to ``oci://registry/path``; returns helm's output."""
    args = ["push", str(archive), target]
    if _is_loopback(target):
        args.append("--plain-http")
    return run_helm(*args)


class HelmTool:
    """The ``helm`` binary as the ``Helm`` seam (``ctx.helm``)."""

    def template(self, release: str, chart: str, version: str | None, namespace: str,
                 values: dict[str, Any], *, repo: str | None = None) -> list[dict[str, Any]]:
        return template(release, chart, version, namespace, values, repo=repo)

    def package(self, chart_dir: str | Path, out_dir: str | Path) -> Path:
        return package(chart_dir, out_dir)

    def index(self, repo_dir: str | Path, url: str) -> None:
        index(repo_dir, url)

    def push(self, archive: str | Path, target: str) -> str:
        return push(archive, target)
