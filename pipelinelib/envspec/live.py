"""Read the live objects of an environment: one list call per kind and namespace.

Objects are read as plain JSON (no client models: 500 apps list in milliseconds) through
the Kubernetes API client of ``ctx.kube``. API errors are translated here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pipelinelib.envspec.render import LABEL_ENV, key
from pipelinelib.errors import StepFailed, Unreachable

# kind -> (API group path, resource plural)
KINDS: dict[str, tuple[str, str]] = {
    "Deployment": ("/apis/apps/v1", "deployments"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"),
    "DaemonSet": ("/apis/apps/v1", "daemonsets"),
    "Service": ("/api/v1", "services"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Ingress": ("/apis/networking.k8s.io/v1", "ingresses"),
    "Job": ("/apis/batch/v1", "jobs"),
    "CronJob": ("/apis/batch/v1", "cronjobs"),
    "HorizontalPodAutoscaler": ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
}


_clients: dict[tuple[str, str], Any] = {}


def api_client(ctx: Any, kubeconfig: str | None = None, context: str | None = None) -> Any:
    """The kubernetes ``ApiClient``: the environment's own cluster when its spec names a
    kubeconfig or context, else the one behind ``ctx.kube``."""
    if kubeconfig or context:
        return _client_for(kubeconfig, context)
    try:
        kube = ctx.kube
    except ImportError:  # no Kubernetes adapter installed: the default kubeconfig
        return _client_for(None, None)
    for name in ("api_client", "api", "client"):
        client = getattr(kube, name, None)
        if client is not None and hasattr(client, "call_api"):
            return client
    if hasattr(kube, "call_api"):
        return kube
    raise StepFailed("the Kubernetes adapter exposes no API client",
                     hint="ctx.kube must be pipelinelib.adapters.kube.KubeClient")


def _client_for(kubeconfig: str | None, context: str | None) -> Any:
    import os

    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    cache_key = (path, context or "")
    if cache_key not in _clients:
        try:
            _clients[cache_key] = config.new_client_from_config(config_file=path,
                                                                context=context)
        except (ConfigException, OSError) as exc:
            raise Unreachable(f"no usable kubeconfig at {path}" +
                              (f" (context {context})" if context else ""),
                              cause=str(exc)[:200], hint="set KUBECONFIG") from exc
    return _clients[cache_key]


def _get(client: Any, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        if hasattr(client, "param_serialize"):  # kubernetes >= 30 (openapi-generator 7)
            request = client.param_serialize("GET", path, query_params=query,
                                             header_params={"Accept": "application/json"},
                                             auth_settings=["BearerToken"])
            response = client.call_api(*request, _request_timeout=30)
            response.read()
            status, data = response.status, response.data
            if status == 404:
                return {"items": []}
            if status >= 400:
                raise ApiException(status=status, reason=str(data[:200]))
        else:  # older clients
            response = client.call_api(path, "GET", query_params=query,
                                       header_params={"Accept": "application/json"},
                                       auth_settings=["BearerToken"], _preload_content=False,
                                       _request_timeout=30)
            data = response[0].data if isinstance(response, tuple) else response.data
        return json.loads(data)
    except ApiException as exc:
        if exc.status == 404:
            return {"items": []}
        if exc.status in (401, 403):
            raise StepFailed(f"the cluster refused to list {path}", cause=f"{exc.status}",
                             hint="the deployer's RBAC role must allow list") from exc
        raise Unreachable(f"the cluster answered {exc.status} for {path}") from exc
    except (HTTPError, OSError) as exc:
        raise Unreachable("the Kubernetes API did not answer", cause=str(exc)[:200]) from exc


def list_env_objects(ctx: Any, env: str, namespaces: Iterable[str], kinds: Iterable[str],
                     kubeconfig: str | None = None,
                     context: str | None = None) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every object of ``kinds`` labelled with environment ``env`` in ``namespaces``."""
    client = api_client(ctx, kubeconfig, context)
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    selector = [("labelSelector", f"{LABEL_ENV}={env}")]
    for namespace in sorted(set(namespaces)):
        for kind in sorted(set(kinds)):
            if kind not in KINDS:
                continue
            group, plural = KINDS[kind]
            data = _get(client, f"{group}/namespaces/{namespace}/{plural}", selector)
            for item in data.get("items", []):
                item["kind"] = kind
                found[key(item)] = item
    return found
