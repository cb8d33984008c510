"""The three dialects' error and envelope formats, each in one place.

Runtime: `{code, message, errors?}`. Gateway: Spring's `{timestamp, status, error, message, details?, path}`.
Tasks: Kazoo's envelope `{auth_token, data, error, message, node, request_id, status, timestamp, version}`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, ClassVar

from aws_lambda_powertools.event_handler import Response, content_types

from backroom.clock import now_ms
from backroom.errors import BackroomError, FieldError, Unauthorized

RUNTIME_CODES = {
    400: "validationErrors",
    401: "unauthorized",
    403: "forbidden",
    404: "notFound",
    409: "optimisticLocking",
    415: "unsupportedMediaType",
    422: "validationErrors",
    429: "tooManyRequests",
    500: "internalError",
    503: "serviceUnavailable",
}

# The project's version (pyproject.toml), which Kazoo's envelope reports as `version`.
VERSION = "0.1.0"

_KAZOO_MESSAGES = {
    400: "invalid request",
    401: "invalid_credentials",
    403: "forbidden",
    404: "bad identifier",
    405: "method not allowed",
    409: "conflicting documents",
    415: "unsupported media type",
    422: "invalid request",
    500: "internal error",
    503: "service unavailable",
}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Dialect:
    """How one dialect writes an error. `event` is the API Gateway event being answered."""

    name = ""
    json_type = content_types.APPLICATION_JSON  # the Content-Type of the dialect's JSON answers
    error_body = ""  # the model of `error`'s body in backroom.api.bodies, for the OpenAPI document
    # The statuses any route of the dialect may answer (malformed request, no token, ...): the OpenAPI
    # document gives every route these, and a route adds its own.
    common_errors: ClassVar[dict[int, str]] = {}
    # The security scheme (of backroom.api.openapi.SECURITY_SCHEMES) the dialect's own clients use.
    auth_scheme = ""
    # Whether a JSON route answers 415 to a body not named `application/json` (Kazoo reads any body that
    # is not a CSV as JSON: the Tasks spec's own example sends it with curl -d, as a form).
    checks_json_type = True
    # Whether path parameters reach the routes URL-decoded (`%41` -> `A`) or as the raw path spells them.
    decodes_path_params = False
    # Whether the dialect's calls are an app's REST calls: each is gated by the app's maintenance and writes
    # its request line to the app's logs (backroom.api.resolver's `_app_call`), but for the route keys below.
    app_calls = False
    # Calls that write no request line: reading the logs (its own lines would crowd them), posting a line
    # (the posted line is the call's line).
    unlogged: ClassVar[frozenset[str]] = frozenset()
    # Calls a developer needs to see and end maintenance: open while it is on (they check the developer).
    open_in_maintenance: ClassVar[frozenset[str]] = frozenset()

    def error(self, status: int, err: BackroomError, event: dict[str, Any]) -> Response:
        raise NotImplementedError


class RuntimeDialect(Dialect):
    name = "runtime"
    error_body = "RuntimeErrorBody"
    auth_scheme = "token"
    common_errors: ClassVar[dict[int, str]] = {
        400: "The request is malformed or a field fails its check (`errors` names the fields)",
        401: "No token, or one that is not valid or has expired",
        403: "The caller may not do this",
        404: "No such entity, record or job",
        409: "The record changed meanwhile (optimistic locking)",  # a job command its state refuses is a 400
        500: "Internal error; the cause is only in the log",
        503: "The app is in maintenance (`serviceUnavailable`): a developer takes it out, PUT /status/maintenance",
    }
    app_calls = True
    unlogged: ClassVar[frozenset[str]] = frozenset({"GET /runtime/api/status/logs", "POST /runtime/api/status/logs"})
    open_in_maintenance: ClassVar[frozenset[str]] = frozenset(
        {"GET /runtime/api/status/maintenance", "PUT /runtime/api/status/maintenance"}
    )

    def error(self, status: int, err: BackroomError, event: dict[str, Any]) -> Response:
        body: dict[str, Any] = {"code": err.code or RUNTIME_CODES.get(status, "error"), "message": err.message}
        errors: list[FieldError] = getattr(err, "errors", [])
        if errors:
            body["errors"] = [{"field": e.field, "code": e.shown_code, "message": e.message} for e in errors]
        return Response(
            status_code=400 if status == 422 else status, content_type=content_types.APPLICATION_JSON, body=body
        )


class GatewayDialect(Dialect):
    name = "gateway"
    json_type = "application/json;charset=UTF-8"  # as Spring writes it, and the Errand spec prints it
    error_body = "SpringErrorBody"
    auth_scheme = "bearer"
    common_errors: ClassVar[dict[int, str]] = {
        400: "A parameter is missing or malformed",
        401: "No token, or one that is not valid or has expired",
        403: "The caller's account or role may not do this (docs/security.md: Gateway authority)",
        404: "The named resource does not exist",
        500: "Internal error; the cause is only in the log",
    }

    def error(self, status: int, err: BackroomError, event: dict[str, Any]) -> Response:
        body: dict[str, Any] = {
            "timestamp": now_ms(),
            "status": status,
            "error": _reason(status),
            "message": err.message,
        }
        details = list(err.details) + [f"{e.field}: {e.message}" for e in getattr(err, "errors", [])]
        if details:
            body["details"] = details
        body["path"] = service_path(event)
        return Response(status_code=status, content_type=self.json_type, body=body)


def service_path(event: dict[str, Any]) -> str:
    """The path as the gateway's services see it: `/gateway/extract/v1/x` -> `/v1/x`."""
    path: str = event.get("rawPath") or event.get("path") or ""
    parts = path.split("/", 3)
    return "/" + parts[3] if len(parts) > 3 and parts[1] == "gateway" else path


class TasksDialect(Dialect):
    """Kazoo's envelope; `node` names the serving function, as Kazoo names its Erlang node."""

    name = "tasks"
    error_body = "KazooErrorBody"
    auth_scheme = "xAuthToken"
    checks_json_type = False
    decodes_path_params = True
    common_errors: ClassVar[dict[int, str]] = {
        400: "A parameter is malformed",
        401: "No token, or one that is not valid or has expired (`invalid_credentials`)",
        403: "The caller may not reach this account or task",
        404: "No such account, task, category or action (`bad identifier`)",
        500: "`invalid request` (Kazoo's answer to a bad CSV or bad fields, as the spec prints it), or an"
        " internal error",
    }

    def __init__(self, node: str) -> None:
        self.node = node

    def error(self, status: int, err: BackroomError, event: dict[str, Any]) -> Response:
        data = err.data if err.data is not None else {"message": err.message}
        message = err.message if err.data is not None else _KAZOO_MESSAGES.get(status, "error")
        body = {
            "auth_token": echoed_token(event),
            "data": data,
            "error": str(status),
            "message": message,
            "request_id": request_id(event),
            "status": "error",
            **self._stamp(),
        }
        return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)

    def envelope(self, data: Any, event: dict[str, Any], status: int = 200, **extra: Any) -> Response:
        body = {
            "auth_token": echoed_token(event),
            "data": data,
            "request_id": request_id(event),
            "revision": hashlib.md5(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest(),
            "status": "success",
            **self._stamp(),
            **extra,
        }
        return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)

    def _stamp(self) -> dict[str, str]:
        # Kazoo's `timestamp` is ISO 8601 in UTC to the second: "2017-05-01T20:31:35Z".
        stamp = datetime.fromtimestamp(now_ms() / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"node": self.node, "timestamp": stamp, "version": VERSION}


def _tokens(event: dict[str, Any]) -> list[str]:
    """The tokens a request carries in the three dialects' headers, in their order of precedence."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    scheme, _, bearer = (headers.get("authorization") or "").partition(" ")
    given = [headers.get("token"), headers.get("x-auth-token"), bearer if scheme.lower() == "bearer" else None]
    return list(dict.fromkeys(t.strip() for t in given if t and t.strip()))


def request_token(event: dict[str, Any]) -> str:
    """The token a request carries, in any of the three dialects' headers.

    Two different tokens in one request are a 401: acting as either would let header precedence pick
    the identity (a proxy adding its own `Authorization` must not turn a caller into someone else)."""
    tokens = _tokens(event)
    if len(tokens) > 1:
        raise Unauthorized("The request carries more than one token; send one")
    return tokens[0] if tokens else ""


def echoed_token(event: dict[str, Any]) -> str:
    """The token Kazoo's envelope echoes back (the first the request carries; never an error)."""
    tokens = _tokens(event)
    return tokens[0] if tokens else ""


def request_id(event: dict[str, Any]) -> str:
    return str((event.get("requestContext") or {}).get("requestId") or "")


def body_type(event: dict[str, Any]) -> str:
    """The media type a request names for its body, lower case, without parameters (`charset`); "" for none."""
    given = str((event.get("headers") or {}).get("content-type") or "")
    return given.split(";")[0].strip().lower()


def not_json(event: dict[str, Any]) -> str:
    """The message of the 415 that a JSON route answers a body not named `application/json`."""
    return f"The body must be JSON (Content-Type: application/json), not {body_type(event)[:100] or 'unnamed'}"
