"""`backroom admin bootstrap --stack backroom-local` against the running local stack, which `make run`
registers in the emulator's CloudFormation: a new tenant's developer then logs in over HTTP."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from typer.testing import CliRunner, Result

from infra.cli.main import app
from tests.integration.stack import Api, LocalStack

SHOWN = r"shown this once, kept only as a hash; your first login replaces it\): (\S+)"


def bootstrap(tenant: str, email: str) -> Result:
    args = ["admin", "bootstrap", "--stack", "backroom-local", "--tenant", tenant, "--tenant-name", "Bootstrapped"]
    return CliRunner().invoke(app, [*args, "--email", email, "--name", "First Dev"], catch_exceptions=False)


def test_a_bootstrapped_developer_logs_in_with_the_password_shown(local: LocalStack, api: Api) -> None:
    tenant = f"boot{secrets.token_hex(6)}"
    email = f"dev@{tenant}.example"

    result = bootstrap(tenant, email)

    assert result.exit_code == 0, result.output
    (password,) = re.findall(SHOWN, result.output)
    # The local stack's ApiUrl output is the gateway the stack serves: the hint is the command to type
    assert f"backroom --url {api.base} login --email {email}" in result.output
    first = api.call("POST", "/runtime/api/auth/login", body={"email": email, "password": password})
    assert first.status == 403 and first.json()["code"] == "passwordChangeRequired", first.body
    chosen = "my own password, at last"
    reply = api.call(
        "POST", "/runtime/api/auth/login", body={"email": email, "password": password, "newPassword": chosen}
    )
    assert reply.status == 200, reply.body
    assert reply.json()["accountId"] == tenant and reply.json()["userName"] == "First Dev"
    jobs = api.call("GET", "/runtime/api/status/jobs", headers={"token": reply.json()["token"]})
    assert jobs.status == 200, jobs.body  # the token opens the tenant's API

    again = bootstrap(tenant, email)
    assert again.exit_code == 2 and f"tenant {tenant} already exists" in again.output
    assert api.call("POST", "/runtime/api/auth/login", body={"email": email, "password": chosen}).status == 200


def test_backroom_login_asks_for_a_new_password_in_place_of_a_one_time_one(
    local: LocalStack, api: Api, tmp_path: Path
) -> None:
    tenant = f"boot{secrets.token_hex(6)}"
    email = f"dev@{tenant}.example"
    (password,) = re.findall(SHOWN, bootstrap(tenant, email).output)
    runner = CliRunner(env={"XDG_CONFIG_HOME": str(tmp_path), "BACKROOM_URL": api.base, "BACKROOM_TOKEN": ""})
    chosen = "chosen at the first login"

    result = runner.invoke(
        app, ["login", "--email", email, "--password", password], input=f"{chosen}\n{chosen}\n", catch_exceptions=False
    )

    assert result.exit_code == 0, result.output
    assert "one-time password" in result.output and f"as {email}" in result.output
    assert api.call("POST", "/runtime/api/auth/login", body={"email": email, "password": password}).status == 401
    assert api.call("POST", "/runtime/api/auth/login", body={"email": email, "password": chosen}).status == 200
