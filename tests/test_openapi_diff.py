"""Breaking-change detection by oasdiff (built by testbed/tools/oasdiff), on our OpenAPI
fixtures and on pairs from oasdiff's own test suite (tests/fixtures/openapi/oasdiff, each
file names its source). The cases marked "missed before" passed the hand-written diff
this replaces."""

from __future__ import annotations

import copy

import pytest
import yaml

from pipelinelib.errors import BadInput
from pipelinelib.gate.checklist import check_semver, interface_changes
from pipelinelib.gate.config import load_config
from pipelinelib.gate.openapi_diff import breaking_calls, diff_openapi, diff_schema
from tests.helpers.paths import FIXTURES

FIX = FIXTURES / "openapi"


def load(name: str) -> dict:
    return yaml.safe_load((FIX / name).read_text())


def pair(name: str) -> tuple[dict, dict]:
    return load(f"oasdiff/{name}_base.yaml"), load(f"oasdiff/{name}_revision.yaml")


def kinds(changes, level="ERR"):
    return {(c.kind, c.call) for c in changes if c.level == level}


def test_additions_and_relaxed_limits_are_compatible():
    changes = diff_openapi(load("v1.yaml"), load("v2-compatible.yaml"))
    assert not [c for c in changes if c.breaking or c.level == "WARN"]
    assert {"endpoint-added", "new-optional-request-parameter",
            "response-optional-property-added", "request-property-enum-value-added"} <= {
        c.kind for c in changes}


def test_removed_operation_new_required_parameter_and_field_are_breaking():
    changes = diff_openapi(load("v1.yaml"), load("v2-breaking.yaml"))
    found = kinds(changes)
    assert ("api-removed-without-deprecation", "DELETE /users/{id}") in found
    assert ("new-required-request-parameter", "GET /users") in found
    assert ("request-property-became-required", "POST /users") in found
    assert ("request-property-type-changed", "POST /users") in found  # number -> integer
    assert ("request-property-enum-value-removed", "POST /users") in found  # guest removed
    assert ("response-property-became-optional", "GET /users/{id}") in found
    assert ("response-property-enum-value-added", "GET /users") in found
    by_call = breaking_calls(changes)
    assert set(by_call) == {"GET /users", "POST /users", "GET /users/{id}", "DELETE /users/{id}"}
    assert by_call["DELETE /users/{id}"][0].operation_id == "deleteUser"
    assert by_call["DELETE /users/{id}"][0].removes_operation


def test_a_removed_request_body_is_breaking():  # missed before
    found = kinds(diff_openapi(*pair("request_body_removed")))
    assert found == {("request-body-removed", "POST /api/v1.0/test")}


@pytest.mark.parametrize(("name", "check"), [
    ("request_property_one_of_removed", "request-property-one-of-removed"),
    ("request_property_any_of_removed", "request-property-any-of-removed"),
    ("allof_property_existence", "new-required-request-property"),
])
def test_composed_schemas_are_compared(name, check):  # missed before
    assert check in {c.kind for c in diff_openapi(*pair(name)) if c.breaking}


def test_a_new_security_requirement_is_breaking():  # missed before
    found = kinds(diff_openapi(*pair("api_security_added")))
    assert {kind for kind, _ in found} == {"api-security-anonymous-access-removed"}


def test_a_removed_parameter_is_reported_as_warn_and_a_project_can_make_it_breaking():
    old, new = load("v1.yaml"), load("v1.yaml")
    new["paths"]["/users"]["get"]["parameters"] = [
        p for p in new["paths"]["/users"]["get"]["parameters"] if p.get("name") != "limit"]
    changes = diff_openapi(old, new)  # compatible before: now oasdiff's WARN
    assert kinds(changes, "WARN") == {("request-parameter-removed", "GET /users")}
    assert not [c for c in changes if c.breaking]
    assert any(line.startswith("WARN request-parameter-removed: GET /users:")
               for line in check_semver(changes, "1.4.0", "1.4.1").evidence)
    strict = diff_openapi(old, new, levels={"request-parameter-removed": "err"})
    assert kinds(strict) == {("request-parameter-removed", "GET /users")}
    assert not check_semver(strict, "1.4.0", "1.4.1").ok


def test_a_removed_response_field_and_a_removed_success_status_are_breaking():
    old, new = load("v1.yaml"), load("v1.yaml")
    schema = new["components"]["schemas"]["User"]
    del schema["properties"]["email"]
    schema["required"] = [r for r in schema.get("required", []) if r != "email"]
    new["paths"]["/health"]["get"]["responses"] = {"204": {"description": "ok"}}
    found = {kind for kind, _ in kinds(diff_openapi(old, new))}
    assert {"response-required-property-removed", "response-success-status-removed"} <= found


def test_bare_json_schemas_are_compared_as_a_request_or_response_body():
    old = {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}
    nullable = copy.deepcopy(old)
    nullable["properties"]["id"]["nullable"] = True
    assert diff_schema(old, nullable) and any(c.breaking for c in diff_schema(old, nullable))
    req = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 100}}}
    tighter = copy.deepcopy(req)
    tighter["properties"]["name"]["maxLength"] = 50
    assert any(c.breaking for c in diff_schema(req, tighter, "request"))
    assert not any(c.breaking for c in diff_schema(tighter, req, "request"))


def test_identical_documents_have_no_change():
    assert diff_openapi(load("v1.yaml"), load("v1.yaml")) == []


def test_a_document_that_is_not_openapi_3_is_bad_input_naming_it_and_the_field():
    good = load("v1.yaml")
    with pytest.raises(BadInput) as err:
        interface_changes(good, {**good, "openapi": 3.0}, sources=("old.yaml", "new.yaml"))
    assert str(err.value).startswith("new.yaml openapi: openapi is 3.0")
    broken = {**good, "paths": {"/users": ["get"]}}
    with pytest.raises(BadInput) as err:
        interface_changes(broken, good, sources=("old.yaml", "new.yaml"))
    assert "old.yaml paths./users" in str(err.value) and "mapping" in str(err.value)


def test_a_document_oasdiff_cannot_load_is_bad_input_naming_it():
    good = load("v1.yaml")
    bad = copy.deepcopy(good)
    bad["paths"]["/users"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"] = {"$ref": "#/components/schemas/Nope"}
    with pytest.raises(BadInput) as err:
        diff_openapi(good, bad, sources=("old.yaml", "new.yaml"))
    assert "new.yaml" in str(err.value) and "OpenAPI 3 document" in str(err.value)


def test_openapi_levels_in_gate_yaml_are_checked(tmp_path):
    (tmp_path / "gate.yaml").write_text("openapi: openapi.yaml\nopenapi_levels:\n"
                                        "  request-parameter-removed: err\n")
    assert load_config(tmp_path).openapi_levels == {"request-parameter-removed": "err"}
    (tmp_path / "gate.yaml").write_text("openapi_levels:\n  request-parameter-removed: fatal\n")
    with pytest.raises(BadInput) as err:
        load_config(tmp_path)
    assert "openapi_levels.request-parameter-removed" in str(err.value)
    assert "err, warn, info, none" in str(err.value)
