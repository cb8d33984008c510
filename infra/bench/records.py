"""Benchmark: the records model on one emulator: import throughput, extract and update latency by table size.

One emulator and one stack with workers (`make run`'s, with BENCH_POLLERS pollers on the jobs
queue) for every measurement, each against a baseline measured in the same run:

1. Import: a CSV of BENCH_IMPORT_ROWS sales rows is uploaded (`POST /gateway/import/v1/files`) and
   imported (`POST /gateway/errand/v1/imports/file`, type `sales-1`, period 3) like a user does,
   timed from the POST to the errand's `Complete`. The items it wrote are counted on the emulator:
   Select=COUNT Queries over every partition the table's records and index entries can sit in
   (records, each declared index, the file's source index), before and after. The baseline loads
   the same rows, as the same items (`RecordStore.items`), with boto3's `Table.batch_writer()`
   from 1 thread and from 4 threads; the ratio is import items/s over the 4-thread load's.
2. Extract: two tables of 10,000 and 100,000 rows (indexes on region and on amount). Equality
   (`region=north`, 2,500 matches in both) over HTTP as `extract.py` does; a range
   (`amount` between 0 and 2,499, 2,500 matches in both) and a page sorted by amount, descending,
   through `RecordStore.find` (the Extract API filters on equality only). Pages of 2,000 rows.
3. Update: `RecordStore.update` (one transaction: the record, its moved amount entry) of records
   of either table, alternating, median of BENCH_UPDATES.

Ratios near 1.0 mean the size of a table costs nothing. Nothing asserts on time.

    make bench                                     # everything: about 21 minutes on 2 cores, the emulator at 4.4 GB
    BENCH_IMPORT_ROWS=10000 BENCH_LARGE_ROWS=20000 BENCH_UPDATES=20 make bench   # a quick look
"""

from __future__ import annotations

import io
import json
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import boto3
from backroom.calcengine.tables import custom_table
from backroom.records import Condition, Record, Schema, Sort, typed
from backroom.records.query import plan
from backroom.wiring import Core

from infra.bench import extract
from infra.bench.stack import TENANT, Stack, call, running

IMPORT_ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "100000"))
SMALL_ROWS = int(os.environ.get("BENCH_SMALL_ROWS", "10000"))
LARGE_ROWS = int(os.environ.get("BENCH_LARGE_ROWS", "100000"))
UPDATES = int(os.environ.get("BENCH_UPDATES", "50"))
POLLERS = int(os.environ.get("BENCH_POLLERS", "4"))
RAW_THREADS = 4
FILE_TYPE, TABLE, PERIOD = "sales-1", "sales", 3  # the demo's import file type and its table
PARTICIPANTS = 200  # distinct participant_eid values of the imported rows


# 1. Import ------------------------------------------------------------------------------------------
def sales_rows(rows: int) -> list[list[str]]:
    return [[f"p{i % PARTICIPANTS:04d}", str(PERIOD), f"{i % 100_000 / 100:.2f}"] for i in range(rows)]


def sales_csv(rows: int) -> bytes:
    out = io.StringIO()
    out.write("participant_eid,period,amount\n")
    out.writelines(",".join(row) + "\n" for row in sales_rows(rows))
    return out.getvalue().encode()


def stored(core: Core, schema: Schema, source: str) -> dict[str, int]:
    """Items of the table on the emulator, by kind: sums of Select=COUNT Queries over their partitions.

    Records are counted on the table's record partitions; each index's entries with a filter only
    that index serves (equality on its partition fields, for every value the rows hold; its sort
    field not empty), checked with the planner; the source index for the import file's records.
    """
    values: dict[str, list[Any]] = {
        "participant_eid": [f"p{i:04d}" for i in range(PARTICIPANTS)],
        "period": [typed(schema, "period", PERIOD)],
    }
    counts = {"records": core.records.count(TENANT, schema, [])}
    for index in schema.indexes:
        if len(index.equals) > 1 or any(f not in values for f in index.equals):
            raise SystemExit(f"{schema.name}: the bench cannot enumerate the partitions of index {index.name}")
        batches = [values[index.equals[0]][s : s + 100] for s in range(0, PARTICIPANTS, 100)] if index.equals else [[]]
        total = 0
        for batch in batches:
            conditions = [Condition(f, "eq", tuple(batch)) for f in index.equals]
            conditions += [Condition(index.sort, "notEmpty")] if index.sort else []
            chosen = plan(schema, conditions)
            if chosen.index != index or chosen.residual:
                raise SystemExit(f"{schema.name}: no filter counts exactly the entries of index {index.name}")
            total += core.records.count(TENANT, schema, conditions)
        counts[f"index {index.name}"] = total
    counts["source index"] = core.records.count_source(TENANT, schema, source)
    return counts


def run_import(stack: Stack, rows: int) -> tuple[float, int, dict[str, int]]:
    """Upload and import `rows` rows over HTTP; the seconds from the POST to Complete, and the items added."""
    core, base, token = stack.core, stack.base, stack.token
    schema = custom_table(core.records, TENANT, TABLE)
    uploaded = call(
        base, "/gateway/import/v1/files?name=bench-sales.csv", token, sales_csv(rows), content_type="text/csv"
    )
    source = f"file:{uploaded['id']}"
    before = stored(core, schema, source)
    request = {"importFileId": uploaded["id"], "periodRange": [PERIOD], "importFileTypeId": FILE_TYPE}
    started = time.monotonic()
    errand = call(base, "/gateway/errand/v1/imports/file", token, json.dumps(request).encode())
    while errand["state"] == "Running":
        time.sleep(0.25)
        errand = call(base, f"/gateway/errand/v1/errands/{errand['id']}", token)
    seconds = time.monotonic() - started
    if errand["state"] != "Complete":
        logs = call(base, f"/gateway/errand/v1/errands/{errand['id']}/logs?size=5", token)["results"]
        raise SystemExit(f"the import ended {errand['state']}: {[e['logMessage'] for e in logs]}")
    after = stored(core, schema, source)
    added = {kind: after[kind] - before[kind] for kind in after}
    if added["records"] != rows:
        raise SystemExit(f"the import of {rows} rows added {added['records']} records")
    job_seconds = (errand["endTime"] - errand["startTime"]) / 1000
    print(f"  (the job itself, from planned to finished: {job_seconds:.1f} s)", flush=True)
    return seconds, sum(added.values()), added


def raw_items(core: Core, schema: Schema, rows: int, tag: str) -> list[dict[str, Any]]:
    """The items an import of the rows writes (`RecordStore.items`), as `Table.batch_writer()` takes them."""
    header = ["participant_eid", "period", "amount"]
    created = int(time.time() * 1000)
    items = []
    for i, row in enumerate(sales_rows(rows)):
        data = {name: typed(schema, name, raw) for name, raw in zip(header, row, strict=True)}
        record = Record(
            rid=f"{created:013d}.{tag:0>12}.{i:09d}",
            data=data,
            source=f"file:{tag}",
            periods=[PERIOD],
            created_at=created,
        )
        for item in core.records.items(TENANT, schema, record):
            if "keys" in item:
                item["keys"] = [list(k) for k in item["keys"]]
            items.append({k: v for k, v in item.items() if v is not None})
    return items


def raw_load(stack: Stack, items: list[dict[str, Any]], threads: int) -> float:
    """Seconds `threads` threads take to put `items` with boto3's batch writer, each a contiguous share."""
    name = stack.core.settings.table_name
    where = stack.endpoints.of("dynamodb")
    tables = [
        boto3.session.Session().resource("dynamodb", endpoint_url=where, region_name="us-east-1").Table(name)
        for _ in range(threads)
    ]
    shares = [items[k * len(items) // threads : (k + 1) * len(items) // threads] for k in range(threads)]
    gate = threading.Barrier(threads + 1)

    def put(k: int) -> None:
        gate.wait()
        with tables[k].batch_writer() as writer:
            for item in shares[k]:
                writer.put_item(Item=item)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        done = [pool.submit(put, k) for k in range(threads)]
        gate.wait()
        started = time.monotonic()
        for future in done:
            future.result()
        return time.monotonic() - started


def bench_import(stack: Stack) -> None:
    core = stack.core
    print(f"import of {IMPORT_ROWS:,} rows, {POLLERS} workers (pollers) on the jobs queue", flush=True)
    seconds, items, added = run_import(stack, IMPORT_ROWS)
    parts = ", ".join(f"{kind} {count:,}" for kind, count in added.items())
    print(f"import: {seconds:.1f} s, {IMPORT_ROWS / seconds:,.0f} rows/s, {items / seconds:,.0f} items/s")
    print(f"  items it wrote (Select=COUNT Queries on the emulator, after - before): {items:,} = {parts}")
    print(f"  DynamoDB items written per row: {items / IMPORT_ROWS:.2f}", flush=True)
    sales = custom_table(core.records, TENANT, TABLE)
    rates = {}
    for threads in (1, RAW_THREADS):
        schema = sales.model_copy(update={"name": f"bench_raw_{threads}"})
        core.records.define(TENANT, schema)
        loaded = raw_items(core, schema, IMPORT_ROWS, f"raw{threads}")
        took = raw_load(stack, loaded, threads)
        rates[threads] = len(loaded) / took
        print(
            f"raw Table.batch_writer() load of the same rows ({len(loaded):,} items), {threads} thread(s): "
            f"{took:.1f} s, {rates[threads]:,.0f} items/s",
            flush=True,
        )
        del loaded
    ratio = items / seconds / rates[RAW_THREADS]
    print(f"  import items/s / raw {RAW_THREADS}-thread items/s: {ratio:.2f} (goal >= 0.8)")
    print(f"  raw {RAW_THREADS} threads / 1 thread: {rates[RAW_THREADS] / rates[1]:.2f}", flush=True)


# 2. Range and sorted page ----------------------------------------------------------------------------
def alternate(names: Sequence[str], repeats: int, run: Callable[[str], None]) -> dict[str, list[float]]:
    """Seconds of `run` on each name, alternating names, after one warm-up each."""
    for name in names:
        run(name)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            started = time.perf_counter()
            run(name)
            seconds[name].append(time.perf_counter() - started)
    return seconds


def report(what: str, sizes: dict[str, int], seconds: dict[str, list[float]]) -> float:
    (small_name, small_rows), (large_name, large_rows) = sizes.items()
    small, large = statistics.median(seconds[small_name]), statistics.median(seconds[large_name])
    print(
        f"{what}: {small_rows:,} rows {small * 1000:.1f} ms, {large_rows:,} rows {large * 1000:.1f} ms "
        f"(median of {len(seconds[small_name])})"
    )
    print(f"  latency ratio {large_rows:,} / {small_rows:,} rows: {large / small:.2f} (goal < 1.5)", flush=True)
    return large


def bench_finds(core: Core, schemas: dict[str, Schema], sizes: dict[str, int]) -> None:
    page = extract.PAGE
    last = Decimal(extract.MATCHING - 1)
    between = [Condition("amount", "between", (Decimal(0), last))]

    def in_range(name: str) -> None:
        found = core.records.find(TENANT, schemas[name], between, size=page).records
        amounts = [r.data["amount"] for r in found]
        if len(found) != page or amounts != sorted(amounts) or not 0 <= amounts[0] <= amounts[-1] <= last:
            raise SystemExit(f"{name}: amount between 0 and {last}: a wrong page")

    def by_amount(name: str) -> None:
        found = core.records.find(TENANT, schemas[name], [], sort=Sort("amount", True), size=page).records
        amounts = [r.data["amount"] for r in found]
        if len(found) != page or amounts != sorted(amounts, reverse=True):
            raise SystemExit(f"{name}: sorted by amount: a wrong page")

    names = list(sizes)
    report(
        f"find amount between 0 and {last} (page of {page:,} of {extract.MATCHING:,} matches)",
        sizes,
        alternate(names, extract.REPEATS, in_range),
    )
    report(f"find sorted by amount, descending (page of {page:,})", sizes, alternate(names, extract.REPEATS, by_amount))


# 3. Single-record update --------------------------------------------------------------------------------
def bench_updates(core: Core, schemas: dict[str, Schema], sizes: dict[str, int]) -> None:
    picker = random.Random(7)
    # Records outside the rows the extracts and finds read (their amounts are 10,000 and up); each is updated once.
    rids = {
        name: [f"{i:09d}" for i in picker.sample(range(extract.MATCHING + rows // 4, rows), UPDATES + 1)]
        for name, rows in sizes.items()
    }
    turn = dict.fromkeys(sizes, 0)

    def update(name: str) -> None:
        k = turn[name]
        turn[name] += 1
        changes = {"amount": Decimal(200_000 + k), "participant_eid": f"u{k:04d}"}
        core.records.update(TENANT, schemas[name], rids[name][k], changes, version=1)

    seconds = alternate(list(sizes), UPDATES, update)
    large = report("update one record (a transaction; its amount entry moves)", sizes, seconds)
    if large > 1.0:
        print(
            "  NOTE: an update takes seconds: the emulator's TransactWriteItems still copies the whole table "
            "(the infra/local/moto_queries.py patch is not in this run)"
        )


def main() -> int:
    began = time.monotonic()
    sizes = {"bench_small": SMALL_ROWS, "bench_large": LARGE_ROWS}
    with running(workers=True, pollers=POLLERS) as stack:
        bench_import(stack)
        schemas = {}
        for name, rows in sizes.items():
            started = time.monotonic()
            schemas[name] = extract.fill(stack.core, name, rows, indexes=[["region"], ["amount"]])
            print(f"filled {name}: {rows:,} rows in {time.monotonic() - started:.0f} s", flush=True)
        extract.time_extracts(stack, sizes)
        bench_finds(stack.core, schemas, sizes)
        bench_updates(stack.core, schemas, sizes)
    print(f"records bench: {time.monotonic() - began:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
