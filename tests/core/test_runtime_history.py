"""The runtime's history as the spec's samples show it: every entry of a deleted record says so, with
the delete's date, on a record's history and on a page of the entity's that holds no delete entry;
groups, empty or not, with every field, their id and label; an empty list of groups as the samples
print `addresses`; `entityVersion` the app version each write ran under."""

from __future__ import annotations

from backroom.dynamo import measured
from backroom.identity.models import Caller, Role
from backroom.wiring import Core

from infra.demo.load import demo_app

TENANT = "demo"
DEV = Caller(user_id="d", email="dev@demo.local", name="Dev", role=Role.DEVELOPER, account_id=TENANT, tenant_id=TENANT)
USER = Caller(user_id="u", email="user@demo.local", name="User", role=Role.USER, account_id=TENANT, tenant_id=TENANT)
EMPTY_LIST = {"json": None, "text": "{}"}


def test_entries_of_a_deleted_record_say_so_and_groups_show_as_the_samples(core: Core) -> None:
    core.app.repo.install(TENANT, demo_app(listing_members=True))
    # Given a company created (its contact information given, its address not), changed, then deleted,
    # and one that stays
    body = {"name": "test1", "type": "a", "taxId": "T-1", "contactInformation": {"email": "a@b.co"}}
    gone = core.app.create(DEV, "companies", body, None)["id"]
    core.app.update(DEV, "companies", gone, {"type": "b"}, None)
    kept = core.app.create(DEV, "companies", {"name": "test2"}, None)["id"]
    deleted = core.app.delete_one(DEV, "companies", gone, None)
    assert deleted["id"] == gone

    # Then each entry of its history says the record is deleted, and when (the delete entry's time, on the
    # page: no read besides the page's and its records')
    with measured() as cost:
        items = core.app_history.history(DEV, "companies", gone, {})["items"]
    assert cost.items_returned == len(items) + 1  # the entries and the schema; the record, gone, is no item
    assert [i["eventType"] for i in items] == ["USER_RECORD_DELETED", "USER_RECORD_CHANGED", "USER_RECORD_CREATED"]
    assert {(i["recordDeleted"], i["deletionDate"]) for i in items} == {(True, items[0]["timestamp"])}
    # ...on the entity's history too, on a page that does not hold the delete entry
    page = core.app_history.table_history(DEV, "companies", {"_size": "2", "_offset": items[0]["id"]})["items"]
    assert [(i["recordId"], i["recordDeleted"], i["deletionDate"]) for i in page] == [
        (kept, None, None),
        (gone, True, items[0]["timestamp"]),
    ]

    # The create shows every field; a group with each of its fields, its id and label, an empty one too
    created = items[2]["newRecord"]
    contact = created["contactInformation"]
    assert (contact["phoneNumber"], contact["email"], contact["label"]) == (None, "a@b.co", "Contact Information")
    assert len(contact["id"]) == 24
    assert created["address"] == {"city": None, "state": None, "id": None, "label": "Address"}
    assert "addresses" not in created and created["numberOfEmployees"] is None  # an empty list of groups: left out
    # ...a change shows the record's empty list of groups on both sides, as the sample's `addresses`
    changed = items[1]
    assert changed["oldRecord"]["type"] == {"json": "a", "text": "{type:a}"}
    assert changed["oldRecord"]["addresses"] == changed["newRecord"]["addresses"] == EMPTY_LIST
    # ...the version of the app each write ran under
    assert {i["entityVersion"] for i in items} == {core.app.repo.entity(TENANT, "companies").schema.version}

    # A user sees only the fields it reads, deleted or not (Sales: taxId hidden)
    seen = core.app_history.history(USER, "companies", gone, {})["items"]
    assert "taxId" not in seen[2]["newRecord"] and "taxId" not in seen[0]["oldRecord"]
    assert seen[0]["recordDeleted"] is True
