"""Account tasks on the core: input checks, the built-in tasks, replays, stop, crash and access."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from backroom.errors import BackroomError, Forbidden, NotFound
from backroom.identity.models import Caller, Role
from backroom.numbers import NumberRepository
from backroom.quantities import QuantityLedger
from backroom.tasks.numbers import AddNumbers
from backroom.wiring import Core

from tests.core.conftest import QueueDriver

ROOT, SUB, OTHER = "a" * 32, "b" * 32, "c" * 32
PASSWORD = "a-long-enough-password"


@pytest.fixture
def accounts(core: Core) -> dict[str, Caller]:
    """A tenant (root + sub-account) and another tenant, with a developer, a user and a sub-account user."""
    core.identity.create_account(ROOT, "root")
    core.identity.create_account(SUB, "sub", ROOT)
    core.identity.create_account(OTHER, "other")
    users = {
        "dev": (Role.DEVELOPER, ROOT),
        "user": (Role.USER, ROOT),
        "sub": (Role.USER, SUB),
        "other": (Role.DEVELOPER, OTHER),
    }
    callers = {}
    for name, (role, account) in users.items():
        core.identity.create_user(f"{name}@t.local", PASSWORD, name=name, role=role, account_id=account)
        callers[name] = core.identity.login(f"{name}@t.local", PASSWORD).caller
    return callers


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def run_task(
    core: Core,
    queue: QueueDriver,
    who: Caller,
    category: str,
    action: str,
    rows: list[list[str]] | None = None,
    account: str = ROOT,
) -> dict[str, Any]:
    body = csv_bytes(rows) if rows else b""
    task = core.tasks.create(who, account, category, action, body=body, is_csv=True, file_name=None)
    core.tasks.start(who, account, task["id"])
    queue.drain()
    return core.tasks.get(who, account, task["id"])


def started_add(core: Core, who: Caller, prefix: str, count: int) -> tuple[dict[str, Any], list[str]]:
    """An add task of `count` fresh numbers on the root account, started; and its numbers in order."""
    numbers = [f"+1415{prefix}{i:04d}" for i in range(count)]
    body = csv_bytes([["number", "account_id"]] + [[n, ROOT] for n in numbers])
    task = core.tasks.create(who, ROOT, "number_management", "add", body=body, is_csv=True, file_name=None)
    core.tasks.start(who, ROOT, task["id"])
    return task, numbers


def out_rows(core: Core, who: Caller, task: dict[str, Any]) -> list[dict[str, str]]:
    found = core.tasks.csv(who, task["account_id"], task["id"], "out.csv")
    return list(csv.DictReader(io.StringIO((found.body or b"").decode())))


def rejected(core: Core, who: Caller, body: bytes, action: str = "add", *, is_csv: bool = True) -> Any:
    with pytest.raises(BackroomError) as caught:
        core.tasks.create(who, ROOT, "number_management", action, body=body, is_csv=is_csv, file_name=None)
    return caught.value.data


# Input checks ------------------------------------------------------------
BAD_FORMAT = {"csv": {"format": {"message": "Empty CSV or some row(s) longer than others or header missing"}}}


@pytest.mark.parametrize(
    "body",
    [b"", b"number,account_id\n", b"number,account_id\n+14155550100\n", b",account_id\n+1,2\n", b"\xff\xfe\n"],
    ids=["empty", "header only", "short row", "blank header", "not utf-8"],
)
def test_a_malformed_csv_is_refused_with_kazoos_format_error(
    core: Core, accounts: dict[str, Caller], body: bytes
) -> None:
    if not body:  # an empty body is no input at all, which `add` needs
        assert rejected(core, accounts["dev"], body) == {"attachment": {"type": {"expected_content": "text/csv"}}}
    else:
        assert rejected(core, accounts["dev"], body) == BAD_FORMAT


def test_unknown_and_missing_fields_are_named(core: Core, accounts: dict[str, Caller]) -> None:
    data = rejected(core, accounts["dev"], b"wef,number\nx,+14155550100\n")
    assert data == {"attachment": {"type": {"unknown_fields": ["wef"], "missing_mandatory_fields": ["account_id"]}}}
    data = rejected(core, accounts["dev"], b"whatever\nx\n")
    assert data["attachment"]["type"]["missing_mandatory_fields"] == ["number", "account_id"]


def test_rows_missing_mandatory_values_are_listed_as_csv(core: Core, accounts: dict[str, Caller]) -> None:
    body = b"account_id,number\n,+14157215234\n" + ROOT.encode() + b",+14155550100\n009afc511c97b2ae693c6cc4920988e8,\n"
    data = rejected(core, accounts["dev"], body)
    assert data == {
        "attachment": {"type": {"missing_mandatory_values": [",+14157215234", "009afc511c97b2ae693c6cc4920988e8,"]}}
    }


def test_json_records_are_checked_like_csv(core: Core, accounts: dict[str, Caller]) -> None:
    body = b'{"data": {"records": [{"number": "+14155550100", "wef": 1}]}}'
    data = rejected(core, accounts["dev"], body, is_csv=False)
    assert data == {"attachment": {"type": {"unknown_fields": ["wef"], "missing_mandatory_fields": ["account_id"]}}}


def test_input_given_to_a_task_that_takes_none_is_refused(core: Core, accounts: dict[str, Caller]) -> None:
    data = rejected(core, accounts["dev"], b"number\n+14155550100\n", action="list")
    assert data == {"attachment": {"type": {"expected_content": "none"}}}


def test_unknown_category_or_action_is_a_bad_identifier(core: Core, accounts: dict[str, Caller]) -> None:
    for category, action, shown in [("nope", "add", "nope"), ("number_management", "nope", "nope")]:
        with pytest.raises(NotFound) as caught:
            core.tasks.create(accounts["dev"], ROOT, category, action, body=b"", is_csv=False, file_name=None)
        assert (caught.value.message, caught.value.data) == ("bad identifier", [shown])


# Running -----------------------------------------------------------------
def test_add_checks_each_cell_and_fails_only_the_bad_rows(
    core: Core, queue: QueueDriver, accounts: dict[str, Caller]
) -> None:
    rows = [
        ["number", "account_id"],
        ["+14155550100", ROOT],
        ["+18005550100", SUB],
        ["4155550101", ROOT],  # not E.164
        ["+14155550100", SUB],  # taken by the first row
        ["+14155550102", OTHER],  # another tenant's account
    ]
    task = run_task(core, queue, accounts["dev"], "number_management", "add", rows)

    assert (task["status"], task["total_count"], task["success_count"], task["failure_count"]) == ("partial", 5, 2, 3)
    assert task["csvs"] == ["in.csv", "out.csv"]
    output = out_rows(core, accounts["dev"], task)
    assert [(r["number"], r["item"], r["error"]) for r in output] == [
        ("+14155550100", "did_us", ""),
        ("+18005550100", "tollfree_us", ""),
        ("4155550101", "", "bad number"),
        ("+14155550100", "", "number already exists"),
        ("+14155550102", "", "bad account_id"),
    ]
    numbers = NumberRepository(core.table)
    assert [n.number for n in numbers.of_account(ROOT)] == ["+14155550100"]
    assert [n.number for n in numbers.of_account(SUB)] == ["+18005550100"]


def test_a_number_another_tenant_holds_is_no_business_of_this_one(
    core: Core, queue: QueueDriver, accounts: dict[str, Caller]
) -> None:
    """Numbers are unique within a tenant: another tenant's numbers neither fail nor show in its rows."""
    rows = [["number", "account_id"], ["+14155550120", OTHER]]
    theirs = run_task(core, queue, accounts["other"], "number_management", "add", rows, account=OTHER)
    ours = run_task(core, queue, accounts["dev"], "number_management", "add", [rows[0], ["+14155550120", ROOT]])
    again = run_task(core, queue, accounts["dev"], "number_management", "add", [rows[0], ["+14155550120", SUB]])

    assert (theirs["status"], ours["status"], again["status"]) == ("success", "success", "failure")
    assert [r["error"] for r in out_rows(core, accounts["dev"], again)] == ["number already exists"]
    numbers = NumberRepository(core.table)
    assert [n.number for n in numbers.of_account(OTHER)] == [n.number for n in numbers.of_account(ROOT)]
    deleted = run_task(core, queue, accounts["dev"], "number_management", "delete", [["number"], ["+14155550120"]])
    assert [r["account_id"] for r in out_rows(core, accounts["dev"], deleted)] == [ROOT]
    assert [n.number for n in numbers.of_account(OTHER)] == ["+14155550120"]  # theirs is untouched


def test_statuses_follow_the_counters(core: Core, queue: QueueDriver, accounts: dict[str, Caller]) -> None:
    dev = accounts["dev"]
    ok = run_task(core, queue, dev, "number_management", "add", [["number", "account_id"], ["+14155550110", ROOT]])
    bad = run_task(core, queue, dev, "number_management", "add", [["number", "account_id"], ["+14155550110", ROOT]])
    assert (ok["status"], ok["success_count"], ok["failure_count"]) == ("success", 1, 0)
    assert (bad["status"], bad["success_count"], bad["failure_count"]) == ("failure", 0, 1)
    assert ok["end_timestamp"] >= ok["start_timestamp"] >= ok["created"] > 63_000_000_000  # Gregorian seconds


def test_list_and_quantities_cover_the_account_and_its_descendants(
    core: Core, queue: QueueDriver, accounts: dict[str, Caller]
) -> None:
    dev = accounts["dev"]
    rows = [["number", "account_id"], ["+14155550120", ROOT], ["+14155550121", SUB], ["+18885550122", SUB]]
    run_task(core, queue, dev, "number_management", "add", rows)
    run_task(core, queue, dev, "number_management", "delete", [["number"], ["+14155550121"]])

    listed = run_task(core, queue, dev, "number_management", "list")
    assert listed["status"] == "success" and listed["csvs"] == ["out.csv"]
    assert [(r["number"], r["account_id"]) for r in out_rows(core, dev, listed)] == [
        ("+14155550120", ROOT),
        ("+18885550122", SUB),
    ]
    # The sub-account sees its own numbers only
    sub_list = run_task(core, queue, accounts["sub"], "number_management", "list", account=SUB)
    assert [r["number"] for r in out_rows(core, accounts["sub"], sub_list)] == ["+18885550122"]

    quantities = run_task(core, queue, dev, "services", "descendant_quantities")
    got = {
        (r["account_id"], r["item"]): (r["quantity_bom"], r["quantity_eom"]) for r in out_rows(core, dev, quantities)
    }
    assert got == {(ROOT, "did_us"): ("", "1"), (SUB, "did_us"): ("", "0"), (SUB, "tollfree_us"): ("", "1")}


def test_quantities_carry_the_end_of_one_month_into_the_beginning_of_the_next(core: Core) -> None:
    ledger = QuantityLedger(core.table)
    ledger.record("2026-09", "job1", 0, 10, {(ROOT, "phone_numbers", "did_us"): 4})
    ledger.record("2026-11", "job2", 0, 3, {(ROOT, "phone_numbers", "did_us"): -1})
    ledger.record("2026-11", "job2", 0, 3, {(ROOT, "phone_numbers", "did_us"): -1})  # a replayed group
    got = [(q.year, q.month, q.bom, q.eom) for q in ledger.monthly(ROOT)]
    assert got == [("2026", "09", None, 4), ("2026", "11", 4, 3)]


def test_every_message_delivered_twice_adds_each_number_once(
    core: Core, queue: QueueDriver, accounts: dict[str, Caller]
) -> None:
    dev = accounts["dev"]
    task, numbers = started_add(core, dev, "555", 1_200)

    while batch := queue.receive():
        for message in batch:
            queue.deliver(message)
            queue.deliver(message)

    done = core.tasks.get(dev, ROOT, task["id"])
    assert (done["status"], done["success_count"], done["failure_count"]) == ("success", 1_200, 0)
    output = out_rows(core, dev, done)
    assert [r["number"] for r in output] == numbers
    assert all(r["error"] == "" for r in output)
    assert sum(1 for _ in NumberRepository(core.table).of_account(ROOT)) == 1_200
    assert [q.eom for q in QuantityLedger(core.table).monthly(ROOT)] == [1_200]


def test_a_stopped_task_keeps_and_counts_the_rows_done_before_the_stop(
    core: Core, queue: QueueDriver, accounts: dict[str, Caller]
) -> None:
    dev = accounts["dev"]
    task, numbers = started_add(core, dev, "666", 3_000)
    queue.drain(limit=2)  # the plan, then the first chunk of 1,000 rows

    stopped = core.tasks.stop(dev, ROOT, task["id"])
    queue.drain()

    assert stopped["status"] == "stopped"
    done = core.tasks.get(dev, ROOT, task["id"])
    assert (done["status"], done["success_count"], done["failure_count"]) == ("stopped", 1_000, 0)
    assert "end_timestamp" in done
    assert [r["number"] for r in out_rows(core, dev, done)] == numbers[:1_000]
    assert sum(1 for _ in NumberRepository(core.table).of_account(ROOT)) == 1_000
    # A stopped task cannot be started again, and may be deleted
    with pytest.raises(NotFound) as caught:
        core.tasks.start(dev, ROOT, task["id"])
    assert caught.value.data["reason"] == "task already started"
    core.tasks.delete(dev, ROOT, task["id"])
    with pytest.raises(NotFound):
        core.tasks.get(dev, ROOT, task["id"])


def test_a_crashing_action_ends_internal_error_with_the_rows_done_kept(
    core: Core, queue: QueueDriver, accounts: dict[str, Caller], monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = accounts["dev"]
    original = AddNumbers.apply

    def crash_on_the_250th_number(self: AddNumbers, run, row, row_origin):  # type: ignore[no-untyped-def]
        if row["number"].endswith("0249"):
            raise KeyError("a bug in the action")
        return original(self, run, row, row_origin)

    monkeypatch.setattr(AddNumbers, "apply", crash_on_the_250th_number)
    rows = [["number", "account_id"]] + [[f"+1415777{i:04d}", ROOT] for i in range(400)]
    done = run_task(core, queue, dev, "number_management", "add", rows)

    assert (done["status"], done["success_count"]) == ("internal_error", 200)  # two groups of 100 committed
    assert len(out_rows(core, dev, done)) == 200


# Access ------------------------------------------------------------------
def test_a_sub_account_user_cannot_reach_the_parents_tasks(
    core: Core, queue: QueueDriver, accounts: dict[str, Caller]
) -> None:
    task = run_task(core, queue, accounts["dev"], "number_management", "list")
    sub = accounts["sub"]
    for attempt in (
        lambda account: core.tasks.get(sub, account, task["id"]),
        lambda account: core.tasks.start(sub, account, task["id"]),
        lambda account: core.tasks.stop(sub, account, task["id"]),
        lambda account: core.tasks.delete(sub, account, task["id"]),
        lambda account: core.tasks.csv(sub, account, task["id"], "out.csv"),
    ):
        for account in (ROOT, SUB):  # neither through the parent's path nor through its own
            with pytest.raises(NotFound):
                attempt(account)
    with pytest.raises(NotFound):
        core.tasks.page(sub, ROOT, 50, None)
    with pytest.raises(NotFound):  # another tenant's developer
        core.tasks.get(accounts["other"], ROOT, task["id"])


def test_system_tasks_are_for_developers_only(core: Core, queue: QueueDriver, accounts: dict[str, Caller]) -> None:
    run_task(core, queue, accounts["dev"], "number_management", "add", [["number", "account_id"], ["+1212", SUB]])
    with pytest.raises(Forbidden):
        core.tasks.create(
            accounts["user"], ROOT, "number_management", "list_all", body=b"", is_csv=False, file_name=None
        )
    with pytest.raises(Forbidden):
        core.tasks.create(accounts["user"], None, "number_management", "list", body=b"", is_csv=False, file_name=None)
    task = core.tasks.create(
        accounts["dev"], None, "number_management", "list_all", body=b"", is_csv=False, file_name=None
    )
    core.tasks.start(accounts["dev"], None, task["id"])
    queue.drain()
    done = core.tasks.get(accounts["dev"], None, task["id"])
    assert [r["number"] for r in out_rows(core, accounts["dev"], done)] == ["+1212"]


def test_listing_is_newest_first_in_pages(core: Core, queue: QueueDriver, accounts: dict[str, Caller]) -> None:
    dev = accounts["dev"]
    ids = [
        core.tasks.create(dev, ROOT, "number_management", "list", body=b"", is_csv=False, file_name=None)["id"]
        for _ in range(5)
    ]
    first, key = core.tasks.page(dev, ROOT, 3, None)
    second, end = core.tasks.page(dev, ROOT, 3, key)
    assert [t["id"] for t in first + second] == ids[::-1]
    assert end is None and all(t["status"] == "pending" for t in first)
