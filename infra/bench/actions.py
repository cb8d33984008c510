"""Benchmark: the aggregate sample at 10,000 and 100,000 contacts, at once or as a job; an async action's records/s.

A synchronous aggregate reads at most 40,000 records (its documented work budget; past it, a 400
that says to use `_async=true`), so at 100,000 contacts the request is refused and the `_async` job
is the way: both are timed at both sizes.

One emulator and one stack with workers (`make run`'s, BENCH_ACTION_POLLERS pollers per queue). The
demo app (`infra/demo/tenant/app.json`) is installed, as `infra.bench.runtime` installs it, in tenants
of their own with one developer each. Records are written in bulk the way jobs write them
(`RecordStore.items` + `Table.batch_write`, from BENCH_ACTION_THREADS threads): a record item and its
index entries, no unique markers.

1. Aggregate: two tenants, one with BENCH_AGG_SMALL contacts, the other with BENCH_AGG_LARGE, each
   with 50 companies (created one by one through the records model). Contact i works for company
   i mod 50 (the relationship stored as `_link` stores it, `{id, label}`: bulk writes skip that
   lookup, so one contact is read back over HTTP to check the stored form) and has 0..9 skills
   (a CRC of i). The runtime spec's sample, `PUT /runtime/api/data/contacts/aggregate` with
   `[{"project": "company,numberOfSkills"}, {"group": {"by": "company", "totalSkills":
   "sum(numberOfSkills)"}}]`, over HTTP at each size: at once, the median of BENCH_AGG_REPEATS after
   one warm-up (or the 400 and how long it took to say so); then with `?_async=true`, from the
   request to the job's FINISHED (polled every 0.25 s), its JSON file downloaded
   (`GET /runtime/api/files/<fileId>`). Every answer's total and sums are checked against what was
   written. Items read: DynamoDB's own count (ScannedCount, `backroom.dynamo.measured`) of the same
   synchronous pipeline run once in this process on the same emulator (up to the 400 where it is
   refused), and the job's `recordsRead`.
2. Async action: a tenant with BENCH_ACTION_RECORDS companies of type `c`, and BENCH_ACTION_LOOP
   of type `b`. `PUT /runtime/api/data/companies/logSomething?_async=true&type=c` (the demo's action
   of type one: a log line and a save, so each record's version goes up by one) is timed from the
   request to the job's FINISHED (`GET /runtime/api/status/jobs/<id>`, polled every 0.25 s); its
   recordsProcessed and every record's version (1 to 2) are checked. The job runs on the stack's
   worker pollers. The baseline on the same emulator, right after: the type `b` companies read
   (`RecordStore.get_many`) and updated one after another in this process
   (`RecordStore.update(..., {"lastUpdate": now}, version=<as read>)`, one transaction each with its
   history entry, as the action's saves have), their versions checked. The ratio is the action's
   records/s over the loop's.

Knobs (environment variables, defaults): BENCH_AGG_SMALL (10000) and BENCH_AGG_LARGE (100000)
contacts, BENCH_AGG_REPEATS (3); BENCH_ACTION_RECORDS (10000) companies the action runs on,
BENCH_ACTION_LOOP (2000) companies the loop updates, BENCH_ACTION_POLLERS (2) worker pollers per
queue; BENCH_ACTION_THREADS (4) threads of the bulk loads; BENCH_STACK_LOG, a file for the stack's log.
Nothing asserts on time; a wrong answer ends the bench with a non-zero exit and says what was wrong.

    make bench                          # with the other benches
    python -m infra.bench.actions       # this one alone
    BENCH_AGG_SMALL=500 BENCH_AGG_LARGE=3000 BENCH_ACTION_RECORDS=300 BENCH_ACTION_LOOP=100 \\
        python -m infra.bench.actions   # a quick look: about two minutes

Time at the defaults, extrapolated from the quick look and earlier rounds (not measured whole): the
110,000 contacts load in about 4 minutes; each synchronous aggregate at 10,000 takes seconds, the
refused one at 100,000 reads 40,000 records first; the two jobs read 110,000 records; the action part
about 3 minutes.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from backroom.app.aggregate import aggregate
from backroom.app.definition import AppDefinition, Entity
from backroom.clock import now_ms
from backroom.dynamo import measured
from backroom.errors import Invalid
from backroom.identity.models import Caller, Role
from backroom.ids import object_id
from backroom.jobs.models import JobState
from backroom.records import Record, Schema
from backroom.records.values import normalize
from backroom.wiring import Core

from infra.bench.runtime import company, table, tenant
from infra.bench.stack import Stack, call, running
from infra.demo.load import demo_app

AGG_SMALL = int(os.environ.get("BENCH_AGG_SMALL", "10000"))
AGG_LARGE = int(os.environ.get("BENCH_AGG_LARGE", "100000"))
AGG_REPEATS = int(os.environ.get("BENCH_AGG_REPEATS", "3"))
ACTION_RECORDS = int(os.environ.get("BENCH_ACTION_RECORDS", "10000"))
ACTION_LOOP = int(os.environ.get("BENCH_ACTION_LOOP", "2000"))
POLLERS = int(os.environ.get("BENCH_ACTION_POLLERS", "2"))
THREADS = int(os.environ.get("BENCH_ACTION_THREADS", "4"))
COMPANIES = 50  # companies of each aggregate tenant
CHUNK = 500  # records per batch_write call
POLL = 0.25  # seconds between two looks at the job
JOB_MOST = 3600  # seconds a job may take before the bench gives up on it
AGG_MOST = 1800  # seconds an aggregate may take (the local gateway, unlike Lambda, does not stop it at 29 s)
AGGREGATE = "/runtime/api/data/contacts/aggregate"
SAMPLE = [{"project": "company,numberOfSkills"}, {"group": {"by": "company", "totalSkills": "sum(numberOfSkills)"}}]
ACTION, PARAMS = "logSomething", {"param1": "a", "param2": "b"}


def request(
    stack: Stack, path: str, token: str, body: Any = None, *, method: str | None = None, timeout: float = 300
) -> Any:
    """`call` with a JSON body; an HTTP error or no answer ends the bench, saying what happened."""
    try:
        data = None if body is None else json.dumps(body).encode()
        return call(stack.base, path, token, data, method=method, timeout=timeout)
    except urllib.error.HTTPError as refused:
        raise SystemExit(f"{method or 'GET'} {path}: {refused.code} {refused.read().decode()[:500]}") from None
    except (TimeoutError, urllib.error.URLError) as failed:
        raise SystemExit(f"{method or 'GET'} {path}: no answer within {timeout:.0f} s ({failed})") from None


# Set-up ------------------------------------------------------------------------------------------------
Values = Callable[[int], dict[str, Any]]  # record i's values, as a caller would give them


def fill(
    core: Core, tenant_id: str, schema: Schema, rows: int, values: Values, labels: Mapping[str, str] | None = None
) -> list[str]:
    """Write `rows` records as jobs write them, from THREADS threads; their ids, in order.

    A relationship is stored as `RecordStore._link` stores it, its label taken from `labels` (id to label).
    """
    created = now_ms()

    def write(start: int) -> list[str]:
        items: list[dict[str, Any]] = []
        loaded: list[Record] = []
        for i in range(start, min(rows, start + CHUNK)):
            checked = normalize(schema, values(i))
            if checked.errors:
                raise SystemExit(f"{schema.name} {i}: {checked.errors}")
            for path, _entity, rid in checked.links:
                holder: Any = checked.data
                for step in path[:-1]:
                    holder = holder[step]
                holder[path[-1]] = {"id": rid, "label": (labels or {})[rid]}
            record = Record(rid=object_id(), data=checked.data, created_at=created, updated_at=created)
            items += core.records.items(tenant_id, schema, record)
            loaded.append(record)
        core.table.batch_write(puts=items)
        core.records.add_counts(tenant_id, schema, loaded)
        return [r.rid for r in loaded]

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return [rid for rids in pool.map(write, range(0, rows, CHUNK)) for rid in rids]


def filled(what: str, rows: int, started: float) -> None:
    seconds = time.monotonic() - started
    print(f"filled {what}: {rows:,} records in {seconds:.0f} s, {rows / seconds:,.0f} records/s", flush=True)


# 1. Aggregate ----------------------------------------------------------------------------------------------
def skills(i: int) -> int:
    return zlib.crc32(str(i).encode()) % 10


def contact(i: int, companies: list[str]) -> dict[str, Any]:
    return {
        "firstName": f"First{i}",
        "lastName": f"Last {i:06d}",
        "email": f"contact{i}@bench.example",
        "numberOfSkills": skills(i),
        "company": companies[i % len(companies)],
    }


def aggregate_tenant(stack: Stack, key: str, app: AppDefinition, rows: int) -> tuple[str, str, dict[str, int]]:
    """A tenant with COMPANIES companies and `rows` contacts: its id, its token and the sums the sample answers."""
    core = stack.core
    tenant_id, token = tenant(stack, key, app)
    companies, contacts = (next(e for e in app.entities if e.name == name).schema for name in ("companies", "contacts"))
    made = [core.records.create(tenant_id, companies, {"name": f"Bench Company {c:02d}"}) for c in range(COMPANIES)]
    labels = {r.rid: r.label for r in made}
    rids = [r.rid for r in made]
    started = time.monotonic()
    written = fill(core, tenant_id, contacts, rows, lambda i: contact(i, rids), labels)
    filled(f"contacts ({COMPANIES} companies)", rows, started)
    # Bulk writes skip the relationship's lookup: the stored form must be what a create stores.
    i = rows // 2
    shown = request(stack, f"/runtime/api/data/contacts/{written[i]}", token)
    owner = made[i % COMPANIES]
    expected = {"id": owner.rid, "label": owner.label}
    if shown.get("company") != expected or shown.get("label") != f"Last {i:06d}, First{i}":
        raise SystemExit(f"contact {written[i]} reads back as {shown}, not with company {expected}")
    sums: dict[str, int] = {}
    for n in range(rows):
        label = labels[rids[n % COMPANIES]]
        sums[label] = sums.get(label, 0) + skills(n)
    return tenant_id, token, sums


def checked(key: str, answer: Any, sums: dict[str, int]) -> None:
    """The sample's answer must hold every company's sum of skills, and nothing else."""
    items = answer.get("items") if isinstance(answer, dict) else None
    got = {i.get("company"): i.get("totalSkills") for i in items or [] if isinstance(i, dict)}
    if answer.get("total") != len(sums) or len(items or []) != len(sums) or got != sums:
        wrong = {k: (got.get(k), v) for k, v in sums.items() if got.get(k) != v}
        raise SystemExit(
            f"contacts/aggregate at {key}: a wrong answer: total {answer.get('total')} for {len(sums)} companies,"
            f" {len(items or [])} items; (answered, expected) sums that differ: {dict(list(wrong.items())[:5])}"
        )


@dataclass
class Aggregated:
    """One size's figures: the synchronous answer's seconds (or the 400's message and how long it took to
    say so), DynamoDB items read by it, and the job's seconds and records read."""

    sync: list[float] = field(default_factory=list)
    refused: str | None = None
    refused_after: float = 0.0
    items_read: int = 0
    job: float = 0.0
    job_read: int = 0


def sync_once(stack: Stack, key: str, token: str, sums: dict[str, int], figures: Aggregated) -> float | None:
    """The sample at once over HTTP: its seconds, or None when it is refused (a 400, noted in `figures`)."""
    started = time.perf_counter()
    try:
        body = json.dumps(SAMPLE).encode()
        answer = call(stack.base, AGGREGATE, token, body, method="PUT", timeout=AGG_MOST)
    except urllib.error.HTTPError as refused:
        if refused.code != 400:
            raise SystemExit(f"PUT {AGGREGATE} at {key}: {refused.code} {refused.read().decode()[:500]}") from None
        figures.refused = str(json.loads(refused.read()).get("message"))
        figures.refused_after = time.perf_counter() - started
        return None
    seconds = time.perf_counter() - started
    checked(key, answer, sums)
    return seconds


def as_job(stack: Stack, key: str, token: str, sums: dict[str, int], figures: Aggregated) -> None:
    """The sample with `_async=true`: from the request to FINISHED, its file downloaded and checked."""
    started = time.perf_counter()
    job_id = request(stack, f"{AGGREGATE}?_async=true", token, SAMPLE, method="PUT")["jobId"]
    job = finished(stack, token, job_id)
    figures.job = time.perf_counter() - started
    if job["status"] != JobState.FINISHED:
        raise SystemExit(f"the aggregate job at {key} ended {job['status']}: {job['results'].get('error')}")
    results = job["results"]
    headers = {"Authorization": f"Bearer {token}"}
    download = urllib.request.Request(results["fileLink"], headers=headers)  # noqa: S310 - absolute, as printed
    with urllib.request.urlopen(download, timeout=300) as response:  # noqa: S310 - local URL
        checked(f"{key} (_async)", json.loads(response.read()), sums)
    figures.job_read = int(results["recordsRead"])


def items_read(stack: Stack, tenant_id: str) -> int:
    """DynamoDB's items read by the synchronous sample, run once in this process (to the 400 if refused)."""
    developer = Caller(
        user_id="bench",
        email="bench@bench.local",
        name="bench",
        role=Role.DEVELOPER,
        account_id=tenant_id,
        tenant_id=tenant_id,
    )
    with measured() as cost, suppress(Invalid):
        aggregate(stack.core.app, developer, "contacts", SAMPLE)
    return cost.items_read


def bench_aggregates(stack: Stack, tenants: dict[str, tuple[str, str, dict[str, int]]]) -> dict[str, Aggregated]:
    """The sample at each size, at once (the median of AGG_REPEATS after a warm-up, or the 400) and as a job."""
    figures: dict[str, Aggregated] = {}
    for key, (tenant_id, token, sums) in tenants.items():
        here = figures[key] = Aggregated()
        for _ in range(AGG_REPEATS + 1):  # the first is the warm-up
            seconds = sync_once(stack, key, token, sums, here)
            if seconds is None:
                break
            here.sync.append(seconds)
        here.sync = here.sync[1:]
        here.items_read = items_read(stack, tenant_id)
        as_job(stack, key, token, sums, here)
        print(f"aggregate at {key}: {shown(here)}", flush=True)
    return figures


def shown(figures: Aggregated) -> str:
    at_once = (
        f"400 after {figures.refused_after * 1000:,.0f} ms"
        if figures.refused
        else f"{statistics.median(figures.sync) * 1000:,.0f} ms (median of {len(figures.sync)})"
    )
    return (
        f"at once {at_once}, {figures.items_read:,} items read; as a job {figures.job:.1f} s, {figures.job_read:,} read"
    )


def finished(stack: Stack, token: str, job_id: str) -> dict[str, Any]:
    """The job once it ends (polled every POLL seconds); one still running after JOB_MOST ends the bench."""
    started = time.perf_counter()
    while True:
        job: dict[str, Any] = request(stack, f"/runtime/api/status/jobs/{job_id}", token)
        if JobState(job["status"]).is_final:
            return job
        if time.perf_counter() - started > JOB_MOST:
            raise SystemExit(f"job {job_id} is still {job['status']} after {JOB_MOST} s")
        time.sleep(POLL)


# 2. Async action ---------------------------------------------------------------------------------------------
def versions(core: Core, tenant_id: str, schema: Schema, rids: list[str], version: int, what: str) -> None:
    found = core.records.get_many(tenant_id, schema, rids)
    wrong = [r.rid for r in found if r.version != version]
    if len(found) != len(rids) or wrong:
        raise SystemExit(
            f"{what}: {len(found):,} of {len(rids):,} records read, {len(wrong):,} not at version {version}"
        )


def run_action(stack: Stack, token: str, rows: int) -> float:
    """Start the action over the type `c` companies; the seconds from the request to its job's FINISHED."""
    started = time.perf_counter()
    path = f"/runtime/api/data/companies/{ACTION}?_async=true&type=c"
    job_id = request(stack, path, token, PARAMS, method="PUT")["jobId"]
    job = finished(stack, token, job_id)
    seconds = time.perf_counter() - started
    if job["status"] != JobState.FINISHED or job["recordsProcessed"] != rows or job["hasErrors"]:
        shown = {k: job.get(k) for k in ("status", "recordsCount", "recordsProcessed", "hasErrors")}
        raise SystemExit(f"job {job_id} of {ACTION} over {rows:,} records ended {shown}: {job['results'].get('error')}")
    return seconds


def run_loop(core: Core, tenant_id: str, schema: Schema, rids: list[str]) -> float:
    """Read the records, then update each one after another at the version read; the seconds it took."""
    started = time.perf_counter()
    for record in core.records.get_many(tenant_id, schema, rids):
        core.records.update(tenant_id, schema, record.rid, {"lastUpdate": now_ms()}, version=record.version)
    return time.perf_counter() - started


def bench_action(stack: Stack, app: AppDefinition, entity: Entity) -> tuple[float, float]:
    """The action's seconds over ACTION_RECORDS companies and the loop's over ACTION_LOOP, versions checked."""
    core, schema = stack.core, entity.schema
    tenant_id, token = tenant(stack, "actions", app)
    created, rows = now_ms(), ACTION_RECORDS + ACTION_LOOP
    started = time.monotonic()
    acted = fill(core, tenant_id, schema, ACTION_RECORDS, lambda i: {**company(i, rows, created), "type": "c"})
    looped = fill(
        core, tenant_id, schema, ACTION_LOOP, lambda i: {**company(ACTION_RECORDS + i, rows, created), "type": "b"}
    )
    filled(f"companies ({ACTION_RECORDS:,} of type c, {ACTION_LOOP:,} of type b)", rows, started)
    action = run_action(stack, token, ACTION_RECORDS)
    versions(core, tenant_id, schema, acted, 2, f"{ACTION} over type c")
    versions(core, tenant_id, schema, looped, 1, f"the type b companies after {ACTION} over type c")
    print(
        f"{ACTION}: {ACTION_RECORDS:,} records in {action:.1f} s, {ACTION_RECORDS / action:,.0f} records/s", flush=True
    )
    loop = run_loop(core, tenant_id, schema, looped)
    versions(core, tenant_id, schema, looped, 2, "the loop of updates")
    print(f"loop of updates: {ACTION_LOOP:,} records in {loop:.1f} s, {ACTION_LOOP / loop:,.0f} records/s", flush=True)
    return action, loop


def main() -> int:
    began = time.monotonic()
    sizes = {"small": AGG_SMALL, "large": AGG_LARGE}
    app = demo_app()
    entity = next(e for e in app.entities if e.name == "companies")
    print(
        f"aggregate sample at {AGG_SMALL:,} and {AGG_LARGE:,} contacts, at once and as a job; {ACTION} (_async)"
        f" over {ACTION_RECORDS:,} companies against a loop of {ACTION_LOOP:,} updates",
        flush=True,
    )
    with running(workers=True, pollers=POLLERS) as stack:
        tenants = {key: aggregate_tenant(stack, f"agg{key}", app, rows) for key, rows in sizes.items()}
        figures = bench_aggregates(stack, tenants)
        action, loop = bench_action(stack, app, entity)
    print()
    print(f"PUT /runtime/api/data/contacts/aggregate  the spec's sample (skills summed by company, {COMPANIES} groups)")
    print(f"over HTTP: at once (median of {AGG_REPEATS} after a warm-up, or the 400) and with ?_async=true (request to")
    print("FINISHED, its file downloaded); items read: DynamoDB's count for the request, run in-process; the job's own")
    rows: list[tuple[str, ...]] = [("contacts", "at once", "items read", "_async job", "job read", "job records/s")]
    for key, count in sizes.items():
        here = figures[key]
        at_once = (
            f"400 ({here.refused_after * 1000:,.0f} ms)"
            if here.refused
            else f"{statistics.median(here.sync) * 1000:,.0f} ms"
        )
        job_rate = f"{count / here.job:,.0f}" if here.job else "-"
        rows.append(
            (f"{count:,}", at_once, f"{here.items_read:,}", f"{here.job:.1f} s", f"{here.job_read:,}", job_rate)
        )
    table(rows)
    refused = next((f.refused for f in figures.values() if f.refused), None)
    if refused:
        print(f"the 400: {refused}")
    print()
    print(f"records updated per second on the same emulator: the action's job runs on the stack's {POLLERS} worker")
    print("pollers per queue (from the request to FINISHED), the loop in this process, one update after another")
    action_rate, loop_rate = ACTION_RECORDS / action, ACTION_LOOP / loop
    table(
        [
            ("updates", "records", "seconds", "records/s"),
            (f"{ACTION} ?_async=true&type=c (job)", f"{ACTION_RECORDS:,}", f"{action:.1f}", f"{action_rate:,.0f}"),
            ("loop of RecordStore.update", f"{ACTION_LOOP:,}", f"{loop:.1f}", f"{loop_rate:,.0f}"),
            ("ratio action / loop", "", "", f"{action_rate / loop_rate:.2f}"),
        ]
    )
    print(f"actions bench: {time.monotonic() - began:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
