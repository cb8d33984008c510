"""Benchmark: the runtime data API's list latency, `companies` at 100,000 records against 10,000.

One emulator and one stack without workers (`make run`'s). The demo app (`infra/demo/tenant/app.json`)
is installed, as `infra/demo/load.py` installs it, in two tenants of their own, each with one
developer (the demo tenant's dev@demo.local would see the demo's own companies too): one holds
BENCH_RUNTIME_SMALL companies, the other BENCH_RUNTIME_LARGE, so both sizes answer the same URL and
are timed in the same run, alternating. The companies are written in bulk the way jobs write records
(`RecordStore.items` + `Table.batch_write`, from BENCH_RUNTIME_THREADS threads): a record item and its
entry in each of the entity's 7 indexes (no unique markers: reads never use them). Record i is named
`Company <i, 6 digits>`; numberOfEmployees spreads the records evenly over 1..100,000 (a step of
100,000 / size apart, in an order unrelated to the names or ids); state and type take their three
choices in turn.

Three queries, over HTTP to the local gateway (`GET /runtime/api/data/companies?...`) with each
tenant's developer token, every answer checked (`total`, the page's records), timed as the median of
BENCH_RUNTIME_REPEATS after one warm-up:

1. `name=Company <n>`: equality on an indexed field, 1 match in either table.
2. `numberOfEmployees=between(a,b)`: a range on an indexed field whose bounds scale with the size
   (100 steps wide), so that it matches exactly 100 records in either table; the default page (20)
   in the default order (id, descending), which the index does not give: every match is read.
3. `_sortField=numberOfEmployees&_sortType=asc&_size=20`: the first page of the whole table in an
   index's order (the 20 smallest numbers).

A list answer carries `total`, the exact match count, so each query also counts its matches: the
sorted page counts every record of the table. A second table says where the time goes: each query's
total (`RecordStore.count`) and page (`RecordStore.find`) timed in this process, and one bare Query of
an index partition, what the emulator alone costs per read at either size (DynamoDB's does not grow
with the partition). Ratios near 1.0 mean the size of the table costs nothing; the goal is below 1.5.
Nothing asserts on time. BENCH_STACK_LOG names a file for the stack's log.

    make bench                                  # with the records benches; this one 17 to 21 minutes on
                                                # 2 cores: 5 to 9 of them the 100,000-record load, most of
                                                # the rest the sorted page at 100,000 (its total counts
                                                # the whole table)
    python -m infra.bench.runtime               # this one alone
    BENCH_RUNTIME_SMALL=1000 BENCH_RUNTIME_LARGE=10000 python -m infra.bench.runtime   # a quick look
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from backroom.api.runtime import query_params
from backroom.app.definition import AppDefinition, Entity
from backroom.app.querylang import Bound, Query, bind, parse
from backroom.identity.models import Role
from backroom.ids import object_id
from backroom.records import Record
from backroom.records.values import normalize
from backroom.wiring import Core

from infra.bench.records import alternate
from infra.bench.stack import Stack, call, running
from infra.demo.load import demo_app

SMALL = int(os.environ.get("BENCH_RUNTIME_SMALL", "10000"))
LARGE = int(os.environ.get("BENCH_RUNTIME_LARGE", "100000"))
REPEATS = int(os.environ.get("BENCH_RUNTIME_REPEATS", "9"))
THREADS = int(os.environ.get("BENCH_RUNTIME_THREADS", "4"))
ENTITY = "companies"
SPREAD = 100_000  # numberOfEmployees runs over 1..SPREAD
MATCHES = 100  # records the range matches, in either table
PAGE = 20  # the runtime's default page size, and the sorted page's
CHUNK = 500  # records per batch_write call
GOAL = 1.5
PASSWORD = "bench-dev-password"  # noqa: S105 - a local stack's throwaway developer
STATES, TYPES = ("active", "inactive", "pending"), ("a", "b", "c")


def employees(k: int, rows: int) -> int:
    """The k-th smallest numberOfEmployees of a table of `rows` records: evenly spread over 1..SPREAD."""
    return 1 + k * SPREAD // rows


def rank(i: int, rows: int) -> int:
    """Where record i stands by numberOfEmployees: a permutation of 0..rows-1 unrelated to i's order."""
    step = next(p for p in range(7919, 7919 + rows + 2) if math.gcd(p, rows) == 1)
    return i * step % rows


def name(i: int) -> str:
    return f"Company {i:06d}"


def company(i: int, rows: int, created: int) -> dict[str, Any]:
    return {
        "name": name(i),
        "state": STATES[i % 3],
        "type": TYPES[i // 3 % 3],
        "color": ("red", "green", "blue", "yellow")[i % 4],
        "numberOfEmployees": employees(rank(i, rows), rows),
        "isCustomer": i % 2 == 0,
        "contactInformation": {"phoneNumber": f"+1 555 {i:07d}", "email": f"info{i}@company.example"},
        "addresses": [{"addressLine": f"{i} Main St", "zipCode": f"{i % 100_000:05d}", "city": "Springfield"}],
        "lastUpdate": created,
    }


# Set-up ------------------------------------------------------------------------------------------------
def tenant(stack: Stack, key: str, app: AppDefinition) -> tuple[str, str]:
    """A tenant of its own with one developer and the demo app installed; its id and the developer's token."""
    core = stack.core
    tenant_id = f"be7c{key:0>28}"
    email = f"dev@bench-{key}.local"
    core.identity.create_account(tenant_id, f"bench-{key}")
    core.identity.create_user(email, PASSWORD, name=f"Bench {key}", role=Role.DEVELOPER, account_id=tenant_id)
    core.app.repo.install(tenant_id, app)
    login = json.dumps({"email": email, "password": PASSWORD}).encode()
    return tenant_id, call(stack.base, "/runtime/api/auth/login", body=login)["token"]


def fill(core: Core, tenant_id: str, entity: Entity, rows: int) -> None:
    """Write `rows` companies as jobs write records: their items, in batches, from THREADS threads."""
    schema, created = entity.schema, int(time.time() * 1000)

    def write(start: int) -> None:
        items: list[dict[str, Any]] = []
        loaded: list[Record] = []
        for i in range(start, min(rows, start + CHUNK)):
            checked = normalize(schema, company(i, rows, created))
            if checked.errors:
                raise SystemExit(f"{name(i)}: {checked.errors}")
            record = Record(rid=object_id(), data=checked.data, created_at=created, updated_at=created)
            items += core.records.items(tenant_id, schema, record)
            loaded.append(record)
        core.table.batch_write(puts=items)
        core.records.add_counts(tenant_id, schema, loaded)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(write, range(0, rows, CHUNK)))


# The queries ---------------------------------------------------------------------------------------------
Check = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Asked:
    shape: str  # the query as the acceptance writes it
    query: str  # its query string for a table of this size
    right: Check  # what a right answer holds


def queries(rows: int) -> dict[str, Asked]:
    """What each query asks of a table of `rows` records, and what a right answer holds."""
    one = name(rows // 2)
    first = rows // 2 - MATCHES // 2  # the range: the MATCHES numbers from this rank on
    lo, hi = employees(first, rows), employees(first + MATCHES, rows) - 1
    smallest = [employees(k, rows) for k in range(PAGE)]

    def numbers(page: dict[str, Any]) -> list[int]:
        return [item["numberOfEmployees"] for item in page["items"]]

    return {
        "equality": Asked(
            "name=<one value>",
            f"name={urllib.parse.quote(one)}",
            lambda page: page["total"] == 1 and [item["name"] for item in page["items"]] == [one],
        ),
        "range": Asked(
            f"numberOfEmployees=between(a,b), {MATCHES} matches",
            f"numberOfEmployees=between({lo},{hi})",
            lambda page: (
                page["total"] == MATCHES and len(page["items"]) == PAGE and all(lo <= n <= hi for n in numbers(page))
            ),
        ),
        "sorted page": Asked(
            f"_sortField=numberOfEmployees&_sortType=asc&_size={PAGE}",
            f"_sortField=numberOfEmployees&_sortType=asc&_size={PAGE}",
            lambda page: page["total"] == rows and numbers(page) == smallest,
        ),
    }


Timings = dict[str, dict[str, list[float]]]  # what was timed -> size key -> seconds


def time_http(stack: Stack, tokens: dict[str, str], asked: dict[str, dict[str, Asked]]) -> Timings:
    """Each query over HTTP, the sizes alternating, its answer checked every time."""
    timings: Timings = {}
    for what in asked["small"]:

        def get(key: str, what: str = what) -> None:
            one = asked[key][what]
            page = call(stack.base, f"/runtime/api/data/{ENTITY}?{one.query}", tokens[key])
            if not one.right(page):
                summary = {"total": page.get("total"), "items": [i.get("name") for i in page.get("items", [])]}
                raise SystemExit(f"{ENTITY}?{one.query}: a wrong answer {summary}")

        timings[what] = alternate(list(tokens), REPEATS, get)
        small, large = (statistics.median(timings[what][key]) * 1000 for key in tokens)
        print(
            f"{what}: {SMALL:,} records {small:.1f} ms, {LARGE:,} records {large:.1f} ms (median of {REPEATS}), "
            f"ratio {large / small:.2f}",
            flush=True,
        )
    return timings


def time_parts(core: Core, tenants: dict[str, str], entity: Entity, asked: dict[str, dict[str, Asked]]) -> Timings:
    """Each query's total and page, read in this process as the service reads them, and the emulator's floor."""
    schema, timings = entity.schema, {}
    for what in asked["small"]:
        bound = {
            key: (query, bind(schema, query))
            for key in tenants
            for query in [parse(query_params({"rawQueryString": asked[key][what].query}))]
        }

        def count(key: str, bound: dict[str, tuple[Query, Bound]] = bound) -> None:
            core.records.count(tenants[key], schema, bound[key][1].conditions)

        def find(key: str, bound: dict[str, tuple[Query, Bound]] = bound) -> None:
            query, checked = bound[key]
            core.records.find(tenants[key], schema, checked.conditions, sort=checked.sort, size=query.size)

        timings[f"{what}: RecordStore.count (its total)"] = alternate(list(tenants), REPEATS, count)
        timings[f"{what}: RecordStore.find (its page)"] = alternate(list(tenants), REPEATS, find)
    # What any read of an index costs the emulator: one Query of a page of keys from one index partition.
    partitions = {
        key: index_partition(core, tenant_id, entity, "numberOfEmployees") for key, tenant_id in tenants.items()
    }

    def raw(key: str) -> None:
        list(core.table.query("pk = :p", {":p": partitions[key]}, limit=PAGE + 1, attributes=["sk"]))

    timings[f"emulator: 1 Query of {PAGE + 1} keys from 1 index partition (1/{schema.shards})"] = alternate(
        list(tenants), REPEATS, raw
    )
    return timings


def index_partition(core: Core, tenant_id: str, entity: Entity, index: str) -> str:
    """The partition key of one of `index`'s partitions: a record's entry in it (its `keys`) names it."""
    record = core.records.find(tenant_id, entity.schema, [], size=1).records[0]
    stored = core.records.get(tenant_id, entity.schema, record.rid)
    if stored is None:
        raise SystemExit(f"{entity.name}: record {record.rid} is listed but cannot be read")
    return next(pk for pk, _ in stored.keys if f"#{entity.name}#{index}#" in pk)


def table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        cells = enumerate(zip(row, widths, strict=True))
        print("  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in cells).rstrip())


def ratios(timings: Timings, goal: bool) -> list[tuple[str, ...]]:
    lines: list[tuple[str, ...]] = []
    for what, seconds in timings.items():
        small, large = (statistics.median(seconds[key]) * 1000 for key in ("small", "large"))
        line = (what, f"{small:.1f} ms", f"{large:.1f} ms", f"{large / small:.2f}")
        lines.append((*line, f"< {GOAL} {'ok' if large / small < GOAL else 'MISSED'}") if goal else line)
    return lines


def main() -> int:
    began = time.monotonic()
    sizes = {"small": SMALL, "large": LARGE}
    app = demo_app()
    entity = next(e for e in app.entities if e.name == ENTITY)
    print(f"runtime data API: {ENTITY} at {SMALL:,} and {LARGE:,} records", flush=True)
    with running(workers=False) as stack:
        tenants = {key: tenant(stack, key, app) for key in sizes}
        for key, rows in sizes.items():
            started = time.monotonic()
            fill(stack.core, tenants[key][0], entity, rows)
            seconds = time.monotonic() - started
            print(f"filled {ENTITY}: {rows:,} records in {seconds:.0f} s, {rows / seconds:,.0f} records/s", flush=True)
        asked = {key: queries(rows) for key, rows in sizes.items()}
        for key, rows in sizes.items():
            print(f"  queries at {rows:,}: " + "; ".join(urllib.parse.unquote(a.query) for a in asked[key].values()))
        http = time_http(stack, {key: token for key, (_, token) in tenants.items()}, asked)
        parts = time_parts(stack.core, {key: tenant_id for key, (tenant_id, _) in tenants.items()}, entity, asked)
    http = {asked["small"][what].shape: seconds for what, seconds in http.items()}
    print()
    print(f"GET /runtime/api/data/{ENTITY}?...  over HTTP, median of {REPEATS} after a warm-up")
    table([("query", f"p50 {SMALL:,}", f"p50 {LARGE:,}", "ratio", "goal"), *ratios(http, goal=True)])
    print()
    print("where the time goes: the same queries in this process (no HTTP, auth or views), and the emulator alone")
    table([("part", f"p50 {SMALL:,}", f"p50 {LARGE:,}", "ratio"), *ratios(parts, goal=False)])
    print(f"runtime bench: {time.monotonic() - began:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
