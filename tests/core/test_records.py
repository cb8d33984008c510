"""Tables and records: typed values, validation, groups, relationships, unique values, versions, queries."""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal as D
from typing import Any

import boto3
import pytest
from backroom import aws, dynamo
from backroom.config import Settings
from backroom.errors import FieldError, Invalid
from backroom.ids import object_id
from backroom.records import Condition, Page, Record, RecordStore, Schema, Sort, VersionConflict
from backroom.records.model import Create
from backroom.wiring import build
from boto3.dynamodb.types import TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from infra.local import patches
from infra.local.provision import function_environment, provision
from infra.local.template import Template
from tests.core.conftest import offline


@pytest.fixture(scope="module")
def store() -> Iterator[RecordStore]:
    """One stack for the module (as conftest's `core` makes it, once): every test has its own tenant and tables."""
    with pytest.MonkeyPatch.context() as env:
        offline(env)
        patches.install()
        with mock_aws():
            aws.reset_clients()
            stack = provision(boto3.session.Session(region_name="us-east-1"), None, Template.load(), visibility=2)  # type: ignore[arg-type]
            yield build(Settings.from_env({**os.environ, **function_environment(Template.load(), stack)})).records
        aws.reset_clients()


@pytest.fixture
def tenant() -> str:
    return uuid.uuid4().hex


def define(store: RecordStore, tenant: str, **spec: Any) -> Schema:
    return store.define(tenant, Schema.model_validate({"name": f"t{uuid.uuid4().hex[:8]}", **spec}))


def invalid(call: Callable[[], Any]) -> dict[str, FieldError]:
    """The field errors of the one Invalid the call raises, by field path; each has a message."""
    with pytest.raises(Invalid) as raised:
        call()
    errors = {e.field: e for e in raised.value.errors}
    assert len(errors) == len(raised.value.errors) and all(e.message for e in errors.values()), raised.value.errors
    return errors


def codes(call: Callable[[], Any]) -> dict[str, str]:
    return {name: e.code for name, e in invalid(call).items()}


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released at once by a barrier: each one's result, or the exception it raised."""
    barrier, outcomes = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = calls[i]()
        except Exception as error:  # the caller asserts on it
            outcomes[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


# Field types ---------------------------------------------------------------
TYPES: list[tuple[dict[str, Any], Any, Any, Any, str]] = [
    # (field, valid input, as stored and read back, invalid input, error code)
    ({"type": "text"}, "Ünïcode text", "Ünïcode text", "bell\x07", "invalid"),
    ({"type": "text", "max_length": 3}, "abc", "abc", "abcd", "tooLong"),
    ({"type": "integer"}, "42", D(42), "4.5", "invalid"),
    ({"type": "integer"}, -7, D(-7), True, "invalid"),
    ({"type": "decimal"}, D("0.1") + D("0.2"), D("0.3"), "twelve", "invalid"),
    ({"type": "decimal"}, 0.1 + 0.2, D("0.30000000000000004"), "NaN", "invalid"),
    ({"type": "money"}, D("0.1") + D("0.2"), D("0.30"), 0.1 + 0.2, "invalid"),
    ({"type": "money"}, "12345678901234567890.12", D("12345678901234567890.12"), "1.005", "invalid"),
    ({"type": "money", "scale": 4}, "-0.0001", D("-0.0001"), "0.00001", "invalid"),
    ({"type": "money"}, 60, D("60.00"), "12,50", "invalid"),
    ({"type": "boolean"}, "yes", True, "maybe", "invalid"),
    ({"type": "boolean"}, False, False, 2, "invalid"),
    ({"type": "date"}, "2024-02-29", "2024-02-29", "2023-02-29", "invalid"),
    ({"type": "datetime"}, "2024-01-02T03:04:05.678Z", D(1704164645678), "yesterday", "invalid"),
    ({"type": "datetime"}, "2024-01-02T04:04:05.678+01:00", D(1704164645678), 1.5, "invalid"),
    ({"type": "datetime"}, 1704164645678, D(1704164645678), "2024-13-01T00:00:00Z", "invalid"),
    ({"type": "choice", "choices": ["red", "green"]}, "green", "green", "blue", "notAllowed"),
    ({"type": "email"}, "jane.doe@example.com", "jane.doe@example.com", "jane.doe@", "invalid"),
    ({"type": "url"}, "https://example.com/a?b=1", "https://example.com/a?b=1", "ftp://example.com", "invalid"),
]


@pytest.mark.parametrize(("spec", "valid", "stored", "bad", "code"), TYPES)
def test_each_type_round_trips_a_valid_value_and_refuses_an_invalid_one(
    store: RecordStore, tenant: str, spec: dict[str, Any], valid: Any, stored: Any, bad: Any, code: str
) -> None:
    schema = define(store, tenant, fields=[{"name": "v", **spec}])
    read = store.get(tenant, schema, store.create(tenant, schema, {"v": valid}).rid)
    assert read is not None and read.data == {"v": stored} and type(read.data["v"]) is type(stored)
    assert str(read.data["v"]) == str(stored)  # exact to the last digit, scale included (money reads back 60.00)
    errors = invalid(lambda: store.create(tenant, schema, {"v": bad}))
    assert {n: e.code for n, e in errors.items()} == {"v": code} and "v" in errors["v"].message


def test_money_with_more_decimals_than_its_scale_is_an_error_never_rounded(store: RecordStore, tenant: str) -> None:
    schema = define(store, tenant, fields=[{"name": "price", "type": "money", "scale": 2}])
    errors = invalid(lambda: store.create(tenant, schema, {"price": "19.999"}))
    assert errors["price"].code == "invalid" and "decimal places" in errors["price"].message
    assert store.count(tenant, schema, []) == 0


# Numbers DynamoDB cannot hold (finding 11) ------------------------------------
UNSTORABLE = ["1e-200", "1E-131", "1e200", "1E+126", "1" + "0" * 60 + "1", "1" * 39, "NaN", "-Infinity", D("1e400")]


@pytest.mark.parametrize("kind", ["integer", "decimal", "money", "datetime"])
@pytest.mark.parametrize("bad", UNSTORABLE)
def test_finding_11_a_number_dynamodb_cannot_hold_is_a_field_error(
    store: RecordStore, tenant: str, kind: str, bad: Any
) -> None:
    schema = define(
        store,
        tenant,
        fields=[
            {"name": "v", "type": kind},
            {"name": "g", "type": "group", "fields": [{"name": "n", "type": kind, "multi": True}]},
        ],
    )
    assert codes(lambda: store.create(tenant, schema, {"v": bad})) == {"v": "invalid"}
    assert codes(lambda: store.create(tenant, schema, {"g": {"n": ["1", bad]}})) == {"g.n[1]": "invalid"}
    assert store.count(tenant, schema, []) == 0


@pytest.mark.parametrize(
    ("kind", "given", "read"),
    [
        ("integer", 10**50, 10**50),  # 51 digits as written, one significant: boto3 alone refused it
        ("integer", "1" + "0" * 60 + ".0", 10**60),
        ("decimal", "9.9999999999999999999999999999999999999E+125", D("9.9999999999999999999999999999999999999E+125")),
        ("decimal", "1E-130", D("1E-130")),
        ("decimal", "-1E-130", D("-1E-130")),
        ("decimal", "1." + "0" * 45, 1),
        ("money", "1" + "0" * 35, D("1" + "0" * 35)),  # 36 digits and 2 after the point: 38
        ("datetime", 253_402_300_799_999, 253_402_300_799_999),  # 9999-12-31T23:59:59.999Z
    ],
)
def test_finding_11_a_number_at_the_edge_of_the_range_is_stored(
    store: RecordStore, tenant: str, kind: str, given: Any, read: Any
) -> None:
    schema = define(store, tenant, fields=[{"name": "v", "type": kind}], indexes=[["v"]])
    rid = store.create(tenant, schema, {"v": given}).rid
    found = store.get(tenant, schema, rid)
    assert found is not None and found.data["v"] == read
    assert [r.rid for r in store.find(tenant, schema, [Condition("v", "eq", (found.data["v"],))]).records] == [rid]


def test_finding_11_money_and_date_times_hold_what_they_can_show(store: RecordStore, tenant: str) -> None:
    schema = define(store, tenant, fields=[{"name": "price", "type": "money"}, {"name": "at", "type": "datetime"}])
    errors = invalid(lambda: store.create(tenant, schema, {"price": "1" + "0" * 36, "at": 10**20}))
    assert "38 digits" in errors["price"].message and "epoch milliseconds" in errors["at"].message


def test_finding_11_any_item_with_an_unstorable_number_is_invalid_naming_its_path(store: RecordStore) -> None:
    """The last net, under every repository: what no check before caught is the caller's, never boto3's crash."""
    for bad, problem in ((D("1e-200"), "out of range"), (float("nan"), "not a number"), (10**40 + 1, "out of range")):
        with pytest.raises(Invalid) as raised:
            store.table.put({"pk": "p", "sk": "s", "info": {"list": [1, {"n": bad}]}})
        assert raised.value.errors[0].field == "info.list[1].n" and problem in raised.value.message
    assert store.table.get("p", "s") is None


_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.text()
    | st.integers(-(10**45), 10**45)
    | st.binary(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.decimals(places=3, allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=_VALUES)
def test_an_item_is_written_as_boto3_serializes_it(value: Any) -> None:
    """`to_item` builds the common types itself, faster: every value comes out as boto3's own serializer
    gives it, or is refused the same way (a number no item holds)."""
    try:
        expected = TypeSerializer().serialize(dynamo._dynamo(value))
    except dynamo._Unstorable:
        with pytest.raises(Invalid):
            dynamo.to_item({"v": value})
        return
    assert dynamo.to_item({"v": value}) == ({"v": expected} if value is not None else {})


# Validation ----------------------------------------------------------------
def test_every_field_error_comes_at_once(store: RecordStore, tenant: str) -> None:
    fields = [{"name": "title", "required": True}, {"name": "owner", "type": "email", "required": True}]
    fields += [{"name": "count", "type": "integer"}, {"name": "color", "type": "choice", "choices": ["red"]}]
    schema = define(store, tenant, fields=[*fields, {"name": "due", "type": "date"}])
    bad = {"count": "x", "color": "blue", "due": "soon", "nope": 1}
    assert codes(lambda: store.create(tenant, schema, bad)) == {
        **{"title": "required", "owner": "required", "count": "invalid"},
        **{"color": "notAllowed", "due": "invalid", "nope": "unknown"},
    }
    assert codes(lambda: store.create(tenant, schema, {"title": "", "owner": "a@b.co"})) == {"title": "required"}
    assert store.count(tenant, schema, []) == 0


# Groups and multi-valued fields --------------------------------------------
GEO = {"name": "geo", "type": "group", "fields": [{"name": "lat", "type": "decimal"}]}
ADDRESS = [
    {"name": "street", "required": True},
    {"name": "city"},
    {"name": "state", "type": "choice", "choices": ["CA"]},
]
PHONE = {"name": "phone", "type": "group", "fields": [{"name": "number"}, {"name": "kind"}]}
PEOPLE: list[dict[str, Any]] = [
    {"name": "name", "required": True},
    {"name": "tags", "multi": True},
    {"name": "scores", "type": "integer", "multi": True},
    {"name": "addresses", "type": "group", "multi": True, "label": "{street}, {city}", "fields": [*ADDRESS, GEO]},
    {"name": "contact", "type": "group", "fields": [{"name": "email", "type": "email"}, PHONE]},
]


def test_nested_groups_and_lists_round_trip_with_ids_and_labels(store: RecordStore, tenant: str) -> None:
    schema = define(store, tenant, fields=PEOPLE)
    addresses = [{"street": "1 Main", "city": "Springfield", "state": "CA", "geo": {"lat": "37.7749295"}}]
    values = {"name": "Jane", "tags": ["a", "b"], "scores": ["1", 2], "addresses": [*addresses, {"street": "2 Side"}]}
    read = store.get(
        tenant, schema, store.create(tenant, schema, {**values, "contact": {"phone": {"number": "5"}}}).rid
    )
    assert read is not None
    assert read.data["tags"] == ["a", "b"] and read.data["scores"] == [D(1), D(2)]
    first, second = read.data["addresses"]
    assert first["geo"]["lat"] == D("37.7749295") and first["state"] == "CA" and "state" not in second
    assert [first["label"], second["label"]] == ["1 Main, Springfield", "2 Side, "]
    assert re.fullmatch(r"[0-9a-f]{24}", first["id"]) and re.fullmatch(r"[0-9a-f]{24}", second["id"])
    assert first["id"] != second["id"] and first["geo"]["id"] not in (first["id"], second["id"])
    assert read.data["contact"]["phone"]["number"] == "5" and read.data["contact"]["label"] == "contact"


def test_errors_inside_groups_and_lists_name_their_path(store: RecordStore, tenant: str) -> None:
    schema = define(store, tenant, fields=PEOPLE)
    addresses = [{"street": "1", "geo": {"lat": "north"}}, {"street": "2", "state": "TX"}, {"city": "X"}]
    bad = {"scores": [1, "two"], "addresses": addresses, "contact": {"phone": {"extra": 1}, "email": "nope"}}
    assert codes(lambda: store.create(tenant, schema, bad)) == {
        **{"name": "required", "scores[1]": "invalid", "addresses[0].geo.lat": "invalid"},
        **{"addresses[1].state": "notAllowed", "addresses[2].street": "required"},
        **{"contact.phone.extra": "unknown", "contact.email": "invalid"},
    }


def test_partial_update_merges_groups_and_none_clears_a_field(store: RecordStore, tenant: str) -> None:
    schema = define(store, tenant, fields=PEOPLE)
    addresses = [{"street": "1 Main", "city": "Springfield"}, {"street": "2 Side", "city": "Shelbyville"}]
    contact = {"email": "jane@example.com", "phone": {"number": "555", "kind": "home"}}
    created = store.create(tenant, schema, {"name": "Jane", "tags": ["a"], "addresses": addresses, "contact": contact})
    home, work = created.data["addresses"]
    # When only the phone's kind, the second address's city and the tags change
    changes = {"contact": {"phone": {"kind": "work"}}, "addresses": [home, {"id": work["id"], "city": "Ogden"}]}
    updated = store.update(tenant, schema, created.rid, {**changes, "tags": None}, version=1)
    # Then the rest of each group stays, each group keeps its id, and the tags are gone
    read = store.get(tenant, schema, created.rid)
    assert read is not None and read == updated and read.version == 2
    phone = created.data["contact"]["phone"]
    assert read.data["contact"] == {**created.data["contact"], "phone": {**phone, "kind": "work"}}
    assert read.data["addresses"] == [home, {**work, "city": "Ogden", "label": "2 Side, Ogden"}]
    assert "tags" not in read.data and read.data["name"] == "Jane"
    assert codes(lambda: store.update(tenant, schema, created.rid, {"name": None})) == {"name": "required"}


# Relationships and labels --------------------------------------------------
def test_a_relationship_holds_the_related_records_id_and_label(store: RecordStore, tenant: str) -> None:
    companies = define(store, tenant, fields=[{"name": "name"}], label="{name}")
    employer = {"name": "employer", "type": "relationship", "entity": companies.name}
    contacts = define(store, tenant, fields=[employer, {"name": "name"}], label="{name} ({employer})")
    acme = store.create(tenant, companies, {"name": "Acme"})
    read = store.get(tenant, contacts, store.create(tenant, contacts, {"name": "Jane", "employer": acme.rid}).rid)
    assert read is not None and read.data["employer"] == {"id": acme.rid, "label": "Acme"}
    assert read.label == "Jane (Acme)"
    assert store.create(tenant, contacts, {"employer": {"id": acme.rid}}).data["employer"]["label"] == "Acme"
    assert codes(lambda: store.create(tenant, contacts, {"employer": "0" * 24})) == {"employer": "notFound"}
    assert codes(lambda: store.create(tenant, contacts, {"employer": 12})) == {"employer": "invalid"}


def test_a_missing_related_record_inside_a_list_of_groups_names_its_path(store: RecordStore, tenant: str) -> None:
    companies = define(store, tenant, fields=[{"name": "name"}], label="{name}")
    company = {"name": "company", "type": "relationship", "entity": companies.name}
    people = define(store, tenant, fields=[{"name": "jobs", "type": "group", "multi": True, "fields": [company]}])
    acme = store.create(tenant, companies, {"name": "Acme"})
    person = store.create(tenant, people, {"jobs": [{"company": acme.rid}]})
    assert person.data["jobs"][0]["company"] == {"id": acme.rid, "label": "Acme"}
    jobs = [{"company": acme.rid}, {"company": "0" * 24}]
    # The path written as every other error writes it (`addresses[1].state`)
    assert codes(lambda: store.create(tenant, people, {"jobs": jobs})) == {"jobs[1].company": "notFound"}


def test_label_expression_renders_from_the_values(store: RecordStore, tenant: str) -> None:
    fields = [{"name": "firstName"}, {"name": "lastName"}, {"name": "c", "type": "group", "fields": [{"name": "at"}]}]
    schema = define(store, tenant, fields=fields, label="{lastName}, {firstName} <{c.at}>")
    created = store.create(tenant, schema, {"firstName": "Jane", "lastName": "Doe", "c": {"at": "j@d.io"}})
    assert created.label == "Doe, Jane <j@d.io>"
    assert store.update(tenant, schema, created.rid, {"firstName": "John", "c": None}).label == "Doe, John <>"
    read = store.get(tenant, schema, created.rid)
    assert read is not None and read.label == "Doe, John <>"


# Unique values -------------------------------------------------------------
def test_a_taken_unique_value_is_duplicated_until_released(store: RecordStore, tenant: str) -> None:
    schema = define(store, tenant, fields=[{"name": "code", "unique": True}, {"name": "n", "type": "integer"}])
    first = store.create(tenant, schema, {"code": "X"})
    assert codes(lambda: store.create(tenant, schema, {"code": "X", "n": 1})) == {"code": "duplicated"}
    other = store.create(tenant, schema, {"code": "Y"})
    assert codes(lambda: store.update(tenant, schema, other.rid, {"code": "X"})) == {"code": "duplicated"}
    # When the first record lets go of X, another record may take it, and the first one's new value is taken
    store.update(tenant, schema, first.rid, {"code": "Z", "n": 2}, version=1)
    assert store.update(tenant, schema, other.rid, {"code": "X"}).data == {"code": "X"}
    assert codes(lambda: store.create(tenant, schema, {"code": "Z"})) == {"code": "duplicated"}
    assert store.create(tenant, schema, {"code": "Y"}).data == {"code": "Y"}


def test_two_creations_of_one_unique_value_in_one_batch_are_a_record_and_a_row_error(
    store: RecordStore, tenant: str
) -> None:
    # One transaction may name an item once: the two would share the value's marker, and DynamoDB
    # would refuse the whole transaction (a job retried it until its message went to the dead letters).
    schema = define(store, tenant, fields=[{"name": "code", "unique": True}, {"name": "n", "type": "integer"}])
    first, second, third = store.write_many(
        tenant,
        schema,
        [Create({"code": "SAME", "n": n}, object_id()) for n in (1, 2)] + [Create({"code": "X"}, object_id())],
    )
    assert isinstance(first, Record) and isinstance(third, Record)
    assert isinstance(second, Invalid) and [(e.field, e.code) for e in second.errors] == [("code", "duplicated")]
    assert store.count(tenant, schema, [Condition("code", "eq", ("SAME",))]) == 1


def test_of_eight_concurrent_creators_of_one_unique_value_exactly_one_wins(store: RecordStore, tenant: str) -> None:
    schema = define(store, tenant, fields=[{"name": "code", "unique": True}], indexes=[["code"]])
    outcomes = together(*[lambda: store.create(tenant, schema, {"code": "SAME"})] * 8)
    assert sum(isinstance(o, Record) for o in outcomes) == 1, outcomes
    lost = [
        (type(o), [(e.field, e.code) for e in getattr(o, "errors", [])]) for o in outcomes if not isinstance(o, Record)
    ]
    assert lost == [(Invalid, [("code", "duplicated")])] * 7, outcomes
    assert store.count(tenant, schema, [Condition("code", "eq", ("SAME",))]) == 1


# Versions ------------------------------------------------------------------
def test_two_updates_at_one_version_one_wins_one_conflicts(store: RecordStore, tenant: str) -> None:
    schema = define(store, tenant, fields=[{"name": "status"}], history=True)
    rid = store.create(tenant, schema, {"status": "new"}).rid
    outcomes = together(*[lambda s=s: store.update(tenant, schema, rid, {"status": s}, version=1) for s in "AB"])
    winners = [o.data["status"] for o in outcomes if isinstance(o, Record)]
    assert len(winners) == 1 and [type(o) for o in outcomes if not isinstance(o, Record)] == [VersionConflict]
    read = store.get(tenant, schema, rid)
    assert read is not None and read.version == 2 and read.data == {"status": winners[0]}
    history = store.history(tenant, schema, rid)
    assert [(h["action"], h["version"]) for h in history.entries] == [("update", 2), ("create", 1)]
    assert (history.entries[0]["old"], history.entries[0]["new"]) == ({"status": "new"}, {"status": winners[0]})


def test_delete_checks_the_version_and_removes_entries_and_markers(store: RecordStore, tenant: str) -> None:
    fields = [{"name": "code", "unique": True}, {"name": "n", "type": "integer"}]
    schema = define(store, tenant, fields=fields, indexes=[["code"], ["n"]])
    doomed, kept = store.create(tenant, schema, {"code": "X", "n": 5}), store.create(tenant, schema, {"code": "Y"})
    store.update(tenant, schema, doomed.rid, {"n": 6})
    with pytest.raises(VersionConflict):
        store.delete(tenant, schema, doomed.rid, version=1)
    assert store.get(tenant, schema, doomed.rid) is not None
    store.delete(tenant, schema, doomed.rid, version=2)
    assert store.get(tenant, schema, doomed.rid) is None
    # count() reads the index entries alone: an entry left behind would count
    for by in ([Condition("code", "eq", ("X",))], [Condition("n", "eq", (D(6),))], [Condition("n", "notEmpty")]):
        assert store.count(tenant, schema, by) == 0 and store.find(tenant, schema, by).records == []
    assert store.count(tenant, schema, []) == 1 and [r.rid for r in store.find(tenant, schema, []).records] == [
        kept.rid
    ]
    taker = store.create(tenant, schema, {"code": "X"})
    assert [r.rid for r in store.find(tenant, schema, [Condition("code", "eq", ("X",))]).records] == [taker.rid]


# Ordered queries -----------------------------------------------------------
N = [D(v) for v in ("-12.5", "-3", "-0.123", "-0.12", "0", "0.5", "1", "1.5", "2", "5", "9", "10", "10", "250")]
NAMES = ["apple", "apricot", "Apple", "banana", "band", "ap", "cherry"]


@pytest.fixture(scope="module")
def items(store: RecordStore) -> tuple[str, Schema, list[Record]]:
    tenant = uuid.uuid4().hex
    fields = [{"name": "name"}, {"name": "n", "type": "decimal"}, {"name": "plain", "type": "integer"}]
    schema = define(store, tenant, fields=fields, indexes=[["n"], ["name"]])
    values = [{"name": NAMES[i % len(NAMES)], "n": n, "plain": (i * 7) % 5} for i, n in enumerate(N)]
    return tenant, schema, [store.create(tenant, schema, v) for v in [*values, {"name": "none"}, {"plain": 1}]]


def pages(store: RecordStore, items: tuple[str, Schema, list[Record]], by: list[Condition], sort: Sort) -> list[Page]:
    """Every page of a query, following the cursor until it is None."""
    tenant, schema, records = items
    found = [store.find(tenant, schema, by, sort=sort, size=3)]
    while found[-1].cursor is not None and len(found) <= len(records):
        found.append(store.find(tenant, schema, by, sort=sort, size=3, cursor=found[-1].cursor))
    assert found[-1].cursor is None and all(len(p.records) == 3 for p in found[:-1])
    return found


@pytest.mark.parametrize(
    ("condition", "wanted"),
    [
        (Condition("n", "between", (D("-0.12"), D(2))), lambda v: v is not None and D("-0.12") <= v <= 2),
        (Condition("n", "gt", (D(1),)), lambda v: v is not None and v > 1),
        (Condition("n", "lt", (D("-0.12"),)), lambda v: v is not None and v < D("-0.12")),
        (Condition("n", "ge", (D(10),)), lambda v: v is not None and v >= 10),
        (Condition("n", "le", (D(0),)), lambda v: v is not None and v <= 0),
        (Condition("n", "empty"), lambda v: v is None),
        (Condition("n", "notEmpty"), lambda v: v is not None),
        (Condition("name", "like", ("ap",)), lambda v: v is not None and v.startswith("ap")),
        (Condition("name", "like", ("ban",)), lambda v: v is not None and v.startswith("ban")),
        (Condition("name", "empty"), lambda v: v is None),
        (Condition("plain", "gt", (D(2),)), lambda v: v is not None and v > 2),  # no index: checked on each record
    ],
)
def test_find_and_count_answer_each_operator(
    store: RecordStore, items: tuple[str, Schema, list[Record]], condition: Condition, wanted: Callable[[Any], bool]
) -> None:
    tenant, schema, records = items
    expected = {r.rid for r in records if wanted(r.data.get(condition.field))}
    assert 0 < len(expected) < len(records)
    found = pages(store, items, [condition], Sort())
    assert sorted(r.rid for p in found for r in p.records) == sorted(expected)
    assert store.count(tenant, schema, [condition]) == len(expected)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("field", ["n", "plain", None])
def test_sorted_pages_give_each_record_once_in_order(
    store: RecordStore, items: tuple[str, Schema, list[Record]], field: str | None, descending: bool
) -> None:
    tenant, schema, records = items
    seen = [r.rid for p in pages(store, items, [], Sort(field, descending)) for r in p.records]

    def order(r: Record) -> tuple[bool, D, str]:  # empty values first, then by value, then by id
        value = r.data.get(field) if field else None
        return (value is not None, D(0) if value is None else value, r.rid)

    assert seen == [r.rid for r in sorted(records, key=order, reverse=descending)]
    assert store.count(tenant, schema, []) == len(records)


def test_paging_a_filtered_range_descending(store: RecordStore, items: tuple[str, Schema, list[Record]]) -> None:
    between = [Condition("n", "between", (D(-3), D(10)))]
    found = [r.data["n"] for p in pages(store, items, between, Sort("n", descending=True)) for r in p.records]
    assert found == sorted((n for n in N if D(-3) <= n <= 10), reverse=True)
