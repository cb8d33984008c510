"""`backroom admin bootstrap --stack backroom-local` against the running local stack, which `make run`
registers in the emulator's CloudFormation: a new tenant's developer then logs in over HTTP."""

from __future__ import annotations

import re
import secrets

from typer.testing import CliRunner, Result

from infra.cli.main import app
from tests.integration.stack import Api, LocalStack


def bootstrap(tenant: str, email: str) -> Result:
    args = ["admin", "bootstrap", "--stack", "backroom-local", "--tenant", tenant, "--tenant-name", "Bootstrapped"]
    return CliRunner().invoke(app, [*args, "--email", email, "--name", "First Dev"], catch_exceptions=False)


def test_a_bootstrapped_developer_logs_in_with_the_password_shown(local: LocalStack, api: Api) -> None:
    tenant = f"boot{secrets.token_hex(6)}"
    email = f"dev@{tenant}.example"

    result = bootstrap(tenant, email)

    assert result.exit_code == 0, result.output
    (password,) = re.findall(r"shown this once, kept only as a hash\): (\S+)", result.output)
    # The local stack's ApiUrl output is the gateway the stack serves: the hint is the command to type
    assert f"backroom --url {api.base} login --email {email}" in result.output
    reply = api.call("POST", "/runtime/api/auth/login", body={"email": email, "password": password})
    assert reply.status == 200, reply.body
    assert reply.json()["accountId"] == tenant and reply.json()["userName"] == "First Dev"
    jobs = api.call("GET", "/runtime/api/status/jobs", headers={"token": reply.json()["token"]})
    assert jobs.status == 200, jobs.body  # the token opens the tenant's API

    again = bootstrap(tenant, email)
    assert again.exit_code == 2 and f"tenant {tenant} already exists" in again.output
    assert api.call("POST", "/runtime/api/auth/login", body={"email": email, "password": password}).status == 200
