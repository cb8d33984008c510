"""Who a request acts as: every route of template.yaml refuses a request without a token, or with one in
a place no dialect reads it (query string, cookie, another auth scheme); two different tokens in one
request are refused rather than one picked; an impersonation token acts as the impersonated user only,
and a login as another user leaves the tokens handed out before as they were.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from infra.local.template import Template
from tests.integration.stack import Reply
from tests.security.actors import (
    BASE,
    DEMO,
    MISSING,
    Actor,
    World,
    ok,
    runtime,
    send,
    world_fixture,  # noqa: F401 - the fixture `world`
)

# The console's page (and its files, a greedy route) holds no data: its API calls carry the token.
PUBLIC = {"POST /runtime/api/auth/login", "GET /runtime/api/files/shared/{share_id}", "GET /v2/tasks", "GET /console"}
PLACES = {
    "entity": "companies",
    "record_id": MISSING,
    "action": "logSomething",
    "file_id": MISSING,
    "job_id": MISSING,
    "verb": "stop",
    "errand_id": "1",
    "table": "test_table_name",
    "account_id": DEMO,
    "task_id": "0" * 30,
    "share_id": MISSING,
}
# The runtime's catch-all (`ANY /runtime/{proxy+}`) takes only paths no route takes: its 404 holds no data,
# token or not (`test_the_catch_all_answers_404_to_anyone`).
ROUTES = sorted(r.key for r in Template.load().routes() if r.key not in PUBLIC and "+}" not in r.key)


def concrete(key: str) -> tuple[str, str]:
    method, path = key.split(" ", 1)
    for name, value in PLACES.items():
        path = path.replace("{" + name + "}", value)
    return method, path


def raw(world: World, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> Reply:
    """A request whose headers are sent as listed, a name twice if it is listed twice."""
    split = urlsplit(world.api.base)
    conn = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=60)
    try:
        conn.putrequest(method, path)
        for key, value in [("Accept", "application/json"), ("Content-Type", "application/json"), *headers]:
            conn.putheader(key, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        answer = conn.getresponse()
        return Reply(answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())
    finally:
        conn.close()


def unauthenticated(reply: Reply, key: str) -> None:
    # A method a Tasks path does not allow is a 405 before any token (Kazoo checks the method first)
    assert reply.status in (401, 405), (key, reply.status, reply.body[:200])
    if reply.status == 405:
        assert key.split(" ", 1)[1].startswith("/v2/"), key


@pytest.mark.parametrize("key", ROUTES)
def test_every_route_refuses_a_request_without_a_usable_token(world: World, key: str) -> None:
    method, path = concrete(key)
    token = world.dev.token
    for headers, query in [
        ([], ""),
        ([("token", "")], ""),
        ([("Authorization", "Bearer ")], ""),
        ([("token", "not-a-token")], ""),
        ([("Authorization", f"Basic {token}")], ""),
        ([("Authorization", f"Token {token}")], ""),
        ([("Cookie", f"token={token}")], ""),
        ([], f"token={token}&X-Auth-Token={token}&access_token={token}"),
    ]:
        target = f"{path}{'&' if '?' in path else '?'}{query}" if query else path
        unauthenticated(raw(world, method, target, headers, b"{}"), key)


@pytest.mark.parametrize(
    ("first", "second"),
    [("token", "Authorization"), ("X-Auth-Token", "Authorization"), ("token", "X-Auth-Token")],
)
def test_two_different_tokens_in_one_request_are_refused(world: World, first: str, second: str) -> None:
    def header(name: str, actor: Actor) -> tuple[str, str]:
        return (name, f"Bearer {actor.token}" if name == "Authorization" else actor.token)

    for one, other in ((world.user, world.dev), (world.dev, world.user)):
        reply = raw(world, "GET", f"{BASE}/status/logs?_size=1", [header(first, one), header(second, other)])
        assert reply.status == 401, (first, one.email, second, other.email, reply.status)


def test_the_same_token_in_every_header_is_one_caller(world: World) -> None:
    token = world.dev.token
    headers = [("token", token), ("X-Auth-Token", token), ("Authorization", f"Bearer {token}")]
    assert raw(world, "GET", f"{BASE}/status/logs?_size=1", headers).status == 200
    # A header given twice is one value joined by a comma (as API Gateway joins it): no token at all
    twice = raw(world, "GET", f"{BASE}/status/logs?_size=1", [("token", world.user.token), ("token", token)])
    assert twice.status == 401, twice.body


# Impersonation and token reuse ----------------------------------------------------------------------
def login(world: World, email: str, password: str, impersonate: str | None = None) -> tuple[int, dict[str, object]]:
    body: dict[str, object] = {"email": email, "password": password}
    if impersonate is not None:
        body["emailImpersonatedUser"] = impersonate
    reply = send(world.api, "POST", f"{BASE}/auth/login", {}, body)
    return reply.status, reply.json()


def test_an_impersonation_token_acts_as_the_impersonated_user_only(world: World) -> None:
    secret = world.secret
    status, session = login(world, "dev@demo.local", "demo-dev-password", "user@demo.local")
    assert status == 200 and session["adminUserEmail"] == "dev@demo.local", session
    assert session["userEmail"] == "user@demo.local"
    acting = Actor("user@demo.local", str(session["token"]), DEMO)
    company = ok(world.api, "GET", f"/data/companies/{secret.company_id}", acting)
    assert "taxId" not in company and "contract" not in company
    for method, path in (
        ("GET", "/status/logs"),
        ("GET", f"/files/{secret.document_id}"),
        ("PUT", f"/files/{secret.contract_id}/share"),  # hidden from the user (its document it may share)
        ("DELETE", f"/data/companies/{secret.company_id}"),
        ("PUT", f"/data/companies/{secret.company_id}/customResponse"),
    ):
        status, answer = runtime(world.api, method, path, acting)
        assert status == 403, (method, path, status, answer)
    for verb in ("PUT",):  # the Tasks system form is for developers
        reply = world.api.call(verb, "/v2/tasks?category=number_management&action=list_all", headers=acting.tasks)
        assert reply.status == 403, reply.body
    # The tokens handed out before are unchanged by this login as another
    assert runtime(world.api, "GET", "/status/logs?_size=1", world.dev)[0] == 200
    assert runtime(world.api, "GET", "/status/logs?_size=1", world.user)[0] == 403


def test_only_a_developer_impersonates(world: World) -> None:
    # (a developer impersonating another tenant's user: test_tenants)
    status, answer = login(world, world.sib.email, "security-suite-password", "dev@demo.local")
    assert status == 403, answer


@pytest.mark.parametrize("headers", [[], [("token", "not-a-token")]])
def test_the_catch_all_answers_404_to_anyone(world: World, headers: list[tuple[str, str]]) -> None:
    reply = raw(world, "GET", "/runtime/api/nowhere/at/all", headers)
    assert reply.status == 404 and json.loads(reply.body)["code"] == "notFound", reply.body[:200]
