"""Turn one app of an environment spec into Kubernetes manifests.

Source of the manifests: a directory in the env-state repo, a Helm chart rendered by the
real ``helm template``, or (neither given) a built-in Deployment. The spec's fields are
then laid over the workload (image, replicas, resources, env, secret references, pod
annotations), and ConfigMap ``<app>-config``, Service ``<app>`` (ports) and Ingress
``<app>`` (dns) are added when the spec asks for them and the source lacks them.
Every object gets the ownership labels and ``pipelinelib.dev/spec-hash``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from pipelinelib.envspec.model import AppSpec, EnvSpec
from pipelinelib.errors import BadInput

LABEL_ENV = "pipelinelib.dev/environment"
LABEL_APP = "pipelinelib.dev/app"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
ANN_HASH = "pipelinelib.dev/spec-hash"
ANN_IMAGE = "pipelinelib.dev/image"
ANN_REVISION = "pipelinelib.dev/revision"
ANN_VERSION = "pipelinelib.dev/version"
ANN_CONFIG = "pipelinelib.dev/config-hash"
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
CLUSTER_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                 "PersistentVolume", "StorageClass", "PriorityClass"}


def render_app(env: EnvSpec, app: AppSpec) -> list[dict[str, Any]]:
    """The manifests of ``app`` in ``env`` (deterministic: same spec, same output)."""
    if app.chart is not None:
        docs = _from_chart(env, app)
    elif app.manifests:
        docs = _from_directory(env, app)
    else:
        docs = [_default_deployment(app)]
    workloads = [d for d in docs if d.get("kind") in WORKLOADS]
    if not workloads:
        raise BadInput(f"app {app.name}: its manifests hold no Deployment or StatefulSet",
                       source=env.source, line=app.line, field=f"apps.{app.name}",
                       expected="a workload to run the image")
    if app.config and not _has(docs, "ConfigMap", f"{app.name}-config"):
        docs.append(_config_map(app))
    for workload in workloads:
        _overlay(workload, app, workloads)
    if app.ports and not _has(docs, "Service", app.name):
        docs.append(_service(app))
    if app.dns and not _has(docs, "Ingress", app.name):
        docs.append(_ingress(app))
    _hash_config(docs)
    for doc in docs:
        _own(doc, env, app)
    return docs


def _hash_config(docs: list[dict[str, Any]]) -> None:
    """Name ConfigMaps/Secrets ``NAME-<content hash>`` exactly as the rollout step does
    (create before delete), so the plan compares with what a rollout leaves live."""
    from pipelinelib.kube import manifests as mf

    mf.hash_config([mf.Manifest(doc, "<render>", i) for i, doc in enumerate(docs)])
    for doc in docs:  # already named by content: the rollout must not hash them again
        if doc.get("kind") in mf.HASHED:
            doc["metadata"].setdefault("annotations", {})["pipelinelib.dev/hash"] = "false"


def _has(docs: list[dict[str, Any]], kind: str, name: str) -> bool:
    return any(d.get("kind") == kind and d.get("metadata", {}).get("name") == name for d in docs)


def _from_directory(env: EnvSpec, app: AppSpec) -> list[dict[str, Any]]:
    import yaml

    from pipelinelib import yamlsafe

    folder = (env.root or Path(".")) / (app.manifests or "")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    docs = []
    for path in files:
        try:
            docs += yamlsafe.safe_load_all(path, plain=True, mapping=True)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise BadInput(f"not valid YAML: {getattr(exc, 'problem', exc)}", source=str(path),
                           line=mark.line + 1 if mark else None) from exc
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
            raise BadInput("a manifest without kind or metadata", source=str(folder),
                           expected="Kubernetes objects")
    return docs


def chart_values(app: AppSpec) -> dict[str, Any]:
    """The values handed to ``helm template``: the spec's conventions, then its ``values``."""
    repository, tag = app.image.repository, app.image.tag or ""
    base: dict[str, Any] = {
        "image": {"repository": repository, "tag": tag, "digest": app.image.digest or "",
                  "ref": app.image.ref},
        "replicaCount": app.replicas,
        "nameOverride": app.name,
        "fullnameOverride": app.name,
    }
    if app.ports:
        base["service"] = {"port": app.ports[0]["port"]}
    if app.dns:
        base["ingress"] = {"enabled": True, "hosts": list(app.dns)}
    return _merge(base, app.values)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _from_chart(env: EnvSpec, app: AppSpec) -> list[dict[str, Any]]:
    from pipelinelib import helm

    chart = app.chart
    assert chart is not None
    values = chart_values(app)
    if chart.kind == "local":
        path = str((env.root or Path(".")) / chart.repository)
        return helm.template(app.name, path, None, app.namespace, values)
    if chart.kind == "oci":
        ref = f"{chart.repository.rstrip('/')}/{chart.name}"
        return helm.template(app.name, ref, chart.version, app.namespace, values)
    return helm.template(app.name, chart.name, chart.version, app.namespace, values,
                         repo=chart.repository)


def _selector(app: AppSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": app.name}


def _default_deployment(app: AppSpec) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app.name},
        "spec": {
            "replicas": app.replicas,
            "selector": {"matchLabels": _selector(app)},
            "template": {
                "metadata": {"labels": _selector(app)},
                "spec": {"containers": [{"name": app.name, "image": app.image.ref}]},
            },
        },
    }


def _cpu(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() else f"{round(number * 1000)}m"


def _overlay(workload: dict[str, Any], app: AppSpec, workloads: list[dict[str, Any]]) -> None:
    spec = workload.setdefault("spec", {})
    if workload["kind"] != "DaemonSet" and (len(workloads) == 1 or
                                            workload["metadata"].get("name") == app.name):
        spec["replicas"] = app.replicas
    template = spec.setdefault("template", {})
    pod_meta = template.setdefault("metadata", {})
    if app.annotations:
        pod_meta.setdefault("annotations", {}).update(app.annotations)
    if app.config:
        digest = hashlib.sha256(json.dumps(app.config, sort_keys=True).encode()).hexdigest()
        pod_meta.setdefault("annotations", {})[ANN_CONFIG] = digest[:16]
    containers = template.setdefault("spec", {}).setdefault("containers", [])
    if not containers:
        return
    main = next((c for c in containers if c.get("name") == app.name), containers[0])
    main["image"] = app.image.ref
    env = {e["name"]: e for e in main.get("env", [])}
    for key, value in sorted(app.env.items()):
        env[key] = {"name": key, "value": value}
    for key, ref in sorted(app.secrets.items()):
        env[key] = {"name": key, "valueFrom": {"secretKeyRef": {"name": ref.secret,
                                                                "key": ref.key}}}
    if env:
        main["env"] = list(env.values())
    if app.config:
        sources = main.setdefault("envFrom", [])
        ref = {"configMapRef": {"name": f"{app.name}-config"}}
        if ref not in sources:
            sources.append(ref)
    if app.ports and not main.get("ports"):
        main["ports"] = [{"name": p.get("name", f"p{p['port']}"), "containerPort": p["port"],
                          "protocol": p.get("protocol", "TCP")} for p in app.ports]
    if app.resources:
        limits = {k: (_cpu(v) if k == "cpu" else v) for k, v in app.resources.items()}
        main["resources"] = {"requests": dict(limits), "limits": dict(limits)}


def _config_map(app: AppSpec) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{app.name}-config"},
            "data": dict(sorted(app.config.items()))}


def _service(app: AppSpec) -> dict[str, Any]:
    ports = [{"name": p.get("name", f"p{p['port']}"), "port": p["port"],
              "targetPort": p["port"], "protocol": p.get("protocol", "TCP")} for p in app.ports]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app.name},
            "spec": {"selector": _selector(app), "ports": ports}}


def _ingress(app: AppSpec) -> dict[str, Any]:
    port = app.ports[0]["port"] if app.ports else 80
    backend = {"service": {"name": app.name, "port": {"number": port}}}
    rules = [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                                                 "backend": backend}]}} for host in app.dns]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": app.name}, "spec": {"rules": rules}}


def object_hash(doc: dict[str, Any]) -> str:
    """A hash of a manifest without its own hash annotation (stable key order)."""
    body = copy.deepcopy(doc)
    body.get("metadata", {}).get("annotations", {}).pop(ANN_HASH, None)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def _own(doc: dict[str, Any], env: EnvSpec, app: AppSpec) -> None:
    meta = doc.setdefault("metadata", {})
    if doc.get("kind") not in CLUSTER_KINDS:
        meta["namespace"] = app.namespace
    labels = meta.setdefault("labels", {})
    labels.update({LABEL_ENV: env.name, LABEL_APP: app.name, LABEL_MANAGED: "pipelinelib"})
    annotations = meta.setdefault("annotations", {})
    if doc.get("kind") in WORKLOADS:
        annotations[ANN_IMAGE] = app.image.ref
        if app.image.revision:
            annotations[ANN_REVISION] = app.image.revision
        if app.image.version:
            annotations[ANN_VERSION] = app.image.version
    annotations[ANN_HASH] = object_hash(doc)


def key(doc: dict[str, Any]) -> tuple[str, str, str]:
    """``(kind, namespace, name)`` of a manifest or live object."""
    meta = doc.get("metadata", {})
    return doc.get("kind", ""), meta.get("namespace", "") or "", meta.get("name", "")
