"""The steps: one module per step, each function decorated with ``@step`` (see step.py).

``from pipelinelib.steps import push_image`` works for every step below; the step modules
are imported on first use, so ``pipeline --help`` stays fast (benchmarks/startup.py). The
steps named like their module (``rollout``, ``rollback``, ``swap``, ``status``,
``promote``, ``promote_set``) are reached through it: ``steps.rollout.rollout``.
"""

from __future__ import annotations

import importlib
from typing import Any

# public step -> the module that defines it
_STEPS = {
    "annotate_deployment": "annotate",
    "apply_environment": "apply",
    "fingerprint_assets": "assets",
    "build_image": "build",
    "release_gate": "gate",
    "lint_pending": "migrate",
    "migrate_database": "migrate",
    "run_migration_job": "migrate",
    "perf_budget": "perf",
    "plan_environment": "plan",
    "approve": "promote",
    "request": "promote_pr",
    "merge_when_approved": "promote_pr",
    "apply_merged": "promote_pr",
    "approve_set": "promote_set",
    "tag_image": "push",
    "push_image": "push",
    "osv_scan_image": "scan",
    "osv_scan_lockfiles": "scan",
    "clair_scan_image": "scan",
    "scan_gate": "scan",
    "sign_image": "sign",
    "smoke_test": "smoke",
    "get_state": "state",
    "set_state": "state",
    "validate_build": "validate",
    "validate_inputs": "validate",
}
_MODULES = ("promote", "promote_set", "rollback", "rollout", "status", "swap")

__all__ = sorted([*_STEPS, *_MODULES])


def __getattr__(name: str) -> Any:
    if name in _STEPS:
        return getattr(importlib.import_module(f"{__name__}.{_STEPS[name]}"), name)
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
