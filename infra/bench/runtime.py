"""Benchmark: the runtime data API's list queries, `companies` at 100,000 records against 10,000: the
latency of each and the DynamoDB items it reads, which say whether a query's cost grows with the table.

One emulator and one stack without workers (`make run`'s): `running` prints the DynamoDB engine
(DynamoDB Local where it can run; moto's, whose Queries slow down as a partition grows, otherwise).
The demo app (`infra/demo/tenant/app.json`) is installed, as `infra/demo/load.py` installs it, in two
tenants of their own, each with one developer (the demo tenant's dev@demo.local would see the demo's
own companies too): one holds BENCH_RUNTIME_SMALL companies, the other BENCH_RUNTIME_LARGE, so both
sizes answer the same URL and are timed in the same run, alternating. The companies are written in
bulk the way jobs write records (`RecordStore.items` + `Table.batch_write`, from BENCH_RUNTIME_THREADS
threads): a record item and its entry in each of the entity's 8 indexes, then the table's counts
(`RecordStore.add_counts`; no unique markers: reads never use them). Record i is named
`Company <i, 6 digits>`; numberOfEmployees spreads the records evenly over 1..100,000 (a step of
100,000 / size apart, in an order unrelated to the names or ids); state and type take their three
choices in turn.

Six queries (issue 25's), each with the same number of matches or page at either size but the sorted
ones, whose `total` is the table's or a third of it:

1. `_sortField=numberOfEmployees&_sortType=asc&_size=20`: the first page of the whole table in an
   index's order (the 20 smallest numbers).
2. `name=Company <n>`: equality on an indexed field, 1 match.
3. `numberOfEmployees=between(a,b)`: a range on an indexed field whose bounds scale with the size
   (100 steps wide), so that it matches exactly 100 records; the default page (20) in the default
   order (id, descending), which the index does not give.
4. `name=like(/Company 00000)`: a prefix, the first 10 names (`Company 000000` to `Company 000009`).
5. `type=a&_sortField=name&_sortType=asc`: an equality (a third of the records) sorted by another field.
6. The 10th page of query 1: `_offset=` the id of its 180th record, the `offset` a client following
   pages of 20 holds after the 9th (read once, in set-up, with `_size=180`).

Each is asked over HTTP to the local gateway (`GET /runtime/api/data/companies?...`) with each
tenant's developer token, every answer checked (`total`, the page's records), timed as the median of
BENCH_RUNTIME_REPEATS after one warm-up. What it reads is measured once at each size in this process,
by the same call the HTTP handler makes (`AppData.find`) inside `backroom.dynamo.measured()`: items
read (the engine's ScannedCount: what DynamoDB charges for, whatever the emulator's speed), items
returned and read capacity units (DynamoDB Local's; moto's are a fixed guess per call). A query the
API refuses at a size (a 400: it would read more than a request may) prints the refusal in place of
its figures. Ratios near 1.0 mean the size of the table costs nothing; the goals are latency <= 1.5
and items read <= 1.1. Nothing asserts on time. A last line times one bare Query of an index
partition, what the engine alone costs per read at either size (DynamoDB's does not grow with the
partition). BENCH_STACK_LOG names a file for the stack's log.

    make bench                                  # with the other benches; this one 23 minutes on 2 cores
                                                # on DynamoDB Local with the test suite sharing them, 19
                                                # of them the 100,000-record load (the queries are fast)
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
import urllib.error
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from backroom.api.runtime import query_params
from backroom.app.definition import AppDefinition, Entity
from backroom.dynamo import Cost, measured
from backroom.errors import BackroomError
from backroom.identity.models import Caller, Role
from backroom.ids import object_id
from backroom.records import Record
from backroom.records.values import normalize
from backroom.wiring import Core

from infra.bench.records import alternate
from infra.bench.stack import Stack, call, running
from infra.demo.load import demo_app

SMALL = int(os.environ.get("BENCH_RUNTIME_SMALL", "10000"))
LARGE = int(os.environ.get("BENCH_RUNTIME_LARGE", "100000"))
SIZES = {"small": SMALL, "large": LARGE}
REPEATS = int(os.environ.get("BENCH_RUNTIME_REPEATS", "9"))
THREADS = int(os.environ.get("BENCH_RUNTIME_THREADS", "4"))
ENTITY = "companies"
SPREAD = 100_000  # numberOfEmployees runs over 1..SPREAD
MATCHES = 100  # records the range matches, in either table
PAGE = 20  # the runtime's default page size, and the sorted page's
TENTH = 10  # the page the paging query asks for
PREFIX, PREFIXED = "Company 00000", 10  # a prefix of the first 10 names, at any size from 10 records
CHUNK = 500  # records per batch_write call
GOAL, READ_GOAL = 1.5, 1.1  # latency and items read, 100k / 10k
PASSWORD = "bench-dev-password"  # noqa: S105 - a local stack's throwaway developer
STATES, TYPES = ("active", "inactive", "pending"), ("a", "b", "c")
SORTED = f"_sortField=numberOfEmployees&_sortType=asc&_size={PAGE}"


def employees(k: int, rows: int) -> int:
    """The k-th smallest numberOfEmployees of a table of `rows` records: evenly spread over 1..SPREAD."""
    return 1 + k * SPREAD // rows


def rank(i: int, rows: int) -> int:
    """Where record i stands by numberOfEmployees: a permutation of 0..rows-1 unrelated to i's order."""
    step = next(p for p in range(7919, 7919 + rows + 2) if math.gcd(p, rows) == 1)
    return i * step % rows


def name(i: int) -> str:
    return f"Company {i:06d}"


def kind(i: int) -> str:
    return TYPES[i // 3 % 3]


def company(i: int, rows: int, created: int) -> dict[str, Any]:
    return {
        "name": name(i),
        "state": STATES[i % 3],
        "type": kind(i),
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


@dataclass
class Refusable:
    """What a call answered, or why the API refused it (a 400's message)."""

    value: Any = None
    refused: str | None = None


def find(core: Core, caller: Caller, query: str) -> Refusable:
    """The answer to `GET /data/companies?<query>` by the call its HTTP handler makes, or its 400."""
    try:
        return Refusable(core.app.find(caller, ENTITY, query_params({"rawQueryString": query})))
    except BackroomError as err:
        if err.status != 400:
            raise
        return Refusable(refused=err.message)


def page_offset(core: Core, caller: Caller) -> Refusable:
    """The `offset` the sorted query's 9th page answers: the id of its 180th record, read in one page."""
    found = find(core, caller, SORTED.replace(f"_size={PAGE}", f"_size={(TENTH - 1) * PAGE}"))
    return found if found.refused else Refusable(found.value["items"][-1]["id"])


@dataclass(frozen=True)
class Asked:
    shape: str  # the query as the acceptance writes it
    query: str  # its query string for a table of this size
    right: Check  # what a right answer holds
    refused: str | None = None  # why it cannot be asked at this size (its set-up was refused)


def queries(rows: int, tenth: Refusable) -> dict[str, Asked]:
    """What each query asks of a table of `rows` records, and what a right answer holds. `tenth` is the
    `offset` the sorted query's 9th page answers (`page_offset`), or why it could not be read."""
    one = name(rows // 2)
    first = rows // 2 - MATCHES // 2  # the range: the MATCHES numbers from this rank on
    lo, hi = employees(first, rows), employees(first + MATCHES, rows) - 1
    smallest = [employees(k, rows) for k in range(PAGE)]
    later = [employees(k, rows) for k in range((TENTH - 1) * PAGE, TENTH * PAGE)]
    typed = [name(i) for i in range(rows) if kind(i) == "a"]  # in name order
    prefixed = [name(i) for i in range(PREFIXED)]
    by_name = "type=a&_sortField=name&_sortType=asc"

    def numbers(page: dict[str, Any]) -> list[int]:
        return [item["numberOfEmployees"] for item in page["items"]]

    def names(page: dict[str, Any]) -> list[str]:
        return [item["name"] for item in page["items"]]

    return {
        "sorted page": Asked(SORTED, SORTED, lambda page: page["total"] == rows and numbers(page) == smallest),
        "equality": Asked(
            "name=<one value>",
            f"name={urllib.parse.quote(one)}",
            lambda page: page["total"] == 1 and names(page) == [one],
        ),
        "range": Asked(
            f"numberOfEmployees=between(a,b), {MATCHES} matches",
            f"numberOfEmployees=between({lo},{hi})",
            lambda page: (
                page["total"] == MATCHES and len(page["items"]) == PAGE and all(lo <= n <= hi for n in numbers(page))
            ),
        ),
        "prefix": Asked(
            f"name=like(/{PREFIX}), {PREFIXED} matches",
            f"name={urllib.parse.quote(f'like(/{PREFIX})')}",
            lambda page: page["total"] == PREFIXED and sorted(names(page)) == prefixed,
        ),
        "type, by name": Asked(
            by_name, by_name, lambda page: page["total"] == len(typed) and names(page) == typed[:PAGE]
        ),
        f"page {TENTH}": Asked(
            f"{SORTED}&_offset=<page {TENTH - 1}'s offset>",
            f"{SORTED}&_offset={tenth.value}",
            lambda page: page["total"] == rows and numbers(page) == later,
            refused=tenth.refused,
        ),
    }


@dataclass
class Figures:
    """One query at one size: what one answer read, its latencies over HTTP, or why the API refused it."""

    cost: Cost = field(default_factory=Cost)
    seconds: list[float] = field(default_factory=list)
    refused: str | None = None


def read_by(core: Core, caller: Caller, asked: Asked) -> Figures:
    """What one answer to `asked` costs DynamoDB (`measured`), its answer checked; or why it is refused."""
    if asked.refused:
        return Figures(refused=asked.refused)
    with measured() as cost:
        found = find(core, caller, asked.query)
    if found.refused:
        return Figures(refused=found.refused)
    if not asked.right(found.value):
        raise SystemExit(f"{ENTITY}?{asked.query}: a wrong answer {summary(found.value)}")
    return Figures(cost=cost)


def summary(page: dict[str, Any]) -> dict[str, Any]:
    return {"total": page.get("total"), "items": [i.get("name") for i in page.get("items", [])]}


Results = dict[str, dict[str, Figures]]  # query -> size key -> its figures


def measure(stack: Stack, users: dict[str, tuple[Caller, str]], asked: dict[str, dict[str, Asked]]) -> Results:
    """Each query at each size: what it reads, then its latency over HTTP (the sizes alternating, every
    answer checked), where the API does not refuse it."""
    results: Results = {}
    for what in asked["small"]:
        figures = {key: read_by(stack.core, caller, asked[key][what]) for key, (caller, _) in users.items()}

        def get(key: str, what: str = what) -> None:
            one = asked[key][what]
            try:
                page = call(stack.base, f"/runtime/api/data/{ENTITY}?{one.query}", users[key][1])
            except urllib.error.HTTPError as err:
                raise SystemExit(f"{ENTITY}?{one.query}: {err.code} over HTTP, {err.read()[:300]!r}") from err
            if not one.right(page):
                raise SystemExit(f"{ENTITY}?{one.query}: a wrong answer {summary(page)}")

        answering = [key for key, f in figures.items() if f.refused is None]
        for key, seconds in alternate(answering, REPEATS, get).items():
            figures[key].seconds = seconds
        results[what] = figures
        print(f"{what}: " + "; ".join(progress(SIZES[key], f) for key, f in figures.items()), flush=True)
    return results


def progress(rows: int, figures: Figures) -> str:
    if figures.refused:
        return f"{rows:,} records 400 {figures.refused}"
    return f"{rows:,} records {p50(figures)} ({figures.cost.items_read:,} items read)"


def p50(figures: Figures) -> str:
    return f"{statistics.median(figures.seconds) * 1000:.1f} ms"


def engine_floor(core: Core, tenants: dict[str, str], entity: Entity) -> dict[str, list[float]]:
    """What any read of an index costs the engine: one Query of a page of keys from one index partition."""
    partitions = {
        key: index_partition(core, tenant_id, entity, "numberOfEmployees") for key, tenant_id in tenants.items()
    }

    def raw(key: str) -> None:
        list(core.table.query("pk = :p", {":p": partitions[key]}, limit=PAGE + 1, attributes=["sk"]))

    return alternate(list(tenants), REPEATS, raw)


def index_partition(core: Core, tenant_id: str, entity: Entity, index: str) -> str:
    """The partition key of one of `index`'s partitions: a record's entry in it (its `keys`) names it."""
    record = core.records.find(tenant_id, entity.schema, [], size=1).records[0]
    stored = core.records.get(tenant_id, entity.schema, record.rid)
    if stored is None:
        raise SystemExit(f"{entity.name}: record {record.rid} is listed but cannot be read")
    return next(pk for pk, _ in stored.keys if f"#{entity.name}#{index}#" in pk)


# The report ----------------------------------------------------------------------------------------------


def table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        cells = enumerate(zip(row, widths, strict=True))
        print("  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in cells).rstrip())


def ratio(small: Figures, large: Figures, of: Callable[[Figures], float], goal: float) -> tuple[str, str]:
    """large / small of a figure, and whether it meets `goal` (at most it); nothing where either was refused."""
    if small.refused or large.refused:
        return ("-", "-")
    lo, hi = of(small), of(large)
    if lo == 0:
        return ("-", "ok" if hi == 0 else "MISSED")
    return (f"{hi / lo:.2f}", "ok" if hi / lo <= goal else "MISSED")


def latency(figures: Figures) -> float:
    return statistics.median(figures.seconds)


def items_read(figures: Figures) -> float:
    return figures.cost.items_read


def line(what: str, small: Figures, large: Figures) -> tuple[str, ...]:
    """A query's row: latency, items read and read units at either size (400 where refused), the ratios
    against their goals."""

    def cell(figures: Figures, shown: Callable[[Figures], str]) -> str:
        return "400" if figures.refused else shown(figures)

    return (
        what,
        cell(small, p50),
        cell(large, p50),
        *ratio(small, large, latency, GOAL),
        cell(small, lambda f: f"{f.cost.items_read:,}"),
        cell(large, lambda f: f"{f.cost.items_read:,}"),
        *ratio(small, large, items_read, READ_GOAL),
        cell(small, lambda f: f"{f.cost.read_units:,.1f}"),
        cell(large, lambda f: f"{f.cost.read_units:,.1f}"),
    )


def report(results: Results, asked: dict[str, Asked], engine: str) -> None:
    print()
    print(f"GET /runtime/api/data/{ENTITY}?...  on {engine}")
    print(f"  latency: over HTTP, median of {REPEATS} after a warm-up (goal: ratio <= {GOAL})")
    print(
        f"  items read, read units: one request, by the handler's call (AppData.find) in this process "
        f"(goal: ratio <= {READ_GOAL}; units are moto's guess on moto)"
    )
    small, large = f"{SMALL:,}", f"{LARGE:,}"
    header = ("query", f"p50 {small}", f"p50 {large}", "ratio", "goal", f"read {small}", f"read {large}", "ratio")
    table(
        [
            (*header, "goal", f"units {small}", f"units {large}"),
            *(line(what, f["small"], f["large"]) for what, f in results.items()),
        ]
    )
    for what, figures in results.items():
        print(f"  {what}: {asked[what].shape}")
        for key, f in figures.items():
            if f.refused:
                print(f"    at {SIZES[key]:,} records: 400 {f.refused}")


def main() -> int:
    began = time.monotonic()
    app = demo_app()
    entity = next(e for e in app.entities if e.name == ENTITY)
    print(f"runtime data API: {ENTITY} at {SMALL:,} and {LARGE:,} records", flush=True)
    with running(workers=False) as stack:
        tenants = {key: tenant(stack, key, app) for key in SIZES}
        for key, rows in SIZES.items():
            started = time.monotonic()
            fill(stack.core, tenants[key][0], entity, rows)
            seconds = time.monotonic() - started
            print(f"filled {ENTITY}: {rows:,} records in {seconds:.0f} s, {rows / seconds:,.0f} records/s", flush=True)
        users = {key: (stack.core.identity.authenticate(token), token) for key, (_, token) in tenants.items()}
        asked = {key: queries(rows, page_offset(stack.core, users[key][0])) for key, rows in SIZES.items()}
        for key, rows in SIZES.items():
            print(f"  queries at {rows:,}: " + "; ".join(urllib.parse.unquote(a.query) for a in asked[key].values()))
        results = measure(stack, users, asked)
        floor = engine_floor(stack.core, {key: tenant_id for key, (tenant_id, _) in tenants.items()}, entity)
        engine = stack.endpoints.engine
    report(results, asked["small"], engine)
    small, large = (statistics.median(floor[key]) * 1000 for key in SIZES)
    print(
        f"the engine alone: 1 Query of {PAGE + 1} keys from 1 index partition (1/{entity.schema.shards}): "
        f"{small:.1f} ms at {SMALL:,}, {large:.1f} ms at {LARGE:,}, ratio {large / small:.2f}"
    )
    print(f"runtime bench: {time.monotonic() - began:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
