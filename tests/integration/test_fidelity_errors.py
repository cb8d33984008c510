"""Issue 27, points 8 and 10, over HTTP through the local stack: errors alike everywhere, and the Tasks
dialect's 405 for any method and URL-decoded path parameters."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.stack import Api, LocalStack
from tests.integration.test_bad_input import raw

DEMO = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
KAZOO_405 = {"error": "405", "message": "method not allowed", "status": "error"}


def encoded(text: str) -> str:
    """Every character percent-encoded, as a client that encodes path segments eagerly sends it."""
    return "".join(f"%{ord(c):02X}" for c in text)


def test_errors_are_alike_everywhere(local: LocalStack, api: Api, dev: str) -> None:
    token = {"token": dev}
    # Field error codes in the spec's one style (its sample: "code": "INVALID"), whatever the fault.
    refused = api.call("POST", "/runtime/api/data/companies", body={"nope": 1}, headers=token)
    assert refused.status == 400, refused.body
    codes = {e["field"]: e["code"] for e in refused.json()["errors"]}
    assert codes["nope"] == "UNKNOWN" and codes["name"] == "REQUIRED", codes
    # The spec's sample log, as printed, answers a missing level in that style too.
    sample = {"message": "This is a test log", "additionalInfo": {"test": "Additional info property"}}
    bad_log = api.call("POST", "/runtime/api/status/logs", body=sample, headers=token)
    assert [(e["field"], e["code"]) for e in bad_log.json()["errors"]] == [("level", "INVALID")]

    # A JSON body not named application/json is a 415, on a model route and on a route reading its body.
    for path, body in (
        ("/runtime/api/status/logs", {"level": "INFO", **sample}),
        ("/runtime/api/auth/login", {"email": "dev@demo.local", "password": "x"}),
    ):
        for content_type in ("text/plain", None):
            headers = {**token, **({"Content-Type": content_type} if content_type else {})}
            reply = raw(api, "POST", path, json.dumps(body).encode(), headers)
            assert reply.status == 415, (path, content_type, reply.body)
            assert reply.json()["code"] == "unsupportedMediaType", reply.body

    # An unrouted path or method under /runtime answers the runtime's {code, message}.
    for method, path in (("GET", "/runtime/api/nowhere"), ("PATCH", "/runtime/api/users")):
        reply = api.call(method, path, headers=token)
        assert reply.status == 404 and reply.json()["code"] == "notFound", (method, path, reply.body)
        assert set(reply.json()) == {"code", "message"}

    # A job's `data` holds the parameters it was started with, not where its file is stored or who ran it.
    csv = b"name\nFidelity Co\n"
    boundary = "fidelity"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{csv.decode()}\r\n--{boundary}--\r\n"
    ).encode()
    started = raw(
        api,
        "POST",
        "/runtime/api/data/companies/import",
        form,
        {**token, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert started.status == 200, started.body
    job_id = started.json()["jobId"]
    shown = api.call("GET", f"/runtime/api/status/jobs/{job_id}", headers=token).json()["data"]
    listed: list[dict[str, Any]] = api.call("GET", "/runtime/api/status/jobs?_size=50", headers=token).json()["items"]
    assert shown == next(j["data"] for j in listed if j["id"] == job_id)
    assert shown["entity"] == "companies" and shown["fileName"] == "c.csv", shown
    assert not {"owner", "user", "ip", "developer"} & set(shown), shown


def test_tasks_paths_answer_any_other_method_with_kazoos_405(api: Api, dev_token: str) -> None:
    auth = {"X-Auth-Token": dev_token}
    task_path = f"/v2/accounts/{DEMO}/tasks/0123456789abcdef0123456789abcdef"
    for method, path, allowed in (
        ("TRACE", "/v2/tasks", "GET, PUT"),
        ("QUERY", f"/v2/accounts/{DEMO}/tasks", "GET, PUT"),
        ("PROPFIND", task_path, "GET, PATCH, DELETE"),
        ("POST", task_path + "/stop", "PATCH"),
    ):
        reply = raw(api, method, path, None, auth)
        assert reply.status == 405, (method, path, reply.status, reply.body[:300])
        body = reply.json()
        assert {k: body[k] for k in KAZOO_405} == KAZOO_405 and body["auth_token"] == dev_token, body
        assert reply.headers["allow"] == allowed


def test_tasks_path_parameters_are_url_decoded(api: Api, dev_token: str) -> None:
    auth = {"X-Auth-Token": dev_token}
    made = api.call("PUT", f"/v2/accounts/{encoded(DEMO)}/tasks?category=number_management&action=list", headers=auth)
    assert made.status == 200, made.body
    task = made.json()["data"]["_read_only"]
    assert task["account_id"] == DEMO
    again = api.call("GET", f"/v2/accounts/{encoded(DEMO)}/tasks/{encoded(task['id'])}", headers=auth)
    assert again.status == 200 and again.json()["data"]["_read_only"]["id"] == task["id"], again.body
