"""The OpenAPI document: valid, complete against template.yaml, true to each dialect, served by the gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from infra.local.gateway import merged_openapi
from infra.local.lambdas import FunctionPool, ensure_layer_on_path
from infra.local.template import Template
from tests.integration.stack import ROOT, Api

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
ERROR_BODY = {"/runtime/": "RuntimeErrorBody", "/gateway/": "SpringErrorBody", "/v2/": "KazooErrorBody"}


def pools() -> dict[str, FunctionPool]:
    ensure_layer_on_path()
    return {name: FunctionPool(f) for name, f in Template.load().functions().items()}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return merged_openapi(pools())


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, op) for path, item in doc["paths"].items() for m, op in item.items() if m in METHODS]


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["openapi"].startswith("3.1")


def test_every_route_of_the_template_is_documented(doc: dict[str, Any]) -> None:
    documented = {f"{m.upper()} {path}" for path, m, _ in operations(doc)}
    routes = Template.load().routes()
    # A page (the console: functions/console/app.py PAGES) is no API operation: the document leaves it out.
    pages = {key for pool in pools().values() if pool.app() is None for key in getattr(pool.module, "PAGES", ())}
    declared = {route.key for route in routes if route.method != "ANY" and route.key not in pages}
    # An ANY route takes the methods its path has no route of its own for: those its code documents (the
    # Tasks paths' 405s) and others no document can name (QUERY). A greedy catch-all names no operation.
    other_methods = {r.path for r in routes if r.method == "ANY" and "+}" not in r.path}
    assert declared - documented == set()
    undeclared = {key for key in documented - declared if key.split(" ", 1)[1] not in other_methods}
    assert undeclared == set(), "a route in code but not in template.yaml"


def test_no_operation_claims_an_answer_no_route_sends(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text
    assert "Successful Response" not in text
    for path, method, op in operations(doc):
        assert op["responses"], f"{method} {path}"
        assert any(int(s) < 300 for s in op["responses"]) or "405" in op["responses"], f"{method} {path}"


def test_every_error_answer_has_its_dialects_body(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        body = next(name for prefix, name in ERROR_BODY.items() if path.startswith(prefix))
        for status, answer in op["responses"].items():
            if status in ("413", "414"):  # API Gateway's own
                assert answer["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ApiGatewayMessage"
                }
            elif int(status) >= 400:
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": f"#/components/schemas/{body}"}, f"{status} of {method} {path}"
        assert {"400", "500"} <= set(op["responses"]), f"{method} {path}"


def test_routes_that_take_a_token_say_which_headers_carry_it(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert (schemes["token"]["type"], schemes["token"]["in"], schemes["token"]["name"]) == ("apiKey", "header", "token")
    assert (schemes["xAuthToken"]["in"], schemes["xAuthToken"]["name"]) == ("header", "X-Auth-Token")
    assert (schemes["bearer"]["type"], schemes["bearer"]["scheme"]) == ("http", "bearer")
    public = {key for pool in pools().values() for key in getattr(pool.app(), "public_routes", ())}
    assert "POST /runtime/api/auth/login" in public
    own_first = {"/runtime/": "token", "/gateway/": "bearer", "/v2/": "xAuthToken"}
    for path, method, op in operations(doc):
        key = f"{method.upper()} {path}"
        if key in public or "405" in op["responses"]:  # no token needed (a 405 whatever the token)
            assert "security" not in op, key
            continue
        own = next(name for prefix, name in own_first.items() if path.startswith(prefix))
        assert op["security"][0] == {own: []}, key
        assert sorted(next(iter(s)) for s in op["security"]) == ["bearer", "token", "xAuthToken"], key
        assert "401" in op["responses"], key


def test_parameters_and_bodies_carry_their_bounds_and_the_specs_examples(doc: dict[str, Any]) -> None:
    listing = doc["paths"]["/gateway/errand/v1/errands"]["get"]
    size = next(p for p in listing["parameters"] if p["name"] == "size")
    assert size["schema"]["maximum"] == 2000 and size["schema"]["minimum"] == 1
    creation = doc["paths"]["/gateway/errand/v1/calculations"]["post"]
    assert creation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CalculationRequest"
    }
    assert {"202", "409", "415", "422"} <= set(creation["responses"])
    calculation = doc["components"]["schemas"]["CalculationRequest"]
    assert calculation["examples"][0]["calculationId"] == 1
    assert "calculationId" in calculation["required"]
    assert set(doc["paths"]["/v2/tasks/{task_id}/input"]["get"]["responses"]) >= {"200", "302"}
    assert "text/csv" in doc["paths"]["/v2/accounts/{account_id}/tasks"]["put"]["requestBody"]["content"]
    assert doc["components"]["schemas"]["LoginRequest"]["examples"]


def test_the_committed_copy_if_any_is_the_generated_document(doc: dict[str, Any]) -> None:
    copy = ROOT / "docs" / "openapi.json"
    if not Path(copy).exists():
        pytest.skip("no docs/openapi.json (make openapi writes it)")
    assert json.loads(copy.read_text()) == json.loads(json.dumps(doc)), "stale: run make openapi"


def test_the_gateway_serves_the_document(api: Api, doc: dict[str, Any]) -> None:
    reply = api.call("GET", "/openapi.json")
    assert reply.status == 200
    assert reply.json() == json.loads(json.dumps(doc))
