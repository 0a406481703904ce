"""pipelinelib: idempotent deployment steps composed by thin CI job scripts.

Every step is a plain function ``step(ctx, ...) -> StepResult`` that observes the
actual state, compares it with the desired state, acts only on the difference and
says ``changed`` or ``unchanged``. See ``pipelinelib.steps`` for the steps and
``pipelinelib.errors`` for the error tree.

Names are imported lazily so the ``pipeline`` command starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "BadInput": "pipelinelib.errors",
    "PipelineError": "pipelinelib.errors",
    "Refused": "pipelinelib.errors",
    "StepFailed": "pipelinelib.errors",
    "Unreachable": "pipelinelib.errors",
    "CIInfo": "pipelinelib.context",
    "Context": "pipelinelib.context",
    "Job": "pipelinelib.job",
    "Secrets": "pipelinelib.secrets",
    "Status": "pipelinelib.result",
    "StepResult": "pipelinelib.result",
    "step": "pipelinelib.step",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pipelinelib' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
