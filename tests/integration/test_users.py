"""`/runtime/api/users` over HTTP: a developer creates, lists, changes, deactivates and resets its
tenant's users; one-time passwords are replaced at login; groups change permissions at once; the
`backroom users` commands over the same API."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from infra.cli.main import app
from tests.integration.stack import Api, LocalStack

USERS = "/runtime/api/users"
LOGIN = "/runtime/api/auth/login"
DEMO = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
SUB = "5b8f1d4c0e3a4f7b9d2c6e8a0f1b3d5c"  # demo-sub, under the tenant's root account
NEW_PASSWORD = "a-long-new-password"


def as_(token: str) -> dict[str, str]:
    return {"token": token}


def fresh_email() -> str:
    return f"u{secrets.token_hex(4)}@demo.local"


def create(api: Api, dev: str, **body: Any) -> dict[str, Any]:
    reply = api.call("POST", USERS, body={"email": fresh_email(), "name": "New", **body}, headers=as_(dev))
    assert reply.status == 201, reply.body
    return dict(reply.json())


def first_login(api: Api, email: str, password: str) -> str:
    """The one-time password replaced at login: the new session's token."""
    body = {"email": email, "password": password, "newPassword": NEW_PASSWORD}
    reply = api.call("POST", LOGIN, body=body)
    assert reply.status == 200, reply.body
    return str(reply.json()["token"])


def test_a_user_created_with_a_one_time_password_must_change_it_at_login(api: Api, dev: str) -> None:
    made = create(api, dev, role="user", groups=["Readers"])

    shown = {"id", "email", "name", "role", "groups", "account", "active", "passwordChangeRequired", "password"}
    assert set(made) == shown
    assert made["passwordChangeRequired"] is True and made["account"] == DEMO and len(made["password"]) >= 16
    refused = api.call("POST", LOGIN, body={"email": made["email"], "password": made["password"]})
    assert refused.status == 403
    assert refused.json()["code"] == "passwordChangeRequired"
    short = {"email": made["email"], "password": made["password"], "newPassword": "short"}
    assert api.call("POST", LOGIN, body=short).status == 400

    token = first_login(api, made["email"], made["password"])

    shown = api.call("GET", f"{USERS}/{made['id']}", headers=as_(dev)).json()
    assert shown["passwordChangeRequired"] is False and "password" not in shown and "passwordHash" not in shown
    assert api.login(made["email"], NEW_PASSWORD)
    assert api.call("GET", "/runtime/api/data/contacts", headers=as_(token)).status == 200


def test_the_listing_pages_the_tenants_users(api: Api, dev: str) -> None:
    made = create(api, dev)

    first = api.call("GET", f"{USERS}?_size=2", headers=as_(dev)).json()
    assert first["total"] >= 4 and len(first["items"]) == 2 and first["offset"] == 2
    everyone = api.call("GET", f"{USERS}?_size=1000", headers=as_(dev)).json()
    emails = [u["email"] for u in everyone["items"]]
    assert made["email"] in emails and "dev@demo.local" in emails and emails == sorted(emails)
    assert everyone["offset"] is None
    assert api.call("GET", f"{USERS}?_size=0", headers=as_(dev)).status == 400


def test_a_change_of_groups_reaches_the_users_existing_token(api: Api, dev: str) -> None:
    made = create(api, dev, groups=["Readers"])
    token = first_login(api, made["email"], made["password"])
    assert api.call("GET", "/runtime/api/data/companies", headers=as_(token)).status == 403

    changed = api.call("PUT", f"{USERS}/{made['id']}", body={"groups": ["Sales"]}, headers=as_(dev))

    assert changed.status == 200 and changed.json()["groups"] == ["Sales"]
    assert api.call("GET", "/runtime/api/data/companies", headers=as_(token)).status == 200
    unknown = api.call("PUT", f"{USERS}/{made['id']}", body={"groups": ["Nobody"]}, headers=as_(dev))
    assert unknown.status == 400 and "Nobody" in unknown.json()["message"]
    api.call("PUT", f"{USERS}/{made['id']}", body={"groups": []}, headers=as_(dev))
    assert api.call("GET", "/runtime/api/data/contacts", headers=as_(token)).status == 403


def test_deactivated_ends_the_tokens_and_refuses_login_until_reactivated(api: Api, dev: str) -> None:
    made = create(api, dev, groups=["Readers"])
    token = first_login(api, made["email"], made["password"])

    off = api.call("PUT", f"{USERS}/{made['id']}/deactivate", headers=as_(dev))

    assert off.status == 200 and off.json()["active"] is False
    assert api.call("GET", "/runtime/api/data/contacts", headers=as_(token)).status == 401
    assert api.call("POST", LOGIN, body={"email": made["email"], "password": NEW_PASSWORD}).status == 401
    on = api.call("PUT", f"{USERS}/{made['id']}/reactivate", headers=as_(dev))
    assert on.status == 200 and on.json()["active"] is True
    assert api.login(made["email"], NEW_PASSWORD)


def test_a_reset_gives_a_new_one_time_password_and_ends_the_tokens(api: Api, dev: str) -> None:
    made = create(api, dev)
    token = first_login(api, made["email"], made["password"])

    reset = api.call("POST", f"{USERS}/{made['id']}/resetPassword", headers=as_(dev))

    assert reset.status == 200 and set(reset.json()) == {"password"}
    assert api.call("GET", f"{USERS}/current", headers=as_(token)).status == 401
    assert api.call("POST", LOGIN, body={"email": made["email"], "password": NEW_PASSWORD}).status == 401
    again = api.call("POST", LOGIN, body={"email": made["email"], "password": reset.json()["password"]})
    assert again.status == 403 and again.json()["code"] == "passwordChangeRequired"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("POST", "", {"email": "z@demo.local", "name": "Z"}),
        ("GET", "/{id}", None),
        ("PUT", "/{id}", {"name": "Z"}),
        ("PUT", "/{id}/deactivate", None),
        ("PUT", "/{id}/reactivate", None),
        ("POST", "/{id}/resetPassword", None),
    ],
)
def test_a_user_may_not_manage_users(api: Api, user: str, dev: str, method: str, path: str, body: Any) -> None:
    target = api.call("GET", f"{USERS}/current", headers=as_(dev)).json()["id"]

    reply = api.call(method, USERS + path.format(id=target), body=body, headers=as_(user))

    assert reply.status == 403 and reply.json()["code"] == "forbidden"


def test_another_tenants_user_is_404(api: Api, dev: str, local: LocalStack) -> None:
    core = local.core
    tenant = f"t{secrets.token_hex(6)}"
    core.identity.create_account(tenant, "Another tenant")
    stranger = core.identity.create_user(fresh_email(), "x" * 16, name="X", role="user", account_id=tenant)

    for method, path in (("GET", ""), ("PUT", "/deactivate"), ("POST", "/resetPassword")):
        reply = api.call(method, f"{USERS}/{stranger.id}{path}", headers=as_(dev))
        assert reply.status == 404 and reply.json()["code"] == "notFound"
    assert core.identity.get_user(stranger.email).active  # type: ignore[union-attr]


def test_a_sub_accounts_developer_reaches_no_user_above_it(api: Api, dev: str) -> None:
    made = create(api, dev, role="developer", account=SUB)
    sub_dev = first_login(api, made["email"], made["password"])
    root_dev = api.call("GET", f"{USERS}/current", headers=as_(dev)).json()["id"]

    for method, path, body in (
        ("GET", "", None),
        ("PUT", "", {"role": "user"}),
        ("PUT", "/deactivate", None),
        ("POST", "/resetPassword", None),
    ):
        reply = api.call(method, f"{USERS}/{root_dev}{path}", body=body, headers=as_(sub_dev))
        assert reply.status == 404 and reply.json()["code"] == "notFound", (method, path, reply.body)
    assert api.login("dev@demo.local", "demo-dev-password")  # its password and state unchanged
    listed = api.call("GET", f"{USERS}?_size=1000", headers=as_(sub_dev)).json()
    emails = {u["email"] for u in listed["items"]}
    assert {"sub@demo.local", made["email"]} <= emails and "dev@demo.local" not in emails
    assert listed["total"] == len(listed["items"])
    body = {"email": made["email"], "password": NEW_PASSWORD, "emailImpersonatedUser": "dev@demo.local"}
    assert api.call("POST", LOGIN, body=body).status == 404


def test_current_answers_any_caller_and_names_the_impersonator(api: Api, user: str) -> None:
    mine = api.call("GET", f"{USERS}/current", headers=as_(user)).json()
    assert (mine["email"], mine["role"], mine["impersonatedBy"]) == ("user@demo.local", "user", None)
    body = {"email": "dev@demo.local", "password": "demo-dev-password", "emailImpersonatedUser": "user@demo.local"}
    alias = api.call("POST", LOGIN, body=body).json()["token"]

    seen = api.call("GET", f"{USERS}/current", headers=as_(alias)).json()

    assert (seen["email"], seen["impersonatedBy"]) == ("user@demo.local", "dev@demo.local")
    assert api.call("GET", f"{USERS}/current").status == 401


# The CLI ----------------------------------------------------------------------------------------
def run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_the_cli_adds_shows_changes_and_resets_a_user(api: Api, dev: str, tmp_path: Path) -> None:
    cli = CliRunner(env={"XDG_CONFIG_HOME": str(tmp_path), "BACKROOM_URL": api.base, "BACKROOM_TOKEN": dev})
    email = fresh_email()

    added = run(cli, "users", "add", email, "--name", "Cli User", "--group", "Readers")

    assert added.exit_code == 0, added.output
    password = added.output.rsplit(": ", 1)[1].strip()
    assert api.call("POST", LOGIN, body={"email": email, "password": password}).status == 403  # it is the one
    assert email in run(cli, "users", "list").output
    changed = run(cli, "users", "update", email, "--group", "Sales", "--json")
    assert changed.exit_code == 0 and '"Sales"' in changed.output
    assert "deactivated" in run(cli, "users", "deactivate", email).output
    assert "active" in run(cli, "users", "reactivate", email).output
    reset = run(cli, "users", "reset-password", email)
    assert reset.exit_code == 0 and password not in reset.output
    missing = run(cli, "users", "show", "nobody@demo.local")
    assert missing.exit_code == 2 and "no user" in missing.output
