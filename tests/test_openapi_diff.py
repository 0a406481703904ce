"""Breaking-change detection between OpenAPI documents and JSON Schemas."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipelinelib.gate.openapi_diff import breaking_calls, diff_openapi, diff_schema

FIX = Path(__file__).parent / "fixtures" / "openapi"


def load(name: str) -> dict:
    return yaml.safe_load((FIX / name).read_text())


def kinds(changes, breaking=True):
    return {(c.kind, c.call, c.where) for c in changes if c.breaking is breaking}


def test_additions_and_relaxed_limits_are_compatible():
    changes = diff_openapi(load("v1.yaml"), load("v2-compatible.yaml"))
    assert kinds(changes) == set()
    compatible = {c.kind for c in changes}
    assert {"added-operation", "added-parameter", "added-field", "widened-enum"} <= compatible


def test_removed_operation_new_required_parameter_and_field_are_breaking():
    found = kinds(diff_openapi(load("v1.yaml"), load("v2-breaking.yaml")))
    assert ("removed-operation", "DELETE /users/{id}", "operation") in found
    assert ("new-required-parameter", "GET /users", "query parameter tenant") in found
    assert ("field-became-required", "POST /users", "body.email") in found


def test_narrowed_request_types_and_enums_are_breaking_through_refs():
    found = kinds(diff_openapi(load("v1.yaml"), load("v2-breaking.yaml")))
    assert ("narrowed-type", "POST /users", "body.age") in found  # number -> integer
    assert ("narrowed-enum", "POST /users", "body.role") in found  # guest removed


def test_responses_break_when_a_field_may_be_absent_or_new_values_appear():
    changes = diff_openapi(load("v1.yaml"), load("v2-breaking.yaml"))
    found = kinds(changes)
    assert ("field-became-optional", "GET /users/{id}", "response 200.email") in found
    assert ("widened-enum", "GET /users", "response 200[].role") in found
    by_call = breaking_calls(changes)
    assert set(by_call) == {"GET /users", "POST /users", "GET /users/{id}", "DELETE /users/{id}"}
    assert by_call["DELETE /users/{id}"][0].operation_id == "deleteUser"


def test_a_removed_response_field_and_a_removed_success_status_are_breaking():
    old, new = load("v1.yaml"), load("v1.yaml")
    del new["components"]["schemas"]["User"]["properties"]["role"]
    new["paths"]["/health"]["get"]["responses"] = {"204": {"description": "ok"}}
    found = kinds(diff_openapi(old, new))
    assert ("removed-response-field", "GET /users/{id}", "response 200.role") in found
    assert ("removed-response", "GET /health", "response 200") in found


def test_request_constraints_that_tighten_are_breaking_and_loosening_is_not():
    old = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 100}}}
    tighter = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 50}}}
    assert kinds(diff_schema(old, tighter, "request")) == {
        ("narrowed-constraint", "", "body.name")}
    assert kinds(diff_schema(tighter, old, "request")) == set()


def test_json_schema_response_type_change_and_nullable_are_breaking():
    old = {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}
    new = {"type": "object", "required": ["id"],
           "properties": {"id": {"type": ["integer", "null"]}}}
    assert kinds(diff_schema(old, new)) == {("changed-type", "", "response body.id")}
    widened = {"type": "object", "required": ["id"], "properties": {"id": {"type": "number"}}}
    assert kinds(diff_schema(old, widened)) == {("changed-type", "", "response body.id")}
    assert kinds(diff_schema(old, widened, "request")) == set(), "integer -> number widens input"


def test_recursive_schemas_terminate():
    doc = load("v1.yaml")
    assert diff_openapi(doc, load("v1.yaml")) == []
