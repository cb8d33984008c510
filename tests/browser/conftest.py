"""The console's page in a real browser: Debian's Chromium, driven by Playwright for Python.

One browser for these tests, one page per test (a fresh context: its own sessionStorage), against a
local stack of their own: the same processes as the session's (tests/integration/stack.py: emulator,
gateway, worker) but not shared, because the console's tests import 5,000 companies and delete them in
a job they stop and resume; on the session's stack the other files would see those companies and their
jobs would queue behind that delete (about 50 rows a second here) for a minute and more. The stack goes
with the last browser test, the delete with it. The browser is the system's (`/usr/bin/chromium`, which
`.ci/run` installs where it is missing), never one Playwright downloads. Every page fails its test on
any console error or uncaught exception.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local import emulator
from tests.integration.stack import ROOT, Api, processes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Where each screen's screenshot goes: docs/console/ with `make screenshots` (CONSOLE_SHOTS=docs/console),
# else a scratch directory, so that a test run leaves the working copy as it was.
SHOTS = ROOT / os.environ["CONSOLE_SHOTS"] if os.environ.get("CONSOLE_SHOTS") else Path(tempfile.mkdtemp())
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="package")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The browser tests' own stack (see above): its processes only, the test process's environment
    untouched (the session's stack, if this process has one, keeps its own)."""
    logs = tmp_path_factory.mktemp("browser-stack")
    # DynamoDB Local with its whole JIT: the 5,000-row import runs in about 33 s where the first tier alone
    # (`fast_start`, the session stacks') took 44 to 48 s on this machine; its start costs no more here.
    with emulator.started(fast_start=False) as endpoints, processes(endpoints, logs) as (api, _, _):
        yield api


@pytest.fixture(scope="package")
def dev_token(api: Api) -> str:
    return api.login("dev@demo.local", "demo-dev-password")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium on this machine (Debian's `chromium` package; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


class Console:
    """One test's page of the console, and the errors the page reported."""

    def __init__(self, page: Any, api: Api) -> None:
        self.page, self.api = page, api
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} at {message.location.get('url')}")

    def open(self) -> None:
        self.page.goto(f"{self.api.base}/console")

    def login(self, email: str, password: str) -> None:
        self.open()
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()
        self.page.get_by_role("button", name="Log out").wait_for()

    def shot(self, screen: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{screen}.png"), full_page=True)


@pytest.fixture
def console(browser: Any, api: Api) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    seen = Console(page, api)
    try:
        yield seen
    finally:
        context.close()
    assert seen.errors == [], seen.errors
