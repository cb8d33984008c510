"""Issue 27, points 6 and 7, over HTTP through the local stack: the app's logs as Slingr writes them (the
login's line, each call's request line, the spec's sample as printed), and maintenance mode (the 503 of
the spec's error tables for every call but a developer's login and the switch that ends it)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.integration.stack import Api
from tests.integration.test_runtime_data import call, error, ok

LOG_KEYS = {"id", "type", "subType", "level", "message", "userEmail", "adminUserEmail", "timestamp", "ip"}
USER = ("user@demo.local", "demo-user-password")
DEV = ("dev@demo.local", "demo-dev-password")


def test_logs_are_written_as_slingr_writes_them(api: Api, dev: str) -> None:
    since = int(time.time() * 1000) - 1000
    mark = uuid.uuid4().hex[:12]
    # Given a user who logs in and reads itself, the second time with a query string
    token = api.login(*USER)
    ok(api, "GET", "/users/current", token)
    ok(api, "GET", f"/users/current?mark={mark}", token)
    # ...and a developer reading the logs (twice: those reads write no line)
    ok(api, "GET", f"/status/logs?from={since}&_size=1", dev)

    # When the spec's query asks for the user's lines
    answer = ok(api, "GET", f"/status/logs?from={since}&userEmail={USER[0]}&_size=1000", dev)

    # Then the login and the call are the spec's sample, as printed (ids, times and ip aside)
    mine = [i for i in answer["items"] if i["userEmail"] == USER[0]]
    login = next(i for i in mine if i["subType"] == "LOGIN")
    assert {k: login[k] for k in LOG_KEYS - {"id", "timestamp", "ip"}} == {
        "type": "APP",
        "subType": "LOGIN",
        "level": "INFO",
        "message": "POST /login",
        "userEmail": "user@demo.local",
        "adminUserEmail": None,
    }
    plain = [i for i in mine if i["message"] == "GET /api/users/current"]
    assert plain and set(plain[0]) == LOG_KEYS and plain[0]["subType"] is None and plain[0]["type"] == "APP"
    assert isinstance(plain[0]["ip"], str)
    # ...the query string as sent, one line a call
    assert [i["message"] for i in mine if mark in i["message"]] == [f"GET /api/users/current?mark={mark}"]
    # ...and reading the logs writes none
    everyone = ok(api, "GET", f"/status/logs?from={since}&message=/status/logs&_size=1000", dev)
    assert [i["message"] for i in everyone["items"] if i["message"].startswith("GET ")] == []


@pytest.fixture
def maintenance(api: Api, dev: str) -> Iterator[None]:
    """The demo app in maintenance for one test, taken out afterwards whatever the test did (the switch
    takes effect at once in the local stack, whose functions share one process, as in the container
    that switches it)."""
    try:
        yield
    finally:
        answer = ok(api, "PUT", "/status/maintenance", dev, {"maintenance": False})
        assert answer["maintenance"] is False


def test_in_maintenance_every_call_but_a_developers_login_is_503(
    maintenance: None, api: Api, dev: str, user: str
) -> None:
    # Given a user's session, and the app out of maintenance
    assert ok(api, "GET", "/status/maintenance", dev)["maintenance"] is False
    status, _ = call(api, "PUT", "/status/maintenance", user, {"maintenance": True})
    assert status == 403  # only developers switch it

    # When a developer puts the app in maintenance
    on = ok(api, "PUT", "/status/maintenance", dev, {"maintenance": True})
    assert on["maintenance"] is True and on["by"] == "dev@demo.local" and isinstance(on["since"], int)

    # Then every call answers the 503 of the spec's error tables, a developer's as well
    for token, method, path in (
        (user, "GET", "/data/companies"),
        (dev, "GET", "/data/companies"),
        (user, "GET", "/users/current"),
        (dev, "GET", "/status/jobs"),
        (dev, "POST", "/auth/logout"),
    ):
        status, answer = call(api, method, path, token)
        error(status, answer, 503, "serviceUnavailable")
        assert answer["message"] == "Service unavailable: the application is under maintenance"
    # ...a user's login too (no session opened), a wrong password still its 401
    refused = api.call("POST", "/runtime/api/auth/login", body={"email": USER[0], "password": USER[1]})
    error(refused.status, refused.json(), 503, "serviceUnavailable")
    wrong = api.call("POST", "/runtime/api/auth/login", body={"email": USER[0], "password": "not it"})
    assert wrong.status == 401
    # ...but a developer logs in, sees it and takes the app out of maintenance
    fresh = api.login(*DEV)
    assert ok(api, "GET", "/status/maintenance", fresh)["maintenance"] is True
    assert ok(api, "PUT", "/status/maintenance", fresh, {"maintenance": False})["maintenance"] is False
    # ...after which the user's session answers again
    ok(api, "GET", "/data/companies?_size=1", user)
