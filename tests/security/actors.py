"""The security suite's actors and what they aim at, made once per test process on the shared local stack.

Actors (each with a token that works in the three dialects' headers):

- `dev`, `user`, `sub`: the demo's users. `user` is in group Sales: companies without `taxId` and
  `contract` (hidden), `rating` read-only, no deletes, actions `logSomething` and `countEmployees`;
  contacts in full. `sub`, in sub-account demo-sub, is in group Readers: contacts read-only without
  `email`, nothing of companies.
- `sib`: a user of `demo-sib`, a sibling of demo-sub under demo, in no group of the app.
- `other_dev`, `other_user`: a second tenant (its own root account, the demo app installed for it, its
  `user` in Sales, its companies labelled `{name} [{taxId}]`, a custom table `test_table_name` with a row
  of its own).

Accounts, users and the second tenant's app and custom table are made through the core (`local.core`, a
`Services` on the same emulator), as the demo's loader makes the demo's; records and files through the
HTTP API, as their owners would make them. Nothing here touches the demo's app definition or its
users: the integration tests share this stack.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import pytest
from backroom.calcengine.tables import define_custom_table
from backroom.errors import Conflict
from backroom.identity import passwords
from backroom.identity.models import Role
from backroom.records import Record

from infra.demo.load import demo_app, demo_table
from tests.integration.stack import Api, LocalStack, Reply

BASE = "/runtime/api"
DEMO = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
DEMO_SUB = "5b8f1d4c0e3a4f7b9d2c6e8a0f1b3d5c"
DEMO_SIB = "5c9a2e5d1f4b4a8cae3d7f9b1a2c4e6d"
OTHER = "6d0b3f6e2a5c4b9dbf4e8a0c2b3d5f7e"  # the second tenant's root account
OTHER_SUB = "7e1c4a7f3b6d4cae805f9b1d3c4e6a8f"
PASSWORD = "security-suite-password"
MISSING = "5f0000000000000000000000"


@dataclass(frozen=True)
class Actor:
    email: str
    token: str
    account_id: str

    @property
    def runtime(self) -> dict[str, str]:
        return {"token": self.token}

    @property
    def tasks(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token}

    @property
    def gateway(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Secret:
    """A demo company the developer made, with what `user` may not see or write, and its files."""

    company_id: str
    name: str
    tax_id: str  # hidden from user
    rating: str  # read-only for user
    contract_id: str  # a file in `contract`, hidden from user
    contract_row: str  # the value the contract (a CSV with a `name` column) holds
    document_id: str  # a file in `document`, which user reads
    contact_id: str  # a contact of the company, its email hidden from sub
    contact_email: str


@dataclass(frozen=True)
class Elsewhere:
    """What the second tenant holds: a company, a file, a custom table's row."""

    company_id: str
    name: str
    tax_id: str
    file_id: str
    table_value: str


@dataclass(frozen=True)
class World:
    api: Api
    tag: str
    dev: Actor
    user: Actor
    sub: Actor
    sib: Actor
    other_dev: Actor
    other_user: Actor
    secret: Secret
    elsewhere: Elsewhere


# Requests ---------------------------------------------------------------------
def send(
    api: Api, method: str, path: str, headers: dict[str, str], body: Any = None, content_type: str | None = None
) -> Reply:
    sent = {**headers, **({"Content-Type": content_type} if content_type else {})}
    return api.call(method, path, body=body, headers=sent)


def runtime(api: Api, method: str, path: str, actor: Actor | None, body: Any = None) -> tuple[int, Any]:
    """A runtime call (`path` under /runtime/api): its status and its JSON (or raw bytes)."""
    reply = api.call(method, BASE + path, body=body, headers=actor.runtime if actor else {})
    try:
        return reply.status, reply.json()
    except ValueError:
        return reply.status, reply.body


def ok(api: Api, method: str, path: str, actor: Actor, body: Any = None) -> Any:
    status, answer = runtime(api, method, path, actor, body)
    assert status == 200, (method, path, status, answer)
    return answer


def multipart(filename: str, data: bytes, content_type: str = "text/plain") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    )
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def upload(api: Api, actor: Actor, filename: str, data: bytes, content_type: str = "text/plain") -> Reply:
    body, kind = multipart(filename, data, content_type)
    return send(api, "POST", f"{BASE}/files", actor.runtime, body, kind)


def uploaded(api: Api, actor: Actor, filename: str, data: bytes) -> str:
    reply = upload(api, actor, filename, data)
    assert reply.status == 200, reply.body[:300]
    return str(reply.json()["fileId"])


def import_csv(api: Api, actor: Actor, entity: str, content: bytes) -> tuple[int, Any]:
    body, kind = multipart(f"{entity}.csv", content, "text/csv")
    reply = send(api, "POST", f"{BASE}/data/{entity}/import", actor.runtime, body, kind)
    return reply.status, json.loads(reply.body)


def finished(api: Api, actor: Actor, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """The runtime job once it is over (FINISHED or FAILED), as its creator reads it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ok(api, "GET", f"/status/jobs/{job_id}", actor)
        if job["status"] in ("FINISHED", "FAILED"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is not over after {timeout}s")


def start_task(api: Api, headers: dict[str, str], path: str) -> None:
    started = api.call("PATCH", path, headers=headers)
    assert started.status == 200, started.body[:300]


def task_over(api: Api, headers: dict[str, str], path: str, timeout: float = 60) -> dict[str, Any]:
    """A started task once it is over; its `_read_only` view."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = api.call("GET", path, headers=headers).json()["data"]["_read_only"]
        if task["status"] not in ("pending", "executing"):
            return dict(task)
        time.sleep(0.1)
    raise AssertionError(f"task {path} is not over after {timeout}s")


def leaks(answer: Any, *secrets: str) -> list[str]:
    """The secrets found anywhere in an answer (its JSON text, or its bytes)."""
    text = answer.decode(errors="replace") if isinstance(answer, bytes) else json.dumps(answer)
    return [s for s in secrets if s in text]


# The world ----------------------------------------------------------------------
_WORLDS: dict[str, World] = {}


def _user(local: LocalStack, email: str, role: Role, account_id: str) -> Actor:
    """A user made and logged in through the core, its hash at a low cost: a login over HTTP costs a
    second and a half of scrypt on the shared stack, and the suite's logins over HTTP are its own tests."""
    today = passwords.CURRENT
    passwords.CURRENT = passwords.Scrypt(n=2**10, r=8, p=1)
    try:
        identity = local.core.identity
        with suppress(Conflict):  # made by an earlier module of this process
            identity.create_user(email, PASSWORD, name=email.split("@")[0], role=role, account_id=account_id)
        return Actor(email, identity.login(email, PASSWORD).token, account_id)
    finally:
        passwords.CURRENT = today


def _second_tenant(local: LocalStack, user_email: str) -> None:
    """The other tenant's accounts, its app (the demo's entities; its user in Sales) and a custom table."""
    core = local.core
    core.identity.create_account(OTHER, "other-tenant")
    core.identity.create_account(OTHER_SUB, "other-sub", OTHER)
    app = demo_app()
    for group in app.groups:
        group.users = [user_email] if group.name == "Sales" else []
    core.app.repo.install(OTHER, app)
    schema = define_custom_table(core.records, OTHER, demo_table("test_table_name"))
    row = {"field1": "other-tenant-row", "field2": "b", "field3": "c", "field4": "d"}
    core.records.put(OTHER, schema, Record(rid="other.000000001", data=row, created_at=1))


def _secret(api: Api, dev: Actor, tag: str) -> Secret:
    contract_row = f"ContractRow-{tag}"
    contract = uploaded(api, dev, "contract.csv", f"name\n{contract_row}\n".encode())
    document = uploaded(api, dev, "document.txt", b"a document the user may read")
    name, tax_id = f"sec-{tag}", f"TAX-{tag}"
    company = ok(
        api,
        "POST",
        "/data/companies",
        dev,
        {
            "name": name,
            "state": "active",
            "type": "a",
            "numberOfEmployees": 7,
            "homepage": f"https://{tag}.example.test",  # readable by user, not by sub
            "taxId": f"OLD-{tax_id}",
            "rating": "4.5",
            "contract": contract,
            "document": document,
        },
    )
    # An update of the hidden field: the record's history holds it, before and after.
    ok(api, "PUT", f"/data/companies/{company['id']}", dev, {"taxId": tax_id})
    email = f"hidden-{tag}@example.test"
    contact = ok(
        api,
        "POST",
        "/data/contacts",
        dev,
        {"firstName": "Sec", "lastName": f"Ret-{tag}", "email": email, "company": company["id"]},
    )
    return Secret(company["id"], name, tax_id, "4.5", contract, contract_row, document, contact["id"], email)


def _elsewhere(api: Api, other_dev: Actor, tag: str) -> Elsewhere:
    name, tax_id = f"other-{tag}", f"B{tag}-TAXID"  # shares no substring with the demo's secrets
    file_id = uploaded(api, other_dev, "other.txt", f"other tenant's file {tag}".encode())
    company = ok(api, "POST", "/data/companies", other_dev, {"name": name, "taxId": tax_id, "document": file_id})
    return Elsewhere(company["id"], name, tax_id, file_id, "other-tenant-row")


def world_of(local: LocalStack, dev_token: str, user_token: str, sub_token: str) -> World:
    """The actors and their objects, made on first use in this process (each module asks for them)."""
    if local.endpoint in _WORLDS:
        return _WORLDS[local.endpoint]
    api, tag = local.api, uuid.uuid4().hex[:8]
    local.core.identity.create_account(DEMO_SIB, "demo-sib", DEMO)
    other_user_email = "user@other-tenant.test"
    _second_tenant(local, other_user_email)
    dev = Actor("dev@demo.local", dev_token, DEMO)
    other_dev = _user(local, "dev@other-tenant.test", Role.DEVELOPER, OTHER)
    world = World(
        api=api,
        tag=tag,
        dev=dev,
        user=Actor("user@demo.local", user_token, DEMO),
        sub=Actor("sub@demo.local", sub_token, DEMO_SUB),
        sib=_user(local, "sib@demo-sib.test", Role.USER, DEMO_SIB),
        other_dev=other_dev,
        other_user=_user(local, other_user_email, Role.USER, OTHER),
        secret=_secret(api, dev, tag),
        elsewhere=_elsewhere(api, other_dev, tag),
    )
    _WORLDS[local.endpoint] = world
    return world


@pytest.fixture(scope="session", name="world")
def world_fixture(local: LocalStack, dev_token: str, user: str, sub: str) -> World:
    """The fixture `world`: a module imports it by this name (its tests take `world`)."""
    return world_of(local, dev_token, user, sub)
