"""Bad input, everywhere: every kind of malformed request to every route family of the three dialects
answers a 4xx in that dialect's format (or, for what API Gateway itself refuses, in API Gateway's).

Kinds: a body that is not UTF-8, not JSON, JSON of the wrong shape, over-long strings, control
characters, deep nesting, numbers out of range, odd path segments (`..`, encoded slashes); and the
local gateway answers unknown methods and paths in JSON, as API Gateway does.
"""

from __future__ import annotations

import http.client
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.stack import Api, LocalStack, Reply

DEMO = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
# A sub-account of demo of this module's own: a body that happens to make a task makes it there.
SCRATCH = uuid.uuid4().hex
NOT_UTF8 = b'{"email": "\xff\xfe\xfd", "calculationId": 1}'
DEEP = b"[" * 5000 + b"]" * 5000
DEEP_OBJECT = ('{"a":' * 200 + "1" + "}" * 200).encode()
LONG = "x" * 100_000


@dataclass(frozen=True)
class Family:
    """A route family: where a body goes, and where a path segment or query value does."""

    dialect: str  # runtime, gateway or tasks
    method: str
    path: str  # with {seg} where an odd path segment goes
    body_kind: str  # json (pydantic model), raw-json (read by the route), csv-or-json, none
    good_body: dict[str, Any] | None = None
    query: str = ""


FAMILIES = {
    "login": Family("runtime", "POST", "/runtime/api/auth/login", "json", {"email": "dev@demo.local", "password": "x"}),
    "data-create": Family("runtime", "POST", "/runtime/api/data/{seg}", "raw-json", {"name": "x"}),
    "data-update": Family("runtime", "PUT", "/runtime/api/data/companies/{seg}", "raw-json", {"name": "x"}),
    "data-list": Family("runtime", "GET", "/runtime/api/data/{seg}", "none", query="_size=1"),
    "job-status": Family("runtime", "GET", "/runtime/api/status/jobs/{seg}", "none"),
    "files": Family("runtime", "GET", "/runtime/api/files/{seg}", "none"),
    "errand-create": Family("gateway", "POST", "/gateway/errand/v1/calculations", "json", {"calculationId": 999999}),
    "errand-get": Family("gateway", "GET", "/gateway/errand/v1/errands/{seg}", "none"),
    "errand-list": Family("gateway", "GET", "/gateway/errand/v1/errands", "none", query="size=1"),
    "extract": Family("gateway", "GET", "/gateway/extract/v1/custom-tables/{seg}", "none"),
    "import-upload": Family("gateway", "POST", "/gateway/import/v1/files", "raw-csv"),
    "task-create": Family(
        "tasks", "PUT", f"/v2/accounts/{SCRATCH}/tasks", "csv-or-json", query="category=number_management&action=add"
    ),
    "task-get": Family("tasks", "GET", f"/v2/accounts/{DEMO}/tasks/{{seg}}", "none"),
    "task-list": Family("tasks", "GET", "/v2/accounts/{seg}/tasks", "none", query="page_size=1"),
    "task-start": Family("tasks", "PATCH", "/v2/tasks/{seg}", "none"),
}


def raw(api: Api, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Reply:
    """A request sent as is: no client-side normalisation of the path or the body."""
    split = urlsplit(api.base)
    conn = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in {"Accept": "application/json", **headers}.items():
            conn.putheader(key, value)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body or b"")
        answer = conn.getresponse()
        return Reply(answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())
    finally:
        conn.close()


def in_dialect(reply: Reply, dialect: str) -> None:
    """A 4xx whose body is the dialect's error, or API Gateway's `{"message"}` for a request no route takes."""
    assert 400 <= reply.status < 500, (reply.status, reply.body[:300])
    assert reply.headers.get("content-type", "").startswith("application/json"), reply.headers
    body = json.loads(reply.body)
    if set(body) == {"message"}:  # API Gateway's own answer: no route for this method and path
        assert reply.status in (404, 413, 414), body
        return
    if dialect == "runtime":
        assert set(body) <= {"code", "message", "errors"} and {"code", "message"} <= set(body), body
    elif dialect == "gateway":
        assert {"timestamp", "status", "error", "message", "path"} <= set(body) <= {*body, "details"}, body
        assert body["status"] == reply.status, body
    else:
        assert body["status"] == "error" and body["error"] == str(reply.status), body
        assert {"auth_token", "data", "message", "request_id"} <= set(body), body
    assert "Traceback" not in reply.body.decode(errors="replace")


def in_dialect_or_kazoos_invalid_request(reply: Reply, family: Family) -> None:
    """The Tasks spec answers a bad CSV with its `500 invalid request` envelope; everything else is a 4xx."""
    if family.dialect == "tasks" and reply.status == 500:
        body = json.loads(reply.body)
        assert body["status"] == "error" and body["message"] == "invalid request", body
        return
    in_dialect(reply, family.dialect)


@pytest.fixture(scope="module")
def auth(dev_token: str, local: LocalStack) -> dict[str, str]:
    local.core.identity.create_account(SCRATCH, "bad-input", parent_id=DEMO)
    return {"token": dev_token, "X-Auth-Token": dev_token, "Authorization": f"Bearer {dev_token}"}


def target(family: Family, segment: str = "nothing-here") -> str:
    path = family.path.replace("{seg}", segment)
    return f"{path}?{family.query}" if family.query else path


BODIES = {
    "not-utf8": (NOT_UTF8, "application/json"),
    "not-json": (b'{"email": "dev@demo.local", ', "application/json"),
    "wrong-shape": (b'[1, 2, {"a": null}]', "application/json"),
    "deep-nesting": (DEEP, "application/json"),
    "deep-objects": (DEEP_OBJECT, "application/json"),
    "not-json-type": (b"email=x&password=y", "application/x-www-form-urlencoded"),
    "plain-text-type": (b'{"email": "x"}', "text/plain"),
    "multipart-without-boundary": (b"--x\r\n\r\n", "multipart/form-data"),
}
WITH_BODY = [name for name, f in FAMILIES.items() if f.body_kind != "none"]


@pytest.mark.parametrize("kind", sorted(BODIES))
@pytest.mark.parametrize("name", WITH_BODY)
def test_a_malformed_body_is_a_4xx_in_the_dialects_format(api: Api, auth: dict[str, str], name: str, kind: str) -> None:
    family = FAMILIES[name]
    body, content_type = BODIES[kind]
    if family.body_kind == "raw-csv":
        pytest.skip("any bytes make a file: the upload stores them (the import errand judges them)")
    reply = raw(api, family.method, target(family), body, {**auth, "Content-Type": content_type})
    in_dialect_or_kazoos_invalid_request(reply, family)


FIELD_VALUES = {
    "over-long-string": LONG,
    "control-characters": "a\u0000b\u0007c\u001b[2J\u202e",
    "number-out-of-range": 10**400,
    "negative-number": -(10**30),
    "float-for-int": 1e308,
    "nan": float("nan"),
    "below-dynamodb": 1e-200,
    "forty-digits": 10**39 + 1,
}
JSON_BODIES = [name for name, f in FAMILIES.items() if f.body_kind in ("json", "raw-json")]


@pytest.mark.parametrize("kind", sorted(FIELD_VALUES))
@pytest.mark.parametrize("name", JSON_BODIES)
def test_a_field_of_an_impossible_value_is_a_4xx(api: Api, auth: dict[str, str], name: str, kind: str) -> None:
    family = FAMILIES[name]
    value = FIELD_VALUES[kind]
    body = json.dumps(dict.fromkeys(family.good_body or {}, value)).encode()  # NaN and 1e400 as Python writes them
    if kind == "number-out-of-range":
        body = body.replace(json.dumps(value).encode(), b"1" + b"0" * 400)
    # Runtime data: an entity or record that does not exist, so that nothing is written whatever the answer.
    reply = raw(api, family.method, target(family), body, {**auth, "Content-Type": "application/json"})
    in_dialect(reply, family.dialect)


SEGMENTS = {
    "dot-dot": "..",
    "dot-dot-encoded": "%2e%2e",
    "encoded-slash": "a%2Fb",
    "encoded-dot-dot-slash": "..%2F..%2Fetc%2Fpasswd",
    "control-characters": "a%00b%07",
    "not-utf8": "%FF%FE",
    "over-long": "x" * 3000,
    "number-out-of-range": "1" + "0" * 40,
    "negative": "-1",
    "space-and-quote": "a%20b%22",
}
WITH_SEGMENT = [name for name, f in FAMILIES.items() if "{seg}" in f.path]


@pytest.mark.parametrize("kind", sorted(SEGMENTS))
@pytest.mark.parametrize("name", WITH_SEGMENT)
def test_an_odd_path_segment_is_a_4xx(api: Api, auth: dict[str, str], name: str, kind: str) -> None:
    family = FAMILIES[name]
    body = json.dumps(family.good_body).encode() if family.good_body else None
    reply = raw(api, family.method, target(family, SEGMENTS[kind]), body, {**auth, "Content-Type": "application/json"})
    in_dialect(reply, family.dialect)


QUERIES = {
    "gateway": ["page=-1", "size=0", "size=99999999999999999999", "page=1e3", "size=%FF", "page=%00", "page=NaN"],
    "tasks": ["page_size=0", "page_size=1e9", "page_size=-5", "start_key=" + "k" * 500, "page_size=%FF"],
    "runtime": [
        *["_size=-1", "_size=%FF", "_sortField=%00", "_size=1" + "0" * 50, "_format=" + "x" * 5000],
        *["_size=1e-200", "_size=%C2%B2", "_size=1" + "0" * 5000],  # ² is a digit to str.isdigit, not to int
        *["numberOfEmployees=1e-200", "rating=1" + "0" * 60 + "1"],  # filters DynamoDB cannot hold
    ],
}
LISTINGS = {"gateway": "errand-list", "tasks": "task-list", "runtime": "data-list"}


@pytest.mark.parametrize("dialect,query", [(d, q) for d, qs in QUERIES.items() for q in qs])
def test_an_out_of_range_or_malformed_query_is_a_4xx(api: Api, auth: dict[str, str], dialect: str, query: str) -> None:
    family = FAMILIES[LISTINGS[dialect]]
    path = family.path.replace("{seg}", DEMO if dialect == "tasks" else "companies")
    reply = raw(api, "GET", f"{path}?{query}", None, auth)
    in_dialect(reply, dialect)


def _numeric_parameters() -> list[Any]:
    """A request per numeric parameter of every GET the document lists and per value past it."""
    document = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
    found = []
    for path, operations in document["paths"].items():
        parameters = operations.get("get", {}).get("parameters", [])
        filled = path
        for param in parameters:
            if param["in"] == "path":
                filled = filled.replace("{" + param["name"] + "}", PATH_VALUES.get(param["name"], "1"))
        for param in parameters:
            kinds = [param["schema"], *param["schema"].get("anyOf", [])]
            most = next((k["maximum"] for k in kinds if k.get("type") == "integer" and "maximum" in k), None)
            if most is None:
                continue
            past = {"past-max": str(int(most) + 1), "5000-digits": "1" + "0" * 5000, "superscript-2": "%C2%B2"}
            for label, value in {**past, "1e3": "1e3", "NaN": "NaN"}.items():
                if param["in"] == "path":
                    target = path.replace("{" + param["name"] + "}", value)
                    for other, known in PATH_VALUES.items():
                        target = target.replace("{" + other + "}", known)
                else:
                    target = f"{filled}?{param['name']}={value}"
                found.append(pytest.param(target, id=f"{path} {param['name']} {label}"))
    return found


PATH_VALUES = {"entity": "companies", "table": "sales", "account_id": DEMO, "job_id": "0" * 24, "record_id": "0" * 24}


@pytest.mark.parametrize("target", _numeric_parameters())
def test_every_numeric_parameter_past_its_bound_is_a_4xx(api: Api, auth: dict[str, str], target: str) -> None:
    """Past the document's `maximum`, or no number (5,000 digits, `²`, `1e3`, `NaN`): a 4xx, never a 500."""
    reply = raw(api, "GET", target, None, auth)
    in_dialect(reply, {"runtime": "runtime", "gateway": "gateway"}.get(target.split("/")[1], "tasks"))


def test_a_period_of_too_many_units_is_a_400(api: Api, auth: dict[str, str]) -> None:
    reply = raw(api, "GET", "/runtime/api/status/logs?period=last" + "9" * 5000 + "Days", None, auth)
    assert reply.status == 400
    in_dialect(reply, "runtime")


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_no_token_is_a_401_in_the_dialects_format_whatever_the_body(api: Api, name: str) -> None:
    family = FAMILIES[name]
    if name == "login":
        pytest.skip("login is public")
    reply = raw(api, family.method, target(family, "x"), NOT_UTF8, {"Content-Type": "application/json"})
    assert reply.status == 401, reply.body[:300]
    in_dialect(reply, family.dialect)


# What a method no route takes answers: API Gateway's own 404, the runtime's 404 (its catch-all route),
# or, on a Tasks path, Kazoo's 405.
NO_ROUTE = {
    "/runtime/api/auth/login": (404, {"code": "notFound", "message": "No such resource"}),
    "/gateway/errand/v1/errands": (404, {"message": "Not Found"}),
    "/v2/tasks": (405, {"error": "405", "message": "method not allowed", "status": "error"}),
    "/nowhere": (404, {"message": "Not Found"}),
}


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "FOO", "HEAD", "OPTIONS"])
@pytest.mark.parametrize("path", sorted(NO_ROUTE))
def test_unknown_methods_and_paths_get_json(api: Api, method: str, path: str) -> None:
    reply = raw(api, method, path, None, {})
    status, body = NO_ROUTE[path]
    assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.headers["content-type"].startswith("application/json")
    if method != "HEAD":
        assert body.items() <= json.loads(reply.body).items(), reply.body[:300]


def test_a_request_the_gateway_cannot_parse_gets_json(api: Api) -> None:
    split = urlsplit(api.base)
    conn = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=30)
    try:
        conn.putrequest("POST", "/runtime/api/auth/login", skip_accept_encoding=True)
        conn.putheader("Content-Length", "not-a-number")
        conn.endheaders()
        answer = conn.getresponse()
        assert answer.status == 400
        assert json.loads(answer.read()) == {"message": "Bad Request"}
    finally:
        conn.close()
    reply = raw(api, "GET", "/gateway/errand/v1/errands/" + "9" * 70_000, None, {})
    assert reply.status == 414 and json.loads(reply.body) == {"message": "Request-URI Too Long"}
