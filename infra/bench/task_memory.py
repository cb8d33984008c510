"""Benchmark: a number_management/add task's memory and speed, 100,000 rows against a 10,000-row baseline.

Runs the stack as `make run` does (emulator, gateway and workers; the workers share the gateway's
process), creates and runs both tasks over HTTP, and samples that process's resident memory while
rows run. Flat memory means a ratio near 1.0: the rows are streamed, never held.

    make bench                       # 10,000 then 100,000 rows (about 15 minutes here)
    BENCH_TASK_ROWS=20000 make bench  # a quicker look
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from infra.local import emulator

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"


def call(base: str, method: str, path: str, token: str = "", body: bytes | None = None, csv_body: bool = False) -> Any:
    headers = {"X-Auth-Token": token, "Content-Type": "text/csv" if csv_body else "application/json"}
    request = urllib.request.Request(base + path, data=body, method=method, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - local URL
        return json.loads(response.read())


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def numbers_csv(rows: int, prefix: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "account_id"])
    writer.writerows([f"+1{prefix}{i:07d}", ACCOUNT] for i in range(rows))
    return out.getvalue().encode()


def run_task(base: str, token: str, pid: int, rows: int, prefix: str) -> dict[str, float]:
    tasks = f"/v2/accounts/{ACCOUNT}/tasks"
    created = call(
        base, "PUT", f"{tasks}?category=number_management&action=add", token, numbers_csv(rows, prefix), True
    )
    task_id = created["data"]["_read_only"]["id"]
    before = rss_kb(pid)
    started = time.monotonic()
    call(base, "PATCH", f"{tasks}/{task_id}", token)
    peak, task = before, {}
    while True:
        peak = max(peak, rss_kb(pid))
        task = call(base, "GET", f"{tasks}/{task_id}", token)["data"]["_read_only"]
        if task["status"] not in ("pending", "executing") and "out.csv" in task.get("csvs", []):
            break
        time.sleep(0.5)
    seconds = time.monotonic() - started
    if task["status"] != "success" or task["success_count"] != rows:
        raise SystemExit(f"the {rows}-row task ended {task['status']} with {task.get('success_count')} rows")
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "before_mb": before / 1024,
        "peak_mb": peak / 1024,
    }


def _measure(endpoints: emulator.Endpoints, baseline: int, rows: int) -> tuple[dict[str, float], dict[str, float]]:
    """The task at `baseline` rows, then at `rows`, on a stack of its own on `endpoints`."""
    api_port = emulator.free_port()
    env = {**os.environ, **endpoints.env()}
    env.setdefault("PYTHONPATH", f"{ROOT / 'layers/core/python'}{os.pathsep}{ROOT}")
    stack = subprocess.Popen(
        [sys.executable, "-m", "infra.local.run", "--port", str(api_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                login = {"email": "dev@demo.local", "password": "demo-dev-password"}
                token = call(base, "POST", "/runtime/api/auth/login", body=json.dumps(login).encode())["token"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        small = run_task(base, token, stack.pid, baseline, "650")
        return small, run_task(base, token, stack.pid, rows, "651")
    finally:
        stack.terminate()
        stack.wait(timeout=30)


def main() -> int:
    rows = int(os.environ.get("BENCH_TASK_ROWS", "100000"))
    baseline = max(1, rows // 10)
    with emulator.started() as endpoints:
        print(f"DynamoDB engine: {endpoints.engine}", flush=True)
        small, large = _measure(endpoints, baseline, rows)
    for result in (small, large):
        print(
            f"task add {int(result['rows']):>7} rows: {result['seconds']:7.1f} s, {result['rows_per_s']:6.0f} rows/s, "
            f"memory {result['before_mb']:.0f} MB before, {result['peak_mb']:.0f} MB peak"
        )
    print(
        f"peak memory ratio {large['rows']:.0f} / {small['rows']:.0f} rows: {large['peak_mb'] / small['peak_mb']:.2f}"
    )
    print(f"throughput ratio: {large['rows_per_s'] / small['rows_per_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
