"""Manifests: load (file, directory, or dicts), validate before any write, order, stamp.

Validation errors are one line each: ``FILE:LINE doc N KIND/NAME FIELD: what (expected X)``.
Ordering is data (krane-like): dependencies, then workloads, then Services/Ingresses.
ConfigMaps and Secrets get a content-hash name suffix and every pod-spec reference to
them is rewritten, so pods roll when config changes (create before delete).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelinelib.errors import BadInput, Refused
from pipelinelib.kube import (
    ANN_BUILD_URL,
    ANN_CHANGE_CAUSE,
    ANN_DEPLOYED_BY,
    ANN_DIGEST,
    ANN_REVISION,
    APP_LABEL,
    CONFIG_NAME_LABEL,
    MANAGED_BY,
    MANAGER,
)

ORDER: list[str] = [
    "ResourceQuota", "LimitRange", "ServiceAccount", "Role", "RoleBinding", "NetworkPolicy",
    "ConfigMap", "Secret", "PersistentVolumeClaim", "PodDisruptionBudget",
    "Job",  # e.g. a migration Job: before the workloads that need it
    "Deployment", "StatefulSet", "DaemonSet", "CronJob", "HorizontalPodAutoscaler",
    "Service", "Ingress",
]
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
HASHED = ("ConfigMap", "Secret")
DIGEST_RE = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass
class Manifest:
    """One document: the object, where it came from, and its position."""

    obj: dict[str, Any]
    source: str
    index: int
    line: int | None = None

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.obj.get("metadata", {}).get("name", ""))

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    def bad(self, field: str, message: str, expected: str | None = None,
            refused: bool = False) -> BadInput:
        cls = Refused if refused else BadInput
        where = f"doc {self.index} {self.ref if self.name else self.kind or '?'} {field}".strip()
        return cls(message, source=self.source, line=self.line, field=where, expected=expected)


def load(source: str | Path | list[dict[str, Any]]) -> list[Manifest]:
    """Documents from a YAML file, a directory of them (sorted), or a list of dicts."""
    if isinstance(source, list):
        return [Manifest(copy.deepcopy(o), "<manifests>", i) for i, o in enumerate(source)]
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
        if not files:
            raise BadInput("no manifests found", source=str(path), expected="*.yaml files")
    elif path.is_file():
        files = [path]
    else:
        raise BadInput("no such file or directory", source=str(path),
                       expected="a manifest file or directory")
    out: list[Manifest] = []
    for file in files:
        out.extend(_load_file(file))
    return out


def _load_file(file: Path) -> list[Manifest]:
    import yaml

    text = file.read_text()
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BadInput(f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                       source=str(file), line=mark.line + 1 if mark else None,
                       expected="multi-document YAML") from exc
    out = []
    for index, (node, doc) in enumerate(zip(nodes, docs, strict=False)):
        if doc is None:
            continue
        line = node.start_mark.line + 1 if node is not None else None
        out.append(Manifest(doc, str(file), index, line))
    return out


def validate(manifests: list[Manifest], namespace: str, kube: Any = None,
             allowed_namespaces: list[str] | None = None) -> None:
    """Every check that needs no write; raises the first problem as BadInput/Refused."""
    if not manifests:
        raise BadInput("no objects to deploy", expected="at least one manifest")
    if allowed_namespaces and namespace not in allowed_namespaces:
        raise Refused(f"namespace {namespace} is not in the allowed set",
                      field="--namespace", expected=", ".join(allowed_namespaces))
    seen: dict[tuple[str, str], Manifest] = {}
    for m in manifests:
        if not isinstance(m.obj, dict):
            raise m.bad("", "document is not a mapping", "a Kubernetes object")
        for field in ("apiVersion", "kind"):
            if not isinstance(m.obj.get(field), str) or not m.obj.get(field):
                raise m.bad(field, "missing", "a string")
        meta = m.obj.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
            raise m.bad("metadata.name", "missing", "a name")
        if not NAME_RE.match(meta["name"]):
            raise m.bad("metadata.name", f"invalid name {meta['name']!r}", "a DNS-1123 name")
        ns = meta.get("namespace")
        if ns and ns != namespace:
            raise m.bad("metadata.namespace", f"namespace {ns} differs from the target",
                        namespace, refused=True)
        if m.kind == "Namespace" or (kube is not None and not _namespaced(kube, m)):
            raise m.bad("kind", f"{m.kind} is cluster-scoped; rollout deploys into one namespace",
                        "a namespaced kind", refused=True)
        key = (m.kind, m.name)
        if key in seen:
            raise m.bad("metadata.name", f"duplicate of doc {seen[key].index} in "
                        f"{seen[key].source}", "unique kind/name")
        seen[key] = m
        for field, image in images(m.obj):
            if not isinstance(image, str) or not DIGEST_RE.match(image):
                raise m.bad(field, f"image {image!r} is not pinned by digest",
                            "REPOSITORY@sha256:<64 hex> (the build step's digest)")


def _namespaced(kube: Any, m: Manifest) -> bool:
    try:
        return bool(kube.resource(m.kind, m.obj.get("apiVersion"))[2])
    except BadInput as exc:
        raise m.bad("kind", exc.message.split(": ", 1)[-1], "a kind this cluster serves"
                    ) from exc


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a workload (CronJob: the job template's), or None."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return spec
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template")
    return template.get("spec") if isinstance(template, dict) else None


def images(obj: dict[str, Any]) -> list[tuple[str, Any]]:
    """(field path, image) for every container of a workload."""
    spec = pod_spec(obj)
    if not isinstance(spec, dict):
        return []
    prefix = ("spec.jobTemplate.spec.template.spec" if obj.get("kind") == "CronJob"
              else "spec.template.spec")
    out = []
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            out.append((f"{prefix}.{group}[{i}].image", (c or {}).get("image")))
    return out


def order(manifests: list[Manifest]) -> list[Manifest]:
    """Dependencies first, then workloads, then Services/Ingresses; unknown kinds first."""
    rank = {kind: i for i, kind in enumerate(ORDER)}
    return sorted(manifests, key=lambda m: (rank.get(m.kind, -1), m.source, m.index))


def content_hash(obj: dict[str, Any]) -> str:
    """A short hash of a ConfigMap's or Secret's content."""
    content = {k: obj.get(k) for k in ("data", "binaryData", "stringData", "type") if k in obj}
    blob = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def hash_config(manifests: list[Manifest]) -> dict[tuple[str, str], str]:
    """Rename ConfigMaps/Secrets to NAME-HASH and rewrite references; returns the renames."""
    renames: dict[tuple[str, str], str] = {}
    for m in manifests:
        if m.kind in HASHED and m.obj["metadata"].get("annotations", {}).get(
                "pipelinelib.dev/hash", "true") != "false":
            base = m.name
            new = f"{base}-{content_hash(m.obj)}"
            m.obj["metadata"]["name"] = new
            m.obj["metadata"].setdefault("labels", {})[CONFIG_NAME_LABEL] = base
            renames[(m.kind, base)] = new
    for m in manifests:
        spec = pod_spec(m.obj)
        if isinstance(spec, dict):
            _rewrite(spec, renames)
    return renames


def _rewrite(spec: dict[str, Any], renames: dict[tuple[str, str], str]) -> None:
    def cm(name: Any) -> Any:
        return renames.get(("ConfigMap", name), name)

    def sec(name: Any) -> Any:
        return renames.get(("Secret", name), name)

    for group in ("initContainers", "containers"):
        for c in spec.get(group) or []:
            for src in c.get("envFrom") or []:
                if src.get("configMapRef"):
                    src["configMapRef"]["name"] = cm(src["configMapRef"].get("name"))
                if src.get("secretRef"):
                    src["secretRef"]["name"] = sec(src["secretRef"].get("name"))
            for env in c.get("env") or []:
                ref = env.get("valueFrom") or {}
                if ref.get("configMapKeyRef"):
                    ref["configMapKeyRef"]["name"] = cm(ref["configMapKeyRef"].get("name"))
                if ref.get("secretKeyRef"):
                    ref["secretKeyRef"]["name"] = sec(ref["secretKeyRef"].get("name"))
    for vol in spec.get("volumes") or []:
        if vol.get("configMap"):
            vol["configMap"]["name"] = cm(vol["configMap"].get("name"))
        if vol.get("secret"):
            vol["secret"]["secretName"] = sec(vol["secret"].get("secretName"))
        for source in (vol.get("projected") or {}).get("sources") or []:
            if source.get("configMap"):
                source["configMap"]["name"] = cm(source["configMap"].get("name"))
            if source.get("secret"):
                source["secret"]["name"] = sec(source["secret"].get("name"))
    for ref in spec.get("imagePullSecrets") or []:
        ref["name"] = sec(ref.get("name"))


@dataclass(frozen=True)
class Record:
    """Who deployed what: stamped as annotations on workloads (never secrets)."""

    revision: str = ""
    user: str = ""
    build_url: str = ""

    def annotations(self, obj: dict[str, Any], redact: Any = str) -> dict[str, str]:
        digests = sorted({str(i).split("@", 1)[1] for _, i in images(obj) if "@" in str(i)})
        who = self.user or "unknown"
        cause = f"pipelinelib rollout {self.revision[:12] or '(no revision)'} by {who}"
        if self.build_url:
            cause += f" ({self.build_url})"
        values = {ANN_CHANGE_CAUSE: cause, ANN_REVISION: self.revision,
                  ANN_DIGEST: ",".join(digests), ANN_DEPLOYED_BY: who,
                  ANN_BUILD_URL: self.build_url}
        return {k: redact(v) for k, v in values.items() if v}


def stamp(manifests: list[Manifest], app: str, namespace: str, record: Record,
          redact: Any = str) -> None:
    """Set namespace, ownership labels and (on workloads) the record annotations."""
    for m in manifests:
        meta = m.obj["metadata"]
        meta["namespace"] = namespace
        meta.setdefault("labels", {}).update({MANAGED_BY: MANAGER, APP_LABEL: app})
        if m.kind in WORKLOADS:
            meta.setdefault("annotations", {}).update(record.annotations(m.obj, redact))


def references(spec: dict[str, Any], prefix: str) -> list[tuple[str, str, str, bool]]:
    """(field, kind, name, optional) of every ConfigMap/Secret a pod spec needs."""
    out = []
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            at = f"{prefix}.{group}[{i}]"
            for j, src in enumerate(c.get("envFrom") or []):
                for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if src.get(key):
                        out.append((f"{at}.envFrom[{j}].{key}", kind, src[key].get("name"),
                                    bool(src[key].get("optional"))))
            for j, env in enumerate(c.get("env") or []):
                ref = env.get("valueFrom") or {}
                for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    if ref.get(key):
                        out.append((f"{at}.env[{j}].valueFrom.{key}", kind, ref[key].get("name"),
                                    bool(ref[key].get("optional"))))
    for i, vol in enumerate(spec.get("volumes") or []):
        at = f"{prefix}.volumes[{i}]"
        if vol.get("configMap"):
            out.append((f"{at}.configMap", "ConfigMap", vol["configMap"].get("name"),
                        bool(vol["configMap"].get("optional"))))
        if vol.get("secret"):
            out.append((f"{at}.secret", "Secret", vol["secret"].get("secretName"),
                        bool(vol["secret"].get("optional"))))
        for j, src in enumerate((vol.get("projected") or {}).get("sources") or []):
            for key, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
                if src.get(key):
                    out.append((f"{at}.projected.sources[{j}].{key}", kind,
                                src[key].get("name"), bool(src[key].get("optional"))))
    return out


def check_references(manifests: list[Manifest], kube: Any, namespace: str,
                     namespace_exists: bool = True) -> None:
    """BadInput when a workload needs a ConfigMap/Secret that neither ships nor exists."""
    shipped = {(m.kind, m.name) for m in manifests}
    for m in manifests:
        spec = pod_spec(m.obj)
        if not isinstance(spec, dict):
            continue
        prefix = images(m.obj)[0][0].split(".containers")[0].split(".initContainers")[0] \
            if images(m.obj) else "spec"
        for field, kind, name, optional in references(spec, prefix):
            if optional or (kind, name) in shipped:
                continue
            if namespace_exists and kube.get(kind, name, namespace) is not None:
                continue
            raise m.bad(field, f"{kind} {name} does not exist in {namespace} and is not shipped",
                        f"a {kind} in the manifests or the namespace (or optional: true)")
