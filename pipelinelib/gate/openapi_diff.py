"""Breaking-change detection between two OpenAPI 3 documents (or two JSON Schemas), by oasdiff.

oasdiff (``pipelinelib.adapters.oasdiff``, the field's reference tool, pinned and built by
testbed/tools/oasdiff) compares the documents; each change keeps oasdiff's check id as
its ``kind`` and its level: ``ERR`` changes are breaking (mark 4 asks for a major
version, mark 5 for an updated audit mapping of each broken call), ``WARN`` changes are
reported, and a project can move any check to another level (``openapi_levels`` in
gate.yaml: ``{check id: err|warn|info|none}``). Two bare JSON Schemas are compared as
the response body (or request body) of one operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REQUEST, RESPONSE = "request", "response"
# oasdiff checks whose change is the removal of a whole operation
REMOVED_OPERATION = {"api-removed-without-deprecation", "api-removed-before-sunset",
                     "api-path-removed-without-deprecation", "api-path-removed-before-sunset",
                     "api-removed-with-deprecation", "api-path-removed-with-deprecation"}
_BARE_PATH = "/"


@dataclass(frozen=True)
class ApiChange:
    """One difference; ``call`` is ``METHOD /path`` (``""`` for a bare schema); ``kind`` is
    oasdiff's check id, ``level`` its level (ERR, WARN or INFO)."""

    kind: str
    breaking: bool
    call: str
    where: str
    detail: str
    operation_id: str = ""
    level: str = ""

    @property
    def removes_operation(self) -> bool:
        return self.kind in REMOVED_OPERATION

    def line(self) -> str:
        mark = "BREAKING" if self.breaking else ("WARN" if self.level == "WARN"
                                                 else "compatible")
        call = f"{self.call}: " if self.call else ""
        return f"{mark} {self.kind}: {call}{self.detail}"


def diff_openapi(old: dict[str, Any], new: dict[str, Any], *,
                 levels: dict[str, str] | None = None,
                 sources: tuple[str, str] = ("deployed", "current")) -> list[ApiChange]:
    """Every change between two OpenAPI 3 documents, as oasdiff reports it."""
    from pipelinelib.adapters.oasdiff import changelog

    return [_change(c) for c in changelog(old, new, levels=levels, sources=sources)]


def diff_schema(old: dict[str, Any], new: dict[str, Any], direction: str = RESPONSE,
                call: str = "", *, levels: dict[str, str] | None = None) -> list[ApiChange]:
    """Changes between two JSON Schemas of a payload; ``direction`` is who reads it:
    ``response`` (we emit it, clients read it) or ``request`` (clients send it)."""
    changes = diff_openapi(_wrap(old, direction), _wrap(new, direction), levels=levels)
    return [ApiChange(c.kind, c.breaking, call, c.where, c.detail, "", c.level) for c in changes]


def breaking_calls(changes: list[ApiChange]) -> dict[str, list[ApiChange]]:
    """The breaking changes grouped by call."""
    grouped: dict[str, list[ApiChange]] = {}
    for change in changes:
        if change.breaking:
            grouped.setdefault(change.call, []).append(change)
    return grouped


def _change(c: Any) -> ApiChange:
    call = f"{c.operation} {c.path}".strip() if c.operation else c.path
    return ApiChange(kind=c.id, breaking=c.level == "ERR", call=call, where=c.section,
                  detail=c.text, operation_id=c.operation_id, level=c.level)


def _wrap(schema: dict[str, Any], direction: str) -> dict[str, Any]:
    """A one-operation OpenAPI document carrying ``schema`` as its request or response body."""
    content = {"application/json": {"schema": schema}}
    operation: dict[str, Any] = {"operationId": "payload",
                                 "responses": {"200": {"description": "the payload"}}}
    if direction == REQUEST:
        operation["requestBody"] = {"required": True, "content": content}
        method = "post"
    else:
        operation["responses"]["200"]["content"] = content
        method = "get"
    return {"openapi": "3.0.3", "info": {"title": "payload", "version": "0"},
            "paths": {_BARE_PATH: {method: operation}}}
