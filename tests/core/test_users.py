"""Users: listed per tenant and found by id, one-time passwords changed at login, groups on users
materialised into their permissions (`Grants`), and the runtime's users service (`AppUsers`)."""

from __future__ import annotations

from typing import Any

import pytest
from backroom.app.users import AppUsers
from backroom.errors import Conflict, Forbidden, Invalid, NotFound, PasswordChangeRequired, Unauthorized
from backroom.identity.models import Caller, Role
from backroom.wiring import Core

from infra.demo.load import demo_app, load_demo

DEMO = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
SUB = "5b8f1d4c0e3a4f7b9d2c6e8a0f1b3d5c"  # demo-sub, under the tenant's root account


@pytest.fixture
def demo(core: Core) -> Core:
    load_demo(core, app_records=False)
    return core


@pytest.fixture
def users(demo: Core) -> AppUsers:
    return AppUsers(demo.identity, demo.grants, demo.app.logs)


def dev_of(demo: Core) -> Caller:
    return demo.identity.login("dev@demo.local", "demo-dev-password").caller


def calls_of(core: Core, action: Any) -> list[str]:
    """The DynamoDB operations `action()` makes."""
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = core.table.client.meta.events
    events.register("before-call.dynamodb.*", record)
    try:
        action()
    finally:
        events.unregister("before-call.dynamodb.*", record)
    return calls


# Identity ---------------------------------------------------------------------------------------
def test_a_tenants_users_are_one_query_and_another_tenants_are_not_among_them(demo: Core) -> None:
    demo.identity.create_account("other", "Other")
    demo.identity.create_user("x@other.local", "other-password", name="X", role=Role.USER, account_id="other")

    found: list[str] = []
    calls = calls_of(demo, lambda: found.extend(u.email for u in demo.identity.users_of(DEMO)))

    assert found == ["dev@demo.local", "sub@demo.local", "user@demo.local"]  # sub's account is in the tenant
    assert calls == ["Query"]
    assert [u.email for u in demo.identity.users_of("other")] == ["x@other.local"]


def test_a_user_is_found_by_its_id_and_a_removed_one_is_not(demo: Core) -> None:
    made = demo.identity.create_user("ana@demo.local", "ana-password", name="Ana", role=Role.USER, account_id=DEMO)

    found = demo.identity.user_by_id(made.id)
    assert found is not None and found.email == "ana@demo.local"
    demo.identity.remove_user("ana@demo.local")
    assert demo.identity.user_by_id(made.id) is None
    assert "ana@demo.local" not in [u.email for u in demo.identity.users_of(DEMO)]


def test_a_one_time_password_must_be_changed_at_login(demo: Core) -> None:
    demo.identity.create_user(
        "ana@demo.local", "one-time-pass", name="Ana", role=Role.USER, account_id=DEMO, one_time=True
    )

    with pytest.raises(PasswordChangeRequired):
        demo.identity.login("ana@demo.local", "one-time-pass")
    user = demo.identity.get_user("ana@demo.local")
    assert user is not None and list(demo.table.query("pk = :p", {":p": f"SESSIONS#{user.id}"})) == []
    with pytest.raises(Invalid):  # too short
        demo.identity.login("ana@demo.local", "one-time-pass", new_password="short")
    with pytest.raises(Invalid):  # the same
        demo.identity.login("ana@demo.local", "one-time-pass", new_password="one-time-pass")

    session = demo.identity.login("ana@demo.local", "one-time-pass", new_password="a-long-new-password")

    assert demo.identity.authenticate(session.token).email == "ana@demo.local"
    with pytest.raises(Unauthorized):
        demo.identity.login("ana@demo.local", "one-time-pass")
    assert demo.identity.login("ana@demo.local", "a-long-new-password").caller.email == "ana@demo.local"


def test_a_wrong_password_with_a_new_one_changes_nothing(demo: Core) -> None:
    with pytest.raises(Unauthorized):
        demo.identity.login("user@demo.local", "wrong-password", new_password="a-long-new-password")
    assert demo.identity.login("user@demo.local", "demo-user-password").caller.email == "user@demo.local"


def test_a_reset_gives_a_one_time_password_and_ends_the_sessions(demo: Core) -> None:
    token = demo.identity.login("user@demo.local", "demo-user-password").token

    password = demo.identity.reset_password("user@demo.local")

    assert len(password) >= 16
    with pytest.raises(Unauthorized):
        demo.identity.authenticate(token)
    with pytest.raises(Unauthorized):
        demo.identity.login("user@demo.local", "demo-user-password")
    with pytest.raises(PasswordChangeRequired):
        demo.identity.login("user@demo.local", password)


def test_a_change_of_name_ends_the_sessions_and_of_groups_alone_does_not(demo: Core) -> None:
    token = demo.identity.login("user@demo.local", "demo-user-password").token

    changed = demo.identity.update_user("user@demo.local", groups=["Readers", " Readers", "Sales"])
    assert changed.groups == ["Readers", "Sales"]
    assert demo.identity.authenticate(token).email == "user@demo.local"

    demo.identity.update_user("user@demo.local", name="Renamed")
    with pytest.raises(Unauthorized):
        demo.identity.authenticate(token)


# Grants -----------------------------------------------------------------------------------------
def test_a_users_groups_give_it_their_permissions_at_once_and_taken_away_take_them(demo: Core) -> None:
    demo.identity.create_user("ana@demo.local", "ana-password", name="Ana", role=Role.USER, account_id=DEMO)
    assert demo.app_repo.permissions(DEMO, "ana@demo.local") == {}

    demo.identity.set_groups("ana@demo.local", ["Readers"])
    calls = calls_of(demo, lambda: demo.grants.refresh_user(DEMO, "ana@demo.local"))

    assert set(demo.app_repo.permissions(DEMO, "ana@demo.local")) == {"contacts"}
    assert calls.count("Query") == 1  # the groups' definitions, read back in one Query
    demo.identity.set_groups("ana@demo.local", [])
    demo.grants.refresh_user(DEMO, "ana@demo.local")
    assert demo.app_repo.permissions(DEMO, "ana@demo.local") == {}
    assert calls_of(demo, lambda: demo.app_repo.permissions(DEMO, "ana@demo.local")) == ["GetItem"]


def test_an_install_grants_by_both_kinds_of_membership_and_forgets_users_granted_nothing(demo: Core) -> None:
    app = demo_app()
    for group in app.groups:  # membership by the groups' own lists, as app files had it
        group.users = {"Sales": ["user@demo.local"], "Readers": ["sub@demo.local"]}.get(group.name, [])
    demo.identity.set_groups("user@demo.local", [])  # user is listed by Sales, and names no group
    demo.identity.set_groups("sub@demo.local", ["Sales"])  # sub is listed by Readers, and names Sales

    demo.app_repo.install(DEMO, app)

    assert set(demo.app_repo.permissions(DEMO, "sub@demo.local")) == {"companies", "contacts"}
    assert set(demo.app_repo.permissions(DEMO, "user@demo.local")) == {"companies", "contacts"}
    for group in app.groups:
        group.users = []
    demo.app_repo.install(DEMO, app)
    assert demo.app_repo.permissions(DEMO, "user@demo.local") == {}  # listed no more, and names no group
    assert set(demo.app_repo.permissions(DEMO, "sub@demo.local")) == {"companies", "contacts"}


# The runtime's users service ----------------------------------------------------------------------
def test_a_developer_creates_a_user_with_groups_and_a_one_time_password(demo: Core, users: AppUsers) -> None:
    dev = dev_of(demo)

    user, password = users.create(
        dev, email="Ana@Demo.local", name="Ana", role=Role.USER, groups=["Readers"], account_id=None, ip=None
    )

    assert user.email == "ana@demo.local" and user.groups == ["Readers"] and user.password_change_required
    assert set(demo.app_repo.permissions(DEMO, "ana@demo.local")) == {"contacts"}
    with pytest.raises(PasswordChangeRequired):
        demo.identity.login("ana@demo.local", password)
    page = users.page(dev, {"_size": "2"})
    assert page.total == 4 and [u.email for u in page.users] == ["ana@demo.local", "dev@demo.local"]
    assert page.offset == 2
    assert users.page(dev, {"_size": "2", "_offset": "2"}).offset is None


def test_a_group_the_app_does_not_define_is_a_400(demo: Core, users: AppUsers) -> None:
    dev = dev_of(demo)
    with pytest.raises(Invalid, match="Nobody"):
        users.create(dev, email="a@demo.local", name="A", role=Role.USER, groups=["Nobody"], account_id=None, ip=None)
    user = demo.identity.get_user("user@demo.local")
    assert user is not None
    with pytest.raises(Invalid):
        users.update(dev, user.id, name=None, role=None, groups=["Sales", "Nobody"], ip=None)
    assert demo.identity.get_user("user@demo.local").groups == ["Sales"]  # type: ignore[union-attr]  # unchanged


def test_a_user_may_not_manage_users_and_another_tenants_user_is_404(demo: Core, users: AppUsers) -> None:
    plain = demo.identity.login("user@demo.local", "demo-user-password").caller
    demo.identity.create_account("other", "Other")
    stranger = demo.identity.create_user("x@other.local", "other-pass", name="X", role=Role.USER, account_id="other")
    dev = dev_of(demo)

    with pytest.raises(Forbidden):
        users.page(plain, {})
    with pytest.raises(Forbidden):
        users.get(plain, plain.user_id)
    assert users.current(plain).email == "user@demo.local"  # itself: any caller
    for act in (
        lambda: users.get(dev, stranger.id),
        lambda: users.deactivate(dev, stranger.id, None),
        lambda: users.reset_password(dev, stranger.id, None),
        lambda: users.get(dev, "000000000000000000000000"),
    ):
        with pytest.raises(NotFound):
            act()
    assert demo.identity.login("x@other.local", "other-pass").caller.email == "x@other.local"


def sub_dev_of(demo: Core) -> Caller:
    """A developer of demo-sub, with a user in an account below its own (demo-sub-sub)."""
    demo.identity.create_account("demo-sub-sub", "Demo sub sub", SUB)
    demo.identity.create_user(
        "deep@demo.local", "deep-password", name="Deep", role=Role.USER, account_id="demo-sub-sub"
    )
    demo.identity.create_user("subdev@demo.local", "subdev-password", name="S", role=Role.DEVELOPER, account_id=SUB)
    return demo.identity.login("subdev@demo.local", "subdev-password").caller


def test_a_sub_accounts_developer_neither_sees_nor_changes_a_user_above_it(demo: Core, users: AppUsers) -> None:
    sub_dev = sub_dev_of(demo)
    root_dev = demo.identity.get_user("dev@demo.local")
    assert root_dev is not None

    for act in (
        lambda: users.get(sub_dev, root_dev.id),
        lambda: users.update(sub_dev, root_dev.id, name="Taken", role=Role.USER, groups=["Sales"], ip=None),
        lambda: users.deactivate(sub_dev, root_dev.id, None),
        lambda: users.reactivate(sub_dev, root_dev.id, None),
        lambda: users.reset_password(sub_dev, root_dev.id, None),
    ):
        with pytest.raises(NotFound, match=f"User {root_dev.id} does not exist"):
            act()
    kept = demo.identity.login("dev@demo.local", "demo-dev-password").caller  # its password, role, name
    assert kept.role is Role.DEVELOPER and kept.name == root_dev.name
    # Its own account's users and those below it, it reaches; the listing holds them only
    deep = demo.identity.get_user("deep@demo.local")
    assert deep is not None and users.get(sub_dev, deep.id).email == "deep@demo.local"
    page = users.page(sub_dev, {"_size": "2"})
    assert (page.total, page.offset) == (3, 2)
    assert [u.email for u in page.users] == ["deep@demo.local", "sub@demo.local"]
    assert [u.email for u in users.page(sub_dev, {"_offset": "2"}).users] == ["subdev@demo.local"]
    assert users.page(dev_of(demo), {}).total == 5  # the root's developer reaches them all


def test_a_sub_accounts_developer_impersonates_no_user_above_it(demo: Core) -> None:
    sub_dev_of(demo)

    with pytest.raises(NotFound, match=r"dev@demo\.local does not exist"):
        demo.identity.login("subdev@demo.local", "subdev-password", impersonate="dev@demo.local")
    with pytest.raises(NotFound):
        demo.identity.login("subdev@demo.local", "subdev-password", impersonate="user@demo.local")

    below = demo.identity.login("subdev@demo.local", "subdev-password", impersonate="deep@demo.local").caller
    assert below.email == "deep@demo.local" and below.admin_email == "subdev@demo.local"
    assert demo.identity.login("dev@demo.local", "demo-dev-password", impersonate="deep@demo.local").caller.email


def labelled_by_tax_id(demo: Core) -> None:
    """The demo app with companies labelled by their tax id, which the group Sales may not read: applied
    (its definition stored) once nobody is in Sales."""
    demo.identity.set_groups("user@demo.local", [])
    demo.grants.refresh_user(DEMO, "user@demo.local")
    app = demo_app()
    next(e for e in app.entities if e.name == "companies").schema_.label = "{name} [{taxId}]"
    demo.evolution.apply(DEMO, app)


def test_groups_that_would_show_a_user_a_hidden_field_in_a_label_are_a_400_and_nothing_is_written(
    demo: Core, users: AppUsers
) -> None:
    labelled_by_tax_id(demo)
    dev = dev_of(demo)
    user = demo.identity.get_user("user@demo.local")
    assert user is not None

    with pytest.raises(Invalid, match=r"taxId.*user@demo\.local"):
        users.update(dev, user.id, name="Renamed", role=None, groups=["Sales"], ip=None)
    with pytest.raises(Invalid, match=r"taxId.*ana@demo\.local"):
        users.create(dev, email="ana@demo.local", name="A", role=Role.USER, groups=["Sales"], account_id=None, ip=None)

    after = demo.identity.get_user("user@demo.local")
    assert after is not None and (after.groups, after.name) == ([], "Demo User")
    assert demo.app_repo.permissions(DEMO, "user@demo.local") == {}
    assert demo.identity.get_user("ana@demo.local") is None
    users.update(dev, user.id, name=None, role=None, groups=["Readers"], ip=None)  # no label of contacts hides
    assert set(demo.app_repo.permissions(DEMO, "user@demo.local")) == {"contacts"}


def test_without_a_stored_definition_the_installed_app_is_checked(demo: Core) -> None:
    app = demo_app()
    next(e for e in app.entities if e.name == "companies").schema_.label = "{name} [{taxId}]"
    demo.app_repo.install("other", app)  # installed directly, as the benches do: no definition stored

    with pytest.raises(Invalid, match=r"taxId.*x@other\.local"):
        demo.grants.check_membership("other", "x@other.local", ["Sales"])
    demo.grants.check_membership("other", "x@other.local", ["Readers"])


def test_an_email_another_tenant_uses_is_refused_without_saying_whose(demo: Core, users: AppUsers) -> None:
    demo.identity.create_account("other", "Other")
    demo.identity.create_user("x@other.local", "other-pass", name="X", role=Role.USER, account_id="other")

    with pytest.raises(Conflict) as refused:
        users.create(dev_of(demo), email="X@other.local", name="X", role=Role.USER, groups=[], account_id=None, ip=None)

    assert refused.value.message == "This e-mail cannot be used for a new user"
