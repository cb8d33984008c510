"""Findings 7 and 8 over HTTP: logins throttled per account and per source address (429 with
`Retry-After`), and tokens that end on logout (in each dialect) or when their user changes.

Each test logs in from a loopback address of its own (127.x.y.z), so that its failures count against
nobody else's logins from 127.0.0.1, and as users of its own whose stored hash is cheap (the password
is checked at the parameters the hash carries), so that a hundred wrong passwords take a second or two.
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from backroom.identity import passwords
from backroom.identity.models import Role

from tests.integration.stack import Api, LocalStack, Reply

DEMO = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
LOGIN = "/runtime/api/auth/login"
PASSWORD = "sessions-password"
CHEAP = passwords.Scrypt(n=2**10, r=8, p=1)


def new_users(local: LocalStack, count: int, role: Role = Role.USER) -> list[str]:
    """Users of the demo tenant whose stored hash is cheap to check (a good login rehashes it once)."""
    emails = [f"s-{uuid.uuid4().hex[:12]}@sessions.local" for _ in range(count)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "CURRENT", CHEAP)
        for email in emails:
            local.core.identity.create_user(email, PASSWORD, name="Session", role=role, account_id=DEMO)
    return emails


def new_address() -> str:
    """A loopback address of this test's own (all of 127.0.0.0/8 reaches the local gateway)."""
    return f"127.{secrets.randbelow(250) + 1}.{secrets.randbelow(256)}.{secrets.randbelow(255) + 1}"


def login_from(api: Api, address: str, email: str, password: str) -> Reply:
    split = urlsplit(api.base)
    conn = http.client.HTTPConnection(
        split.hostname or "127.0.0.1", split.port, timeout=60, source_address=(address, 0)
    )
    try:
        body = json.dumps({"email": email, "password": password}).encode()
        conn.request(
            "POST", LOGIN, body=body, headers={"Content-Type": "application/json", "Accept": "application/json"}
        )
        answer = conn.getresponse()
        return Reply(answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())
    finally:
        conn.close()


def in_one_window(window: int, scenario: Callable[[], None]) -> None:
    """Run a throttling scenario whose attempts all fall in one of the throttle's fixed windows (counted from
    the epoch, as the stack counts them on this machine's clock): one that straddled a window's edge, where
    the counts start again by design, is run once more, wholly in the next window."""
    for _ in range(2):
        began = int(time.time()) // window
        try:
            scenario()
            return
        except AssertionError:
            if int(time.time()) // window == began:
                raise
    raise AssertionError("a throttling scenario straddled two windows' edges")


def assert_throttled(reply: Reply, window: int) -> None:
    assert reply.status == 429, reply.body
    assert 0 < int(reply.headers["retry-after"]) <= window
    assert reply.json()["code"] == "tooManyRequests" and reply.json()["message"]
    assert set(reply.json()) == {"code", "message"}


# Finding 7: login throttling ------------------------------------------------------------------------
def test_finding_7_wrong_passwords_on_one_account_are_throttled(api: Api, local: LocalStack) -> None:
    limit = local.core.settings.login_failures_per_account
    window = local.core.settings.login_failure_window_seconds

    def scenario() -> None:
        victim, other = new_users(local, 2)
        here = new_address()
        # Given as many wrong passwords as an account may have in a window
        for _ in range(limit):
            assert login_from(api, here, victim, "wrong").status == 401
        # Then the next attempt is a 429 with Retry-After, even with the right password (none is checked)
        for password in ("wrong", PASSWORD):
            assert_throttled(login_from(api, here, victim, password), window)
        # ... while another account logs in from the same address
        assert login_from(api, here, other, PASSWORD).status == 200

    in_one_window(window, scenario)


def test_finding_7_wrong_logins_from_one_address_are_throttled_whatever_the_account(
    api: Api, local: LocalStack
) -> None:
    per_account = local.core.settings.login_failures_per_account
    per_address = local.core.settings.login_failures_per_address
    window = local.core.settings.login_failure_window_seconds

    def scenario() -> None:
        *accounts, fresh = new_users(local, per_address // (per_account - 1) + 2)
        here = new_address()
        # Given as many wrong passwords from one address as it may send in a window, no account over its limit
        tries = [(email, n) for email in accounts for n in range(per_account - 1)][:per_address]
        assert [login_from(api, here, email, "wrong").status for email, _ in tries] == [401] * per_address
        # Then a login from that address is a 429 whatever the account, and the account logs in from elsewhere
        assert_throttled(login_from(api, here, fresh, PASSWORD), window)
        assert login_from(api, new_address(), fresh, PASSWORD).status == 200

    in_one_window(window, scenario)


# Finding 8: revocable tokens ------------------------------------------------------------------------
READS: dict[str, tuple[str, Callable[[str], dict[str, str]]]] = {
    "runtime": ("/runtime/api/data/companies?_size=1", lambda t: {"token": t}),
    "gateway": ("/gateway/errand/v1/errands", lambda t: {"Authorization": f"Bearer {t}"}),
    "tasks": (f"/v2/accounts/{DEMO}/tasks", lambda t: {"X-Auth-Token": t}),
}
LOGOUTS = {
    "runtime": ("POST", "/runtime/api/auth/logout", 200),
    "tasks": ("DELETE", "/v2/token_auth", 200),
    "gateway": ("POST", "/gateway/auth/v1/logout", 204),
}


def reads(api: Api, token: str) -> dict[str, int]:
    return {dialect: api.call("GET", path, headers=header(token)).status for dialect, (path, header) in READS.items()}


@pytest.mark.parametrize("dialect", sorted(LOGOUTS))
def test_finding_8_logout_ends_the_token_on_every_dialect(api: Api, dialect: str) -> None:
    token = api.login("dev@demo.local", "demo-dev-password")
    assert reads(api, token) == dict.fromkeys(READS, 200)
    method, path, status = LOGOUTS[dialect]
    header = READS[dialect][1]

    reply = api.call(method, path, headers=header(token))

    assert reply.status == status, reply.body
    if dialect == "runtime":
        assert reply.json() == {"userEmail": "dev@demo.local", "adminUserEmail": None}
    elif dialect == "tasks":
        assert (reply.json()["status"], reply.json()["data"]) == ("success", {})
    else:
        assert reply.body == b""
    assert reads(api, token) == dict.fromkeys(READS, 401)
    again = api.call(method, path, headers=header(token))
    assert again.status == 401
    assert {"runtime": "code", "tasks": "auth_token", "gateway": "timestamp"}[dialect] in again.json()


@pytest.mark.parametrize("change", ["role", "deactivate", "remove"])
def test_finding_8_a_changed_users_token_stops_working_at_once(api: Api, local: LocalStack, change: str) -> None:
    # Given a developer's token that reads the app's logs (developers only)
    (email,) = new_users(local, 1, role=Role.DEVELOPER)
    token = api.login(email, PASSWORD)
    logs = "/runtime/api/status/logs"
    assert api.call("GET", logs, headers={"token": token}).status == 200

    # When the user is demoted, deactivated or removed
    identity = local.core.identity
    {"role": lambda: identity.change_role(email, Role.USER), "deactivate": lambda: identity.deactivate_user(email)}.get(
        change, lambda: identity.remove_user(email)
    )()

    # Then the token is a 401 at once; a new login carries the new role, or is refused
    assert api.call("GET", logs, headers={"token": token}).status == 401
    again = api.call("POST", LOGIN, body={"email": email, "password": PASSWORD})
    if change == "role":
        assert again.status == 200
        assert api.call("GET", logs, headers={"token": again.json()["token"]}).status == 403
    else:
        assert (again.status, again.json()["code"]) == (401, "unauthorized")
