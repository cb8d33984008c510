"""The operator's console in headless Chromium: what an operator does, as the issue lists it.

Each test logs in through the page, acts with the keyboard-reachable controls (buttons and labelled
fields, found by role and label as a screen reader would), checks what the page shows, and saves a
screenshot of its screen (to docs/console/ with `make screenshots`). They run on a stack of their own (conftest.py): the
5,000 companies they import, and the job that deletes them, stay there.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Console
from tests.integration.stack import Api

ROWS = 5_000
PREFIX = "Console Co"
# Each company's notes (a text field, not indexed): 5,000 rows of them make a file above the 4 MiB a request
# carries, so the page sends it straight to S3 by the presigned flow, and its export comes back by S3 too.
NOTES = 900
INLINE_MOST = 4 * 1024 * 1024
DEV = ("dev@demo.local", "demo-dev-password")
RESTRICTED = ("user@demo.local", "demo-user-password")  # group Sales: no taxId, no contract on companies
HIDDEN = ("taxId", "contract")
DATETIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
EPOCH_MS = re.compile(r"\b1\d{12}\b")  # a date-time of these years as epoch milliseconds
QUERY = urlencode({"name": f"like(/{PREFIX})"})  # the companies this file imports


@pytest.fixture(scope="module")
def companies_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console") / "companies.csv"
    notes = ("Met at the trade fair; wants the yearly plan. " * (NOTES // 40))[:NOTES]
    rows = "".join(f"{PREFIX} {n:05d},{'abc'[n % 3]},{notes}\n" for n in range(ROWS))
    path.write_text("name,type,notes\n" + rows)
    assert path.stat().st_size > INLINE_MOST
    return path


def _ours(api: Api, token: str) -> int:
    reply = api.call("GET", f"/runtime/api/data/companies?{QUERY}&_size=1", headers={"token": token})
    return int(reply.json()["total"])


def _job_row(console: Console, job_id: str) -> Any:
    return console.page.locator(f'#job-table tr[data-key="runtime:{job_id}"]')


@pytest.mark.slow  # its 5,000 rows are what it proves; the file starts first under `make test`
def test_an_import_of_5000_rows_runs_to_100_percent_before_the_operators_eyes(
    console: Console, companies_csv: Path
) -> None:
    console.open()
    console.shot("login")
    console.login(*DEV)
    console.page.get_by_role("button", name="Start work").click()
    console.page.get_by_label("Entity", exact=True).first.fill("companies")
    console.page.locator("#import-file").set_input_files(str(companies_csv))
    console.shot("start-work")
    sent: list[Any] = []
    console.page.on("request", lambda request: sent.append(request))
    console.page.get_by_role("button", name="Import", exact=True).click()

    status = console.page.locator("#job-detail-title")
    status.wait_for()
    key = console.page.locator("#job-table tr.selected").get_attribute("data-key")
    assert key and key.startswith("runtime:")
    bar = console.page.locator(f'#job-table tr[data-key="{key}"] [role=progressbar]')
    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=90_000)
    row = console.page.locator(f'#job-table tr[data-key="{key}"]')
    assert re.search(rf"{ROWS} / {ROWS}", row.inner_text())
    expect(row).to_contain_text("FINISHED", timeout=30_000)  # every row done, then the job's finishing
    assert console.page.locator("#job-chart svg polyline").count() == 1  # rows done over time
    expect(console.page.locator("#job-log")).not_to_be_empty()
    console.shot("jobs")
    # The bytes went to the files' storage by the presigned URL, not through the API: the import got an id
    size = companies_csv.stat().st_size
    puts = [r for r in sent if r.method == "PUT" and "X-Amz-Signature=" in r.url]
    assert len(puts) == 1 and not puts[0].url.startswith(console.api.base), [r.url for r in puts]
    signed = puts[0].all_headers()  # what the URL signs: the declared type, written once, the declared size
    assert signed.get("if-none-match") == "*" and signed.get("content-type", "").startswith("text/csv"), signed
    assert "token" not in signed and "authorization" not in signed
    imports = [r for r in sent if r.method == "POST" and r.url.endswith("/runtime/api/data/companies/import")]
    assert len(imports) == 1 and len(imports[0].post_data_buffer or b"") < 1000
    assert max(len(r.post_data_buffer or b"") for r in sent if r.url.startswith(console.api.base)) < size


def test_a_big_export_downloads_from_the_jobs_screen(
    console: Console, api: Api, dev_token: str, tmp_path: Path
) -> None:
    if _ours(api, dev_token) < ROWS:
        pytest.skip("needs the 5,000 companies the import test makes")
    # The export is started by the API; its file (above 4 MiB: a share link's redirect to S3) by the page.
    reply = api.call(
        "PUT", f"/runtime/api/data/companies/export?{QUERY}&_fields=name,notes", headers={"token": dev_token}
    )
    job_id = reply.json()["jobId"]
    console.login(*DEV)
    row = _job_row(console, job_id)
    expect(row).to_contain_text("FINISHED", timeout=60_000)
    row.get_by_role("button").click()
    commands = console.page.get_by_role("group", name="Commands")
    with console.page.expect_download() as download:
        commands.get_by_role("button", name="Download file").click()
    saved = tmp_path / "export.csv"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "companies-export.csv"
    assert saved.stat().st_size > INLINE_MOST
    with saved.open(newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == ["name", "notes"] and len(lines) == ROWS + 1
    assert {line[0] for line in lines[1:]} == {f"{PREFIX} {n:05d}" for n in range(ROWS)}
    # a share link the page follows as a download (no token on it), whose redirect is the storage's URL
    came_from = download.value.url
    assert "X-Amz-Signature=" in came_from and not came_from.startswith(console.api.base), came_from


def test_a_running_job_stops_and_resumes_from_the_console(console: Console, api: Api, dev_token: str) -> None:
    if _ours(api, dev_token) < ROWS:
        pytest.skip("needs the 5,000 companies the import test makes")
    # A delete of the 5,000 companies by query, as a job: long enough to stop, and it cleans up.
    reply = api.call("DELETE", f"/runtime/api/data/companies?{QUERY}&_async=true", headers={"token": dev_token})
    job_id = reply.json()["jobId"]
    console.login(*DEV)
    row = _job_row(console, job_id)
    row.get_by_role("button").click()
    commands = console.page.get_by_role("group", name="Commands")
    commands.get_by_role("button", name="Stop").press("Enter")  # by keyboard: focused, then Enter
    commands.get_by_role("button", name="Resume").wait_for(timeout=30_000)
    assert "STOPPED" in row.inner_text()
    bar = row.get_by_role("progressbar")
    stopped_at = bar.get_attribute("aria-valuenow")
    console.shot("job-stopped")
    commands.get_by_role("button", name="Resume").click()
    expect(commands.get_by_role("button", name="Stop")).to_be_visible(timeout=30_000)
    expect(bar).not_to_have_attribute("aria-valuenow", stopped_at or "", timeout=30_000)  # on from where it was
    # Then it is ended at once, so that its deletes (about 50 rows a second here) take no CPU from the tests
    # that follow, on this stack or beside it
    jobs = f"/runtime/api/status/jobs/{job_id}"
    stopped = api.call("PUT", f"{jobs}/stop", headers={"token": dev_token})  # unless it finished meanwhile
    assert stopped.status == 200 or b"is FINISHED" in stopped.body, stopped.body
    forced = api.call("PUT", f"{jobs}/forceStop", headers={"token": dev_token})  # unless it ended already
    assert forced.status == 200 or re.search(rb"is (STOPPED|FINISHED)", forced.body), forced.body


def _records(console: Console, entity: str, query: str) -> None:
    console.page.get_by_role("button", name="Data").click()
    console.page.locator("#entity").fill(entity)
    console.page.get_by_label("Query").fill(query)
    console.page.get_by_role("button", name="Search").click()
    console.page.locator("#record-table tbody tr").first.wait_for()


def test_records_filter_by_a_query_sort_by_a_click_and_show_a_history(console: Console) -> None:
    console.login(*DEV)
    _records(console, "companies", "type=a")
    status = console.page.locator("#records-status")
    total = int(re.search(r"of (\d+)", status.inner_text()).group(1))  # type: ignore[union-attr]
    assert total > 0
    header = [h.strip() for h in console.page.locator("#record-table thead th").all_inner_texts()]
    column = header.index("type")
    types = [r.split("\t")[column] for r in console.page.locator("#record-table tbody tr").all_inner_texts()]
    assert types and set(types) == {"a"}
    console.page.locator("#record-table thead").get_by_role("button", name="name").click()
    console.page.locator("#record-table th[aria-sort=ascending]").wait_for()
    names = [r.split("\t")[0] for r in console.page.locator("#record-table tbody tr").all_inner_texts()]
    assert names == sorted(names)
    # Date-times as UTC dates, not epoch milliseconds: in the table, a record's fields and its history
    rows = console.page.locator("#record-table tbody tr").all_inner_texts()
    header = [h.strip() for h in console.page.locator("#record-table thead th").all_inner_texts()]
    met = {r.split("\t")[header.index("lastMeeting")] for r in rows} - {""}
    assert met and all(DATETIME.fullmatch(m) for m in met), met
    console.page.locator("#entity-chart svg rect").first.wait_for()
    console.shot("data")

    console.page.locator("#record-table tbody tr").first.get_by_role("button").click()
    console.page.get_by_role("button", name="History").click()
    console.page.locator("#history li").first.wait_for()
    assert "CREATED" in console.page.locator("#history").inner_text()
    for box in ("#record-fields", "#history"):
        text = console.page.locator(box).inner_text()
        assert DATETIME.search(text) and not EPOCH_MS.search(text), text
    console.shot("record")


def test_a_gateway_import_starts_from_the_page_and_its_errand_is_listed(console: Console, tmp_path: Path) -> None:
    upload = tmp_path / "accounts.csv"
    upload.write_text("field1\nconsole-1\nconsole-2\n")
    console.login(*DEV)
    console.page.get_by_role("button", name="Start work").click()
    console.page.get_by_label("Import file type").fill("standard-1")
    console.page.get_by_label("Periods").fill("1")
    # A file above what one request carries through API Gateway and Lambda: refused in words, nothing sent
    big = tmp_path / "big.csv"
    big.write_text("field1\n" + ("x" * 99 + "\n") * (INLINE_MOST // 100 + 1))
    console.page.locator("#gateway-file").set_input_files(str(big))
    uploads: list[Any] = []
    console.page.on("request", lambda request: uploads.append(request) if request.method == "POST" else None)
    console.page.get_by_role("button", name="Upload and import").click()
    expect(console.page.locator("#work-error")).to_contain_text("at most 4 MiB in one request")
    assert uploads == []
    console.page.locator("#gateway-file").set_input_files(str(upload))
    console.page.get_by_role("button", name="Upload and import").click()
    row = console.page.locator("#job-table tr.selected")
    # Listed at once with its errand's name; it runs after the jobs queued before it (the delete above).
    expect(row).to_contain_text("gateway Import", timeout=15_000)
    expect(row).to_contain_text("Account: Period 1")
    console.page.get_by_label("Dialect").select_option("gateway")
    expect(console.page.locator("#job-table tbody")).not_to_contain_text("runtime")


def test_a_tasks_task_starts_from_a_csv_and_is_listed(console: Console, tmp_path: Path) -> None:
    console.login(*DEV)
    account = console.page.evaluate("JSON.parse(sessionStorage.getItem('backroom.session')).account")
    upload = tmp_path / "numbers.csv"
    upload.write_text(f"number,account_id\n+12025550101,{account}\n+12025550102,{account}\n")
    console.page.get_by_role("button", name="Start work").click()
    console.page.get_by_label("Category").fill("number_management")
    console.page.get_by_label("Action").fill("add")
    console.page.locator("#task-file").set_input_files(str(upload))
    console.page.get_by_role("button", name="Create and start").click()
    row = console.page.locator("#job-table tr.selected")
    expect(row).to_contain_text("tasks number_management/add", timeout=15_000)
    expect(row).to_contain_text(re.compile(r"EXECUTING|SUCCESS"))


def test_a_restricted_user_never_sees_a_hidden_field(console: Console) -> None:
    # Logged in with the keyboard alone: the page puts the focus in the email field.
    console.open()
    console.page.keyboard.type(RESTRICTED[0])
    console.page.keyboard.press("Tab")
    console.page.keyboard.type(RESTRICTED[1])
    console.page.keyboard.press("Enter")
    console.page.get_by_role("button", name="Log out").wait_for()
    _records(console, "companies", "")
    console.page.locator("#record-table tbody tr").first.get_by_role("button").click()
    console.page.get_by_role("button", name="History").click()
    console.page.locator("#history li").first.wait_for()
    for screen in ("Jobs", "Start work", "Data"):
        console.page.get_by_role("button", name=screen, exact=True).click()
        if screen == "Jobs":  # its first poll has drawn it
            expect(console.page.locator("#job-table")).to_have_attribute("aria-busy", "false")
        text = console.page.locator("main").inner_text()
        assert not any(name in text for name in HIDDEN), screen
    console.shot("restricted")
    assert not any(name in console.page.content() for name in HIDDEN)
    # A phone's width: the page is one column, only a wide table scrolls (in its own box).
    console.page.set_viewport_size({"width": 375, "height": 800})
    assert console.page.evaluate("document.documentElement.scrollWidth") <= 375
    console.shot("phone")

    # Log out revokes the token: the API refuses it from then on.
    token = console.page.evaluate("JSON.parse(sessionStorage.getItem('backroom.session')).token")
    console.page.get_by_role("button", name="Log out").click()
    console.page.get_by_role("button", name="Log in").wait_for()
    assert console.page.evaluate("sessionStorage.getItem('backroom.session')") is None
    assert console.page.locator("#record-table tbody tr").count() == 0  # the page began again from nothing
    assert console.api.call("GET", "/runtime/api/users/current", headers={"token": token}).status == 401
