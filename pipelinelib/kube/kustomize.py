"""Build a kustomize directory into manifests with kubectl's built-in kustomize.

``kubectl kustomize DIR`` (kustomize v5 inside every kubectl since 1.21) is the tool users
already run: no second binary to install, build or keep in step. ``$PIPELINE_KUBECTL``
names the kubectl to use (default ``kubectl`` on PATH); a standalone ``kustomize`` on PATH
is used when there is no kubectl. The output goes through the safe YAML loader like any file.

ConfigMaps and Secrets from a build keep kustomize's names: its generators already add a
content hash and rewrite the references (``configMapGenerator``), so the rollout's own
config hashing is switched off for them (``pipelinelib.dev/hash: "false"``), never applied
twice.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from pipelinelib import yamlsafe
from pipelinelib.adapters import process
from pipelinelib.errors import BadInput
from pipelinelib.kube.kinds import HASHED
from pipelinelib.kube.labels import ANN_HASH as HASH_ANNOTATION

FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
TIMEOUT_S = 120


def kustomization(folder: Path) -> Path | None:
    """The directory's kustomization file, if it has one."""
    return next((folder / f for f in FILES if (folder / f).is_file()), None)


def command(folder: Path) -> list[str]:
    """The argument list that builds ``folder``."""
    kubectl = os.environ.get("PIPELINE_KUBECTL") or shutil.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize", str(folder)]
    standalone = shutil.which("kustomize")
    if standalone:
        return [standalone, "build", str(folder)]
    raise BadInput("kustomize directory but no kubectl to build it", source=str(folder),
                   expected="kubectl on PATH or $PIPELINE_KUBECTL (its built-in kustomize)")


def build(folder: Path) -> list[tuple[Any, int, int]]:
    """(object, line, index) of every document ``kustomize build`` makes of ``folder``."""
    name = f"{folder} (kustomize build)"
    try:
        out = process.run(command(folder), timeout=TIMEOUT_S, text=False)
    except process.TimedOut as exc:
        raise BadInput(f"kustomize build took longer than {TIMEOUT_S}s", source=str(folder)
                       ) from exc
    except process.CannotRun as exc:
        raise BadInput(f"cannot run kustomize: {str(exc).split(': ', 1)[-1]}",
                       source=str(folder)) from exc
    if out.returncode != 0:
        message = out.stderr.decode(errors="replace").strip().splitlines()
        raise BadInput(f"kustomize build failed: {' '.join(message)[-600:]}",
                       source=str(kustomization(folder) or folder),
                       expected="a kustomization that `kubectl kustomize` builds")
    docs = yamlsafe.load_with_lines(out.stdout, name, plain=True)
    for doc, _, _ in docs:
        if isinstance(doc, dict) and doc.get("kind") in HASHED:
            meta = doc.setdefault("metadata", {})
            if isinstance(meta, dict):
                annotations = meta.setdefault("annotations", {}) or {}
                meta["annotations"] = {**annotations, HASH_ANNOTATION: "false"}
    return docs
