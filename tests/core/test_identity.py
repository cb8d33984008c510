"""Identity: login (throttled), impersonation, hashed tokens that expire when idle or too old, logout,
sessions that end when their user changes, and the account tree."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest
from backroom.dynamo import TransactionFailed
from backroom.errors import Conflict, Forbidden, NotFound, Overloaded, TooManyRequests, Unauthorized
from backroom.identity import passwords, throttle
from backroom.identity import service as identity_service
from backroom.identity.models import Role
from backroom.identity.service import IdentityService
from backroom.identity.throttle import LoginLimits
from backroom.wiring import Core

from infra.demo.load import load_demo

DEMO = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
DEMO_SUB = "5b8f1d4c0e3a4f7b9d2c6e8a0f1b3d5c"


@pytest.fixture
def demo(core: Core) -> Core:
    load_demo(core, app_records=False)  # the runtime records are not read here
    return core


def test_login_gives_a_token_that_authenticates(demo: Core) -> None:
    session = demo.identity.login("dev@demo.local", "demo-dev-password", ip="10.0.0.1")

    caller = demo.identity.authenticate(session.token)

    assert caller.email == "dev@demo.local"
    assert caller.role is Role.DEVELOPER
    assert caller.account_id == DEMO and caller.tenant_id == DEMO
    assert session.ip == "10.0.0.1"


def test_sub_account_user_belongs_to_the_demo_tenant(demo: Core) -> None:
    caller = demo.identity.login("sub@demo.local", "demo-sub-password").caller
    assert caller.account_id == DEMO_SUB
    assert caller.tenant_id == DEMO


@pytest.mark.parametrize(
    ("email", "password"), [("dev@demo.local", "wrong"), ("nobody@demo.local", "demo-dev-password"), ("", "")]
)
def test_bad_credentials_are_401(demo: Core, email: str, password: str) -> None:
    with pytest.raises(Unauthorized):
        demo.identity.login(email, password)


def test_email_is_case_insensitive(demo: Core) -> None:
    assert demo.identity.login("Dev@Demo.LOCAL", "demo-dev-password").caller.email == "dev@demo.local"


def test_developer_impersonates_a_user(demo: Core) -> None:
    session = demo.identity.login("dev@demo.local", "demo-dev-password", impersonate="user@demo.local")
    caller = demo.identity.authenticate(session.token)
    assert caller.email == "user@demo.local"
    assert caller.admin_email == "dev@demo.local"
    assert caller.role is Role.USER


def test_impersonating_an_unknown_user_is_404(demo: Core) -> None:
    with pytest.raises(NotFound):
        demo.identity.login("dev@demo.local", "demo-dev-password", impersonate="ghost@demo.local")


def test_a_plain_user_may_not_impersonate(demo: Core) -> None:
    with pytest.raises(Forbidden):
        demo.identity.login("user@demo.local", "demo-user-password", impersonate="sub@demo.local")


def test_a_member_of_a_group_that_manages_groups_impersonates_users_not_developers(demo: Core) -> None:
    # Given the user of the demo's Sales group made a member of Managers (the app's flag to manage groups)
    demo.identity.set_groups("user@demo.local", ["Sales", "Managers"])

    # Then it may impersonate a user it reaches, as a developer does
    caller = demo.identity.login("user@demo.local", "demo-user-password", impersonate="sub@demo.local").caller
    assert (caller.email, caller.admin_email, caller.role) == ("sub@demo.local", "user@demo.local", Role.USER)
    # ...but never a developer, who may do more than it
    with pytest.raises(Forbidden):
        demo.identity.login("user@demo.local", "demo-user-password", impersonate="dev@demo.local")
    # ...and back in Sales alone, no one
    demo.identity.set_groups("user@demo.local", ["Sales"])
    with pytest.raises(Forbidden):
        demo.identity.login("user@demo.local", "demo-user-password", impersonate="sub@demo.local")


def test_tokens_and_passwords_are_stored_hashed(demo: Core) -> None:
    token = demo.identity.login("user@demo.local", "demo-user-password").token
    stored = demo.table.get(f"TOKEN#{hashlib.sha256(token.encode()).hexdigest()}", "TOKEN")
    assert stored is not None
    assert token not in str(stored)
    user = demo.table.get("USER#user@demo.local", "USER")
    assert user is not None
    assert "demo-user-password" not in str(user)
    assert user["password_hash"].startswith("scrypt$")


def test_token_expires_after_idle_time_and_use_keeps_it_alive(demo: Core, monkeypatch: pytest.MonkeyPatch) -> None:
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
def test_missing_or_unknown_token_is_401(demo: Core, token: str | None) -> None:
    with pytest.raises(Unauthorized):
        demo.identity.authenticate(token)


def test_account_reach_covers_descendants_only(demo: Core) -> None:
    parent = demo.identity.login("user@demo.local", "demo-user-password").caller
    child = demo.identity.login("sub@demo.local", "demo-sub-password").caller

    assert demo.identity.account_in_reach(parent, DEMO_SUB).id == DEMO_SUB
    assert demo.identity.account_in_reach(child, DEMO_SUB).id == DEMO_SUB
    with pytest.raises(NotFound):
        demo.identity.account_in_reach(child, DEMO)


# Password hashing at its real cost (the other tests hash at a test cost, see conftest.py) ----------
OLD_COST = passwords.Scrypt(n=2**14, r=8, p=1)  # what hashes were made at before OWASP's minimum


def stored_hash(core: Core, email: str) -> str:
    item = core.table.get(f"USER#{email}", "USER")
    assert item is not None
    return str(item["password_hash"])


def new_user(core: Core, email: str, password: str) -> None:
    core.identity.create_account(DEMO, "demo")
    core.identity.create_user(email, password, name="Ann", role=Role.USER, account_id=DEMO)


def test_a_new_password_is_hashed_at_owasp_minimum_with_its_parameters(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passwords, "CURRENT", passwords.OWASP_MINIMUM)

    new_user(core, "ann@t.local", "ann-password")

    scheme, n, r, p, salt, digest = stored_hash(core, "ann@t.local").split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**17), "8", "1")
    assert salt and digest
    assert core.identity.login("ann@t.local", "ann-password").caller.email == "ann@t.local"


def test_an_older_hash_logs_in_and_is_rehashed_after_a_good_login_only(
    core: Core, monkeypatch: pytest.MonkeyPatch
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


def test_a_rehash_replaces_only_the_hash_it_read(core: Core) -> None:
    # Given two logins that read the same old hash, the first of which has replaced it
    new_user(core, "race@t.local", "race-password")
    old = stored_hash(core, "race@t.local")
    first, second = passwords.hash_password("race-password"), passwords.hash_password("race-password")
    assert core.identity.repo.replace_password_hash("race@t.local", old, first)

    # When the second writes its own, then nothing is written: the first one's hash stays
    assert not core.identity.repo.replace_password_hash("race@t.local", old, second)
    assert stored_hash(core, "race@t.local") == first
    assert core.identity.login("race@t.local", "race-password")


def test_a_user_created_twice_is_a_conflict(core: Core) -> None:
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


# Sessions: absolute lifetime, logout, revocation when a user changes (finding 8) ------------------
HOUR = 3600 * 1000


def test_finding_8_use_never_extends_a_token_past_its_lifetime(demo: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a token used every 7 hours, so that it never idles out
    clock = {"now": 1_000_000_000_000}
    monkeypatch.setattr(identity_service, "now_ms", lambda: clock["now"])
    token = demo.identity.login("user@demo.local", "demo-user-password").token
    lifetime = demo.settings.token_lifetime_seconds * 1000
    while clock["now"] + 7 * HOUR < 1_000_000_000_000 + lifetime:
        clock["now"] += 7 * HOUR
        demo.identity.authenticate(token)

    # When its lifetime has passed since the login, then it is refused however recently it was used
    clock["now"] = 1_000_000_000_000 + lifetime
    with pytest.raises(Unauthorized):
        demo.identity.authenticate(token)
    stored = demo.table.get(f"TOKEN#{hashlib.sha256(token.encode()).hexdigest()}", "TOKEN")
    assert stored is not None and stored["expires_at"] <= (1_000_000_000_000 + lifetime) // 1000  # TTL: no later


def test_finding_8_logout_ends_the_token_and_only_it(demo: Core) -> None:
    first = demo.identity.login("user@demo.local", "demo-user-password").token
    second = demo.identity.login("user@demo.local", "demo-user-password").token

    demo.identity.logout(first)

    with pytest.raises(Unauthorized):
        demo.identity.authenticate(first)
    with pytest.raises(Unauthorized):
        demo.identity.logout(first)
    assert demo.identity.authenticate(second).email == "user@demo.local"
    assert demo.table.get(f"TOKEN#{hashlib.sha256(first.encode()).hexdigest()}", "TOKEN") is None


def sessions(core: Core, user_id: str) -> list[str]:
    return [i["sk"] for i in core.table.query("pk = :p", {":p": f"SESSIONS#{user_id}"}, consistent=True)]


def test_finding_8_a_role_change_ends_every_session_of_the_user(demo: Core) -> None:
    # Given two sessions of user@, a developer impersonating user@, and the developer's own session
    mine = [demo.identity.login("user@demo.local", "demo-user-password").token for _ in range(2)]
    alias = demo.identity.login("dev@demo.local", "demo-dev-password", impersonate="user@demo.local").token
    dev = demo.identity.login("dev@demo.local", "demo-dev-password").token

    # When user@ becomes a developer
    changed = demo.identity.change_role("user@demo.local", Role.DEVELOPER)

    # Then none of its sessions answers, the developer's own still does, and a new login has the new role
    assert changed.role is Role.DEVELOPER and changed.version == 1
    for token in [*mine, alias]:
        with pytest.raises(Unauthorized):
            demo.identity.authenticate(token)
    assert sessions(demo, changed.id) == []
    assert demo.identity.authenticate(dev).role is Role.DEVELOPER
    again = demo.identity.login("user@demo.local", "demo-user-password").token
    assert demo.identity.authenticate(again).role is Role.DEVELOPER


def test_finding_8_demoting_a_developer_ends_the_sessions_it_impersonates_with(demo: Core) -> None:
    alias = demo.identity.login("dev@demo.local", "demo-dev-password", impersonate="user@demo.local").token
    plain = demo.identity.login("user@demo.local", "demo-user-password").token

    demo.identity.change_role("dev@demo.local", Role.USER)

    with pytest.raises(Unauthorized):
        demo.identity.authenticate(alias)
    assert demo.identity.authenticate(plain).email == "user@demo.local"  # user@'s own session is not dev@'s
    with pytest.raises(Forbidden):
        demo.identity.login("dev@demo.local", "demo-dev-password", impersonate="user@demo.local")


def test_finding_8_a_deactivated_user_is_logged_out_and_cannot_log_in(demo: Core) -> None:
    token = demo.identity.login("sub@demo.local", "demo-sub-password").token

    demo.identity.deactivate_user("sub@demo.local")

    with pytest.raises(Unauthorized):
        demo.identity.authenticate(token)
    with pytest.raises(Unauthorized):
        demo.identity.login("sub@demo.local", "demo-sub-password")
    with pytest.raises(NotFound):  # nor may a developer act as it
        demo.identity.login("dev@demo.local", "demo-dev-password", impersonate="sub@demo.local")
    demo.identity.reactivate_user("sub@demo.local")
    assert demo.identity.login("sub@demo.local", "demo-sub-password").caller.email == "sub@demo.local"


def test_finding_8_a_removed_user_is_logged_out_and_gone(demo: Core) -> None:
    token = demo.identity.login("sub@demo.local", "demo-sub-password").token

    demo.identity.remove_user("sub@demo.local")

    with pytest.raises(Unauthorized):
        demo.identity.authenticate(token)
    with pytest.raises(Unauthorized):
        demo.identity.login("sub@demo.local", "demo-sub-password")
    with pytest.raises(NotFound):
        demo.identity.remove_user("sub@demo.local")
    with pytest.raises(NotFound):
        demo.identity.change_role("sub@demo.local", Role.DEVELOPER)


def test_a_user_moved_to_another_account_logs_in_there(demo: Core) -> None:
    token = demo.identity.login("sub@demo.local", "demo-sub-password").token

    demo.identity.move_user("sub@demo.local", DEMO)

    with pytest.raises(Unauthorized):
        demo.identity.authenticate(token)
    assert demo.identity.login("sub@demo.local", "demo-sub-password").caller.account_id == DEMO
    with pytest.raises(NotFound):
        demo.identity.move_user("sub@demo.local", "no-such-account")


def test_a_login_that_read_the_user_before_a_change_opens_no_session(demo: Core) -> None:
    # Given the user as a login read it, then a change
    read = demo.identity.repo.get_user("user@demo.local")
    assert read is not None
    demo.identity.change_role("user@demo.local", Role.DEVELOPER)

    # When that login writes its session, then it is refused and nothing is written
    caller = identity_service._caller(read)
    with pytest.raises(Conflict):
        demo.identity.repo.put_session("f" * 64, caller, [read], now_ms=1, expires_s=2, ends_s=3)
    assert demo.identity.repo.get_token("f" * 64) is None
    assert sessions(demo, read.id) == []


def test_a_login_whose_transaction_meets_another_is_tried_again(demo: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    # DynamoDB cancels one of two transactions on an item at once (two logins of a user check it)
    transact, calls = demo.table.transact, []

    def conflicted_once(writes: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise TransactionFailed(["TransactionConflict", None, None])
        transact(writes)

    monkeypatch.setattr(demo.table, "transact", conflicted_once)

    token = demo.identity.login("user@demo.local", "demo-user-password").token

    assert demo.identity.authenticate(token).email == "user@demo.local"
    assert len(calls) == 2


def test_authentication_is_one_get_item(demo: Core) -> None:
    token = demo.identity.login("user@demo.local", "demo-user-password").token
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = demo.table.client.meta.events
    events.register("before-call.dynamodb.*", record)
    try:
        demo.identity.authenticate(token)
    finally:
        events.unregister("before-call.dynamodb.*", record)
    assert calls == ["GetItem"]


# Login throttling and the cap on hashes at once (finding 7) ----------------------------------------
def throttled(core: Core, **limits: Any) -> IdentityService:
    """The identity service on the same table with lower limits (and no wait for a hashing slot)."""
    slots = {k: limits.pop(k) for k in ("hashes_at_once",) if k in limits}
    return IdentityService(
        core.identity.repo,
        token_idle_seconds=3600,
        limits=LoginLimits(**{"per_account": 3, "per_address": 100, "window_seconds": 900, **limits}),
        hash_wait_seconds=0,
        **slots,
    )


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every scrypt derivation (a password checked or hashed), calling the real one."""
    done: list[int] = []
    derive = passwords._derive

    def counted(*args: Any, **kw: Any) -> bytes:
        done.append(1)
        return derive(*args, **kw)

    monkeypatch.setattr(passwords, "_derive", counted)
    return done


def test_finding_7_failed_logins_on_an_account_are_refused_before_any_hash(demo: Core, hashes: list[int]) -> None:
    identity = throttled(demo, per_account=3)
    for _ in range(3):
        with pytest.raises(Unauthorized):
            identity.login("user@demo.local", "wrong", ip="10.0.0.1")
    assert len(hashes) == 3

    # The 4th attempt, and even the right password, are refused without a hash, until the window ends
    for password in ("wrong", "demo-user-password"):
        with pytest.raises(TooManyRequests) as refused:
            identity.login("User@Demo.local ", password, ip="10.0.0.2")
        assert 0 < refused.value.retry_after <= 900
    assert len(hashes) == 3
    # Another account is not affected, nor is an e-mail that belongs to nobody throttled differently
    assert identity.login("dev@demo.local", "demo-dev-password", ip="10.0.0.1").caller.email == "dev@demo.local"
    for _ in range(3):
        with pytest.raises(Unauthorized):
            identity.login("ghost@demo.local", "wrong")
    with pytest.raises(TooManyRequests):
        identity.login("ghost@demo.local", "wrong")


def test_finding_7_failed_logins_from_an_address_are_refused_whatever_the_account(
    demo: Core, hashes: list[int]
) -> None:
    identity = throttled(demo, per_account=10, per_address=4)
    for i in range(4):
        with pytest.raises(Unauthorized):
            identity.login(f"nobody-{i}@demo.local", "wrong", ip="2001:db8::1")

    with pytest.raises(TooManyRequests):  # the same /64
        identity.login("user@demo.local", "demo-user-password", ip="2001:db8::ffff")
    assert len(hashes) == 4
    assert identity.login("user@demo.local", "demo-user-password", ip="2001:db8:0:1::1").caller  # another /64
    assert identity.login("user@demo.local", "demo-user-password", ip="10.0.0.1").caller


def test_successful_logins_are_never_counted(demo: Core) -> None:
    identity = throttled(demo, per_account=2, per_address=2)
    for _ in range(6):
        identity.login("user@demo.local", "demo-user-password", ip="10.0.0.9")
    with pytest.raises(Unauthorized):  # failures still count from where they are
        identity.login("user@demo.local", "wrong", ip="10.0.0.9")
    identity.login("user@demo.local", "demo-user-password", ip="10.0.0.9")


def test_the_window_ending_lets_logins_in_again(demo: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"now": 1_700_000_100}
    monkeypatch.setattr(throttle, "now_s", lambda: clock["now"])
    identity = throttled(demo, per_account=1)
    with pytest.raises(Unauthorized):
        identity.login("user@demo.local", "wrong")
    with pytest.raises(TooManyRequests) as refused:
        identity.login("user@demo.local", "demo-user-password")

    clock["now"] += refused.value.retry_after

    assert identity.login("user@demo.local", "demo-user-password").caller.email == "user@demo.local"


def test_finding_7_parallel_wrong_logins_check_no_more_passwords_than_the_limit(demo: Core, hashes: list[int]) -> None:
    # Given 16 wrong logins on one account at once (the finding's burst)
    identity = throttled(demo, per_account=3, hashes_at_once=16)
    answers: list[str] = []

    def guess() -> None:
        try:
            identity.login("user@demo.local", "wrong", ip="10.0.0.3")
        except (Unauthorized, TooManyRequests) as err:
            answers.append(type(err).__name__)

    threads = [threading.Thread(target=guess) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then each was counted before its hash: exactly the limit were checked, the others refused unhashed
    assert sorted(answers) == ["TooManyRequests"] * 13 + ["Unauthorized"] * 3
    assert len(hashes) == 3


def test_finding_7_a_login_finding_every_hashing_slot_taken_is_a_503_that_counts_nothing(
    demo: Core, hashes: list[int]
) -> None:
    identity = throttled(demo, per_account=1, hashes_at_once=1)

    with identity.hashing.slot(), pytest.raises(Overloaded) as busy:
        identity.login("user@demo.local", "wrong", ip="10.0.0.4")

    assert busy.value.status == 503 and busy.value.retry_after == 1
    assert hashes == []
    with pytest.raises(Unauthorized):  # the refused attempt was given back: this one is still the first
        identity.login("user@demo.local", "wrong", ip="10.0.0.4")


def test_an_ipv4_mapped_address_is_counted_as_the_ipv4_address() -> None:
    assert throttle.address_key("::ffff:10.240.0.38") == throttle.address_key("10.240.0.38")
    assert throttle.address_key("2001:db8::1") == throttle.address_key("2001:db8::2")
    assert throttle.address_key("2001:db8::1") != throttle.address_key("2001:db8:0:1::1")
    assert throttle.address_key("not an address") != throttle.address_key("10.240.0.38")
