"""Check objects against the cluster's own OpenAPI v3 schema, strictly, without a write.

Used where the apiserver cannot dry-run (the namespace does not exist yet) and by
``pipeline validate`` with a context. The schema of each group/version is read once from
``/openapi/v3/<group path>`` (readable by every authenticated user) and made strict the way
``fieldValidation=Strict`` is: an object's unknown field is an error, unless the schema says
``x-kubernetes-preserve-unknown-fields``. Quantities take numbers or strings; int-or-string
fields either; ``null`` means "not set" as it does for the apiserver.
"""

from __future__ import annotations

import copy
from typing import Any

from pipelinelib.errors import BadInput, PipelineError
from pipelinelib.kube.manifests import Manifest

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
MAX_ERRORS_PER_OBJECT = 10
_BASE = "urn:pipelinelib:openapi:"


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if "properties" in out and "additionalProperties" not in out and \
            not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Schemas:
    """The cluster's OpenAPI v3 documents, fetched on first use per group/version."""

    def __init__(self, kube: Any):
        self.kube = kube
        self._docs: dict[str, dict[str, Any] | None] = {}
        self._validators: dict[tuple[str, str], Any] = {}

    def _doc(self, api_version: str) -> dict[str, Any] | None:
        if api_version not in self._docs:
            path = "/openapi/v3/api/v1" if api_version == "v1" else \
                f"/openapi/v3/apis/{api_version}"
            try:
                doc = self.kube.request("GET", path, ok=(404,))
            except PipelineError:
                doc = None
            if not isinstance(doc, dict) or doc.get("__status__"):
                doc = None
            else:
                doc = copy.deepcopy(doc)
                schemas = doc.get("components", {}).get("schemas", {})
                schemas.update({k: _strict(v) for k, v in schemas.items()})
                if QUANTITY in schemas:
                    schemas[QUANTITY] = {"type": ["string", "number"]}
            self._docs[api_version] = doc
        return self._docs[api_version]

    def validator(self, api_version: str, kind: str) -> Any:
        """A jsonschema validator of ``kind`` in ``api_version``, or None when unpublished."""
        key = (api_version, kind)
        if key in self._validators:
            return self._validators[key]
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        doc = self._doc(api_version)
        found = None
        group, _, version = api_version.rpartition("/")
        for name, schema in ((doc or {}).get("components", {}).get("schemas", {})).items():
            for gvk in schema.get("x-kubernetes-group-version-kind") or []:
                if (gvk.get("group", ""), gvk.get("version"), gvk.get("kind")) == \
                        (group, version, kind):
                    found = name
        validator = None
        if found:
            uri = _BASE + api_version
            registry = Registry().with_resource(
                uri, Resource.from_contents(doc, default_specification=DRAFT202012))
            validator = Draft202012Validator(
                {"$ref": f"{uri}#/components/schemas/{found}"}, registry=registry)
        self._validators[key] = validator
        return validator

    def problems(self, manifests: list[Manifest]) -> list[BadInput]:
        """A problem per field that does not fit the schema (at most 10 per object)."""
        out = []
        for m in manifests:
            if not isinstance(m.obj, dict) or not isinstance(m.obj.get("apiVersion"), str):
                continue  # the manifest checks report it
            api_version = m.obj["apiVersion"]
            validator = self.validator(api_version, m.kind)
            if validator is None:
                continue  # a kind without a published schema: the apiserver checks it
            errors = sorted(validator.iter_errors(_without_nulls(m.obj)),
                            key=lambda e: list(map(str, e.absolute_path)))
            for error in errors[:MAX_ERRORS_PER_OBJECT]:
                out.append(m.bad(_path(error.absolute_path) or "(object)",
                                 _message(error), "the fields of the cluster's schema for "
                                 f"{api_version} {m.kind}"))
        return out


def _message(error: Any) -> str:
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown field")
    return error.message[:300]
