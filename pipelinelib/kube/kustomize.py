"""Build a kustomize directory into manifests with kubectl's built-in kustomize
(``pipelinelib.adapters.kustomize`` runs it). The output goes through the safe YAML loader
like any file.

ConfigMaps and Secrets from a build keep kustomize's names: its generators already add a
content hash and rewrite the references (``configMapGenerator``), so the rollout's own
config hashing is switched off for them (``pipelinelib.dev/hash: "false"``), never applied
twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelinelib import yamlsafe
from pipelinelib.kube.kinds import HASHED
from pipelinelib.kube.labels import ANN_HASH as HASH_ANNOTATION

FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def kustomization(folder: Path) -> Path | None:
    """The directory's kustomization file, if it has one."""
    return next((folder / f for f in FILES if (folder / f).is_file()), None)


def build(folder: Path) -> list[tuple[Any, int, int]]:
    """(object, line, index) of every document ``kustomize build`` makes of ``folder``."""
    from pipelinelib.adapters import kustomize

    out = kustomize.build(folder, kustomization(folder))
    docs = yamlsafe.load_with_lines(out, f"{folder} (kustomize build)", plain=True)
    for doc, _, _ in docs:
        if isinstance(doc, dict) and doc.get("kind") in HASHED:
            meta = doc.setdefault("metadata", {})
            if isinstance(meta, dict):
                annotations = meta.setdefault("annotations", {}) or {}
                meta["annotations"] = {**annotations, HASH_ANNOTATION: "false"}
    return docs
