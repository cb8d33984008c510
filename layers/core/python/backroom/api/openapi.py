"""The OpenAPI document of the three dialects, generated from the routes and models themselves.

Every route of a dialect's resolver (`backroom.api.resolver.dialect_app`) gets, with no work of its own,
the dialect's common error answers with the dialect's error body and its security (any of the three
token headers, the dialect's own first); a route declares only its own success answer and the statuses
peculiar to it. `document` merges the functions' documents into one and refuses two operations or two
different schemas under one name, so a clash cannot pass unseen.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

    from backroom.api.dialects import Dialect

TITLE = "Backroom"
DESCRIPTION = (
    "One core, three HTTP dialects: runtime (`/runtime/api`, errors `{code, message, errors?}`), gateway"
    " (`/gateway`, Spring errors `{timestamp, status, error, message, details?, path}`) and tasks (`/v2`,"
    " Kazoo's envelope). Every route takes a token in any of the three headers; the dialect decides the"
    " error format."
)
# Security scheme names, the header each reads, and what it says.
_SCHEMES = {
    "token": ("token", "The runtime dialect's header: `token: <token>` (from POST /runtime/api/auth/login)"),
    "bearer": ("Authorization", "The gateway dialect's header: `Authorization: Bearer <token>`"),
    "xAuthToken": ("X-Auth-Token", "The tasks dialect's header: `X-Auth-Token: <token>`"),
}
JSON = "application/json"
# Each route is tagged with its dialect's name.
_TAGS = {
    "runtime": "App data, files, logs and jobs (`/runtime/api`), as the runtime spec; errors `{code, message}`",
    "gateway": "Errands, imports and extracts (`/gateway`), as the Errand and Extract specs; Spring-style errors",
    "tasks": "CSV background tasks per account (`/v2`), as the Tasks spec; Kazoo's envelope",
}
_COMPONENTS = "#/components/schemas/"
# powertools' own default answers, which say nothing true here.
_DEFAULT_DESCRIPTION = "Successful Response"
_POWERTOOLS_SCHEMAS = ("HTTPValidationError", "ResponseValidationError", "ValidationError")


def security_schemes() -> dict[str, Any]:
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer

    schemes: dict[str, Any] = {}
    for name, (header, description) in _SCHEMES.items():
        if header == "Authorization":
            schemes[name] = HTTPBearer(description=description, bearerFormat="opaque token")
        else:
            schemes[name] = APIKey(in_=APIKeyIn.header, name=header, description=description)
    return schemes


def security_of(dialect: Dialect) -> list[dict[str, list[str]]]:
    """Any one of the three headers will do; the dialect's own comes first."""
    names = sorted(_SCHEMES, key=lambda n: n != dialect.auth_scheme)
    return [{name: []} for name in names]


def ref(model: str) -> dict[str, str]:
    """A schema naming a model of backroom.api.bodies; `tidy` adds the model to the document's components."""
    return {"$ref": f"{_COMPONENTS}{model}"}


def error_response(dialect: Dialect, description: str) -> OpenAPIResponse:
    return {"description": description, "content": {JSON: {"schema": ref(dialect.error_body)}}}


def operation_responses(
    dialect: Dialect,
    own: dict[int, OpenAPIResponse] | None,
    *,
    status_code: int,
    description: str,
    public: bool,
    gated: bool = False,
) -> dict[int, OpenAPIResponse]:
    """A route's answers: its success (`status_code`, schema from its return annotation unless `own`
    gives 2xx/3xx answers), the dialect's common errors, and its `own`, where an error status given
    without content gets the dialect's error body.

    A route whose `status_code` is an error (a method a path does not allow) has no success answer.
    """
    own = own or {}
    answers: dict[int, OpenAPIResponse] = {}
    if status_code < 400 and not any(s < 400 for s in own):
        if description == _DEFAULT_DESCRIPTION:
            description = HTTPStatus(status_code).phrase
        answers[status_code] = {"description": description}
    for status, text in dialect.common_errors.items():
        # A public route has no caller: no 401. A route the maintenance gate lets by (`gated` False: a public
        # one, or one that ends maintenance) has no 503 of it; the login declares its own.
        if not (public and status == 401) and not (status == 503 and not gated):
            answers[status] = error_response(dialect, text)
    if status_code >= 400:
        answers[status_code] = error_response(dialect, description)
    for status, answer in own.items():
        if status >= 400 and "content" not in answer:  # the dialect's error body
            answer = {**answer, **error_response(dialect, answer.get("description", ""))}
        answers[status] = answer
    return dict(sorted(answers.items()))


def json_body(
    schema: dict[str, Any], *, required: bool = True, examples: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`openapi_extensions` for a route that reads its JSON body itself (no pydantic body parameter)."""
    return raw_body({JSON: schema}, required=required, examples=examples)


def raw_body(
    media: dict[str, dict[str, Any]], *, required: bool = True, examples: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`openapi_extensions` giving the request body of a route that reads its raw body: schema per media type."""
    content: dict[str, Any] = {}
    for media_type, schema in media.items():
        content[media_type] = {"schema": schema}
        if examples and media_type in examples:
            content[media_type]["examples"] = examples[media_type]
    return {"requestBody": {"required": required, "content": content}}


def file_upload_body(json_schema: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extensions` of a route taking a file as multipart/form-data (part `file`) or JSON naming one."""
    part = {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
    return raw_body({"multipart/form-data": part, JSON: json_schema})


def tidy(doc: dict[str, Any], json_bodies: set[tuple[str, str]]) -> dict[str, Any]:
    """Drop powertools' 422 `HTTPValidationError` (no route sends it: a malformed request is the dialect's
    400), and give every operation that reads a JSON body (`json_bodies`: path, method) the 415 it answers
    to a body of another media type, or of none.
    """
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.get("responses", {})
            ref = json.dumps(responses.get("422", {}))
            if "HTTPValidationError" in ref:
                del responses["422"]
            if (path, method) in json_bodies and "415" not in responses and "400" in responses:
                responses["415"] = {
                    "description": "The body is not named JSON (its Content-Type is another media type, or absent)",
                    "content": responses["400"]["content"],
                }
            operation["responses"] = dict(sorted(responses.items()))
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in _POWERTOOLS_SCHEMAS:  # the two that refer to ValidationError first
        others = {k: v for k, v in schemas.items() if k != name}
        if name in schemas and f'/{name}"' not in json.dumps([doc.get("paths", {}), others]):
            del schemas[name]
    _add_bodies(doc, schemas)
    return doc


def _add_bodies(doc: dict[str, Any], schemas: dict[str, Any]) -> None:
    """The models of backroom.api.bodies the document names (`ref`), with the models they contain."""
    from backroom.api import bodies

    named = set(re.findall(rf'"{_COMPONENTS}(\w+)"', json.dumps(doc.get("paths", {}))))
    for name in sorted(named - set(schemas)):
        model = getattr(bodies, name, None)
        if model is None:
            continue
        schema = model.model_json_schema(mode="serialization", ref_template=_COMPONENTS + "{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    doc["components"]["schemas"] = dict(sorted(schemas.items()))


# What API Gateway itself answers to any route, before a function sees the request, in its own format.
GATEWAY_ANSWERS = {
    "413": "Request Entity Too Large: the body is above API Gateway's 10 MB",
    "414": "Request-URI Too Long",
}
_GATEWAY_MESSAGE = {
    "type": "object",
    "properties": {"message": {"type": "string"}},
    "required": ["message"],
    "examples": [{"message": "Request Entity Too Large"}],
}


def document(parts: list[dict[str, Any]], *, version: str) -> dict[str, Any]:
    """One document from each function's own, with API Gateway's own answers on every operation;
    a path+method or a schema name claimed twice differently is an error."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": version, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "tags": [{"name": name, "description": text} for name, text in _TAGS.items()],
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
    }
    for part in parts:
        for path, item in part.get("paths", {}).items():
            merged = doc["paths"].setdefault(path, {})
            for method, operation in item.items():
                if method in merged:
                    raise ValueError(f"{method.upper()} {path} is declared by two functions")
                merged[method] = operation
        for section in ("schemas", "securitySchemes"):
            for name, schema in part.get("components", {}).get(section, {}).items():
                held = doc["components"][section].setdefault(name, schema)
                if held != schema:
                    raise ValueError(f"Two different {section} are named {name}: rename one model")
    doc["paths"] = {path: doc["paths"][path] for path in sorted(doc["paths"])}
    doc["components"]["schemas"]["ApiGatewayMessage"] = _GATEWAY_MESSAGE
    for item in doc["paths"].values():
        for operation in item.values():
            answers = operation["responses"]
            for status, text in GATEWAY_ANSWERS.items():
                answers.setdefault(
                    status,
                    {
                        "description": text,
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/ApiGatewayMessage"}}},
                    },
                )
            operation["responses"] = dict(sorted(answers.items()))
    for section in ("schemas", "securitySchemes"):
        doc["components"][section] = dict(sorted(doc["components"][section].items()))
    return doc
