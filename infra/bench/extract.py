"""Benchmark: Extract API latency for a page of 2,000 filtered rows, a 100,000-row table against a 10,000-row one.

Runs the emulator and the gateway as `make run` does, fills two custom tables through the core's
records model (the items an import writes), then times `GET /gateway/extract/v1/custom-tables/...`
over HTTP, alternating tables. In both tables 2,500 rows match `region=north`, so the ratio shows
what the table's size costs an indexed extract: ~1.0 means nothing (a Query on the index partition).

A second line times `region=south`, which matches a quarter of each table (2,500 vs 25,000 rows):
the page costs the same, but the exact `totalElements` reads every matching index item.

`make bench` runs these through `infra/bench/records.py` (one emulator for every records
benchmark); `python -m infra.bench.extract` runs them alone.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from backroom.calcengine.tables import define_custom_table
from backroom.records import Record, Schema
from backroom.wiring import Core

from infra.bench.stack import TENANT, Stack, call, running

MATCHING = 2500  # rows of each table with region=north, and with an amount in [0, MATCHING)
PAGE = 2000
REPEATS = int(os.environ.get("BENCH_EXTRACT_REPEATS", "7"))
SIZES = {"bench_10k": 10_000, "bench_100k": 100_000}


def region(i: int, rows: int) -> str:
    if i < MATCHING:
        return "north"
    if i < MATCHING + rows // 4:
        return "south"
    return f"r{i % 100:03d}"


def amount(i: int) -> Decimal:
    """0 .. 2,499 for the first rows (a range that matches as many rows in either table), 10,000 and up after."""
    return Decimal(i) if i < MATCHING else Decimal(10_000 + i % 90_000)


def fill(core: Core, name: str, rows: int, indexes: list[list[str]] | None = None) -> Schema:
    declared = Schema.model_validate(
        {
            "name": name,
            "fields": [{"name": "region"}, {"name": "participant_eid"}, {"name": "amount", "type": "number"}],
            "indexes": indexes or [["region"]],
        }
    )
    schema = define_custom_table(core.records, TENANT, declared)

    def write(start: int) -> None:
        items = []
        for i in range(start, min(rows, start + 500)):
            data = {"region": region(i, rows), "participant_eid": f"p{i % 997:04d}", "amount": amount(i)}
            items += core.records.items(TENANT, schema, Record(rid=f"{i:09d}", data=data, created_at=1))
        core.table.batch_write(puts=items)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(0, rows, 500)))
    return schema


def timed(base: str, token: str, path: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    page = call(base, path, token)
    return time.perf_counter() - started, page


def time_extracts(stack: Stack, sizes: dict[str, int], repeats: int = REPEATS) -> None:
    """Time the equality extracts over HTTP on the filled tables, alternating, and print the ratios."""
    base, token = stack.base, stack.token
    results: dict[tuple[str, str], list[float]] = {}
    for value in ("north", "south"):
        for name in sizes:  # warm up: connections, the handler's imports, the emulator's caches
            timed(base, token, f"/gateway/extract/v1/custom-tables/{name}?region={value}&size={PAGE}")
        for _ in range(repeats):
            for name, rows in sizes.items():
                path = f"/gateway/extract/v1/custom-tables/{name}?region={value}&size={PAGE}"
                seconds, page = timed(base, token, path)
                expected = MATCHING if value == "north" else rows // 4
                if len(page["results"]) != min(PAGE, expected) or page["page"]["totalElements"] != expected:
                    raise SystemExit(f"{name}?region={value}: wrong page {page['page']}")
                results.setdefault((value, name), []).append(seconds)
    small_rows, large_rows = sizes.values()
    for value in ("north", "south"):
        small, large = (statistics.median(results[(value, n)]) for n in sizes)
        print(
            f"extract region={value} (page of {PAGE:,}): {small_rows:,} rows {small * 1000:.0f} ms, "
            f"{large_rows:,} rows {large * 1000:.0f} ms (median of {repeats})"
        )
        label = f"latency ratio {large_rows:,} / {small_rows:,} rows"
        note = " (goal < 1.5)" if value == "north" else ", the matches grow with the table too"
        print(f"  {label}: {large / small:.2f}{note}", flush=True)


def main() -> int:
    with running(workers=False) as stack:
        for name, rows in SIZES.items():
            started = time.monotonic()
            fill(stack.core, name, rows)
            print(f"filled {name}: {rows} rows in {time.monotonic() - started:.0f} s", flush=True)
        time_extracts(stack, SIZES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
