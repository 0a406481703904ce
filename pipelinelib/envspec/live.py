"""Read the live objects of an environment: one list call per kind and namespace.

Reads go through the Kubernetes adapter (``pipelinelib.adapters.kube.KubeClient``, plain
JSON, errors translated there): ``ctx.kube``, or — when the environment's spec names its
own kubeconfig or context — a client for that cluster, kept in ``ctx.adapters``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipelinelib.envspec.render import key
from pipelinelib.kube.kinds import COMPARED as KINDS  # others a chart renders: applied only
from pipelinelib.kube.labels import ENV_LABEL as LABEL_ENV


def kube_for(ctx: Any, kubeconfig: str | None = None, context: str | None = None) -> Any:
    """The adapter for an environment's cluster (``Context.kube_for``)."""
    return ctx.kube_for(kubeconfig, context)


def list_env_objects(ctx: Any, env: str, namespaces: Iterable[str], kinds: Iterable[str],
                     kubeconfig: str | None = None,
                     context: str | None = None) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every object of ``kinds`` labelled with environment ``env`` in ``namespaces``."""
    kube = kube_for(ctx, kubeconfig, context)
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    selector = f"{LABEL_ENV}={env}"
    for namespace in sorted(set(namespaces)):
        for kind in sorted(set(kinds) & set(KINDS)):
            listed = kube.list(kind, namespace, selector=selector)
            for item in listed.get("items", []):
                item["kind"] = kind  # a list's items carry neither kind nor apiVersion
                item.setdefault("apiVersion", listed.get("apiVersion"))
                found[key(item)] = item
    return found
