"""A tenant built from an empty stack with only the CLI and the API, as an operator would.

`backroom admin bootstrap` creates the tenant and its first developer on `backroom-local` (the local
stack's CloudFormation stack), `backroom apply DIR` applies a configuration directory (an app with two
entities and a relationship, two groups, three users, a gateway file type and period, a Tasks
sub-account), each user logs in over HTTP and meets exactly its permissions, and a second plan of the
same directory has nothing to do.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from infra.cli.main import app as backroom
from tests.integration.stack import Api, LocalStack

PASSWORD = "the first developer's own password"


def cli(*args: str) -> Result:
    return CliRunner().invoke(backroom, list(args), catch_exceptions=False)


def write(directory: Path, name: str, content: dict[str, Any]) -> None:
    (directory / name).write_text(json.dumps(content, indent=2))


def tenant_directory(directory: Path, tenant: str, sub: str, dev: str, staff: str, auditor: str) -> Path:
    directory.mkdir()
    write(directory, "tenant.json", {"id": tenant, "name": "Provisioned Ltd"})
    write(directory, "accounts.json", {"accounts": [{"id": sub, "name": "Branch", "parent": tenant}]})
    firms = {
        "name": "firms",
        "label": "Firms",
        "schema": {
            "name": "firms",
            "label": "{name}",
            "history": True,
            "fields": [
                {"name": "name", "type": "text", "required": True, "unique": True},
                {"name": "secret", "type": "text"},
                {"name": "size", "type": "integer"},
            ],
            "indexes": [["name"]],
        },
    }
    people = {
        "name": "people",
        "label": "People",
        "schema": {
            "name": "people",
            "label": "{fullName}",
            "fields": [
                {"name": "fullName", "type": "text", "required": True},
                {"name": "firm", "type": "relationship", "entity": "firms"},
            ],
            "indexes": [{"name": "firm", "equals": ["firm"]}],
        },
    }
    staff_grants = {
        "firms": {"read": True, "fields": {"secret": "none"}},
        "people": {"read": True, "create": True, "update": True},
    }
    auditor_grants = {"firms": {"read": True, "history": True, "fields": {"size": "read"}}, "people": {"read": True}}
    groups = [{"name": "Staff", "entities": staff_grants}, {"name": "Auditors", "entities": auditor_grants}]
    write(directory, "app.json", {"app": "provisioned", "entities": [firms, people], "groups": groups})
    users = [
        {"email": dev, "name": "First Dev", "role": "developer"},
        {"email": staff, "name": "Sam Staff", "role": "user", "groups": ["Staff"]},
        {"email": auditor, "name": "Ada Auditor", "role": "user", "account": sub, "groups": ["Auditors"]},
    ]
    write(directory, "users.json", {"users": users})
    gateway = {
        "tables": [
            {
                "name": "sales",
                "fields": [{"name": "eid"}, {"name": "period", "type": "number"}, {"name": "amount", "type": "number"}],
                "indexes": [["period"]],
            }
        ],
        "periods": [{"number": 1, "start": "2026-01-01", "end": "2026-01-31"}],
        "file_types": [{"id": "sales-1", "name": "Sales", "table": "sales", "needs_period": True}],
    }
    write(directory, "gateway.json", gateway)
    return directory


def first_login(api: Api, email: str, password: str) -> dict[str, str]:
    """Log in with a one-time password, replacing it as the API asks; the token's header."""
    refused = api.call("POST", "/runtime/api/auth/login", body={"email": email, "password": password})
    assert refused.status == 403 and refused.json()["code"] == "passwordChangeRequired", refused.body
    body = {"email": email, "password": password, "newPassword": f"{email} chose this"}
    reply = api.call("POST", "/runtime/api/auth/login", body=body)
    assert reply.status == 200, reply.body
    return {"token": reply.json()["token"]}


def test_a_tenant_from_an_empty_stack_through_the_cli_and_the_api(local: LocalStack, api: Api, tmp_path: Path) -> None:
    tenant, sub = secrets.token_hex(12), secrets.token_hex(12)
    dev, staff, auditor = (f"{who}@{tenant[:8]}.example" for who in ("dev", "staff", "auditor"))
    secret_file = tmp_path / "password"
    secret_file.write_text(PASSWORD + "\n")
    booted = cli("admin", "bootstrap", "--stack", "backroom-local", "--tenant", tenant, "--tenant-name", "Prov")
    assert booted.exit_code == 2  # the email and name are required: nothing is guessed
    booted = cli(
        *("admin", "bootstrap", "--stack", "backroom-local", "--tenant", tenant, "--tenant-name", "Provisioned Ltd"),
        *("--email", dev, "--name", "First Dev", "--password-file", str(secret_file)),
    )
    assert booted.exit_code == 0, booted.output
    directory = tenant_directory(tmp_path / "tenant", tenant, sub, dev, staff, auditor)

    applied = cli("apply", str(directory), "--stack", "backroom-local", "--yes", "--json")

    assert applied.exit_code == 0, applied.output
    answer = json.loads(applied.output)
    assert answer["summary"]["delete"] == 0 and answer["summary"]["create"] >= 8, answer["summary"]
    passwords = dict(re.findall(r"^(\S+): one-time password (\S+)", "\n".join(answer["notes"]), re.M))
    assert set(passwords) == {staff, auditor}  # the developer was there already, with its own password

    as_dev = api.call("POST", "/runtime/api/auth/login", body={"email": dev, "password": PASSWORD})
    assert as_dev.status == 200, as_dev.body
    dev_h = {"token": as_dev.json()["token"]}
    made = api.call("POST", "/runtime/api/data/firms", body={"name": "Acme", "secret": "s3", "size": 5}, headers=dev_h)
    assert made.status == 200, made.body
    firm = made.json()["id"]
    staff_h, auditor_h = first_login(api, staff, passwords[staff]), first_login(api, auditor, passwords[auditor])

    # Staff: firms without their secret, read only; people created and read.
    seen = api.call("GET", f"/runtime/api/data/firms/{firm}", headers=staff_h)
    assert seen.status == 200 and seen.json()["name"] == "Acme" and "secret" not in seen.json(), seen.body
    assert api.call("POST", "/runtime/api/data/firms", body={"name": "Nope"}, headers=staff_h).status == 403
    person = {"fullName": "Pat Person", "firm": firm}
    created = api.call("POST", "/runtime/api/data/people", body=person, headers=staff_h)
    assert created.status == 200 and created.json()["firm"]["label"] == "Acme", created.body
    history = api.call("GET", f"/runtime/api/data/firms/{firm}/history", headers=staff_h)
    assert history.status == 403
    # Auditors: every field of firms (size read only), their history; people read, never written.
    audited = api.call("GET", f"/runtime/api/data/firms/{firm}", headers=auditor_h)
    assert audited.status == 200 and audited.json()["secret"] == "s3"
    assert api.call("GET", f"/runtime/api/data/firms/{firm}/history", headers=auditor_h).status == 200
    listed = api.call("GET", "/runtime/api/data/people", headers=auditor_h)
    assert listed.status == 200 and [p["fullName"] for p in listed.json()["items"]] == ["Pat Person"]
    assert api.call("POST", "/runtime/api/data/people", body={"fullName": "X"}, headers=auditor_h).status == 403
    # The Tasks tree: the auditor's account is the sub-account; the parent is out of its reach.
    assert api.call("GET", f"/v2/accounts/{sub}/tasks", headers=auditor_h).status == 200
    assert api.call("GET", f"/v2/accounts/{tenant}/tasks", headers=auditor_h).status == 404  # never revealed
    # The gateway: the file type and the period the directory declares.
    bearer = {"Authorization": f"Bearer {dev_h['token']}"}
    uploaded = api.call(
        "POST",
        "/gateway/import/v1/files?name=sales.csv",
        body=b"eid,period,amount\np1,1,10\n",
        headers={**bearer, "Content-Type": "text/csv"},
    )
    assert uploaded.status == 201, uploaded.body
    body = {"importFileId": uploaded.json()["id"], "periodRange": [1], "importFileTypeId": "sales-1"}
    errand = api.call("POST", "/gateway/errand/v1/imports/file", body=body, headers=bearer)
    assert errand.status == 202, errand.body

    again = cli("plan", str(directory), "--stack", "backroom-local", "--json")

    assert again.exit_code == 0, again.output
    summary = json.loads(again.output)["summary"]
    assert (summary["create"], summary["update"], summary["delete"]) == (0, 0, 0), again.output

    # An index added to an entity that holds records: built by a data job, which the operator follows.
    app_file = directory / "app.json"
    edited = json.loads(app_file.read_text())
    edited["entities"][1]["schema"]["indexes"].append(["fullName"])
    app_file.write_text(json.dumps(edited))
    evolved = cli("apply", str(directory), "--stack", "backroom-local", "--yes")
    assert evolved.exit_code == 0, evolved.output
    (job_id,) = re.findall(r"data jobs (\w+)", evolved.output)
    watched = cli("app", "watch", job_id, "--tenant", tenant, "--stack", "backroom-local", "--interval", "0.2")
    assert watched.exit_code == 0 and f"{job_id}  people  FINISHED  1/1 records" in watched.output, watched.output
    listed_jobs = cli("app", "jobs", "--tenant", tenant, "--stack", "backroom-local")
    assert job_id in listed_jobs.output and "FINISHED" in listed_jobs.output
    found = api.call("GET", "/runtime/api/data/people?fullName=Pat%20Person", headers=staff_h)
    assert [p["fullName"] for p in found.json()["items"]] == ["Pat Person"]
    assert cli("app", "stop", job_id, "--tenant", "nobody", "--stack", "backroom-local").exit_code == 2
