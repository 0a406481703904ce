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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelinelib.envspec.model import AppSpec, EnvSpec
from pipelinelib.errors import BadInput
from pipelinelib.kube import kinds
from pipelinelib.kube.labels import (
    ANN_CONFIG_HASH,
    ANN_HASH,
    ANN_IMAGE,
    ANN_REVISION,
    ANN_SPEC_HASH,
    ANN_VERSION,
    APP_LABEL,
    ENV_LABEL,
    HOOK_OF,
    MANAGED_BY,
    MANAGER,
)

__all__ = ["chart_values", "key", "object_hash", "render_app", "workload_image"]

# The app's long-running workloads (those with a revision history) take the image overlay.
WORKLOADS = kinds.WITH_HISTORY


def render_app(env: EnvSpec, app: AppSpec, secrets: Any = None,
               environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The manifests of ``app`` in ``env`` (deterministic: same spec, same output).

    Values read from the environment (``set: {key: $NAME}``) are added to ``secrets``
    (a ``pipelinelib.secrets.Secrets``) so no output shows them.
    """
    if app.chart is not None:
        docs = _from_chart(env, app, secrets, environ)
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
    _check_images(env, app, workloads)
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
    from pipelinelib.helm.hooks import is_hook
    from pipelinelib.kube import manifests as mf

    docs = [d for d in docs if not is_hook(d)]  # hooks keep their names, as helm runs them
    mf.hash_config([mf.Manifest(doc, "<render>", i) for i, doc in enumerate(docs)])
    for doc in docs:  # already named by content: the rollout must not hash them again
        if doc.get("kind") in kinds.HASHED:
            doc["metadata"].setdefault("annotations", {})[ANN_HASH] = "false"


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


def chart_values(app: AppSpec, root: Path | None = None, secrets: Any = None,
                 environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The values handed to ``helm template``, later ones winning: the spec's conventions
    (image, replicas, names, service, ingress), ``values_files`` in order, ``values``, then
    ``set`` and ``set_string`` (dotted keys, ``$NAME`` read from the environment)."""
    import os

    from pipelinelib.envspec.load import expand, read_values_file

    base: dict[str, Any] = {"nameOverride": app.name, "fullnameOverride": app.name}
    if app.replicas_given:
        base["replicaCount"] = app.replicas
    if app.image is not None:
        base["image"] = {"repository": app.image.repository, "tag": app.image.tag or "",
                         "digest": app.image.digest or "", "ref": app.image.ref}
    if app.ports:
        base["service"] = {"port": app.ports[0]["port"]}
    if app.dns:
        base["ingress"] = {"enabled": True, "hosts": list(app.dns)}
    for rel in app.values_files:
        base = _merge(base, read_values_file(root, rel))
    values = _merge(base, app.values)
    environ = os.environ if environ is None else environ
    for kind, typed in (("set", True), ("set_string", False)):
        for key, raw in sorted(getattr(app, kind).items()):
            value, read = expand(raw, environ)
            if secrets is not None:
                secrets.add(*read)
            if typed and read and isinstance(value, str):
                value = _helm_typed(value)
            _set_path(values, key, value if typed else _text_value(value))
    return values


def _text_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _helm_typed(text: str) -> Any:
    """A value read from the environment typed as ``helm --set`` types it."""
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if text.lstrip("-").isdigit() and len(text) < 19:
        return int(text)
    return text


def _set_path(values: dict[str, Any], key: str, value: Any) -> None:
    """``helm --set key=value``: dots nest (``\\.`` is a literal dot), ``name[0]`` indexes."""
    import re

    parts = [p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.", key)]
    node: Any = values
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        match = re.fullmatch(r"(.+?)\[(\d+)\]", part)
        name, index = (match.group(1), int(match.group(2))) if match else (part, None)
        if index is None:
            if last:
                node[name] = copy.deepcopy(value)
                return
            if not isinstance(node.get(name), dict):
                node[name] = {}
            node = node[name]
            continue
        items = node.get(name) if isinstance(node.get(name), list) else []
        node[name] = items
        while len(items) <= index:
            items.append(None)
        if last:
            items[index] = copy.deepcopy(value)
            return
        if not isinstance(items[index], dict):
            items[index] = {}
        node = items[index]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _from_chart(env: EnvSpec, app: AppSpec, secrets: Any = None,
                environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    from pipelinelib.adapters import helm

    chart = app.chart
    assert chart is not None
    values = chart_values(app, env.root, secrets, environ)
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
                "spec": {"containers": [{"name": app.name, "image": app.image_ref}]},
            },
        },
    }


def _cpu(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() else f"{round(number * 1000)}m"


def _main_container(workload: dict[str, Any], app: AppSpec,
                    workloads: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The container the app's own fields (image, env, ports, resources) go to: the one
    named like the app; else the first container of the only workload, or of the workload
    named like the app. Other workloads (a chart's database, a cache) are left alone."""
    containers = workload["spec"]["template"]["spec"]["containers"]
    named = next((c for c in containers if c.get("name") == app.name), None)
    if named is not None or not containers:
        return named
    if len(workloads) == 1 or workload["metadata"].get("name") == app.name:
        return containers[0]
    return None


def _overlay(workload: dict[str, Any], app: AppSpec, workloads: list[dict[str, Any]]) -> None:
    spec = workload.setdefault("spec", {})
    if app.replicas_given and workload["kind"] != "DaemonSet" and (
            len(workloads) == 1 or workload["metadata"].get("name") == app.name):
        spec["replicas"] = app.replicas
    if app.max_history is not None:
        spec["revisionHistoryLimit"] = app.max_history
    template = spec.setdefault("template", {})
    pod_meta = template.setdefault("metadata", {})
    if app.annotations:
        pod_meta.setdefault("annotations", {}).update(app.annotations)
    if app.config:
        digest = hashlib.sha256(json.dumps(app.config, sort_keys=True).encode()).hexdigest()
        pod_meta.setdefault("annotations", {})[ANN_CONFIG_HASH] = digest[:16]
    pod = template.setdefault("spec", {})
    containers = pod.setdefault("containers", [])
    for container in [*pod.get("initContainers", []), *containers]:
        image = app.images.get(container.get("name", ""))
        if image is not None:
            container["image"] = image.ref
    main = _main_container(workload, app, workloads)
    if main is None:
        return
    if app.image is not None:
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
        config_ref = {"configMapRef": {"name": f"{app.name}-config"}}
        if config_ref not in sources:
            sources.append(config_ref)
    if app.ports and not main.get("ports"):
        main["ports"] = [{"name": p.get("name", f"p{p['port']}"), "containerPort": p["port"],
                          "protocol": p.get("protocol", "TCP")} for p in app.ports]
    if app.resources:
        limits = {k: (_cpu(v) if k == "cpu" else v) for k, v in app.resources.items()}
        main["resources"] = {"requests": dict(limits), "limits": dict(limits)}


def _check_images(env: EnvSpec, app: AppSpec, workloads: list[dict[str, Any]]) -> None:
    """Every container runs an image, and every ``images`` entry names a container: all
    problems at once, each with the spec's line."""
    from pipelinelib.envspec.load import Problem, SpecInvalid

    problems, names = [], set()
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            name = container.get("name", "")
            names.add(name)
            if not container.get("image"):
                problems.append(Problem(
                    env.source, app.line, f"apps.{app.name}.images.{name}",
                    f"container {name} of {workload['kind']}/{workload['metadata'].get('name')}"
                    " has no image: the manifests do not set one",
                    f"images.{name}: {{repository, digest}}"))
    for name in sorted(set(app.images) - names):
        problems.append(Problem(env.source, app.line, f"apps.{app.name}.images.{name}",
                                f"no container {name} in the app's workloads",
                                "one of " + ", ".join(sorted(names))))
    if problems:
        raise SpecInvalid(problems)


def workload_image(workload: dict[str, Any], app: AppSpec) -> str:
    """The image a workload runs for the record annotation: the app's own container's."""
    containers = workload.get("spec", {}).get("template", {}).get("spec", {}).get(
        "containers", [])
    main = next((c for c in containers if c.get("name") == app.name),
                containers[0] if containers else {})
    return str(main.get("image", ""))


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
    body.get("metadata", {}).get("annotations", {}).pop(ANN_SPEC_HASH, None)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def _own(doc: dict[str, Any], env: EnvSpec, app: AppSpec) -> None:
    meta = doc.setdefault("metadata", {})
    if doc.get("kind") not in kinds.CLUSTER_SCOPED:
        meta["namespace"] = app.namespace
    labels = meta.setdefault("labels", {})
    from pipelinelib.helm.hooks import is_hook

    owner = HOOK_OF if is_hook(doc) else APP_LABEL  # hooks run at their event, never pruned
    labels.update({ENV_LABEL: env.name, owner: app.name, MANAGED_BY: MANAGER})
    annotations = meta.setdefault("annotations", {})
    if doc.get("kind") in WORKLOADS:
        annotations[ANN_IMAGE] = workload_image(doc, app)
        if app.image and app.image.revision:
            annotations[ANN_REVISION] = app.image.revision
        if app.image and app.image.version:
            annotations[ANN_VERSION] = app.image.version
    annotations[ANN_SPEC_HASH] = object_hash(doc)


def key(doc: dict[str, Any]) -> tuple[str, str, str]:
    """``(kind, namespace, name)`` of a manifest or live object."""
    meta = doc.get("metadata", {})
    return doc.get("kind", ""), meta.get("namespace", "") or "", meta.get("name", "")
