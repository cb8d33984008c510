"""Runtime CSV import and export through the local stack, against raw baselines on the same emulator.

    python -m infra.bench.import_export

1. Imports `BENCH_IE_SMALL` (10,000) then `BENCH_IE_LARGE` (100,000) rows into an entity made for the
   bench (`benchItems`: a unique `code`, one index), over HTTP as a user does (`POST
   /runtime/api/data/benchItems/import`). The large import is stopped once a third of it is done
   (`PUT /status/jobs/{id}/stop`), then resumed; it must end with exactly that many records.
2. Imports the same large file again with other amounts: every record is updated, none added.
3. Exports every record of the entity (`PUT /data/benchItems/export`: the small and the large set), checks
   the file has rows + 1 lines, and sums the items DynamoDB read for it (the worker's cost lines, one per
   message, from the stack's log).
4. Baselines on the same emulator: a plain Query of the records' partitions written as CSV to S3 (one
   thread), over the very records the export took (before the raw load adds its own), and the items
   the import wrote, put with boto3's `Table.batch_writer()` (one thread). Ratios: import items/s ÷ raw
   items/s (goal ≥ 0.8), export rows/s ÷ plain rows/s (goal ≥ 1.0), on the same DynamoDB engine.
5. The worker process's peak memory (its own process, `--no-gateway`, as a Lambda function is) during
   the small and the large runs: flat means the large run's peak is close to the small one's.

Knobs: BENCH_IE_SMALL, BENCH_IE_LARGE, BENCH_IE_POLLERS (4), BENCH_STACK_LOG (a temporary file when unset:
the export's items read are summed from it).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from backroom.app.definition import AppDefinition
from backroom.records import RecordStore
from backroom.records.schema import RUNTIME

from infra.bench.stack import TENANT, Stack, running

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "infra" / "demo" / "tenant" / "app.json"
ENTITY = "benchItems"
BENCH_ENTITY = {
    "name": ENTITY,
    "label": "Bench items",
    "schema": {
        "name": ENTITY,
        "label": "{code}",
        "fields": [
            {"name": "code", "type": "text", "unique": True, "required": True, "max_length": 40},
            {"name": "category", "type": "choice", "choices": ["a", "b", "c", "d"]},
            {"name": "amount", "type": "decimal"},
            {"name": "note", "type": "text", "max_length": 200},
        ],
        "indexes": [{"name": "category", "equals": ["category"]}, ["code"]],
    },
}


def runtime(stack: Stack, method: str, path: str, body: bytes | None = None, content_type: str = "") -> Any:
    headers = {"token": stack.token, "Content-Type": content_type or "application/json"}
    request = urllib.request.Request(stack.base + "/runtime/api" + path, data=body, method=method, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310 - local URL
        raw = response.read()
        return json.loads(raw) if response.headers.get_content_type() == "application/json" else raw


def rows_csv(rows: int, amount_base: int, prefix: str = "item") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "category", "amount", "note"])
    writer.writerows([f"{prefix}-{i:07d}", "abcd"[i % 4], f"{amount_base + i}.25", f"note {i}"] for i in range(rows))
    return out.getvalue().encode()


def multipart(content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="items.csv"\r\n'
    head += "Content-Type: text/csv\r\n\r\n"
    return head.encode() + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Peak:
    """The stack process's peak resident memory while a block runs (sampled every 0.2 s)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.start = pid, 0, 0
        self._stop = threading.Event()

    def __enter__(self) -> Peak:
        self.start = rss_kb(self.pid)
        self.peak = self.start
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_kb(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def wait(stack: Stack, job_id: str, states: tuple[str, ...] = ("FINISHED", "FAILED", "CANCELED")) -> dict[str, Any]:
    while True:
        job = runtime(stack, "GET", f"/status/jobs/{job_id}")
        if job["status"] in states:
            return dict(job)
        time.sleep(0.5)


def count(stack: Stack, prefix: str = "item") -> int:
    """Records whose code starts with `prefix` (a range of the code index)."""
    query = f"code=between({prefix}-,{prefix}-~)&_sortField=code&_size=1"  # in the code index order
    return int(runtime(stack, "GET", f"/data/{ENTITY}?{query}")["total"])


def run_import(stack: Stack, content: bytes, *, stop_at: float | None = None) -> tuple[float, dict[str, Any]]:
    """Import a file over HTTP; its active seconds (a stop's pause left out) and the finished job."""
    body, content_type = multipart(content)
    started = time.monotonic()
    job_id = runtime(stack, "POST", f"/data/{ENTITY}/import", body, content_type)["jobId"]
    paused = 0.0
    if stop_at is not None:
        while True:
            job = runtime(stack, "GET", f"/status/jobs/{job_id}")
            if job["progress"] >= stop_at * 100 or job["status"] == "FINISHED":
                break
            time.sleep(0.2)
        if job["status"] != "FINISHED":
            runtime(stack, "PUT", f"/status/jobs/{job_id}/stop")
            stopping = time.monotonic()
            stopped = wait(stack, job_id, ("STOPPED",))
            print(f"  stopped at {stopped['recordsProcessed']:,} of {stopped['recordsCount']:,} rows", flush=True)
            runtime(stack, "PUT", f"/status/jobs/{job_id}/resume")
            paused = time.monotonic() - stopping
    job = wait(stack, job_id)
    if job["status"] != "FINISHED":
        raise SystemExit(f"the import ended {job['status']}: {job.get('results')}")
    return time.monotonic() - started - paused, job


def run_export(stack: Stack, query: str = "") -> tuple[float, dict[str, Any], int]:
    """Export the records `query` matches (every record without one)."""
    started = time.monotonic()
    job_id = runtime(stack, "PUT", f"/data/{ENTITY}/export{query}")["jobId"]
    job = wait(stack, job_id)
    seconds = time.monotonic() - started
    if job["status"] != "FINISHED":
        raise SystemExit(f"the export ended {job['status']}: {job.get('results')}")
    link = urlsplit(job["results"]["fileLink"]).path.removeprefix("/runtime/api")  # an absolute URL, as printed
    try:
        data = runtime(stack, "GET", link)
    except urllib.error.HTTPError as err:
        raise SystemExit(f"the export's file did not download: {err}") from None
    lines = data.count(b"\n") if isinstance(data, bytes) else 0
    return seconds, job, lines


def raw_load(stack: Stack, rows: int) -> tuple[float, int]:
    """The items an import of `rows` new rows writes, put by one thread with `batch_writer()`; seconds, items."""
    core = stack.core
    tenant = TENANT
    schema = core.records.schema(tenant, ENTITY, namespace=RUNTIME)
    store = RecordStore(core.records.table)
    items: list[Mapping[str, Any]] = []
    for i in range(rows):
        values = {"code": f"raw-{i:07d}", "category": "abcd"[i % 4], "amount": f"{i}.25", "note": f"note {i}"}
        _record, writes, _ = store.writer.creation(tenant, schema, values, f"{int(time.time()):08x}{i:016x}", None)
        marker = {"pk": f"IMPRUN#raw#{i % 16}", "sk": f"{i:09d}"}
        items.extend([*(w.item for w in writes if w.item is not None), marker])
    plain = [json.loads(json.dumps(i, default=str)) for i in items]
    table = boto3.resource("dynamodb", endpoint_url=stack.endpoints.of("dynamodb"), region_name="us-east-1").Table(
        core.settings.table_name
    )
    started = time.monotonic()
    with table.batch_writer() as writer:
        for item in plain:
            writer.put_item(Item=item)
    return time.monotonic() - started, len(plain)


def items_read_since(log: Path, offset: int) -> int:
    """The items DynamoDB read for the queue's messages logged after byte `offset` of the stack's log
    (each message's cost line: `backroom.observability.costed`)."""
    total = 0
    with log.open("rb") as lines:
        lines.seek(offset)
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            cost = entry.get("cost") if isinstance(entry, dict) else None
            if isinstance(cost, dict) and "message" in cost:
                total += int(cost.get("ItemsRead", 0))
    return total


def plain_export(stack: Stack) -> tuple[float, int, int]:
    """A plain Query of every records partition, written as CSV and put to S3 by one thread; seconds,
    rows, items read."""
    core = stack.core
    schema = core.records.schema(TENANT, ENTITY, namespace=RUNTIME)
    client = boto3.client("dynamodb", endpoint_url=stack.endpoints.of("dynamodb"), region_name="us-east-1")
    s3 = boto3.client("s3", endpoint_url=stack.endpoints.of("s3"), region_name="us-east-1")
    started = time.monotonic()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "category", "amount", "note"])
    rows = read = 0
    for shard in range(schema.shards):
        pages = client.get_paginator("query").paginate(
            TableName=core.settings.table_name,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": f"REC#{TENANT}#{ENTITY}#{shard}"}},
        )
        for page in pages:
            read += page["ScannedCount"]
            for item in page["Items"]:
                data = item["data"]["M"]
                writer.writerow(
                    [next(iter(data[k].values())) if k in data else "" for k in ("code", "category", "amount", "note")]
                )
                rows += 1
    s3.put_object(Bucket=core.settings.bucket_name, Key="bench/plain-export.csv", Body=out.getvalue().encode())
    return time.monotonic() - started, rows, read


def main() -> int:
    small = int(os.environ.get("BENCH_IE_SMALL", "10000"))
    large = int(os.environ.get("BENCH_IE_LARGE", "100000"))
    pollers = int(os.environ.get("BENCH_IE_POLLERS", "4"))
    print(f"Runtime import/export: {small:,} and {large:,} rows, {pollers} pollers", flush=True)
    log = Path(os.environ.setdefault("BENCH_STACK_LOG", str(Path(tempfile.mkdtemp()) / "stack.log")))
    with running(workers=True, pollers=pollers, separate_workers=True) as stack:
        worker = stack.worker_pid or stack.pid
        app = json.loads(APP.read_text())
        app["entities"].append(BENCH_ENTITY)
        stack.core.app.repo.install(TENANT, AppDefinition.model_validate(app))

        with Peak(worker) as small_import:
            small_seconds, _ = run_import(stack, rows_csv(small, 0, "small"))
        with Peak(worker) as small_export:
            run_export(stack, "?code=between(small-,small-~)")

        print(f"import {large:,} rows (stopped at a third, then resumed)", flush=True)
        with Peak(worker) as large_import:
            seconds, job = run_import(stack, rows_csv(large, 0), stop_at=1 / 3)
        found = count(stack)
        print(f"  {job['results']}; {found:,} records", flush=True)
        if found != large or job["results"]["rowsImported"] != large:
            raise SystemExit(f"the import of {large:,} rows left {found:,} records")

        print(f"import the same {large:,} rows again with other amounts", flush=True)
        again_seconds, again = run_import(stack, rows_csv(large, 1000))
        after = count(stack)
        sample = runtime(stack, "GET", f"/data/{ENTITY}?code=item-0000007&_sortField=code")["items"][0]
        print(f"  {again['results']}; {after:,} records; item-0000007 at version {sample['version']}", flush=True)
        if after != large or sample["version"] != 1:
            raise SystemExit("the second import added records or did not update them")

        exported_rows = small + large
        print(f"export every record: {exported_rows:,}", flush=True)
        offset = log.stat().st_size
        with Peak(worker) as large_export:
            export_seconds, exported, lines = run_export(stack)
        export_read = items_read_since(log, offset)
        print(f"  {exported['results']}; the file has {lines:,} lines; {export_read:,} items read", flush=True)
        if lines != exported_rows + 1:
            raise SystemExit(f"the export of {exported_rows:,} records has {lines:,} lines")

        plain_seconds, plain_rows, plain_read = plain_export(stack)  # the same records, before the raw load's
        if plain_rows != exported_rows:
            raise SystemExit(f"the plain export read {plain_rows:,} rows, the export {exported_rows:,}")
        raw_seconds, raw_items = raw_load(stack, large)

    # The import wrote the same items per row as the raw load: its record, index entries, unique marker, row marker
    import_rate = raw_items / seconds
    raw_rate, export_rate = raw_items / raw_seconds, exported_rows / export_seconds
    plain_rate = plain_rows / plain_seconds
    print()
    print(f"| what | {large:,} rows | rate | goal |")
    print("| --- | --- | --- | --- |")
    rows_rate = large / seconds
    print(f"| import (HTTP to FINISHED, pause left out) | {seconds:.1f} s | {import_rate:,.0f} items/s | |")
    print(f"| (the same import in rows) | | {rows_rate:,.0f} rows/s | |")
    print(f"| raw `batch_writer`, 1 thread, same items | {raw_seconds:.1f} s | {raw_rate:,.0f} items/s | |")
    print(f"| **import ÷ raw** | | **{import_rate / raw_rate:.2f}** | ≥ 0.8 |")
    print(f"| second import (updates) | {again_seconds:.1f} s | {large / again_seconds:,.0f} rows/s | |")
    print(
        f"| export of {exported_rows:,} (HTTP to FINISHED; {export_read:,} items read) | {export_seconds:.1f} s "
        f"| {export_rate:,.0f} rows/s | |"
    )
    print(
        f"| plain Query to CSV, 1 thread ({plain_read:,} items read) | {plain_seconds:.1f} s "
        f"| {plain_rate:,.0f} rows/s | |"
    )
    print(f"| **export ÷ plain** | | **{export_rate / plain_rate:.2f}** | ≥ 1.0 |")
    print()
    print("| worker process memory | start | peak |")
    print("| --- | --- | --- |")
    for name, peak in (
        (f"import {small:,}", small_import),
        (f"import {large:,}", large_import),
        (f"export {small:,}", small_export),
        (f"export {small + large:,} (every record)", large_export),
    ):
        print(f"| {name} | {peak.start / 1024:.0f} MB | {peak.peak / 1024:.0f} MB |")
    grown = {
        name: big.peak / max(1, little.peak)
        for name, big, little in (("import", large_import, small_import), ("export", large_export, small_export))
    }
    print(f"| peak, large ÷ small | import {grown['import']:.2f} | export {grown['export']:.2f} |")
    print(f"(small import {small / small_seconds:,.0f} rows/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
