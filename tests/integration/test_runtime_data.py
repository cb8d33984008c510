"""The runtime dialect's app data over HTTP (`/runtime/api/data`): the spec's samples of App data,
Optimistic locking and History, the query language, every listed error, and two writers at once.

Records are created per test with a uuid marker in their name, so that counts are exact and no test
depends on another; the demo records are only read.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.stack import Api

BASE = "/runtime/api"
BROWSEZOOM = "57fd2d65e4b0ce322b0c8665"
BLOGPAD = "57fd2d65e4b0ce322b0c8565"
MISSING = "5f0000000000000000000000"
HEX24 = r"^[0-9a-f]{24}$"
HISTORY_KEYS = {
    "id",
    "entityId",
    "entityName",
    "entityVersion",
    "recordId",
    "recordName",
    "user",
    "timestamp",
    "ip",
    "eventType",
    "eventCategory",
    "contextPath",
    "recordDeleted",
    "deletionDate",
    "oldRecord",
    "newRecord",
}
# The spec's "Test 1" company (its create sample), without the name, which each test makes unique.
TEST_1 = {
    "state": "pending",
    "type": "a",
    "numberOfEmployees": 95,
    "isCustomer": False,
    "contactInformation": {"phoneNumber": "1-702-845-9380", "email": "jwoodsrq@spotify.com"},
    "addresses": [{"addressLine": "4 Magdeline Place", "zipCode": "89145", "city": "Las Vegas", "state": "NV"}],
    "homepage": "http://www.browsezoom.com",
    "taxId": "350-KWM",
    "rating": "2.8",
    "notes": "test notes",
    "lastMeeting": 1429623180000,
}


# Helpers ---------------------------------------------------------------------
def call(api: Api, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    reply = api.call(method, BASE + path, body=body, headers={"token": token} if token else {})
    try:
        return reply.status, reply.json()
    except ValueError:
        return reply.status, reply.body


def ok(api: Api, method: str, path: str, token: str, body: Any = None) -> Any:
    status, answer = call(api, method, path, token, body)
    assert status == 200, (method, path, status, answer)
    return answer


def q(value: str) -> str:
    return quote(value, safe="")


def named(prefix: str) -> str:
    """A filter on the companies whose name starts with `prefix`: a range of the name index, read quickly."""
    return f"name=between({q(prefix)},{q(prefix + '~')})"


def marker() -> str:
    return uuid.uuid4().hex[:12]


def company(api: Api, token: str, name: str, **fields: Any) -> dict[str, Any]:
    return dict(ok(api, "POST", "/data/companies", token, {"name": name, **fields}))


def error(status: int, answer: Any, http: int, code: str) -> None:
    """A runtime error body: `{code, message, errors?}` with the status the spec gives the code."""
    assert status == http, answer
    assert isinstance(answer, dict) and set(answer) <= {"code", "message", "errors"}, answer
    assert answer["code"] == code and isinstance(answer["message"], str) and answer["message"], answer


def wait_finished(api: Api, token: str, job_id: str, timeout: float = 40) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ok(api, "GET", f"/status/jobs/{job_id}", token)
        if job["status"] in ("FINISHED", "STOPPED", "CANCELED"):
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished after {timeout}s")


# App data: the spec's samples ------------------------------------------------
def test_reading_the_demo_company_answers_the_specs_sample(api: Api, dev: str) -> None:
    answer = ok(api, "GET", f"/data/companies/{BROWSEZOOM}", dev)
    assert answer == {
        "id": BROWSEZOOM,
        "version": answer["version"],
        "label": "Browsezoom",
        "name": "Browsezoom",
        "state": "pending",
        "type": "a",
        "numberOfEmployees": 95,
        "isCustomer": False,
        "contactInformation": {
            "phoneNumber": "1-702-845-9380",
            "email": "jwoodsrq@spotify.com",
            "id": "58837fdd3b063a0007603547",
            "label": "Contact Information",
        },
        "addresses": [
            {
                "addressLine": "4 Magdeline Place",
                "zipCode": "89145",
                "city": "Las Vegas",
                "state": "NV",
                "id": "57fd45aee4b0ce322b0c86aa",
                "label": "NV - 89145",
            }
        ],
        "homepage": "http://www.browsezoom.com",
        "taxId": "350-KWM",
        "rating": "2.8",
        "notes": "modified notes",
        "lastMeeting": 1429623180000,
        "lastUpdate": answer["lastUpdate"],
        "document": {"id": "588fa383b45fc9000bc1c014", "name": "file.ext", "contentType": "text/plain"},
    }
    assert isinstance(answer["version"], int) and answer["version"] >= 0
    assert isinstance(answer["lastUpdate"], int) and answer["lastUpdate"] > 1485012900000


def test_listing_pending_companies_answers_the_specs_sample(api: Api, dev: str) -> None:
    answer = ok(api, "GET", "/data/companies?state=pending&_fields=name,type&_size=2", dev)

    assert set(answer) == {"total", "offset", "items"}
    assert answer["total"] >= 135  # the demo's pending companies (the spec's total), and any a test added
    items = answer["items"]
    assert [set(item) for item in items] == [{"id", "version", "label", "name", "type"}] * 2
    assert items[0]["id"] > items[1]["id"]  # by id, newest first (as the spec's two)
    for item in items:
        full = ok(api, "GET", f"/data/companies/{item['id']}", dev)
        assert full["state"] == "pending" and item == {k: full[k] for k in item}
    assert answer["offset"] == items[-1]["id"]  # more follow: the offset to pass for them


def test_create_update_and_delete_one_as_the_specs_samples(api: Api, dev: str) -> None:
    name = f"Test 1 {marker()}"
    before = int(time.time() * 1000)

    # When the spec's "Test 1" company is created
    created = ok(api, "POST", "/data/companies", dev, {"name": name, **TEST_1})

    # Then it answers as the spec's create sample: version 0, ids and labels on the nested records
    rid = created["id"]
    assert created == {
        "id": rid,
        "version": 0,
        "label": name,
        "name": name,
        **TEST_1,
        "contactInformation": {
            **TEST_1["contactInformation"],
            "id": created["contactInformation"]["id"],
            "label": "Contact Information",
        },
        "addresses": [{**TEST_1["addresses"][0], "id": created["addresses"][0]["id"], "label": "NV - 89145"}],
        "lastUpdate": created["lastUpdate"],
    }
    ids = {rid, created["contactInformation"]["id"], created["addresses"][0]["id"]}
    assert len(ids) == 3 and all(len(i) == 24 and int(i, 16) >= 0 for i in ids)
    assert before <= created["lastUpdate"] <= int(time.time() * 1000)
    assert ok(api, "GET", f"/data/companies/{rid}", dev) == created

    # When the spec's update sample is sent with the version read
    body = {"version": 0, "state": "active", "type": "b", "numberOfEmployees": 100}
    updated = ok(api, "PUT", f"/data/companies/{rid}", dev, body)

    # Then the version goes up by one, the fields sent change and every other field stays
    assert updated == {
        **created,
        "version": 1,
        "state": "active",
        "type": "b",
        "numberOfEmployees": 100,
        "lastUpdate": updated["lastUpdate"],
    }
    assert updated["lastUpdate"] >= created["lastUpdate"]

    # When it is deleted, the deleted record is the answer, and it is gone
    deleted = ok(api, "DELETE", f"/data/companies/{rid}", dev)
    assert {k: v for k, v in deleted.items() if k != "version"} == {k: v for k, v in updated.items() if k != "version"}
    status, answer = call(api, "GET", f"/data/companies/{rid}", dev)
    error(status, answer, 404, "notFound")


def test_delete_many_and_delete_by_query_answer_a_map_of_ids(api: Api, dev: str) -> None:
    tag = marker()
    first, second = (company(api, dev, f"Many {i} {tag}", type="a") for i in (1, 2))

    # When two ids are deleted at once
    answer = ok(api, "DELETE", f"/data/companies/{first['id']},{second['id']}", dev)

    # Then each id maps to its status and the deleted record
    assert set(answer) == {first["id"], second["id"]}
    for record in (first, second):
        entry = answer[record["id"]]
        assert set(entry) == {"status", "response"} and entry["status"] == "ok"
        assert entry["response"]["id"] == record["id"] and entry["response"]["name"] == record["name"]
        assert call(api, "GET", f"/data/companies/{record['id']}", dev)[0] == 404

    # Given three companies whose names share a marker, two of them of type a
    doomed = [company(api, dev, f"Query {tag} {i}", type="a") for i in (1, 2)]
    kept = company(api, dev, f"Query {tag} 3", type="b")
    mine = named(f"Query {tag}")

    # When the companies of type a with that marker are deleted by query (the spec's `?type=a`)
    answer = ok(api, "DELETE", f"/data/companies?type=a&{mine}", dev)

    # Then exactly those two are deleted and answered; the third is still there
    assert set(answer) == {r["id"] for r in doomed}
    assert all(e["status"] == "ok" and e["response"]["type"] == "a" for e in answer.values())
    assert ok(api, "GET", f"/data/companies?{mine}", dev)["items"] == [kept]


def test_async_deletes_answer_a_job_that_finishes_with_the_records_gone(api: Api, dev: str) -> None:
    tag = marker()
    one, many_1, many_2 = (company(api, dev, f"Async {i} {tag}") for i in (1, 2, 3))
    by_query = [company(api, dev, f"Async query {tag} {i}", type="a") for i in (1, 2)]
    spared = company(api, dev, f"Async query {tag} 3", type="c")

    # When each delete of the spec is sent with _async=true
    refs = [
        ok(api, "DELETE", f"/data/companies/{one['id']}?_async=true", dev),
        ok(api, "DELETE", f"/data/companies/{many_1['id']},{many_2['id']}?_async=true", dev),
        ok(api, "DELETE", f"/data/companies?_async=true&type=a&{named(f'Async query {tag}')}", dev),
    ]

    # Then each answers a job reference, and the job shows at its link and finishes
    for ref in refs:
        assert set(ref) == {"jobLink", "jobId"}, ref
        assert len(ref["jobId"]) == 24 and ref["jobLink"] == f"/api/status/jobs/{ref['jobId']}"
    jobs = [wait_finished(api, dev, ref["jobId"]) for ref in refs]
    for job, count in zip(jobs, (1, 2, 2), strict=True):
        assert job["status"] == "FINISHED" and job["type"] == "DELETE_RECORDS" and not job["hasErrors"], job
        assert (job["recordsCount"], job["recordsProcessed"]) == (count, count), job
        assert not [k for k in job["results"] if not re.fullmatch(HEX24, k)], job  # the map alone: no counts
    for gone in (one, many_1, many_2, *by_query):
        assert call(api, "GET", f"/data/companies/{gone['id']}", dev)[0] == 404
    assert ok(api, "GET", f"/data/companies/{spared['id']}", dev) == spared


def test_optimistic_locking(api: Api, dev: str) -> None:
    record = company(api, dev, f"Locking {marker()}", numberOfEmployees=1)
    path = f"/data/companies/{record['id']}"
    assert ok(api, "PUT", path, dev, {"version": 0, "numberOfEmployees": 2})["version"] == 1

    # When a second writer sends the version it read before the first write
    status, answer = call(api, "PUT", path, dev, {"version": 0, "numberOfEmployees": 3})

    # Then it gets a 409 and the first write stands
    error(status, answer, 409, "optimisticLocking")
    current = ok(api, "GET", path, dev)
    assert (current["version"], current["numberOfEmployees"]) == (1, 2)

    # And without a version the write always goes through
    assert ok(api, "PUT", path, dev, {"numberOfEmployees": 4})["version"] == 2


def test_record_history_after_create_and_update(api: Api, dev: str) -> None:
    name = f"History {marker()}"
    record = company(api, dev, name, state="active", type="a", isCustomer=False)
    ok(api, "PUT", f"/data/companies/{record['id']}", dev, {"version": 0, "type": "b"})

    answer = ok(api, "GET", f"/data/companies/{record['id']}/history", dev)

    assert set(answer) == {"total", "offset", "items"} and answer["total"] == 2
    changed, created = answer["items"]  # newest first
    for entry in (changed, created):
        assert set(entry) == HISTORY_KEYS, entry
        assert (entry["entityName"], entry["recordId"], entry["recordName"]) == ("companies", record["id"], name)
        assert (entry["user"], entry["eventCategory"], entry["recordDeleted"]) == ("dev@demo.local", "USER", None)
        assert entry["deletionDate"] is None and len(entry["id"]) == 24 and len(entry["entityId"]) == 24
        assert isinstance(entry["timestamp"], int) and isinstance(entry["entityVersion"], int)
    assert changed["timestamp"] >= created["timestamp"] and changed["id"] != created["id"]
    assert changed["entityId"] == created["entityId"]
    assert (changed["eventType"], changed["contextPath"]) == ("USER_RECORD_CHANGED", "entities.companies.update")
    assert changed["oldRecord"]["type"] == {"json": "a", "text": "{type:a}"}
    assert changed["newRecord"]["type"] == {"json": "b", "text": "{type:b}"}
    # as the spec's sample: the record's empty list of groups shows on both sides
    assert (
        set(changed["oldRecord"]) - {"lastUpdate"}
        == {"type", "addresses"}
        == set(changed["newRecord"]) - {"lastUpdate"}
    )
    assert (created["eventType"], created["contextPath"]) == ("USER_RECORD_CREATED", "entities.companies.create")
    assert created["oldRecord"] == {}
    new = created["newRecord"]
    assert (new["name"], new["state"], new["type"], new["isCustomer"]) == (name, "active", "a", False)
    assert new["numberOfEmployees"] is None and new["taxId"] is None and new["lastUpdate"] == record["lastUpdate"]

    # Paging: one at a time, the offset leads to the older entry
    page = ok(api, "GET", f"/data/companies/{record['id']}/history?_size=1", dev)
    assert [e["id"] for e in page["items"]] == [changed["id"]] and page["offset"] == changed["id"]
    page = ok(api, "GET", f"/data/companies/{record['id']}/history?_size=1&_offset={page['offset']}", dev)
    assert [e["id"] for e in page["items"]] == [created["id"]] and page["total"] == 2

    # The spec's sample (total 2, both logs shown) still answers the id of the last log as the offset
    assert answer["offset"] == created["id"]


def test_entity_history_newest_first_with_filters_and_paging(api: Api, dev: str) -> None:
    # Given three companies created, one of them updated, then one deleted
    start = int(time.time() * 1000) - 1
    tag = marker()
    records = [company(api, dev, f"Entity history {i} {tag}") for i in (1, 2, 3)]
    ok(api, "PUT", f"/data/companies/{records[0]['id']}", dev, {"notes": "changed"})
    ok(api, "DELETE", f"/data/companies/{records[1]['id']}", dev)
    end = int(time.time() * 1000) + 1

    # The spec's sample: the last two logs of the entity, newest first, and the offset for more
    answer = ok(api, "GET", "/data/companies/history?_size=2", dev)
    assert set(answer) == {"total", "offset", "items"} and answer["total"] >= 5 and len(answer["items"]) == 2
    newest, second = answer["items"]
    assert all(set(e) == HISTORY_KEYS for e in answer["items"])
    assert (newest["eventType"], newest["recordId"]) == ("USER_RECORD_DELETED", records[1]["id"])
    assert newest["recordDeleted"] is True and newest["deletionDate"] == newest["timestamp"]
    assert newest["newRecord"] == {} and newest["oldRecord"]["name"] == records[1]["name"]
    assert (second["eventType"], second["recordId"]) == ("USER_RECORD_CHANGED", records[0]["id"])
    assert second["newRecord"]["notes"] == {"json": "changed", "text": "{notes:changed}"}
    assert answer["offset"] == second["id"]

    # from / to: only the logs of that time window (these five)
    window = f"from={start}&to={end}"
    mine = ok(api, "GET", f"/data/companies/history?{window}", dev)
    assert mine["total"] == 5 and all(start <= e["timestamp"] <= end for e in mine["items"])
    assert [e["eventType"] for e in mine["items"]] == ["USER_RECORD_DELETED", "USER_RECORD_CHANGED"] + [
        "USER_RECORD_CREATED"
    ] * 3
    assert [e["recordId"] for e in mine["items"][2:]] == [r["id"] for r in reversed(records)]

    # eventType: one kind, or many separated by commas
    created = ok(api, "GET", f"/data/companies/history?{window}&eventType=USER_RECORD_CREATED", dev)
    assert created["total"] == 3 and {e["eventType"] for e in created["items"]} == {"USER_RECORD_CREATED"}
    kinds = "USER_RECORD_CHANGED,USER_RECORD_DELETED"
    both = ok(api, "GET", f"/data/companies/history?{window}&eventType={kinds}", dev)
    assert [e["id"] for e in both["items"]] == [e["id"] for e in mine["items"][:2]] and both["total"] == 2
    before = ok(api, "GET", f"/data/companies/history?from={start}&to={mine['items'][-1]['timestamp']}", dev)
    assert mine["items"][-1]["id"] in {e["id"] for e in before["items"]}
    assert all(e["timestamp"] <= mine["items"][-1]["timestamp"] for e in before["items"])
    # a bound far in the future (past what a history id's time holds) is the end of time, not before today
    far = 20_000_000_000_000
    assert ok(api, "GET", f"/data/companies/history?from={start}&to={far}", dev)["total"] >= 5
    assert ok(api, "GET", f"/data/companies/history?from={far}", dev)["total"] == 0

    # _offset: two at a time, every log of the window once, in order
    seen: list[str] = []
    offset = ""
    while True:
        page = ok(api, "GET", f"/data/companies/history?{window}&_size=2{offset}", dev)
        assert page["total"] == 5 and len(page["items"]) <= 2
        seen += [e["id"] for e in page["items"]]
        if not page["items"] or page["offset"] is None:
            break
        assert page["offset"] == page["items"][-1]["id"]
        offset = f"&_offset={page['offset']}"
    assert seen == [e["id"] for e in mine["items"]]


# The query language ------------------------------------------------------------
@pytest.fixture(scope="module")
def six(api: Api, dev: str) -> dict[str, Any]:
    """Six companies sharing a marker in their notes (A..F), and three contacts, two of them at A."""
    tag = marker()
    rows = {
        "A": ("Alpha", "a", 10, True, [{"state": "NV", "zipCode": "89145"}]),
        "B": ("Beta, Inc", "b", 20, True, [{"state": "CA", "zipCode": "90001"}, {"state": "OR", "zipCode": "97001"}]),
        "C": ("Gamma", "b", 30, False, None),
        "D": ("Delta", "c", None, False, None),
        "E": ("Epsilon", "c", 1000, False, None),
        "F": ("Zeta", "a", 40, False, None),
    }
    made = {
        key: company(
            api,
            dev,
            f"QL {tag} {word}",
            type=kind,
            state="active",
            numberOfEmployees=staff,
            isCustomer=customer,
            addresses=addresses,
            notes=tag,
            contactInformation={"email": f"{word.split(',')[0].lower()}@{tag}.test"},
        )
        for key, (word, kind, staff, customer, addresses) in rows.items()
    }
    extra = {"lastMeeting": 1429623180000, "rating": "2.8"}
    made["E"] = ok(api, "PUT", f"/data/companies/{made['E']['id']}", dev, extra)
    contacts = [
        ok(
            api,
            "POST",
            "/data/contacts",
            dev,
            {"firstName": first, "lastName": f"Q{tag}", "numberOfSkills": 2, "company": made[at]["id"]},
        )
        for first, at in (("Ann", "A"), ("Bob", "A"), ("Cid", "C"))
    ]
    # Their names share a prefix: a range of the name index finds the six without reading other companies.
    scope = named(f"QL {tag}")
    ids = {k: v["id"] for k, v in made.items()}
    return {"tag": tag, "scope": scope, "ids": ids, "records": made, "contacts": contacts}


def found(api: Api, dev: str, six: dict[str, Any], query: str, entity: str = "companies") -> list[str]:
    """The letters of the six companies a query matches, in the order answered (all on one page)."""
    scope = six["scope"] if entity == "companies" else f"lastName=Q{six['tag']}"
    answer = ok(api, "GET", f"/data/{entity}?{scope}&_size=100&{query}", dev)
    assert set(answer) == {"total", "offset", "items"} and answer["offset"] is None
    assert answer["total"] == len(answer["items"])
    letters = {v: k for k, v in six["ids"].items()}
    if entity == "contacts":
        letters = {c["id"]: c["firstName"] for c in six["contacts"]}
    return [letters[item["id"]] for item in answer["items"]]


def test_filters_of_the_query_language(api: Api, dev: str, six: dict[str, Any]) -> None:
    tag = six["tag"]
    cases = [
        # (query, the companies it matches)
        (f"name={q(f'QL {tag} Alpha')},{q(f'QL {tag} Gamma')}", "AC"),  # comma: OR
        ("name=" + q(f'"QL {tag} Beta, Inc"'), "B"),  # a quoted value holds its comma
        ("name=" + q(f'"QL {tag} Beta, Inc",QL {tag} Zeta'), "BF"),
        ("addresses.state=CA", "B"),  # any address of the company
        ("addresses.state=NV,OR", "AB"),
        ("addresses.state=notEquals(CA)", "ACDEF"),  # no address in CA
        (f"contactInformation.email={q(f'gamma@{tag}.test')}", "C"),
        ("isCustomer=true", "AB"),
        ("type=notEquals(a)", "BCDE"),
        ("type=notEquals(a,b)", "DE"),
        ("name=like(TA)", "BDF"),  # contains, ignoring case
        ("name=" + q(f"like(/ql {tag} g)"), "C"),  # starts with
        ("name=like(ON/)", "E"),  # ends with
        ("name=" + q(f"like(/^QL {tag} (Alpha|Delta)$/)"), "AD"),  # a regular expression
        ("numberOfEmployees=between(15,30)", "BC"),
        ("numberOfEmployees=greater(30)", "EF"),
        ("numberOfEmployees=greaterOrEquals(30)", "CEF"),
        ("numberOfEmployees=less(20)", "A"),
        ("numberOfEmployees=lessOrEquals(20)", "AB"),
        ("numberOfEmployees=empty()", "D"),
        ("numberOfEmployees=", "D"),
        ("numberOfEmployees=notEmpty()", "ABCEF"),
        ("lastMeeting=notEmpty()&rating=2.8", "E"),
        ("type=b&numberOfEmployees=greater(25)", "C"),  # parameters AND
        ("_query=" + q("or(filter('type','a'),and(filter('type','b'),filter('isCustomer','true')))"), "ABF"),
    ]
    for query, letters in cases:
        assert sorted(found(api, dev, six, query)) == list(letters), query


def test_demo_companies_by_comma_or_and_nested_field(api: Api, dev: str) -> None:
    answer = ok(api, "GET", "/data/companies?name=Blogpad,Jazzy&_fields=name", dev)
    assert answer["total"] == 2 and answer["offset"] is None
    assert sorted(i["name"] for i in answer["items"]) == ["Blogpad", "Jazzy"]
    assert all(set(i) == {"id", "version", "label", "name"} for i in answer["items"])
    nevada = ok(api, "GET", "/data/companies?type=a&addresses.state=NV&_size=1000", dev)
    assert BROWSEZOOM in {i["id"] for i in nevada["items"]}
    assert all(any(a["state"] == "NV" for a in i["addresses"]) for i in nevada["items"])


def test_contacts_by_company_and_fetching_the_company(api: Api, dev: str, six: dict[str, Any]) -> None:
    alpha = six["records"]["A"]
    ann, bob = six["contacts"][:2]
    at_alpha = [c["firstName"] for c in sorted((ann, bob), key=lambda c: c["id"], reverse=True)]  # by id, desc
    assert found(api, dev, six, f"company={alpha['id']}", "contacts") == at_alpha
    assert found(api, dev, six, f"company.label={q(alpha['name'])}", "contacts") == at_alpha
    assert found(api, dev, six, f"company={q(alpha['name'])}", "contacts") == at_alpha
    assert found(api, dev, six, f"company=notEquals({alpha['id']})", "contacts") == ["Cid"]

    # Without _relationshipsToFetch a contact's company is its id and label
    plain = ok(api, "GET", f"/data/contacts/{ann['id']}", dev)
    assert plain["company"] == {"id": alpha["id"], "label": alpha["name"]}
    assert plain["label"] == f"Q{six['tag']}, Ann" and plain["numberOfSkills"] == 2

    # With it, the company record inline, as GET /data/companies/{id} shows it
    fetched = ok(api, "GET", f"/data/contacts/{ann['id']}?_relationshipsToFetch=company", dev)
    assert fetched == {**plain, "company": ok(api, "GET", f"/data/companies/{alpha['id']}", dev)}
    listed = ok(api, "GET", f"/data/contacts?company={alpha['id']}&_relationshipsToFetch=company", dev)
    assert all(i["company"]["name"] == alpha["name"] for i in listed["items"]) and listed["total"] == 2


def test_sorting_and_paging(api: Api, dev: str, six: dict[str, Any]) -> None:
    by_id = sorted(six["ids"], key=lambda k: six["ids"][k], reverse=True)
    assert found(api, dev, six, "") == by_id  # default: by id, newest first
    assert found(api, dev, six, "_sortField=id&_sortType=asc") == by_id[::-1]
    assert found(api, dev, six, "_sortField=numberOfEmployees&_sortType=asc") == list("DABCFE")  # empty first
    assert found(api, dev, six, "_sortField=numberOfEmployees&_sortType=desc") == list("EFCBAD")
    assert found(api, dev, six, "_sortField=name&_sortType=asc") == list("ABDECF")

    letters = {v: k for k, v in six["ids"].items()}
    scope = f"/data/companies?{six['scope']}"
    for order, expected in (("", by_id), ("&_sortField=numberOfEmployees&_sortType=asc", list("DABCFE"))):
        # _size and a numeric _offset: a window of the matches
        page = ok(api, "GET", f"{scope}{order}&_size=2&_offset=2", dev)
        assert page["total"] == 6 and [letters[i["id"]] for i in page["items"]] == expected[2:4]
        assert ok(api, "GET", f"{scope}{order}&_size=2&_offset=6", dev)["items"] == []

        # The offset answered (the last record's id): every match once, in order
        seen: list[str] = []
        offset = ""
        for _ in range(6):
            page = ok(api, "GET", f"{scope}{order}&_size=2{offset}", dev)
            assert page["total"] == 6 and len(page["items"]) == 2
            seen += [letters[i["id"]] for i in page["items"]]
            if page["offset"] is None:
                break
            assert page["offset"] == page["items"][-1]["id"]
            offset = f"&_offset={page['offset']}"
        assert seen == expected, order


def test_fields_and_plain_text(api: Api, dev: str, six: dict[str, Any]) -> None:
    epsilon = six["records"]["E"]
    path = f"/data/companies/{epsilon['id']}"

    some = ok(api, "GET", f"{path}?_fields=name,contactInformation.email", dev)
    assert some == {
        "id": epsilon["id"],
        "version": 1,
        "label": epsilon["name"],
        "name": epsilon["name"],
        "contactInformation": {
            "id": epsilon["contactInformation"]["id"],
            "label": "Contact Information",
            "email": f"epsilon@{six['tag']}.test",
        },
    }
    listed = ok(api, "GET", f"/data/companies?{six['scope']}&_fields=type", dev)
    assert all(set(i) == {"id", "version", "label", "type"} for i in listed["items"])

    text = ok(api, "GET", f"{path}?_format=plainText", dev)
    assert (text["numberOfEmployees"], text["isCustomer"], text["rating"]) == ("1,000", "No", "2.8")
    assert text["lastMeeting"] == "2015-04-21 13:33:00 UTC" and text["name"] == epsilon["name"]
    assert text["id"] == epsilon["id"] and text["version"] == 1
    contact = ok(api, "GET", f"/data/contacts/{six['contacts'][0]['id']}?_format=plainText", dev)
    assert (contact["company"], contact["numberOfSkills"]) == (six["records"]["A"]["name"], "2")


# Errors ----------------------------------------------------------------------------
def test_no_token_or_a_bad_one_is_401(api: Api) -> None:
    for token in (None, "not-a-token"):
        for method, path in (
            ("GET", "/data/companies"),
            ("GET", f"/data/companies/{BROWSEZOOM}"),
            ("POST", "/data/companies"),
            ("DELETE", f"/data/companies/{BROWSEZOOM}"),
            ("GET", "/data/companies/history"),
        ):
            status, answer = call(api, method, path, token, {"name": "x"} if method == "POST" else None)
            error(status, answer, 401, "unauthorized")
    assert ok(api, "GET", f"/data/companies/{BROWSEZOOM}", api.login("dev@demo.local", "demo-dev-password"))


def test_what_a_sales_user_may_not_do_is_403(api: Api, dev: str, user: str) -> None:
    # Given a company the sales user created itself (it may create and update companies)
    mine = company(api, user, f"Sales {marker()}", type="a", notes="by sales")
    assert "taxId" not in mine and mine["version"] == 0

    # Then it never sees taxId, in a record, a list or the history, and rating is shown but read only
    demo = ok(api, "GET", f"/data/companies/{BROWSEZOOM}", user)
    assert "taxId" not in demo and demo["rating"] == "2.8" and demo["name"] == "Browsezoom"
    assert "taxId" not in ok(api, "GET", f"/data/companies/{BROWSEZOOM}?_fields=name,taxId", user)
    listed = ok(api, "GET", "/data/companies?name=Blogpad,Browsezoom", user)
    assert listed["total"] == 2 and all("taxId" not in i and "rating" in i for i in listed["items"])
    history = ok(api, "GET", f"/data/companies/{BROWSEZOOM}/history", user)
    assert history["items"] and all("taxId" not in e["newRecord"] for e in history["items"])
    updated = ok(api, "PUT", f"/data/companies/{mine['id']}", user, {"version": 0, "numberOfEmployees": 7})
    assert updated["version"] == 1 and "taxId" not in updated

    # And it may not filter or sort by taxId, write rating or taxId, or delete companies
    forbidden = [
        ("GET", "/data/companies?taxId=350-KWM", None),
        ("GET", "/data/companies?_sortField=taxId", None),
        ("GET", "/data/companies?_query=" + q("or(filter('taxId','350-KWM'),filter('type','a'))"), None),
        ("PUT", f"/data/companies/{mine['id']}", {"rating": "4.0"}),
        ("PUT", f"/data/companies/{mine['id']}", {"taxId": "1-A"}),
        ("POST", "/data/companies", {"name": f"Rated {marker()}", "rating": "1.0"}),
        ("DELETE", f"/data/companies/{mine['id']}", None),
        ("DELETE", f"/data/companies/{mine['id']},{BROWSEZOOM}", None),
        ("DELETE", f"/data/companies/{mine['id']}?_async=true", None),
        ("DELETE", "/data/companies?notes=" + q("by sales"), None),
        ("GET", f"/data/contacts/{MISSING}/history", None),  # contacts: no history for sales
    ]
    for method, path, body in forbidden:
        status, answer = call(api, method, path, user, body)
        error(status, answer, 403, "forbidden")
    kept = ok(api, "GET", f"/data/companies/{mine['id']}", dev)
    assert (kept["version"], kept.get("rating"), kept.get("taxId")) == (1, None, None)


def test_a_reader_of_contacts_sees_no_companies_and_no_emails(api: Api, dev: str, sub: str) -> None:
    contact = ok(
        api, "POST", "/data/contacts", dev, {"firstName": "Sue", "lastName": f"S{marker()}", "email": "sue@x.test"}
    )
    shown = ok(api, "GET", f"/data/contacts/{contact['id']}", sub)
    assert shown == {k: v for k, v in contact.items() if k != "email"}
    listed = ok(api, "GET", f"/data/contacts?lastName={contact['lastName']}", sub)
    assert listed["items"] == [shown]
    for method, path, body in (
        ("GET", "/data/companies", None),
        ("GET", f"/data/companies/{BROWSEZOOM}", None),
        ("GET", "/data/companies/history", None),
        ("POST", "/data/companies", {"name": f"Sub {marker()}"}),
        ("GET", "/data/contacts?email=sue@x.test", None),
        ("GET", "/data/contacts?_sortField=email", None),
        ("POST", "/data/contacts", {"firstName": "A", "lastName": "B"}),
        ("PUT", f"/data/contacts/{contact['id']}", {"firstName": "Sam"}),
        ("DELETE", f"/data/contacts/{contact['id']}", None),
    ):
        status, answer = call(api, method, path, sub, body)
        error(status, answer, 403, "forbidden")
    assert ok(api, "GET", f"/data/contacts/{contact['id']}", dev) == contact


def test_unknown_entities_and_records_are_404(api: Api, dev: str) -> None:
    for method, path, body in (
        ("GET", "/data/nope", None),
        ("POST", "/data/nope", {"name": "x"}),
        ("DELETE", "/data/nope?name=x", None),
        ("GET", f"/data/nope/{BROWSEZOOM}", None),
        ("PUT", f"/data/nope/{BROWSEZOOM}", {"name": "x"}),
        ("DELETE", f"/data/nope/{BROWSEZOOM}", None),
        ("GET", "/data/nope/history", None),
        ("GET", f"/data/nope/{BROWSEZOOM}/history", None),
        ("GET", f"/data/companies/{MISSING}", None),
        ("PUT", f"/data/companies/{MISSING}", {"notes": "x"}),
        ("DELETE", f"/data/companies/{MISSING}", None),
        ("GET", "/data/companies/not-an-id", None),
        ("PUT", "/data/companies/not-an-id", {"notes": "x"}),
        ("DELETE", "/data/companies/not-an-id", None),
        ("GET", f"/data/contacts/{BROWSEZOOM}", None),  # a company's id is no contact
    ):
        status, answer = call(api, method, path, dev, body)
        error(status, answer, 404, "notFound")

    # Deleting many: an unknown id is an error entry of its own; the others are deleted
    record = company(api, dev, f"One of two {marker()}")
    answer = ok(api, "DELETE", f"/data/companies/{record['id']},{MISSING}", dev)
    assert answer[record["id"]]["status"] == "ok" and answer[record["id"]]["response"]["id"] == record["id"]
    assert set(answer[MISSING]) == {"status", "errorMessage"} and answer[MISSING]["status"] == "error"

    # A record's history does not 404 on an unknown id (it could be a deleted record's)
    assert ok(api, "GET", f"/data/companies/{MISSING}/history", dev) == {"total": 0, "offset": None, "items": []}
    gone = ok(api, "GET", f"/data/companies/{record['id']}/history", dev)
    assert [e["eventType"] for e in gone["items"]] == ["USER_RECORD_DELETED", "USER_RECORD_CREATED"]


def test_invalid_records_are_400_with_one_error_per_field(api: Api, dev: str) -> None:
    name = f"Valid {marker()}"
    body = {
        "name": name,
        "nope": 1,
        "state": "closed",
        "numberOfEmployees": "abc",
        "contactInformation": {"email": "not an email"},
        "lastMeeting": "yesterday",
    }
    status, answer = call(api, "POST", "/data/companies", dev, body)
    error(status, answer, 400, "validationErrors")
    fields = [e["field"] for e in answer["errors"]]
    assert sorted(fields) == sorted(["nope", "state", "numberOfEmployees", "contactInformation.email", "lastMeeting"])
    assert all(set(e) == {"field", "code", "message"} and e["code"] and e["message"] for e in answer["errors"])
    assert {e["field"]: e["code"] for e in answer["errors"]}["nope"] == "UNKNOWN"
    assert ok(api, "GET", f"/data/companies?name={q(name)}", dev)["total"] == 0

    status, answer = call(api, "POST", "/data/companies", dev, {"notes": "no name"})
    error(status, answer, 400, "validationErrors")
    assert [(e["field"], e["code"]) for e in answer["errors"]] == [("name", "REQUIRED")]

    # A duplicated name, created or updated
    record = company(api, dev, name)
    for method, path, sent in (
        ("POST", "/data/companies", {"name": "Browsezoom"}),
        ("PUT", f"/data/companies/{record['id']}", {"name": "Browsezoom"}),
    ):
        status, answer = call(api, method, path, dev, sent)
        error(status, answer, 400, "validationErrors")
        assert [(e["field"], e["code"]) for e in answer["errors"]] == [("name", "DUPLICATED")]

    # An update checks its fields the same way, and writes nothing
    status, answer = call(api, "PUT", f"/data/companies/{record['id']}", dev, {"type": "z", "numberOfEmployees": 1.5})
    error(status, answer, 400, "validationErrors")
    assert sorted(e["field"] for e in answer["errors"]) == ["numberOfEmployees", "type"]
    status, answer = call(api, "PUT", f"/data/companies/{record['id']}", dev, {"version": "x", "notes": "y"})
    error(status, answer, 400, "validationErrors")
    assert ok(api, "GET", f"/data/companies/{record['id']}", dev) == record

    # A body that is not JSON, or not an object
    for method, path in (("POST", "/data/companies"), ("PUT", f"/data/companies/{record['id']}")):
        for sent in (b"{not json", b"", b"[1, 2]", b'"text"'):
            status, answer = call(api, method, path, dev, sent)
            error(status, answer, 400, "validationErrors")


MALFORMED = [
    "_size=0",
    "_size=1001",
    "_size=ten",
    "_offset=-1",
    "_offset=zz",
    "_x=1",
    "_sortType=up",
    "_sortField=nope",
    "_sortField=addresses",
    "_format=xml",
    "_fields=nope",
    "_relationshipsToFetch=name",
    "nope=1",
    "numberOfEmployees=abc",
    "numberOfEmployees=between(1)",
    "numberOfEmployees=like(1)",
    "isCustomer=greater(1)",
    "type=unknownOp(a)",
    "name=" + q("like(/(a)\\1/)"),  # a backreference: RE2 has none
    "name=" + q("like(/[/)"),
    "name=" + q('"unclosed'),
    "_query=" + q("or(filter('type','a')"),
    "_query=" + q("nope(filter('type','a'))"),
    "_query=" + q("and(filter('nope','a'))"),
    "_query=" + q("filter(type,a)"),
]


@pytest.mark.parametrize("query", MALFORMED)
def test_a_malformed_query_is_400(api: Api, dev: str, query: str) -> None:
    status, answer = call(api, "GET", f"/data/companies?{query}", dev)
    error(status, answer, 400, "validationErrors")


def test_a_malformed_delete_query_or_history_query_is_400(api: Api, dev: str) -> None:
    # Each also names a company that does not exist, so that a query read wrongly deletes nothing
    nobody = f"name=Nobody{marker()}"
    for query in ("nope=1", "_async=true&nope=1", "numberOfEmployees=abc", "_async=maybe", "_lowPriority=maybe"):
        status, answer = call(api, "DELETE", f"/data/companies?{nobody}&{query}", dev)
        error(status, answer, 400, "validationErrors")
    for query in ("_offset=nope", "_size=0", "_size=1001", "eventType=NOPE", "from=yesterday", "to=-1", "x=1"):
        status, answer = call(api, "GET", f"/data/companies/history?{query}", dev)
        error(status, answer, 400, "validationErrors")
    for query in ("_offset=nope", "_size=0"):
        status, answer = call(api, "GET", f"/data/companies/{BROWSEZOOM}/history?{query}", dev)
        error(status, answer, 400, "validationErrors")
    status, answer = call(api, "GET", "/data/companies/not-an-id/history", dev)
    error(status, answer, 400, "validationErrors")


# Two writers at once -------------------------------------------------------------------
def test_two_concurrent_updates_with_one_version_one_wins_one_is_409(api: Api, dev: str) -> None:
    record = company(api, dev, f"Race {marker()}", numberOfEmployees=0)
    path = f"/data/companies/{record['id']}"
    start = threading.Barrier(2)
    answers: dict[int, tuple[int, Any]] = {}

    def write(staff: int) -> None:
        start.wait()
        answers[staff] = call(api, "PUT", path, dev, {"version": 0, "numberOfEmployees": staff})

    # When two writers send the same version at the same moment
    threads = [threading.Thread(target=write, args=(staff,)) for staff in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then exactly one wins, the other gets the 409, and the record holds the winner's write
    assert sorted(status for status, _ in answers.values()) == [200, 409], answers
    winner = next(staff for staff, (status, _) in answers.items() if status == 200)
    loser = next(answer for status, answer in answers.values() if status == 409)
    error(409, loser, 409, "optimisticLocking")
    assert answers[winner][1]["version"] == 1 and answers[winner][1]["numberOfEmployees"] == winner
    current = ok(api, "GET", path, dev)
    assert (current["version"], current["numberOfEmployees"]) == (1, winner)

    # And the history holds one change only
    history = ok(api, "GET", f"{path}/history", dev)
    changes = [e for e in history["items"] if e["eventType"] == "USER_RECORD_CHANGED"]
    assert len(changes) == 1 and history["total"] == 2
    assert changes[0]["newRecord"]["numberOfEmployees"] == {"json": winner, "text": f"{{numberOfEmployees:{winner}}}"}
