"""A runtime table's counts: the `total` of a list read from a few count items, never from the records.

Every write that creates or deletes a record, or moves it between the values of an index, moves the
table's counts in its own transaction; so after any mix of single writes, bulk writes replayed, deletes
and an index dropped and added again, each count equals what the records themselves say.
"""

from __future__ import annotations

from typing import Any

import pytest
from backroom import dynamo
from backroom.app.definition import Entity
from backroom.errors import BackroomError
from backroom.identity.models import Caller, Role
from backroom.ids import object_id
from backroom.records import Record
from backroom.records.keys import since_key
from backroom.records.model import Create
from backroom.wiring import Core

from infra.demo.load import demo_app
from tests.core.conftest import QueueDriver, bulk

TENANT = "demo"
DEV = Caller(
    user_id="u-dev", email="dev@demo.local", name="Dev", role=Role.DEVELOPER, account_id=TENANT, tenant_id=TENANT
)
IP = "203.0.113.7"


@pytest.fixture
def companies(core: Core) -> Entity:
    core.app.repo.install(TENANT, demo_app(listing_members=True))
    return core.app.repo.entity(TENANT, "companies")


def records(core: Core, entity: Entity) -> list[Record]:
    """Every record, read from the records' own partitions: the oracle of the counts."""
    return list(core.records.stream(TENANT, entity.schema, {}))


def total(core: Core, filters: dict[str, Any]) -> int:
    return int(core.app.find(DEV, "companies", {**filters, "_size": "1"})["total"])


def assert_counts_agree(core: Core, entity: Entity) -> None:
    every = records(core, entity)
    assert total(core, {}) == len(every)
    for kind in ("a", "b", "c"):
        assert total(core, {"type": kind}) == sum(1 for r in every if r.data.get("type") == kind), kind
    assert total(core, {"state": "active,inactive"}) == sum(
        1 for r in every if r.data.get("state") in ("active", "inactive")
    )


def company(i: int, kind: str = "a") -> dict[str, Any]:
    return {"name": f"Company {i:05d}", "type": kind, "state": ("active", "inactive")[i % 2]}


def test_single_writes_move_the_counts_in_their_own_transaction(core: Core, companies: Entity) -> None:
    created = [core.app.create(DEV, "companies", company(i, "abc"[i % 3]), IP)["id"] for i in range(12)]
    assert_counts_agree(core, companies)
    core.app.update(DEV, "companies", created[0], {"type": "c"}, IP)  # a → c
    core.app.update(DEV, "companies", created[1], {"name": "Renamed"}, IP)  # no index value moves
    core.app.delete_one(DEV, "companies", created[2], IP)
    core.app.delete_many(DEV, "companies", created[3:6], IP)
    assert_counts_agree(core, companies)
    assert total(core, {}) == 8


def test_a_bulk_write_replayed_counts_each_record_once(core: Core, companies: Entity) -> None:
    schema = companies.schema
    rows = [Create(rid=object_id(), values=company(i, "ab"[i % 2])) for i in range(150)]
    first = core.records.write_many(TENANT, schema, rows)
    assert all(isinstance(r, Record) for r in first)
    again = core.records.write_many(TENANT, schema, rows)  # a chunk replayed: every create is refused
    assert all(isinstance(r, BackroomError) for r in again)
    assert_counts_agree(core, companies)
    assert total(core, {"type": "a"}) == 75


def test_an_index_dropped_and_added_again_counts_from_zero(core: Core, queue: QueueDriver) -> None:
    """Dropping an index removes its entries record by record, each with its count: a count left
    behind would be added to when the index comes back."""
    evolution, definition = core.evolution, demo_app(listing_members=True)
    evolution.apply(TENANT, definition)
    companies = core.app.repo.entity(TENANT, "companies")
    bulk(core, TENANT, companies, [company(i, "abc"[i % 3]) for i in range(300)])
    without = definition.model_copy(deep=True)
    schema = without.entities[0].schema
    schema.indexes = [i for i in schema.indexes if i.name != "type"]
    for desired in (without, definition):
        evolution.apply(TENANT, desired, allow_destructive=True)
        queue.drain()
    index = core.app.repo.entity(TENANT, "companies").schema.index("type")
    assert index is not None and not index.building
    assert_counts_agree(core, companies)


def test_a_total_reads_the_count_items_however_many_records_match(core: Core, companies: Entity) -> None:
    """The first page and its total cost the same at 200 and 2,200 records (the page's own reads:
    each shard's first entries and the page's records; the total: COUNT_SLOTS items a count)."""
    read = []
    for size in (200, 2_000):
        bulk(core, TENANT, companies, [company(i) for i in range(size)])
        with dynamo.measured() as cost:
            totals = total(core, {"type": "a"}), total(core, {})
        read.append(cost.items_read)
        assert totals[0] == totals[1] == len(records(core, companies))
    assert read[1] <= 1.1 * read[0] and read[1] < 200, read


def test_a_table_with_records_from_before_counts_were_kept_totals_them_by_counting(
    core: Core, companies: Entity
) -> None:
    """A stack upgraded with tables already holding records: no count holds those, so a total is a
    Select=COUNT (exact, at the matches' cost) until the table is marked counted."""
    bulk(core, TENANT, companies, [company(i, "ab"[i % 2]) for i in range(60)])
    core.table.delete(*since_key(TENANT, companies.schema))  # as a table declared before this release
    core.records.define(TENANT, companies.schema)  # declared again, holding records: not marked
    core.app.create(DEV, "companies", company(99), IP)
    assert total(core, {}) == 61 and total(core, {"type": "a"}) == 31
    assert core.records.reader.counted(TENANT, companies.schema, []) is None


def test_a_sorted_page_whose_matches_sit_at_the_far_end_of_the_order_still_answers(
    core: Core, companies: Entity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the sort's index in order is chosen by the share of records that match; when they all sit
    at the end of that order, it stops after as many reads as sorting the matches would take, and the
    matches are read and sorted instead (not a 400)."""
    values = [{**company(i), "state": "inactive", "numberOfEmployees": i} for i in range(1_000)]
    values += [{**company(i), "state": "active", "numberOfEmployees": 10_000 + i} for i in range(200)]
    bulk(core, TENANT, companies, values)
    monkeypatch.setattr(core.records.reader, "max_read", 700)
    query = {"state": "active", "_sortField": "numberOfEmployees", "_sortType": "asc", "_size": "5"}
    page = core.app.find(DEV, "companies", query)
    assert page["total"] == 200
    assert [r["numberOfEmployees"] for r in page["items"]] == [10_000, 10_001, 10_002, 10_003, 10_004]
