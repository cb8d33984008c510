"""`POST /runtime/api/auth/login` over HTTP, as the runtime spec shows it, tokens on every dialect, and
the logout of each dialect."""

from __future__ import annotations

import pytest

from tests.integration.stack import Api

DEMO = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
DEMO_SUB = "5b8f1d4c0e3a4f7b9d2c6e8a0f1b3d5c"
LOGIN = "/runtime/api/auth/login"


@pytest.mark.parametrize(
    ("email", "password", "account"),
    [
        ("dev@demo.local", "demo-dev-password", DEMO),
        ("user@demo.local", "demo-user-password", DEMO),
        ("sub@demo.local", "demo-sub-password", DEMO_SUB),
    ],
)
def test_demo_users_log_in(api: Api, email: str, password: str, account: str) -> None:
    reply = api.call("POST", LOGIN, body={"email": email, "password": password})

    assert reply.status == 200
    body = reply.json()
    assert set(body) == {"app", "adminUserEmail", "ip", "userEmail", "userName", "userId", "token", "accountId"}
    assert body["userEmail"] == email
    assert body["adminUserEmail"] is None
    assert body["accountId"] == account
    assert body["ip"] == "127.0.0.1"
    assert len(body["token"]) >= 32


def test_developer_impersonates(api: Api) -> None:
    reply = api.call(
        "POST",
        LOGIN,
        body={"email": "dev@demo.local", "password": "demo-dev-password", "emailImpersonatedUser": "user@demo.local"},
    )
    assert reply.status == 200
    body = reply.json()
    assert (body["userEmail"], body["adminUserEmail"]) == ("user@demo.local", "dev@demo.local")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"email": "dev@demo.local", "password": "wrong"}, 401, "unauthorized"),
        ({"email": "ghost@demo.local", "password": "whatever"}, 401, "unauthorized"),
        (
            {"email": "dev@demo.local", "password": "demo-dev-password", "emailImpersonatedUser": "ghost@x.y"},
            404,
            "notFound",
        ),
        (
            {"email": "user@demo.local", "password": "demo-user-password", "emailImpersonatedUser": "sub@demo.local"},
            403,
            "forbidden",
        ),
        ({"email": "dev@demo.local"}, 400, "validationErrors"),
        ({}, 400, "validationErrors"),
        (b"not json", 400, "validationErrors"),
    ],
)
def test_login_errors(api: Api, body: object, status: int, code: str) -> None:
    reply = api.call("POST", LOGIN, body=body)
    assert reply.status == status
    assert reply.json()["code"] == code
    assert reply.json()["message"]


def test_a_token_works_in_each_dialects_header(api: Api, dev_token: str) -> None:
    for header in ({"token": dev_token}, {"X-Auth-Token": dev_token}, {"Authorization": f"Bearer {dev_token}"}):
        assert api.call("GET", "/gateway/errand/v1/errands", headers=header).status == 200
        assert api.call("GET", "/v2/tasks", headers=header).status == 200


def test_no_token_is_401_in_each_dialects_format(api: Api) -> None:
    gateway = api.call("GET", "/gateway/errand/v1/errands?page=x")
    assert gateway.status == 401
    assert set(gateway.json()) == {"timestamp", "status", "error", "message", "path"}
    assert (gateway.json()["status"], gateway.json()["error"], gateway.json()["path"]) == (
        401,
        "Unauthorized",
        "/v1/errands",
    )

    tasks = api.call("GET", "/v2/tasks/abc", headers={"X-Auth-Token": "nope"})  # help (/v2/tasks) is public
    assert tasks.status == 401
    assert tasks.json()["status"] == "error" and tasks.json()["error"] == "401"
    assert tasks.json()["auth_token"] == "nope"

    runtime = api.call("GET", "/runtime/api/status/jobs/abc")
    assert runtime.status == 401
    assert runtime.json()["code"] == "unauthorized"


def test_unknown_route_is_api_gateways_404(api: Api) -> None:
    reply = api.call("GET", "/nowhere")
    assert (reply.status, reply.json()) == (404, {"message": "Not Found"})


def test_one_openapi_document_covers_the_three_dialects(api: Api) -> None:
    paths = api.call("GET", "/openapi.json").json()["paths"]
    assert {
        "/runtime/api/auth/login",
        "/gateway/errand/v1/errands",
        "/v2/tasks",
        "/runtime/api/status/jobs/{job_id}",
    } <= set(paths)


@pytest.mark.parametrize(
    ("method", "path", "fields"),
    [
        ("POST", "/runtime/api/auth/logout", {"code", "message"}),
        ("DELETE", "/v2/token_auth", {"auth_token", "data", "error", "message", "request_id", "status"}),
        ("POST", "/gateway/auth/v1/logout", {"timestamp", "status", "error", "message", "path"}),
    ],
)
def test_a_logout_without_a_valid_token_is_401_in_its_dialects_format(
    api: Api, method: str, path: str, fields: set[str]
) -> None:
    for headers in ({}, {"token": "nope", "X-Auth-Token": "nope", "Authorization": "Bearer nope"}):
        reply = api.call(method, path, headers=headers)
        assert reply.status == 401
        assert fields <= set(reply.json())


def test_an_impersonation_logs_out_alone(api: Api, dev_token: str) -> None:
    reply = api.call(
        "POST",
        LOGIN,
        body={"email": "dev@demo.local", "password": "demo-dev-password", "emailImpersonatedUser": "user@demo.local"},
    )
    alias = reply.json()["token"]

    out = api.call("POST", "/runtime/api/auth/logout", headers={"token": alias}, body={})

    assert (out.status, out.json()) == (200, {"userEmail": "user@demo.local", "adminUserEmail": "dev@demo.local"})
    assert api.call("GET", "/gateway/errand/v1/errands", headers={"token": alias}).status == 401
    assert api.call("GET", "/gateway/errand/v1/errands", headers={"token": dev_token}).status == 200
