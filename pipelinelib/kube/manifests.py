"""Manifests: load (file, directory, or dicts), validate before any write, order, stamp.

Validation errors are one line each: ``FILE:LINE doc N KIND/NAME FIELD: what (expected X)``,
and every problem is found before any is reported (:class:`Invalid`, exit 2).
A directory with a ``kustomization.yaml`` is built with kustomize first (kube/kustomize.py).
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

from pipelinelib import yamlsafe
from pipelinelib.errors import BadInput, PipelineError, Refused
from pipelinelib.kube import kustomize
from pipelinelib.kube.kinds import APPLY_ORDER as ORDER  # the one kinds table
from pipelinelib.kube.kinds import HASHED, WORKLOADS
from pipelinelib.kube.labels import (
    ANN_APPLIED,
    ANN_BUILD_URL,
    ANN_CHANGE_CAUSE,
    ANN_DEPLOYED_BY,
    ANN_DIGEST,
    ANN_HASH,
    ANN_REVISION,
    APP_LABEL,
    CONFIG_NAME_LABEL,
    MANAGED_BY,
    MANAGER,
    RECORD_ANNOTATIONS,
)

DIGEST_RE = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # RFC 1123 label
DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # Service names
HASH_SUFFIX = 11  # "-" + 10 hex characters (content_hash)
MAX_OBJECT_BYTES = 3 * 1024 * 1024  # the apiserver refuses larger request bodies (413)


class Invalid(BadInput):
    """Every problem found in the input, reported together (exit 2, nothing written)."""

    def __init__(self, problems: list[BadInput]):
        self.problems = list(problems)
        first = self.problems[0]
        if len(self.problems) == 1:
            text = first.message
        else:
            text = f"{len(self.problems)} problems, nothing was written:\n" + "\n".join(
                f"  {p.message}" for p in self.problems)
        PipelineError.__init__(self, text, hint="fix them all and run again")
        self.source, self.field, self.line = first.source, first.field, first.line
        self.expected = first.expected

    @staticmethod
    def raise_if(problems: list[BadInput]) -> None:
        """Raise the one problem, or :class:`Invalid` for several."""
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise Invalid(problems)


def check_name(value: Any, what: str, flag: str, max_length: int = 63) -> BadInput | None:
    """A problem when ``value`` is not an RFC 1123 label (lower case, digits, '-')."""
    if isinstance(value, str) and LABEL_RE.match(value) and len(value) <= max_length:
        return None
    shown = repr(value)[:80] + ("..." if len(repr(value)) > 80 else "")
    length = f" ({len(value)} characters)" if isinstance(value, str) and len(value) > 63 else ""
    return BadInput(f"invalid {what} {shown}{length}", field=flag,
                    expected=f"an RFC 1123 label: at most {max_length} characters of a-z, 0-9 "
                    "and '-', starting and ending with a letter or digit")


@dataclass
class Manifest:
    """One document: the object, where it came from, and its position."""

    obj: dict[str, Any]
    source: str
    index: int
    line: int | None = None

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", "")) if isinstance(self.obj, dict) else ""

    @property
    def name(self) -> str:
        meta = self.obj.get("metadata") if isinstance(self.obj, dict) else None
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""

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
    if path.is_dir() and kustomize.kustomization(path):
        return [Manifest(doc, f"{path} (kustomize build)", index, line)
                for doc, line, index in kustomize.build(path)]
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
    return [Manifest(doc, str(file), index, line)
            for doc, line, index in yamlsafe.load_with_lines(file, plain=True)]


def validate(manifests: list[Manifest], namespace: str, kube: Any = None,
             allowed_namespaces: list[str] | None = None) -> None:
    """Every check that needs no write; raises every problem at once (:class:`Invalid`)."""
    Invalid.raise_if(problems(manifests, namespace, kube, allowed_namespaces))


def problems(manifests: list[Manifest], namespace: str, kube: Any = None,
             allowed_namespaces: list[str] | None = None) -> list[BadInput]:
    """Every problem of the manifests for ``namespace`` (kinds from ``kube``'s discovery)."""
    out: list[BadInput] = []
    if not manifests:
        out.append(BadInput("no objects to deploy", expected="at least one manifest"))
    if allowed_namespaces and namespace not in allowed_namespaces:
        out.append(Refused(f"namespace {namespace} is not in the allowed set",
                           field="--namespace", expected=", ".join(allowed_namespaces)))
    seen: dict[tuple[str, str], Manifest] = {}
    for m in manifests:
        found = _problems_of(m, namespace, kube)
        out.extend(found)
        if found:
            continue
        key = (m.kind, m.name)
        if key in seen:
            out.append(m.bad("metadata.name", f"duplicate of doc {seen[key].index} in "
                             f"{seen[key].source}", "unique kind/name"))
        seen[key] = m
    return out


def _problems_of(m: Manifest, namespace: str, kube: Any) -> list[BadInput]:
    if not isinstance(m.obj, dict):
        what = {str: "a string", list: "a list"}.get(type(m.obj), type(m.obj).__name__)
        return [m.bad("", f"document is {what}, not a mapping", "a Kubernetes object")]
    if m.obj.get("kind") == "Kustomization" or Path(m.source).name in kustomize.FILES:
        return [m.bad("kind", "a kustomization among the manifests",
                      "its directory as the manifests argument (built with kustomize)")]
    out = [m.bad(field, "missing", "a string") for field in ("apiVersion", "kind")
           if not isinstance(m.obj.get(field), str) or not m.obj.get(field)]
    meta = m.obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        return [*out, m.bad("metadata.name", "missing", "a name")]
    if out:
        return out
    name = meta["name"]
    limit = 253 - (HASH_SUFFIX if m.kind in HASHED else 0)
    if not NAME_RE.match(name) or len(name) > limit:
        out.append(m.bad("metadata.name", f"invalid name {name[:80]!r}",
                         f"a DNS-1123 name of at most {limit} characters"))
    elif m.kind == "Service" and not DNS1035_RE.match(name):
        out.append(m.bad("metadata.name", f"invalid Service name {name!r}",
                         "an RFC 1035 label: at most 63 characters, starting with a letter"))
    ns = meta.get("namespace")
    if ns and ns != namespace:
        out.append(m.bad("metadata.namespace", f"namespace {ns} differs from the target",
                         namespace, refused=True))
    if m.kind == "Namespace":
        out.append(m.bad("kind", "Namespace is cluster-scoped; rollout deploys into one "
                         "namespace", "a namespaced kind", refused=True))
    elif kube is not None:
        out.extend(_kind_problems(kube, m))
    for field, image in images(m.obj):
        if not isinstance(image, str) or not DIGEST_RE.match(image):
            out.append(m.bad(field, f"image {image!r} is not pinned by digest",
                             "REPOSITORY@sha256:<64 hex> (the build step's digest)"))
    size = len(json.dumps(m.obj, default=str))
    if size > MAX_OBJECT_BYTES:
        out.append(m.bad("", f"object is {size} bytes as JSON",
                         f"at most {MAX_OBJECT_BYTES} (the apiserver's request limit)"))
    return out


def _kind_problems(kube: Any, m: Manifest) -> list[BadInput]:
    try:
        namespaced = bool(kube.resource(m.kind, m.obj.get("apiVersion"))[2])
    except BadInput as exc:
        what = exc.message.split(": ", 1)[-1].split(" (expected")[0]
        return [m.bad("kind", what, "a kind this cluster serves")]
    if not namespaced:
        return [m.bad("kind", f"{m.kind} is cluster-scoped; rollout deploys into one "
                      "namespace", "a namespaced kind", refused=True)]
    return []


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a workload (CronJob: the job template's), or None."""
    if not isinstance(obj, dict) or not isinstance(obj.get("spec") or {}, dict):
        return None
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return spec
    if obj.get("kind") == "CronJob":
        job = spec.get("jobTemplate") or {}
        spec = (job.get("spec") if isinstance(job, dict) else None) or {}
        if not isinstance(spec, dict):
            return None
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
        for i, c in enumerate(spec.get(group) or [] if isinstance(spec.get(group), list)
                              else []):
            out.append((f"{prefix}.{group}[{i}].image", _dict(c).get("image")))
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
                ANN_HASH, "true") != "false":
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
        meta.setdefault("annotations", {})[ANN_APPLIED] = applied_hash(m.obj)


def applied_hash(obj: dict[str, Any]) -> str:
    """A hash of a stamped manifest without the record annotations (they change with every
    build) and without Secret values (only their keys): kept on the object as applied, it
    tells a later plan that no field was added or dropped since (kube.revisions)."""
    body = copy.deepcopy(obj)
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    for key in (*RECORD_ANNOTATIONS, ANN_APPLIED):
        annotations.pop(key, None)
    if body.get("kind") == "Secret":
        for key in ("data", "stringData"):
            if isinstance(body.get(key), dict):
                body[key] = sorted(body[key])
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The mappings in a list field (anything else is the schema check's to report)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def references(spec: dict[str, Any], prefix: str) -> list[tuple[str, str, str, bool]]:
    """(field, kind, name, optional) of every object a pod spec needs: ConfigMaps, Secrets
    (env, volumes, image pull secrets), its ServiceAccount and PersistentVolumeClaims."""
    out = []
    for group in ("initContainers", "containers"):
        for i, c in enumerate(_dicts(spec.get(group))):
            at = f"{prefix}.{group}[{i}]"
            for j, src in enumerate(_dicts(c.get("envFrom"))):
                for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if _dict(src.get(key)):
                        out.append((f"{at}.envFrom[{j}].{key}", kind, src[key].get("name"),
                                    bool(src[key].get("optional"))))
            for j, env in enumerate(_dicts(c.get("env"))):
                ref = _dict(env.get("valueFrom"))
                for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    if _dict(ref.get(key)):
                        out.append((f"{at}.env[{j}].valueFrom.{key}", kind, ref[key].get("name"),
                                    bool(ref[key].get("optional"))))
    for i, vol in enumerate(_dicts(spec.get("volumes"))):
        at = f"{prefix}.volumes[{i}]"
        if _dict(vol.get("configMap")):
            out.append((f"{at}.configMap", "ConfigMap", vol["configMap"].get("name"),
                        bool(vol["configMap"].get("optional"))))
        if _dict(vol.get("secret")):
            out.append((f"{at}.secret", "Secret", vol["secret"].get("secretName"),
                        bool(vol["secret"].get("optional"))))
        if _dict(vol.get("persistentVolumeClaim")):
            out.append((f"{at}.persistentVolumeClaim", "PersistentVolumeClaim",
                        vol["persistentVolumeClaim"].get("claimName"), False))
        for j, src in enumerate(_dicts(_dict(vol.get("projected")).get("sources"))):
            for key, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
                if _dict(src.get(key)):
                    out.append((f"{at}.projected.sources[{j}].{key}", kind,
                                src[key].get("name"), bool(src[key].get("optional"))))
    for i, ref in enumerate(_dicts(spec.get("imagePullSecrets"))):
        out.append((f"{prefix}.imagePullSecrets[{i}]", "Secret", ref.get("name"), False))
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if account and account != "default":  # "default" is made with every namespace
        out.append((f"{prefix}.serviceAccountName", "ServiceAccount", account, False))
    return out


def reference_problems(manifests: list[Manifest], kube: Any, namespace: str,
                       namespace_exists: bool = True) -> list[BadInput]:
    """A problem per object a workload needs that neither ships nor exists (read-only)."""
    shipped = {(m.kind, m.name) for m in manifests}
    known: dict[tuple[str, str], bool] = {}
    out = []
    for m in manifests:
        spec = pod_spec(m.obj)
        if not isinstance(spec, dict):
            continue
        prefix = ("spec.jobTemplate.spec.template.spec" if m.kind == "CronJob"
                  else "spec" if m.kind == "Pod" else "spec.template.spec")
        for field, kind, name, optional in references(spec, prefix):
            if optional or (kind, name) in shipped:
                continue
            if (kind, name) not in known:
                known[(kind, name)] = bool(namespace_exists and isinstance(name, str) and name
                                           and _exists(kube, kind, name, namespace))
            if not known[(kind, name)]:
                out.append(m.bad(field, f"{kind} {name} does not exist in {namespace} and is "
                                 "not shipped", f"a {kind} in the manifests or the namespace"
                                 + (" (or optional: true)" if kind in HASHED[:1] else "")))
    return out


def _exists(kube: Any, kind: str, name: str, namespace: str) -> bool:
    try:
        return kube.get(kind, name, namespace) is not None
    except Refused:
        return True  # the deployer may not read this kind: the apiserver will say


def check_references(manifests: list[Manifest], kube: Any, namespace: str,
                     namespace_exists: bool = True) -> None:
    """BadInput (all of them) when workloads need objects that neither ship nor exist."""
    Invalid.raise_if(reference_problems(manifests, kube, namespace, namespace_exists))
