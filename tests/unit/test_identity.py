"""Identity: login, impersonation, hashed tokens that expire when idle, and the account tree."""

from __future__ import annotations

import hashlib

import pytest
from backroom.errors import Forbidden, NotFound, Unauthorized
from backroom.identity import service as identity_service
from backroom.identity.models import Role
from backroom.services import Services

from infra.demo.load import load_demo

DEMO = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
DEMO_SUB = "5b8f1d4c0e3a4f7b9d2c6e8a0f1b3d5c"


@pytest.fixture
def demo(core: Services) -> Services:
    load_demo(core, app_records=False)  # the runtime records are not read here
    return core


def test_login_gives_a_token_that_authenticates(demo: Services) -> None:
    session = demo.identity.login("dev@demo.local", "demo-dev-password", ip="10.0.0.1")

    caller = demo.identity.authenticate(session.token)

    assert caller.email == "dev@demo.local"
    assert caller.role is Role.DEVELOPER
    assert caller.account_id == DEMO and caller.tenant_id == DEMO
    assert session.ip == "10.0.0.1"


def test_sub_account_user_belongs_to_the_demo_tenant(demo: Services) -> None:
    caller = demo.identity.login("sub@demo.local", "demo-sub-password").caller
    assert caller.account_id == DEMO_SUB
    assert caller.tenant_id == DEMO


@pytest.mark.parametrize(
    ("email", "password"), [("dev@demo.local", "wrong"), ("nobody@demo.local", "demo-dev-password"), ("", "")]
)
def test_bad_credentials_are_401(demo: Services, email: str, password: str) -> None:
    with pytest.raises(Unauthorized):
        demo.identity.login(email, password)


def test_email_is_case_insensitive(demo: Services) -> None:
    assert demo.identity.login("Dev@Demo.LOCAL", "demo-dev-password").caller.email == "dev@demo.local"


def test_developer_impersonates_a_user(demo: Services) -> None:
    session = demo.identity.login("dev@demo.local", "demo-dev-password", impersonate="user@demo.local")
    caller = demo.identity.authenticate(session.token)
    assert caller.email == "user@demo.local"
    assert caller.admin_email == "dev@demo.local"
    assert caller.role is Role.USER


def test_impersonating_an_unknown_user_is_404(demo: Services) -> None:
    with pytest.raises(NotFound):
        demo.identity.login("dev@demo.local", "demo-dev-password", impersonate="ghost@demo.local")


def test_a_plain_user_may_not_impersonate(demo: Services) -> None:
    with pytest.raises(Forbidden):
        demo.identity.login("user@demo.local", "demo-user-password", impersonate="sub@demo.local")


def test_tokens_and_passwords_are_stored_hashed(demo: Services) -> None:
    token = demo.identity.login("user@demo.local", "demo-user-password").token
    stored = demo.table.get(f"TOKEN#{hashlib.sha256(token.encode()).hexdigest()}", "TOKEN")
    assert stored is not None
    assert token not in str(stored)
    user = demo.table.get("USER#user@demo.local", "USER")
    assert user is not None
    assert "demo-user-password" not in str(user)
    assert user["password_hash"].startswith("scrypt$")


def test_token_expires_after_idle_time_and_use_keeps_it_alive(demo: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"now": 1_000_000_000_000}
    monkeypatch.setattr(identity_service, "now_ms", lambda: clock["now"])
    token = demo.identity.login("user@demo.local", "demo-user-password").token
    hour = 3600 * 1000

    clock["now"] += 7 * hour
    demo.identity.authenticate(token)  # used: the 8 h start again
    clock["now"] += 7 * hour
    demo.identity.authenticate(token)
    clock["now"] += 8 * hour + 1

    with pytest.raises(Unauthorized):
        demo.identity.authenticate(token)


@pytest.mark.parametrize("token", [None, "", "not-a-token"])
def test_missing_or_unknown_token_is_401(demo: Services, token: str | None) -> None:
    with pytest.raises(Unauthorized):
        demo.identity.authenticate(token)


def test_account_reach_covers_descendants_only(demo: Services) -> None:
    parent = demo.identity.login("user@demo.local", "demo-user-password").caller
    child = demo.identity.login("sub@demo.local", "demo-sub-password").caller

    assert demo.identity.account_in_reach(parent, DEMO_SUB).id == DEMO_SUB
    assert demo.identity.account_in_reach(child, DEMO_SUB).id == DEMO_SUB
    with pytest.raises(NotFound):
        demo.identity.account_in_reach(child, DEMO)
