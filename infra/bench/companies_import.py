"""Benchmark: a runtime CSV import of the demo's companies over HTTP, this tree against another commit's
(`BENCH_CI_BEFORE`, the main this branch started from), side by side in one run.

    python -m infra.bench.companies_import
    BENCH_CI_ROWS=2000 python -m infra.bench.companies_import       # a quick look

The file: BENCH_CI_ROWS rows (20,000) of the demo's companies (`infra/demo/data/app-records.json`, their
values as the demo holds them, empty ones included), taken in turn, each named `<name> <row>` so that
every row creates a company. Each side runs in a process of its own, from its own tree and PYTHONPATH
(the other commit's tree is `git archive`d to a temporary directory, with this file copied in): its own
emulator and stack (`infra.bench.stack.running`, `make run`'s, DynamoDB Local where it can run;
BENCH_CI_POLLERS worker pollers), then `POST /runtime/api/data/companies/import` as the demo's developer,
timed from the request to the job's FINISHED. The sides alternate (before, after, after, before, ...)
for BENCH_CI_ROUNDS rounds; the figures are each side's median.

Items written per row: the sum of `ItemsWritten` over the stack's cost lines of the job's queue messages
(`backroom.observability`: what DynamoDB's answers counted, count items added to and checkpoints
included), divided by the rows. What each row leaves in the table, by kind and entity: the table's
items after the import less those before it (a Scan, the bench's own, keys only), divided by the rows.
Each side checks that the list's `total` (the table's counts) grew by the rows.

Knobs: BENCH_CI_ROWS (20000), BENCH_CI_POLLERS (2), BENCH_CI_ROUNDS (1), BENCH_CI_BEFORE (4ad7f7d),
BENCH_CI_CENSUS (5000: the most rows for which the table is scanned for what each row leaves),
BENCH_CI_WARMUP (2000).

Warm-up: before the timed import, each side's stack imports BENCH_CI_WARMUP other companies (named
`<name> w<row>`), the same way; its rows/s is reported as the cold figure. DynamoDB Local is a JVM: in a
fresh one the first two thousand rows cost it some twice the CPU of later ones, a fixed cost that would
weigh more on whichever side is faster. Both sides warm up alike, so the timed import compares the
imports, and both start from a table of BENCH_CI_WARMUP companies more than the demo's.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CENSUS_ROWS = int(os.environ.get("BENCH_CI_CENSUS", "5000"))  # the most rows whose items left are counted
WARMUP_ROWS = int(os.environ.get("BENCH_CI_WARMUP", "2000"))  # rows each side imports before the timed import
RECORDS = ROOT / "infra" / "demo" / "data" / "app-records.json"
ENTITY = "companies"
# The kinds of item, by the start of their partition key (backroom/keys.py's table).
KINDS = {
    "REC#": "record",
    "IDX#": "index entry",
    "UNIQ#": "unique marker",
    "HIST#": "history entry",
    "IMPRUN#": "row marker",
    "COUNT#": "count",
    "MOVES#": "count moves, pending",
    "JOB#": "job",
    "JOBRES#": "job",
    "FILES#": "file",
}


def companies_csv(rows: int, tag: str = "") -> bytes:
    """`rows` companies, the demo's in turn, every column the demo's records fill (relationships and
    files left out), each named apart (`<name> <tag><row>`)."""
    demo = json.loads(RECORDS.read_text())[ENTITY]
    header = [
        "name",
        "state",
        "type",
        "color",
        "numberOfEmployees",
        "isCustomer",
        "contactInformation.phoneNumber",
        "contactInformation.email",
        "addresses[0].addressLine",
        "addresses[0].zipCode",
        "addresses[0].city",
        "addresses[0].state",
        "homepage",
        "taxId",
        "rating",
        "notes",
        "lastMeeting",
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for i in range(rows):
        company = demo[i % len(demo)]
        values = [_cell(company, column) for column in header]
        values[0] = f"{company['name']} {tag}{i:06d}"
        writer.writerow(values)
    return out.getvalue().encode()


def _cell(record: dict[str, Any], column: str) -> str:
    """A column's cell for a demo record (`addresses[0].city`: its first address's city)."""
    value: Any = record
    for step in column.replace("[0]", ".0").split("."):
        if isinstance(value, list):
            value = value[int(step)] if value else None
        elif isinstance(value, dict):
            value = value.get(step)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _kind(pk: str) -> tuple[str, str]:
    """An item's kind and the entity it belongs to (`-` for none), by its partition key."""
    kind = next((name for prefix, name in KINDS.items() if pk.startswith(prefix)), "other")
    parts = pk.split("#")
    entity = parts[2] if kind in ("record", "index entry", "unique marker", "history entry") else "-"
    if kind == "count":
        entity = parts[3] if len(parts) > 3 else "-"
    return kind, entity


def census(stack: Any, rows: int) -> Counter[tuple[str, str]]:
    """The table's items by kind and entity (a Scan of keys); nothing past CENSUS_ROWS rows: DynamoDB
    Local's Scan slows page by page as the table grows, and at 20,000 rows (some 280,000 items) a page
    outlasts the client's timeout. The items written per row (the cost lines) are measured at any size."""
    if rows > CENSUS_ROWS:
        return Counter()
    import boto3

    client = boto3.client("dynamodb", endpoint_url=stack.endpoints.of("dynamodb"), region_name="us-east-1")
    found: Counter[tuple[str, str]] = Counter()
    pages = client.get_paginator("scan").paginate(TableName=stack.core.settings.table_name, ProjectionExpression="pk")
    for page in pages:
        for item in page["Items"]:
            found[_kind(item["pk"]["S"])] += 1
    return found


def written(log: Path, start: int) -> int:
    """Items the queue messages logged after byte `start` of the stack's log wrote (their cost lines)."""
    total = 0
    with log.open("rb") as lines:
        lines.seek(start)
        for line in lines:
            if b'"cost"' not in line:
                continue
            try:
                cost = json.loads(line).get("cost", {})
            except ValueError:
                continue
            if "message" in cost:
                total += int(cost.get("ItemsWritten", 0))
    return total


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user and system, its own threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_pid(endpoint: str | None) -> int | None:
    """The DynamoDB Local process answering on `endpoint`'s port (None: another engine)."""
    port = (endpoint or "").rsplit(":", 1)[-1]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(b"DynamoDBLocal" in part for part in line) and port.encode() in line:
                return int(entry.name)
    return None


def side(rows: int, pollers: int) -> dict[str, Any]:
    """One side: this tree's stack, one import; its figures."""
    from infra.bench.import_export import multipart, runtime, wait
    from infra.bench.stack import running

    log = Path(os.environ["BENCH_STACK_LOG"])
    content = companies_csv(rows)
    body, content_type = multipart(content)
    with running(workers=True, pollers=pollers) as stack:
        cold = warm_up(stack, WARMUP_ROWS)
        before = census(stack, rows)
        held = runtime(stack, "GET", f"/data/{ENTITY}?_size=1")["total"]
        start = log.stat().st_size
        engine = engine_pid(stack.endpoints.of("dynamodb"))
        processes = [stack.pid, engine]  # the engine's is counted as 0 when it is not DynamoDB Local
        cpu = [cpu_seconds(p) if p else 0.0 for p in processes]
        started = time.monotonic()
        job_id = runtime(stack, "POST", f"/data/{ENTITY}/import", body, content_type)["jobId"]
        job = wait(stack, job_id)
        seconds = time.monotonic() - started
        cpu = [cpu_seconds(p) - used if p else 0.0 for p, used in zip(processes, cpu, strict=True)]
        if job["status"] != "FINISHED" or job["results"]["rowsImported"] != rows:
            raise SystemExit(f"the import ended {job['status']}: {job.get('results')}")
        time.sleep(1.0)  # the last message's cost line
        items = written(log, start)
        after = census(stack, rows)
        total = runtime(stack, "GET", f"/data/{ENTITY}?_size=1")["total"]
    if total != held + rows:  # the table's counts, read by the list's total
        raise SystemExit(f"the counts say {total:,} companies, {held:,} + {rows:,} expected")
    moved = sorted(k for k in after | before if after[k] != before[k])
    left = {f"{kind} ({entity})": (after[(kind, entity)] - before[(kind, entity)]) / rows for kind, entity in moved}
    return {
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "cpu_ms": [1000 * used / rows for used in cpu],  # per row: the stack's process, DynamoDB Local's
        "written": items / rows,
        "left": left,
        "cold_rows_per_s": cold,
    }


def warm_up(stack: Any, rows: int) -> float:
    """Import `rows` other companies, as the timed import will; their rows/s (0 for none)."""
    from infra.bench.import_export import multipart, runtime, wait

    if rows <= 0:
        return 0.0
    body, content_type = multipart(companies_csv(rows, tag="w"))
    started = time.monotonic()
    job = wait(stack, runtime(stack, "POST", f"/data/{ENTITY}/import", body, content_type)["jobId"])
    if job["status"] != "FINISHED" or job["results"]["rowsImported"] != rows:
        raise SystemExit(f"the warm-up import ended {job['status']}: {job.get('results')}")
    return rows / (time.monotonic() - started)


def _tree(commit: str, into: Path) -> Path:
    """The commit's files in `into`, with this bench copied in (it may predate it)."""
    into.mkdir()
    git = shutil.which("git") or "git"
    archive = subprocess.run([git, "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as files:
        files.extractall(into, filter="data")
    shutil.copy(Path(__file__), into / "infra" / "bench" / "companies_import.py")
    modules = ROOT / "infra" / "local" / "dynamodb" / "node_modules"  # DynamoDB Local, installed, not in git
    if modules.exists():
        (into / "infra" / "local" / "dynamodb").mkdir(parents=True, exist_ok=True)
        (into / "infra" / "local" / "dynamodb" / "node_modules").symlink_to(modules.resolve())
    return into


def run_side(tree: Path, rows: int, pollers: int, log: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{tree / 'layers/core/python'}{os.pathsep}{tree}",
        "BENCH_STACK_LOG": str(log),
    }
    done = subprocess.run(
        [sys.executable, "-m", "infra.bench.companies_import", "--side", str(rows), str(pollers)],
        cwd=tree,
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode:  # the side's own words (its traceback, the stack's log) say what went wrong
        tail = "\n".join(done.stderr.strip().splitlines()[-25:])
        stack = "\n".join(log.read_text(errors="replace").strip().splitlines()[-15:])
        raise SystemExit(f"the {tree.name} side failed:\n{tail}\nthe end of its stack's log:\n{stack}")
    lines = done.stdout.strip().splitlines()
    print("  " + lines[0], flush=True)  # the engine that answered
    return {**json.loads(lines[-1]), "engine": lines[0].split(" on ")[0]}


def main() -> int:
    rows = int(os.environ.get("BENCH_CI_ROWS", "20000"))
    pollers = int(os.environ.get("BENCH_CI_POLLERS", "2"))
    rounds = int(os.environ.get("BENCH_CI_ROUNDS", "1"))
    commit = os.environ.get("BENCH_CI_BEFORE", "4ad7f7d")
    print(
        f"Companies import: {rows:,} rows ({WARMUP_ROWS:,} to warm up), {pollers} pollers, {rounds} round(s),"
        f" before = {commit}",
        flush=True,
    )
    results: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="bench-ci-") as scratch:
        trees = {"before": _tree(commit, Path(scratch) / "before"), "after": ROOT}
        for turn in range(rounds):
            for name in ("before", "after") if turn % 2 == 0 else ("after", "before"):
                log = Path(scratch) / f"{name}-{turn}.log"
                log.touch()
                figures = run_side(trees[name], rows, pollers, log)
                results[name].append(figures)
                cpu = " + ".join(f"{ms:.1f}" for ms in figures["cpu_ms"])
                print(
                    f"  {name}: {figures['seconds']:.1f} s, {figures['rows_per_s']:.0f} rows/s, CPU ms/row {cpu}"
                    f" (warm-up: {figures.get('cold_rows_per_s', 0.0):.0f} rows/s)",
                    flush=True,
                )
    engines = {r["engine"] for runs in results.values() for r in runs}
    if len(engines) > 1:
        raise SystemExit(f"the sides ran on different engines ({', '.join(sorted(engines))}): no comparison")
    report(rows, results)
    return 0


def report(rows: int, results: dict[str, list[dict[str, Any]]]) -> None:
    rate = {name: statistics.median(r["rows_per_s"] for r in runs) for name, runs in results.items()}
    per_row = {name: statistics.median(r["written"] for r in runs) for name, runs in results.items()}
    print()
    print(f"| {rows:,} companies | before | after |")
    print("| --- | --- | --- |")
    print(f"| rows/s (request to FINISHED) | {rate['before']:,.0f} | {rate['after']:,.0f} |")
    cold = {name: statistics.median(r.get("cold_rows_per_s", 0.0) for r in runs) for name, runs in results.items()}
    print(f"| rows/s of the {WARMUP_ROWS:,}-row warm-up import (cold) | {cold['before']:,.0f} | {cold['after']:,.0f} |")
    print(f"| items written per row | {per_row['before']:.2f} | {per_row['after']:.2f} |")
    cpu = {name: [statistics.median(r["cpu_ms"][i] for r in runs) for i in (0, 1)] for name, runs in results.items()}
    print(f"| CPU ms per row, the stack's process | {cpu['before'][0]:.1f} | {cpu['after'][0]:.1f} |")
    print(f"| CPU ms per row, DynamoDB Local | {cpu['before'][1]:.1f} | {cpu['after'][1]:.1f} |")
    kinds = sorted({k for runs in results.values() for k in runs[0]["left"]})
    for kind in kinds:
        left = [results[name][0]["left"].get(kind, 0.0) for name in ("before", "after")]
        print(f"| left per row: {kind} | {left[0]:.2f} | {left[1]:.2f} |")
    print(f"| **after ÷ before, rows/s** | | **{rate['after'] / rate['before']:.2f}** (goal ≥ 1.5) |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--side":
        print(json.dumps(side(int(sys.argv[2]), int(sys.argv[3]))), flush=True)
        sys.exit(0)
    sys.exit(main())
