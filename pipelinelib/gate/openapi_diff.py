"""Breaking-change detection between two OpenAPI 3 documents (or two JSON Schemas).

Direction matters. What a client *sends* (parameters, request bodies) breaks when the
server starts demanding more: a new required parameter or field, a narrower type, fewer
enum values, tighter limits. What a client *receives* (responses) breaks when the server
gives less or something else: a removed operation, status or field, a field that may now
be absent, a changed type, new enum values a strict client cannot map.

``diff_openapi(old, new)`` returns every ``Change`` (breaking or not) with the call it
belongs to (``GET /users/{id}``, or its operationId) so the release gate can ask for a
major version and an updated audit mapping per broken call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
REQUEST, RESPONSE = "request", "response"
# widening pairs: a value of the left type is also a valid value of the right type
_WIDER = {("integer", "number")}
_UPPER = ("maxLength", "maximum", "maxItems", "exclusiveMaximum", "maxProperties")
_LOWER = ("minLength", "minimum", "minItems", "exclusiveMinimum", "minProperties")


@dataclass(frozen=True)
class Change:
    """One difference; ``call`` is ``METHOD /path`` (``""`` for a bare schema)."""

    kind: str
    breaking: bool
    call: str
    where: str
    detail: str
    operation_id: str = ""

    def line(self) -> str:
        mark = "BREAKING" if self.breaking else "compatible"
        call = f"{self.call} " if self.call else ""
        return f"{mark} {self.kind}: {call}{self.where}: {self.detail}".replace(" : ", ": ")


class _Doc:
    """A document with local ``$ref`` resolution."""

    def __init__(self, doc: dict[str, Any]):
        self.doc = doc

    def resolve(self, node: Any, seen: frozenset[str] = frozenset()) -> tuple[Any, frozenset]:
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if ref in seen or not isinstance(ref, str) or not ref.startswith("#/"):
                return {}, seen
            seen = seen | {ref}
            target: Any = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part, {}) if isinstance(target, dict) else {}
            node = target
        return node, seen


def diff_openapi(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every change between two OpenAPI 3 documents."""
    a, b = _Doc(old), _Doc(new)
    changes: list[Change] = []
    old_ops, new_ops = _operations(old), _operations(new)
    for call, (op_id, op) in old_ops.items():
        if call not in new_ops:
            changes.append(Change("removed-operation", True, call, "operation",
                                  "the operation was removed", op_id))
            continue
        new_id, new_op = new_ops[call]
        ctx = _Ctx(a, b, call, op_id or new_id, changes)
        path_item_old = old["paths"][call.split(" ", 1)[1]]
        path_item_new = new["paths"][call.split(" ", 1)[1]]
        _diff_parameters(ctx, _params(a, path_item_old, op), _params(b, path_item_new, new_op))
        _diff_request_body(ctx, op.get("requestBody"), new_op.get("requestBody"))
        _diff_responses(ctx, op.get("responses") or {}, new_op.get("responses") or {})
    for call, (op_id, _) in new_ops.items():
        if call not in old_ops:
            changes.append(Change("added-operation", False, call, "operation",
                                  "new operation", op_id))
    return changes


def diff_schema(old: dict[str, Any], new: dict[str, Any], direction: str = RESPONSE,
                call: str = "") -> list[Change]:
    """Changes between two JSON Schemas of a payload; ``direction`` is who reads it:
    ``response`` (we emit it, clients read it) or ``request`` (clients send it)."""
    changes: list[Change] = []
    ctx = _Ctx(_Doc(old), _Doc(new), call, "", changes)
    ctx.schema(old, new, "body" if direction == REQUEST else "response body", direction)
    return changes


def breaking_calls(changes: list[Change]) -> dict[str, list[Change]]:
    """The breaking changes grouped by call."""
    grouped: dict[str, list[Change]] = {}
    for change in changes:
        if change.breaking:
            grouped.setdefault(change.call, []).append(change)
    return grouped


# -- internals ---------------------------------------------------------------------------------
def _operations(doc: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    ops = {}
    for path, item in (doc.get("paths") or {}).items():
        for method in METHODS:
            op = (item or {}).get(method)
            if isinstance(op, dict):
                ops[f"{method.upper()} {path}"] = (str(op.get("operationId") or ""), op)
    return ops


def _params(doc: _Doc, path_item: dict[str, Any], op: dict[str, Any]) -> dict[tuple, dict]:
    merged: dict[tuple, dict] = {}
    for raw in [*(path_item.get("parameters") or []), *(op.get("parameters") or [])]:
        param, _ = doc.resolve(raw)
        if isinstance(param, dict) and "name" in param:
            merged[(param.get("in", "query"), param["name"])] = param
    return merged


@dataclass
class _Ctx:
    a: _Doc
    b: _Doc
    call: str
    op_id: str
    out: list[Change]

    def add(self, kind: str, breaking: bool, where: str, detail: str) -> None:
        self.out.append(Change(kind, breaking, self.call, where, detail, self.op_id))

    def schema(self, old: Any, new: Any, where: str, direction: str,
               seen: tuple[frozenset, frozenset] = (frozenset(), frozenset())) -> None:
        old, seen_a = self.a.resolve(old, seen[0])
        new, seen_b = self.b.resolve(new, seen[1])
        if not isinstance(old, dict) or not isinstance(new, dict) or len(seen_a) > 32:
            return
        seen = (seen_a, seen_b)
        request = direction == REQUEST
        self._types(old, new, where, request)
        self._enum(old, new, where, request)
        self._limits(old, new, where, request)
        old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
        old_req, new_req = set(old.get("required") or []), set(new.get("required") or [])
        for name in sorted(set(old_props) | set(new_props)):
            at = f"{where}.{name}"
            if name in old_props and name not in new_props:
                if request:
                    self.add("removed-request-field", False, at, "field no longer read")
                else:
                    self.add("removed-response-field", True, at, "field removed from response")
                continue
            if name not in old_props:
                if request and name in new_req:
                    self.add("new-required-field", True, at, "new required request field")
                else:
                    self.add("added-field", False, at, "new optional field" if request
                             else "new response field")
                continue
            if request and name in new_req and name not in old_req:
                self.add("field-became-required", True, at, "request field is now required")
            if not request and name in old_req and name not in new_req:
                self.add("field-became-optional", True, at,
                         "response field may now be absent")
            self.schema(old_props[name], new_props[name], at, direction, seen)
        if "items" in old or "items" in new:
            self.schema(old.get("items", {}), new.get("items", {}), f"{where}[]", direction, seen)

    def _types(self, old: dict, new: dict, where: str, request: bool) -> None:
        before, after = _typeset(old), _typeset(new)
        if not before or not after or before == after:
            return
        if request:  # everything a client could send before must still be accepted
            lost = {t for t in before if not any(t == n or (t, n) in _WIDER for n in after)}
            if lost:
                self.add("narrowed-type", True, where,
                         f"type {_fmt(before)} -> {_fmt(after)} (no longer accepts {_fmt(lost)})")
            else:
                self.add("widened-type", False, where, f"type {_fmt(before)} -> {_fmt(after)}")
        else:  # everything the server may send now must have been possible before
            new_kinds = {t for t in after if not any(t == o or (t, o) in _WIDER for o in before)}
            if new_kinds:
                self.add("changed-type", True, where,
                         f"type {_fmt(before)} -> {_fmt(after)} (clients may now get "
                         f"{_fmt(new_kinds)})")
            else:
                self.add("narrowed-type", False, where, f"type {_fmt(before)} -> {_fmt(after)}")

    def _enum(self, old: dict, new: dict, where: str, request: bool) -> None:
        if "enum" not in old and "enum" not in new:
            return
        before, after = old.get("enum"), new.get("enum")
        if before is None:  # an enum appeared: requests narrowed, responses fine
            if request:
                self.add("narrowed-enum", True, where, f"now limited to {after}")
            return
        if after is None:
            if not request:
                self.add("widened-enum", True, where, "response values no longer limited")
            return
        removed = [v for v in before if v not in after]
        added = [v for v in after if v not in before]
        if removed and request:
            self.add("narrowed-enum", True, where, f"no longer accepts {removed}")
        elif removed:
            self.add("narrowed-enum", False, where, f"no longer sends {removed}")
        if added and not request:
            self.add("widened-enum", True, where, f"may now send {added}")
        elif added:
            self.add("widened-enum", False, where, f"now also accepts {added}")

    def _limits(self, old: dict, new: dict, where: str, request: bool) -> None:
        if not request:
            return
        for key in _UPPER + _LOWER:
            if key not in new or not isinstance(new[key], (int, float)) or isinstance(
                    new[key], bool):
                continue
            before = old.get(key)
            tighter = before is None or (new[key] < before if key in _UPPER else new[key] > before)
            if tighter and before != new[key]:
                self.add("narrowed-constraint", True, where, f"{key} {before} -> {new[key]}")
        if "pattern" in new and new.get("pattern") != old.get("pattern"):
            self.add("changed-pattern", True, where,
                     f"pattern {old.get('pattern')!r} -> {new['pattern']!r}")


def _typeset(schema: dict[str, Any]) -> frozenset[str]:
    kind = schema.get("type")
    types = set(kind) if isinstance(kind, list) else ({kind} if kind else set())
    if schema.get("nullable") is True:
        types.add("null")
    return frozenset(types)


def _fmt(types: Any) -> str:
    return "|".join(sorted(types))


def _diff_parameters(ctx: _Ctx, old: dict[tuple, dict], new: dict[tuple, dict]) -> None:
    for key, param in new.items():
        where = f"{key[0]} parameter {key[1]}"
        if key not in old:
            if param.get("required") or key[0] == "path":
                ctx.add("new-required-parameter", True, where, "new required parameter")
            else:
                ctx.add("added-parameter", False, where, "new optional parameter")
            continue
        if param.get("required") and not old[key].get("required"):
            ctx.add("parameter-became-required", True, where, "parameter is now required")
        ctx.schema(old[key].get("schema", {}), param.get("schema", {}), where, REQUEST)
    for key in old:
        if key not in new:
            ctx.add("removed-parameter", False, f"{key[0]} parameter {key[1]}",
                    "parameter no longer read")


def _content_schema(doc: _Doc, body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    body, _ = doc.resolve(body)
    if not isinstance(body, dict):
        return {}, {}
    content = body.get("content") or {}
    return body, {media: (c or {}).get("schema", {}) for media, c in content.items()}


def _diff_request_body(ctx: _Ctx, old: Any, new: Any) -> None:
    old_body, old_media = _content_schema(ctx.a, old)
    new_body, new_media = _content_schema(ctx.b, new)
    if not new_body:
        return
    if new_body.get("required") and not old_body.get("required"):
        ctx.add("request-body-became-required", True, "request body", "body is now required")
    for media, schema in old_media.items():
        if media not in new_media:
            if new_media:
                ctx.add("removed-media-type", True, f"request body {media}",
                        "media type no longer accepted")
            continue
        ctx.schema(schema, new_media[media], "body", REQUEST)


def _diff_responses(ctx: _Ctx, old: dict[str, Any], new: dict[str, Any]) -> None:
    for status, response in old.items():
        if status not in new:
            if str(status).startswith("2"):
                ctx.add("removed-response", True, f"response {status}", "status no longer sent")
            continue
        _, old_media = _content_schema(ctx.a, response)
        _, new_media = _content_schema(ctx.b, new[status])
        for media, schema in old_media.items():
            if media not in new_media:
                ctx.add("removed-media-type", True, f"response {status} {media}",
                        "media type no longer sent")
                continue
            ctx.schema(schema, new_media[media], f"response {status}", RESPONSE)
