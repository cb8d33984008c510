"""Benchmark: how long each of the console's screens takes to load at 100,000 records against 10,000.

The console (`/console`) in headless Chromium (Debian's, driven by Playwright, as tests/browser drive it)
against a stack of its own (`make run`'s, without workers): two tenants with the demo app, one holding
BENCH_CONSOLE_SMALL companies and the other BENCH_CONSOLE_LARGE, filled in bulk as infra/bench/runtime.py
fills them (a record item and its 8 index entries each, then the counts). Each tenant's developer goes
through the same screens, in a fresh browser context each round, and each step is timed from the click
(or the navigation) to the moment the page has drawn what it was asked for:

- page: `/console` until the log-in form shows (the static files);
- log in: the button until the Jobs screen has drawn its list;
- records: Data, entity `companies`, no query, Search, until `records 1-20 of <total>` shows (one
  page, and the per-entity count bars);
- query: `type=a` (a third of the records), until its first page and total show;
- sort: a click on the `numberOfEmployees` column, until the page comes back sorted by it;
- next page: until records 21-40 show;
- record: a click on the first record, until its detail shows;
- history: its History button, until the entries (or "No history.") show.

Each figure is the median over BENCH_CONSOLE_ROUNDS rounds (after one round not counted, which warms the
stack and the browser), and the ratio large/small says whether a screen costs more as the table grows.
Nothing asserts on time.

    python -m infra.bench.console_pages            # about 20 minutes on 2 cores, nearly all of it the fill
    BENCH_CONSOLE_SMALL=1000 BENCH_CONSOLE_LARGE=10000 python -m infra.bench.console_pages   # a quick look
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from infra.bench.runtime import ENTITY, fill, kind, tenant
from infra.bench.stack import Stack, running
from infra.demo.load import demo_app

SMALL = int(os.environ.get("BENCH_CONSOLE_SMALL", "10000"))
LARGE = int(os.environ.get("BENCH_CONSOLE_LARGE", "100000"))
ROUNDS = int(os.environ.get("BENCH_CONSOLE_ROUNDS", "5"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
PASSWORD = "bench-dev-password"  # noqa: S105 - the tenants' throwaway developer (infra/bench/runtime.py)
DASH = "\u2013"  # the en dash of the page's "records 1\u201320 of n"
STEPS = ("page", "log in", "records", "query", "sort", "next page", "record", "history")


def timed(act: Callable[[], None], drawn: Callable[[], None]) -> float:
    """Milliseconds from `act` (a click, a navigation) until `drawn` returns (what it waits for is shown)."""
    start = time.perf_counter()
    act()
    drawn()
    return (time.perf_counter() - start) * 1000


def status(page: Any, text: str) -> Callable[[], None]:
    """Wait until the records' status line says `text` (a range and a total)."""
    return lambda: page.locator("#records-status").filter(has_text=text).wait_for()


def one_round(browser: Any, base: str, email: str, total: int) -> dict[str, float]:
    """The screens in a fresh context (its own sessionStorage: a first visit), each step timed."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(120_000)
    page = context.new_page()
    times: dict[str, float] = {}
    try:
        times["page"] = timed(lambda: page.goto(f"{base}/console"), lambda: page.get_by_label("Email").wait_for())
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        times["log in"] = timed(
            lambda: page.get_by_role("button", name="Log in").click(),
            lambda: page.locator("#job-table tbody tr").first.wait_for(),
        )
        page.get_by_role("button", name="Data").click()
        page.locator("#entity").fill(ENTITY)
        search = page.get_by_role("button", name="Search")
        times["records"] = timed(search.click, status(page, f"records 1{DASH}20 of {total}"))
        page.locator("#query").fill("type=a")
        times["query"] = timed(search.click, status(page, f"records 1{DASH}20 of {of_type_a(total)}"))
        sorted_head = page.locator('#record-table th[aria-sort="ascending"]', has_text="numberOfEmployees")
        times["sort"] = timed(
            lambda: page.locator("#record-table th button", has_text="numberOfEmployees").click(),
            sorted_head.wait_for,
        )
        following = page.get_by_role("button", name="Next page")
        times["next page"] = timed(following.click, status(page, f"records 21{DASH}40"))
        times["record"] = timed(
            page.locator("#record-table tbody button").first.click, page.locator("#record-detail").wait_for
        )
        times["history"] = timed(
            page.get_by_role("button", name="History").click, page.locator("#history li").first.wait_for
        )
    finally:
        context.close()
    return times


def of_type_a(rows: int) -> int:
    """How many of `rows` companies have type `a` (infra/bench/runtime.py `kind`)."""
    return sum(1 for i in range(rows) if kind(i) == "a")


def main() -> int:
    if not os.path.exists(CHROMIUM):
        print(f"no chromium at {CHROMIUM} (Debian's `chromium` package): nothing measured", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    sizes = {"small": SMALL, "large": LARGE}
    app = demo_app()
    with running(workers=False) as stack:
        logins = _fill(stack, app, sizes)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            figures = {key: _measure(browser, stack, logins[key], sizes[key]) for key in sizes}
            browser.close()
    _report(figures, sizes)
    return 0


def _fill(stack: Stack, app: Any, sizes: dict[str, int]) -> dict[str, str]:
    """Each size's tenant, filled; the email of its developer."""
    entity = next(e for e in app.entities if e.name == ENTITY)
    emails = {}
    for key, rows in sizes.items():
        started = time.monotonic()
        tenant_id, _ = tenant(stack, key, app)  # its developer: dev@bench-<key>.local
        fill(stack.core, tenant_id, entity, rows)
        print(f"filled {rows:,} {ENTITY} in {time.monotonic() - started:.0f} s", flush=True)
        emails[key] = f"dev@bench-{key}.local"
    return emails


def _measure(browser: Any, stack: Stack, email: str, rows: int) -> dict[str, float]:
    """Each step's median over the counted rounds (the first round warms up and is dropped)."""
    rounds = [one_round(browser, stack.base, email, rows) for _ in range(ROUNDS + 1)][1:]
    return {step: statistics.median(r[step] for r in rounds) for step in STEPS}


def _report(figures: dict[str, dict[str, float]], sizes: dict[str, int]) -> None:
    small, large = figures["small"], figures["large"]
    print(f"\nconsole screens, ms from the click to the drawn answer (median of {ROUNDS} rounds)")
    print(f"{'step':<12}{sizes['small']:>12,}{sizes['large']:>12,}{'ratio':>8}")
    for step in STEPS:
        print(f"{step:<12}{small[step]:>12.0f}{large[step]:>12.0f}{large[step] / small[step]:>8.2f}")


if __name__ == "__main__":
    sys.exit(main())
