"""Benchmark: Extract API latency for a page of 2,000 filtered rows, a 100,000-row table against a 10,000-row one.

Runs the emulator and the gateway as `make run` does, fills two custom tables through the core's
records model (the items an import writes), then times `GET /gateway/extract/v1/custom-tables/...`
over HTTP, alternating tables. In both tables 2,500 rows match `region=north`, so the ratio shows
what the table's size costs an indexed extract: ~1.0 means nothing (a Query on the index partition).

A second line times `region=south`, which matches a quarter of each table (2,500 vs 25,000 rows):
the page costs the same, but the exact `totalElements` reads every matching index item.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from backroom import aws
from backroom.config import Settings
from backroom.records import Record, Schema
from backroom.services import Services, build

from infra.local import emulator
from infra.local.provision import function_environment, provision
from infra.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
MATCHING = 2500
REPEATS = int(os.environ.get("BENCH_EXTRACT_REPEATS", "7"))


def call(base: str, path: str, token: str = "", body: bytes | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=body, method="POST" if body else "GET", headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310 - local URL
        return json.loads(response.read())


def region(i: int, rows: int) -> str:
    if i < MATCHING:
        return "north"
    if i < MATCHING + rows // 4:
        return "south"
    return f"r{i % 100:03d}"


def fill(core: Services, name: str, rows: int) -> None:
    schema = Schema.model_validate(
        {
            "name": name,
            "fields": [{"name": "region"}, {"name": "participant_eid"}, {"name": "amount", "type": "number"}],
            "indexes": [["region"]],
        }
    )
    core.records.define(TENANT, schema)

    def write(start: int) -> None:
        items = []
        for i in range(start, min(rows, start + 500)):
            data = {"region": region(i, rows), "participant_eid": f"p{i % 997:04d}", "amount": Decimal(i % 10_000)}
            items += core.records.items(TENANT, schema, Record(rid=f"{i:09d}", data=data, created_at=1))
        core.table.batch_write(puts=items)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(0, rows, 500)))


def timed(base: str, token: str, path: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    page = call(base, path, token)
    return time.perf_counter() - started, page


def main() -> int:
    sizes = {"bench_10k": 10_000, "bench_100k": 100_000}
    moto_port, api_port = emulator.free_port(), emulator.free_port()
    moto = emulator.start_moto(port=moto_port)
    endpoint = f"http://127.0.0.1:{moto_port}"
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
    env.setdefault("PYTHONPATH", f"{ROOT / 'layers/core/python'}{os.pathsep}{ROOT}")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.setdefault(key, "test")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    stack = subprocess.Popen(
        [sys.executable, "-m", "infra.local.run", "--no-workers", "--port", str(api_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{api_port}"
    results: dict[tuple[str, str], list[float]] = {}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                login = json.dumps({"email": "dev@demo.local", "password": "demo-dev-password"}).encode()
                token = call(base, "/runtime/api/auth/login", body=login)["token"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        template = Template.load()
        provisioned = provision(boto3.session.Session(region_name="us-east-1"), endpoint, template)
        aws.reset_clients()
        core = build(Settings.from_env({**env, **function_environment(template, provisioned)}))
        for name, rows in sizes.items():
            started = time.monotonic()
            fill(core, name, rows)
            print(f"filled {name}: {rows} rows in {time.monotonic() - started:.0f} s", flush=True)
        for value in ("north", "south"):
            for name in sizes:  # warm up: connections, the handler's imports, the emulator's caches
                timed(base, token, f"/gateway/extract/v1/custom-tables/{name}?region={value}&size=2000")
            for _ in range(REPEATS):
                for name, rows in sizes.items():
                    seconds, page = timed(
                        base, token, f"/gateway/extract/v1/custom-tables/{name}?region={value}&size=2000"
                    )
                    expected = MATCHING if value == "north" else rows // 4
                    if len(page["results"]) != 2000 or page["page"]["totalElements"] != expected:
                        raise SystemExit(f"{name}?region={value}: wrong page {page['page']}")
                    results.setdefault((value, name), []).append(seconds)
    finally:
        stack.terminate()
        stack.wait(timeout=30)
        moto.terminate()
        moto.wait(timeout=30)
    for value in ("north", "south"):
        small, large = (statistics.median(results[(value, n)]) for n in sizes)
        print(
            f"extract region={value} (page of 2,000): 10,000 rows {small * 1000:.0f} ms, "
            f"100,000 rows {large * 1000:.0f} ms (median of {REPEATS})"
        )
        label = "latency ratio 100k / 10k" if value == "north" else "latency ratio 100k / 10k, matches grow 10x too"
        print(f"{label}: {large / small:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
