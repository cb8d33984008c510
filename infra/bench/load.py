"""Benchmark: 50 concurrent callers against the local stack, beside the same calls made one at a time.

One emulator and one stack with its workers, started as for the other benches (`infra/bench/stack.py`,
`make run`'s way). Set-up, over HTTP as a user would: an errand (calculation 1 over periods 1 to 3), a
runtime job (an `_async` delete of the contacts with an e-mail nobody has: it deletes nothing), a task
(`number_management list`, created, not run), each job waited for until it has ended.

The routes, with the header of their own dialect and the weight a caller picks them by:

    login          POST /runtime/api/auth/login (user@demo.local)            1  (scrypt, ~0.5 s of CPU)
    errand list    GET  /gateway/errand/v1/errands?size=20                     10
    task list      GET  /v2/accounts/<demo>/tasks                              10
    extract        GET  /gateway/extract/v1/custom-tables/test_table_name?...  10
    runtime job    GET  /runtime/api/status/jobs/<id>                          10
    errand status  GET  /gateway/errand/v1/errands/<id>                        10

After one warm-up round (a few of each, concurrently, so that the local stack's pool of containers
per function exists), each route is called BENCH_LOAD_SEQUENTIAL times one at a time (login a fifth
as often), then locust (`infra/bench/locustfile.py`, headless, in its own process) starts BENCH_LOAD_USERS
callers (50), 10 a second, and counts BENCH_LOAD_SECONDS (60) from when all of them run, with no pause
between a caller's requests. The table gives, per route,
requests/s, p50 and p99 under load and one at a time, the p50 ratio (what concurrency costs a request),
and the errors: any is a failure of the bench (exit status 1). The whole mix's requests/s one at a time
(a weighted mean of the routes' times) against under load shows what concurrency buys.

Everything runs on this machine: the stack (one process: the gateway and the handlers in threads,
at most 4 warm containers per function), the emulator and locust share its cores, so the figures
are the local stack's, not Lambda's (where each request has a container to itself).

    make bench                                      # with the other benches
    BENCH_LOAD_SECONDS=20 python -m infra.bench.load   # a quick look
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from infra.bench.stack import ROOT, TENANT, Stack, call, running

SECONDS = int(os.environ.get("BENCH_LOAD_SECONDS", "60"))
USERS = int(os.environ.get("BENCH_LOAD_USERS", "50"))
SEQUENTIAL = int(os.environ.get("BENCH_LOAD_SEQUENTIAL", "30"))
# Callers start 10 a second, and the figures count from when all of them run: a burst of 50 new
# connections at once overflows the local gateway's listen queue (http.server's, 5 deep).
SPAWN_RATE = 10
RAMP_SECONDS = -(-USERS // SPAWN_RATE)
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
LOGIN = {"email": "user@demo.local", "password": "demo-user-password"}


@dataclass
class Route:
    name: str
    method: str
    path: str
    headers: dict[str, str]
    body: str | None
    weight: int


def routes(token: str, errand_id: int, job_id: str) -> list[Route]:
    bearer, tasks, runtime = {"Authorization": f"Bearer {token}"}, {"X-Auth-Token": token}, {"token": token}
    json_type = {"Content-Type": "application/json"}
    return [
        Route("login", "POST", "/runtime/api/auth/login", json_type, json.dumps(LOGIN), 1),
        Route("errand list", "GET", "/gateway/errand/v1/errands?size=20", bearer, None, 10),
        Route("task list", "GET", f"/v2/accounts/{TENANT}/tasks", tasks, None, 10),
        Route("extract", "GET", "/gateway/extract/v1/custom-tables/test_table_name?field1=value1.1", bearer, None, 10),
        Route("runtime job", "GET", f"/runtime/api/status/jobs/{job_id}", runtime, None, 10),
        Route("errand status", "GET", f"/gateway/errand/v1/errands/{errand_id}", bearer, None, 10),
    ]


def send(base: str, route: Route) -> tuple[float, str | None]:
    """One request: its seconds, and what went wrong (None for a 2xx)."""
    data = route.body.encode() if route.body is not None else None
    request = urllib.request.Request(base + route.path, data=data, method=route.method, headers=route.headers)  # noqa: S310
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - local URL
            response.read()
            error = None
    except urllib.error.HTTPError as err:
        error = f"HTTP {err.code}: {err.read()[:200]!r}"
    except OSError as err:
        error = repr(err)
    return time.perf_counter() - started, error


def set_up(stack: Stack) -> tuple[int, str]:
    """An errand, a runtime job and a task, the jobs waited for; the errand's and the job's ids."""
    base, token = stack.base, stack.token
    calculation = {"periodRange": [1, 2, 3], "calculationId": 1, "participantIds": [1, 2, 3]}
    errand = call(base, "/gateway/errand/v1/calculations", token, json.dumps(calculation).encode())
    job = call(base, "/runtime/api/data/contacts?email=nobody%40bench.invalid&_async=true", token, method="DELETE")
    call(base, f"/v2/accounts/{TENANT}/tasks?category=number_management&action=list", token, method="PUT")
    deadline = time.monotonic() + 120
    while True:
        errand = call(base, f"/gateway/errand/v1/errands/{errand['id']}", token)
        status = call(base, f"/runtime/api/status/jobs/{job['jobId']}", token)
        if errand["state"] != "Running" and status["status"] not in ("PENDING", "RUNNING"):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the set-up jobs did not end: errand {errand['state']}, job {status['status']}")
        time.sleep(0.25)
    return int(errand["id"]), str(job["jobId"])


def one_at_a_time(base: str, route: Route, times: int) -> tuple[list[float], list[str]]:
    seconds, errors = [], []
    for _ in range(times):
        took, error = send(base, route)
        seconds.append(took)
        if error:
            errors.append(error)
    return seconds, errors


def p(values: list[float], percent: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1] if len(values) > 1 else values[0]


def under_load(base: str, listed: list[Route]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Run locust headless; its per-route CSV rows by name, and its failures."""
    with tempfile.TemporaryDirectory(prefix="bench-load-") as folder:
        prefix = str(Path(folder) / "load")
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--users",
            str(USERS),
            "--spawn-rate",
            str(SPAWN_RATE),
            "--reset-stats",
            "--run-time",
            f"{SECONDS + RAMP_SECONDS}s",
            "--stop-timeout",
            "30",
            "--host",
            base,
            "--csv",
            prefix,
            "--only-summary",
            "--loglevel",
            "WARNING",
        ]
        env = {**os.environ, "BENCH_LOAD_ROUTES": json.dumps([asdict(r) for r in listed])}
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        stats_file, failures_file = Path(f"{prefix}_stats.csv"), Path(f"{prefix}_failures.csv")
        if not stats_file.exists():
            raise SystemExit(f"locust wrote no stats (exit {done.returncode}):\n{done.stderr[-3000:]}")
        with stats_file.open() as out:
            rows = {row["Name"]: row for row in csv.DictReader(out)}
        failures = []
        if failures_file.exists():
            with failures_file.open() as out:
                failures = [f"{r['Name']}: {r['Occurrences']} x {r['Error']}" for r in csv.DictReader(out)]
    return rows, failures


def report(listed: list[Route], alone: dict[str, list[float]], loaded: dict[str, dict[str, str]], errors: int) -> None:
    print(f"\nLoad: {USERS} concurrent callers for {SECONDS} s against the same calls one at a time (times in ms)")
    print(
        f"{'route':<15}{'weight':>7} | {'requests':>9}{'req/s':>8}{'p50':>8}{'p99':>8}{'errors':>7} |"
        f" {'alone':>6}{'req/s':>8}{'p50':>8}{'p99':>8} | {'p50 ratio':>9}"
    )
    for route in listed:
        row, seconds = loaded.get(route.name), alone[route.name]
        p50_alone = statistics.median(seconds) * 1000
        if row is None:
            print(f"{route.name:<15}{route.weight:>7} | {'(no request under load)':>40}")
            continue
        p50 = float(row["50%"])
        print(
            f"{route.name:<15}{route.weight:>7} | {int(row['Request Count']):>9}{float(row['Requests/s']):>8.1f}"
            f"{p50:>8.0f}{float(row['99%']):>8.0f}{int(row['Failure Count']):>7} |"
            f" {len(seconds):>6}{1 / statistics.mean(seconds):>8.1f}{p50_alone:>8.0f}{p(seconds, 99) * 1000:>8.0f} |"
            f" {p50 / p50_alone:>9.1f}"
        )
    total = loaded.get("Aggregated")
    weights = sum(r.weight for r in listed)
    mix_alone = 1 / sum(r.weight / weights * statistics.mean(alone[r.name]) for r in listed)
    if total is not None:
        rps = float(total["Requests/s"])
        print(
            f"all: {int(total['Request Count'])} requests, {rps:.1f} req/s under load against {mix_alone:.1f} req/s"
            f" one at a time (x{rps / mix_alone:.1f}); p50 {float(total['50%']):.0f} ms, p99 {float(total['99%']):.0f}"
            f" ms; errors {errors}"
        )
    print("no error: bar met" if errors == 0 else f"{errors} errors: bar NOT met")


def main() -> None:
    with running(workers=True) as stack:
        errand_id, job_id = set_up(stack)
        listed = routes(stack.token, errand_id, job_id)
        with ThreadPoolExecutor(max_workers=8) as pool:  # warm-up: each function's containers
            list(pool.map(lambda r: send(stack.base, r), [r for r in listed for _ in range(4)]))
        alone: dict[str, list[float]] = {}
        problems: list[str] = []
        for route in listed:
            times = max(3, SEQUENTIAL // 5) if route.name == "login" else SEQUENTIAL
            alone[route.name], failed = one_at_a_time(stack.base, route, times)
            problems += [f"{route.name} (one at a time): {e}" for e in failed]
        loaded, failures = under_load(stack.base, listed)
    errors = len(problems) + sum(int(row["Failure Count"]) for name, row in loaded.items() if name != "Aggregated")
    report(listed, alone, loaded, errors)
    for problem in [*problems, *failures][:20]:
        print("  ", problem)
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
