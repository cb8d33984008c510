"""Issue 27, points 4 and 5, over HTTP through the local stack: who may do what as the runtime spec says
(users share files of records they read, members of a group that manages groups impersonate, an action
that changes nothing leaves the version), and history as its samples print it (entries of a deleted
record, empty groups, the app version)."""

from __future__ import annotations

from typing import Any

from backroom.identity.models import Role

from tests.integration.stack import Api, LocalStack
from tests.integration.test_runtime_data import BASE, call, error, marker, ok
from tests.integration.test_runtime_files import download, uploaded
from tests.integration.test_users import fresh_email

DEMO = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
LOGIN = f"{BASE}/auth/login"
PASSWORD = "a-managers-long-password"
# The spec's history sample of a change, as printed (our companies add `lastUpdate`, their updated_field).
SAMPLE_OLD = {"type": {"json": "a", "text": "{type:a}"}, "addresses": {"json": None, "text": "{}"}}
SAMPLE_NEW = {"type": {"json": "b", "text": "{type:b}"}, "addresses": {"json": None, "text": "{}"}}


def without_last_update(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != "lastUpdate"}


def test_who_may_do_what_as_the_spec_says(local: LocalStack, api: Api, dev: str, user: str, sub: str) -> None:
    # Given a company whose document the Sales user reads, and whose contract is hidden from it
    document = uploaded(api, dev, "document.txt", b"the document")
    contract = uploaded(api, dev, "contract.txt", b"the contract")
    company = ok(
        api, "POST", "/data/companies", dev, {"name": f"Rights {marker()}", "document": document, "contract": contract}
    )

    # A user shares a file of a record it reads, as the spec's sample does, and the link needs no token
    shared = ok(api, "PUT", f"/files/{document}/share?ttl=60000", user)
    assert set(shared) == {"sharedFileId", "sharedFileLink"}
    assert shared["sharedFileLink"] == f"/files/shared/{shared['sharedFileId']}"
    assert download(api, shared["sharedFileLink"], None)[2] == b"the document"
    # ...but not a file in a field hidden from it, nor one of a record it may not read; it still downloads
    # by id nothing (the spec restricts that to developers)
    for token, file_id in ((user, contract), (sub, document)):
        error(*call(api, "PUT", f"/files/{file_id}/share", token), 403, "forbidden")
    error(*call(api, "GET", f"/files/{document}", user), 403, "forbidden")

    # A member of a group with the flag to manage groups impersonates, with the spec's body
    manager = local.core.identity.create_user(
        fresh_email(), PASSWORD, name="Manager", role=Role.USER, account_id=DEMO, groups=["Managers"]
    )  # made through the core: a one-time password's change would cost two more password hashes
    body = {"email": manager.email, "password": PASSWORD, "emailImpersonatedUser": "user@demo.local"}
    reply = api.call("POST", LOGIN, body=body)
    assert reply.status == 200, reply.body
    answer = reply.json()
    assert (answer["userEmail"], answer["adminUserEmail"], answer["userName"]) == (
        "user@demo.local",
        manager.email,
        "Demo User",
    )
    # ...but never a developer (a user of no such group impersonates no one: test_auth's login errors)
    body["emailImpersonatedUser"] = "dev@demo.local"
    refused = api.call("POST", LOGIN, body=body)
    assert (refused.status, refused.json()["code"]) == (403, "forbidden"), refused.body

    # A type-one action that changes nothing (the spec's logSomething sample) leaves the record's version
    path = f"/data/companies/{company['id']}"
    ran = ok(api, "PUT", f"{path}/logSomething", user, {"param1": "a", "param2": "b"})
    assert ran["id"] == company["id"] and ran["version"] == company["version"] == ok(api, "GET", path, dev)["version"]
    assert ok(api, "GET", f"{path}/history", dev)["total"] == 1  # its create only


def test_history_as_the_specs_samples_print_it(local: LocalStack, api: Api, dev: str) -> None:
    # Given the spec's test1: created as type a, changed to b, then deleted
    name = f"test1 {marker()}"
    record = ok(
        api, "POST", "/data/companies", dev, {"name": name, "state": "active", "type": "a", "isCustomer": False}
    )
    path = f"/data/companies/{record['id']}"
    ok(api, "PUT", path, dev, {"type": "b"})
    created, changed = ok(api, "GET", f"{path}/history", dev)["items"][::-1]

    # Then the change shows the sample's values (an empty list of groups on both sides), the create every
    # field, a group empty or not with its fields, id and label
    assert without_last_update(changed["oldRecord"]) == SAMPLE_OLD
    assert without_last_update(changed["newRecord"]) == SAMPLE_NEW
    new = created["newRecord"]
    assert (new["name"], new["state"], new["type"], new["isCustomer"], new["numberOfEmployees"]) == (
        name,
        "active",
        "a",
        False,
        None,
    )
    assert new["contactInformation"] == {"phoneNumber": None, "email": None, "id": None, "label": "Contact Information"}
    assert "addresses" not in new
    # ...and the version of the app (as provisioned: the definition's version) on every entry
    stored = local.core.evolution.current(DEMO)
    assert stored is not None and {created["entityVersion"], changed["entityVersion"]} == {stored.version}
    assert (created["recordDeleted"], created["deletionDate"]) == (None, None)

    # When it is deleted, every entry of its history says so, and when
    ok(api, "DELETE", path, dev)
    history = ok(api, "GET", f"{path}/history", dev)
    deleted = history["items"][0]
    assert history["total"] == 3 and deleted["eventType"] == "USER_RECORD_DELETED"
    assert [(i["recordDeleted"], i["deletionDate"]) for i in history["items"]] == [(True, deleted["timestamp"])] * 3
    # ...on the entity's history too, past the delete entry
    older = ok(api, "GET", f"/data/companies/history?_size=1&_offset={deleted['id']}", dev)["items"]
    assert [(i["id"], i["recordDeleted"], i["deletionDate"]) for i in older] == [
        (changed["id"], True, deleted["timestamp"])
    ]
