"""kustomize: ``kubectl kustomize DIR``, kustomize v5 inside every kubectl since 1.21.

The tool users already run: no second binary to install, build or keep in step.
``$PIPELINE_KUBECTL`` names the kubectl to use (default ``kubectl`` on PATH); a standalone
``kustomize`` on PATH is used when there is no kubectl. A build that fails, cannot start
or hangs is bad input (the kustomization's), with kustomize's own message.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipelinelib.adapters import process
from pipelinelib.errors import BadInput

TIMEOUT_S = 120


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


def build(folder: Path, kustomization: Path | None = None) -> bytes:
    """The YAML stream ``kustomize build`` makes of ``folder`` (``kustomization``: the file
    a failure names)."""
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
                       source=str(kustomization or folder),
                       expected="a kustomization that `kubectl kustomize` builds")
    return out.stdout
