"""Identity: login, impersonation, hashed tokens that expire when idle, and the account tree."""

from __future__ import annotations

import hashlib

import pytest
from backroom.errors import Conflict, Forbidden, NotFound, Unauthorized
from backroom.identity import passwords
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


# Password hashing at its real cost (the other tests hash at a test cost, see conftest.py) ----------
OLD_COST = passwords.Scrypt(n=2**14, r=8, p=1)  # what hashes were made at before OWASP's minimum


def stored_hash(core: Services, email: str) -> str:
    item = core.table.get(f"USER#{email}", "USER")
    assert item is not None
    return str(item["password_hash"])


def new_user(core: Services, email: str, password: str) -> None:
    core.identity.create_account(DEMO, "demo")
    core.identity.create_user(email, password, name="Ann", role=Role.USER, account_id=DEMO)


def test_a_new_password_is_hashed_at_owasp_minimum_with_its_parameters(
    core: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passwords, "CURRENT", passwords.OWASP_MINIMUM)

    new_user(core, "ann@t.local", "ann-password")

    scheme, n, r, p, salt, digest = stored_hash(core, "ann@t.local").split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**17), "8", "1")
    assert salt and digest
    assert core.identity.login("ann@t.local", "ann-password").caller.email == "ann@t.local"


def test_an_older_hash_logs_in_and_is_rehashed_after_a_good_login_only(
    core: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a user whose password was hashed at N=2^14, and today's cost raised to N=2^17
    monkeypatch.setattr(passwords, "CURRENT", OLD_COST)
    new_user(core, "old@t.local", "old-password")
    old = stored_hash(core, "old@t.local")
    assert old.startswith(f"scrypt${2**14}$8$1$")
    monkeypatch.setattr(passwords, "CURRENT", passwords.OWASP_MINIMUM)

    # When a wrong password is tried, then the login fails and the old hash stays
    with pytest.raises(Unauthorized):
        core.identity.login("old@t.local", "wrong-password")
    assert stored_hash(core, "old@t.local") == old

    # When the right one is given, then it logs in and the hash is replaced by one at today's cost
    assert core.identity.login("old@t.local", "old-password").caller.email == "old@t.local"
    new = stored_hash(core, "old@t.local")
    assert new.startswith(f"scrypt${2**17}$8$1$")
    # ... which the same password opens, and a wrong one does not
    core.identity.login("old@t.local", "old-password")
    assert stored_hash(core, "old@t.local") == new
    with pytest.raises(Unauthorized):
        core.identity.login("old@t.local", "Old-password")


def test_a_rehash_replaces_only_the_hash_it_read(core: Services) -> None:
    # Given two logins that read the same old hash, the first of which has replaced it
    new_user(core, "race@t.local", "race-password")
    old = stored_hash(core, "race@t.local")
    first, second = passwords.hash_password("race-password"), passwords.hash_password("race-password")
    assert core.identity.repo.replace_password_hash("race@t.local", old, first)

    # When the second writes its own, then nothing is written: the first one's hash stays
    assert not core.identity.repo.replace_password_hash("race@t.local", old, second)
    assert stored_hash(core, "race@t.local") == first
    assert core.identity.login("race@t.local", "race-password")


def test_a_user_created_twice_is_a_conflict(core: Services) -> None:
    new_user(core, "twice@t.local", "twice-password")
    with pytest.raises(Conflict):
        core.identity.create_user("Twice@t.local", "other", name="Ann", role=Role.USER, account_id=DEMO)
    assert core.identity.login("twice@t.local", "twice-password")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "bcrypt$x",
        "scrypt$16384$8$1$!!$!!",
        "scrypt$0$8$1$AAAA$AAAA",
        f"scrypt${2**30}$8$1$AAAA$AAAA",
        "scrypt$a$b$c$d$e",
    ],
)
def test_a_malformed_stored_hash_matches_no_password(stored: str) -> None:
    assert not passwords.verify_password("anything", stored)
