"""The Tasks API through the running stack: the spec's examples and error bodies, CSVs both ways,
stop mid-way, and what a sub-account user may not do."""

from __future__ import annotations

import csv
import io
import secrets
import time
from typing import Any

import pytest
from backroom.numbers import NumberRepository

from tests.integration.stack import Api, LocalStack, Reply

DEMO = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
DEMO_SUB = "5b8f1d4c0e3a4f7b9d2c6e8a0f1b3d5c"
TASKS = f"/v2/accounts/{DEMO}/tasks"
ENVELOPE = {"auth_token", "data", "request_id", "revision", "status", "node", "timestamp", "version"}
INVALID = {"error": "500", "message": "invalid request", "status": "error"}


@pytest.fixture(scope="module")
def dev(api: Api) -> dict[str, str]:
    return {"X-Auth-Token": api.login("dev@demo.local", "demo-dev-password")}


@pytest.fixture(scope="module")
def user(api: Api) -> dict[str, str]:
    return {"X-Auth-Token": api.login("user@demo.local", "demo-user-password")}


@pytest.fixture(scope="module")
def sub(api: Api) -> dict[str, str]:
    return {"X-Auth-Token": api.login("sub@demo.local", "demo-sub-password")}


def numbers(count: int) -> list[str]:
    """Fresh US numbers, unlike any other test's: area codes 200 to 799, never a toll-free one (800, 833,
    844, ... 888), which the task would report as `tollfree_us`."""
    block = secrets.randbelow(6_000) + 2_000
    return [f"+1{block}{i:06d}" for i in range(count)]


def csv_body(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    return out.getvalue().encode()


def put_csv(api: Api, auth: dict[str, str], query: str, body: bytes, base: str = TASKS) -> Reply:
    return api.call("PUT", f"{base}?{query}", body=body, headers={**auth, "Content-Type": "text/csv"})


def error_of(reply: Reply) -> dict[str, Any]:
    body = reply.json()
    assert body["request_id"] is not None and "auth_token" in body
    return {k: body[k] for k in ("data", "error", "message", "status")}


def wait_for(api: Api, auth: dict[str, str], path: str, done: Any, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = api.call("GET", path, headers=auth).json()["data"]["_read_only"]
        if done(task):
            return task  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"{path} never got there: {task}")


def finished(task: dict[str, Any]) -> bool:
    return task["status"] not in ("pending", "executing")


def run(api: Api, auth: dict[str, str], path: str) -> dict[str, Any]:
    started = api.call("PATCH", path, headers=auth)
    assert started.status == 200, started.body
    return wait_for(api, auth, path, finished)


# Help ----------------------------------------------------------------------
def test_tasks_help_in_kazoos_envelope(api: Api, dev: dict[str, str]) -> None:
    reply = api.call("GET", "/v2/tasks?category=services&action=descendant_quantities", headers=dev)
    assert reply.status == 200
    body = reply.json()
    assert set(body) == ENVELOPE
    assert body["status"] == "success" and body["auth_token"] == dev["X-Auth-Token"]
    help_ = body["data"]["tasks"]["descendant_quantities"]
    assert help_["description"] == "List per-month descendant accounts quantities"
    assert help_["doc"].startswith("Attempts to create a month-on-month listing")

    everything = api.call("GET", "/v2/tasks", headers=dev).json()["data"]["tasks"]
    assert set(everything) == {"number_management", "services"}
    assert set(everything["number_management"]) == {"add", "delete", "list", "list_all"}
    assert everything["number_management"]["add"]["mandatory"] == ["number", "account_id"]

    unknown = api.call("GET", "/v2/tasks?category=services&action=blipblop", headers=dev)
    assert unknown.status == 500
    assert error_of(unknown) == {"data": {"message": "invalid request"}, **INVALID}


# The round trip of the acceptance ------------------------------------------
def test_add_from_csv_read_both_csvs_both_ways_then_list(api: Api, dev: dict[str, str], local: LocalStack) -> None:
    # Given a CSV of three numbers, one of them for the sub-account and one malformed
    fresh = numbers(2)
    body = csv_body(["number", "account_id"], [[fresh[0], DEMO], [fresh[1], DEMO_SUB], ["12345", DEMO]])
    created = put_csv(api, dev, "category=number_management&action=add&file_name=my_input_for_add.csv", body)
    assert created.status == 200, created.body
    assert set(created.json()) == ENVELOPE
    submitted = created.json()["data"]["_read_only"]
    assert submitted["total_count"] == 3 and submitted["file_name"] == "my_input_for_add.csv"
    assert (submitted["account_id"], submitted["auth_account_id"]) == (DEMO, DEMO)
    assert (submitted["category"], submitted["action"]) == ("number_management", "add")
    task_id = submitted["id"]
    assert len(task_id) == 30 and int(task_id, 16) >= 0
    assert submitted["submit_timestamp"] > 63_900_000_000  # Gregorian seconds
    path = f"{TASKS}/{task_id}"
    pending = api.call("GET", path, headers=dev).json()["data"]["_read_only"]
    assert pending["status"] == "pending" and pending["csvs"] == ["in.csv"]

    # When it runs
    started = api.call("PATCH", path, headers=dev).json()["data"]["_read_only"]
    assert started["status"] == "executing" and started["start_timestamp"] >= started["submit_timestamp"]
    done = wait_for(api, dev, path, finished)

    # Then two rows succeeded, the malformed one failed, and both CSVs are there
    assert (done["status"], done["success_count"], done["failure_count"], done["total_count"]) == ("partial", 2, 1, 3)
    assert done["csvs"] == ["in.csv", "out.csv"] and done["end_timestamp"] >= done["start_timestamp"]
    for name, old_way in (("in.csv", "input"), ("out.csv", "output")):
        new = api.call("GET", f"{path}?csv_name={name}", headers={**dev, "Accept": "text/csv"})
        old = api.call("GET", f"{path}/{old_way}", headers=dev)
        assert new.status == old.status == 200
        assert new.body == old.body and new.headers["content-type"].startswith("text/csv")
        suffix = name.removesuffix(".csv")
        assert f'filename="number_management_add_{task_id}_{suffix}.csv"' in new.headers["content-disposition"]
    assert api.call("GET", f"{path}/input", headers=dev).body == body
    output = list(csv.DictReader(io.StringIO(api.call("GET", f"{path}/output", headers=dev).body.decode())))
    assert [(r["number"], r["item"], r["error"]) for r in output] == [
        (fresh[0], "did_us", ""),
        (fresh[1], "did_us", ""),
        ("12345", "", "bad number"),
    ]

    # And a list task (no input) finds the numbers in the account and its sub-account
    listed = api.call("PUT", f"{TASKS}?category=number_management&action=list", headers=dev)
    assert listed.status == 200 and "total_count" not in listed.json()["data"]["_read_only"]
    list_path = f"{TASKS}/{listed.json()['data']['_read_only']['id']}"
    assert run(api, dev, list_path)["status"] == "success"
    rows = list(csv.DictReader(io.StringIO(api.call("GET", f"{list_path}/output", headers=dev).body.decode())))
    found = {r["number"]: r["account_id"] for r in rows}
    assert found[fresh[0]] == DEMO and found[fresh[1]] == DEMO_SUB
    assert api.call("GET", f"{list_path}/input", headers=dev).status == 404  # it had no input

    # The account's listing shows both, newest first
    first = api.call("GET", f"{TASKS}?page_size=1", headers=dev).json()
    assert first["page_size"] == 1 and [t["id"] for t in first["data"]] == [list_path.rsplit("/", 1)[1]]
    second = api.call("GET", f"{TASKS}?page_size=1&start_key={first['next_start_key']}", headers=dev).json()
    assert [t["id"] for t in second["data"]] == [task_id] and second["data"][0]["status"] == "partial"


def test_json_records_become_the_tasks_input(api: Api, dev: dict[str, str]) -> None:
    fresh = numbers(2)
    records = [{"number": n, "account_id": DEMO} for n in fresh]
    # As in the spec's example: curl -d, so no JSON content type
    reply = api.call(
        "PUT",
        f"{TASKS}?category=number_management&action=add",
        body={"data": {"records": records, "file_name": "records.json"}},
        headers={**dev, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 200, reply.body
    submitted = reply.json()["data"]["_read_only"]
    assert (submitted["total_count"], submitted["file_name"]) == (2, "records.json")
    done = run(api, dev, f"{TASKS}/{submitted['id']}")
    assert (done["status"], done["success_count"]) == ("success", 2)
    stored = api.call("GET", f"{TASKS}/{submitted['id']}/input", headers=dev).body.decode()
    assert stored.splitlines() == ["number,account_id", f"{fresh[0]},{DEMO}", f"{fresh[1]},{DEMO}"]


# The spec's error bodies ---------------------------------------------------
def test_input_errors_have_kazoos_bodies(api: Api, dev: dict[str, str]) -> None:
    add = "category=number_management&action=add"
    cases = [
        (b"number,account_id\n+14155550100\n", {"csv": {"format": {"message": _BAD_FORMAT}}}),
        (b"number,account_id\n\xff\xfe,x\n", {"csv": {"format": {"message": _BAD_FORMAT}}}),  # not UTF-8
        (b"wef,number,account_id\nx,+14155550100,a\n", {"attachment": {"type": {"unknown_fields": ["wef"]}}}),
        (b"wef\nx\n", {"attachment": {"type": {"unknown_fields": ["wef"], "missing_mandatory_fields": _BOTH}}}),
        (
            b"account_id,number\n,+14157215234\n009afc511c97b2ae693c6cc4920988e8,\n",
            {
                "attachment": {
                    "type": {"missing_mandatory_values": [",+14157215234", "009afc511c97b2ae693c6cc4920988e8,"]}
                }
            },
        ),
    ]
    for body, data in cases:
        reply = put_csv(api, dev, add, body)
        assert reply.status == 500, body
        assert error_of(reply) == {"data": data, **INVALID}
    missing = api.call("PUT", f"{TASKS}?category=number_management&action=add", headers=dev)
    assert missing.status == 500
    assert error_of(missing)["data"] == {"attachment": {"type": {"expected_content": "text/csv"}}}
    for query, shown in (("category=nope&action=add", "nope"), ("category=number_management&action=nope", "nope")):
        reply = put_csv(api, dev, query, b"number\n+1\n")
        assert reply.status == 404
        assert error_of(reply) == {"data": [shown], "error": "404", "message": "bad identifier", "status": "error"}


_BAD_FORMAT = "Empty CSV or some row(s) longer than others or header missing"
_BOTH = ["number", "account_id"]


def bad_identifier(task_id: str, reason: str | None = None) -> dict[str, Any]:
    data = {"cause": task_id, "message": "bad identifier", **({"reason": reason} if reason else {})}
    return {"data": data, "error": "404", "message": "bad_identifier", "status": "error"}


def not_found(task_id: str) -> dict[str, Any]:
    return {"data": [task_id], "error": "404", "message": "bad identifier", "status": "error"}


def test_task_state_errors_have_kazoos_bodies(api: Api, dev: dict[str, str]) -> None:
    ghost = "0" * 30
    assert error_of(api.call("GET", f"{TASKS}/{ghost}", headers=dev)) == not_found(ghost)
    assert error_of(api.call("DELETE", f"{TASKS}/{ghost}", headers=dev)) == not_found(ghost)
    assert error_of(api.call("PATCH", f"{TASKS}/{ghost}", headers=dev)) == bad_identifier(ghost)
    assert error_of(api.call("GET", f"{TASKS}/{ghost}/output", headers=dev)) == bad_identifier(ghost)

    task_id = api.call("PUT", f"{TASKS}?category=number_management&action=list", headers=dev).json()["data"][
        "_read_only"
    ]["id"]
    path = f"{TASKS}/{task_id}"
    not_running = api.call("PATCH", f"{path}/stop", headers=dev)
    assert (not_running.status, error_of(not_running)) == (404, bad_identifier(task_id, "task is not running"))
    no_output_yet = api.call("GET", f"{path}?csv_name=out.csv", headers={**dev, "Accept": "text/csv"})
    assert (no_output_yet.status, error_of(no_output_yet)) == (404, bad_identifier(task_id))

    run(api, dev, path)
    again = api.call("PATCH", path, headers=dev)
    assert (again.status, error_of(again)) == (404, bad_identifier(task_id, "task already started"))
    assert error_of(api.call("PATCH", f"{path}/stop", headers=dev)) == bad_identifier(task_id, "task is not running")

    deleted = api.call("DELETE", path, headers=dev)
    assert deleted.status == 200 and deleted.json()["data"]["_read_only"]["status"] == "success"
    assert error_of(api.call("GET", path, headers=dev)) == not_found(task_id)
    assert api.call("GET", f"{path}/output", headers=dev).status == 404


# Stop ----------------------------------------------------------------------
def test_stopping_a_running_task_keeps_the_rows_done(api: Api, dev: dict[str, str], local: LocalStack) -> None:
    fresh = numbers(6_000)
    body = csv_body(["number", "account_id"], [[n, DEMO] for n in fresh])
    task_id = put_csv(api, dev, "category=number_management&action=add", body).json()["data"]["_read_only"]["id"]
    path = f"{TASKS}/{task_id}"
    api.call("PATCH", path, headers=dev)
    wait_for(api, dev, path, lambda t: t.get("success_count", 0) >= 200)

    # A running task cannot be deleted
    running = api.call("DELETE", path, headers=dev)
    assert (running.status, error_of(running)) == (404, bad_identifier(task_id))

    stopped = api.call("PATCH", f"{path}/stop", headers=dev)
    assert stopped.status == 200 and stopped.json()["data"]["_read_only"]["status"] == "stopped"
    done = wait_for(api, dev, path, lambda t: "out.csv" in t["csvs"])

    assert done["status"] == "stopped" and 0 < done["success_count"] < 6_000
    output = api.call("GET", f"{path}/output", headers=dev).body.decode()
    kept = [r["number"] for r in csv.DictReader(io.StringIO(output))]
    # The rows done (chunks run side by side, so not only a prefix), each once, in input order
    position = {n: i for i, n in enumerate(fresh)}
    assert len(kept) == done["success_count"] == len(set(kept))
    assert [position[n] for n in kept] == sorted(position[n] for n in kept)
    repo = NumberRepository(local.core.table)
    added = {n.number for n in repo.of_account(DEMO)} & set(fresh)
    assert added == set(kept)
    assert api.call("GET", path, headers=dev).json()["data"]["_read_only"]["success_count"] == len(kept)


# Access --------------------------------------------------------------------
def test_a_sub_account_user_cannot_touch_the_parents_tasks(api: Api, dev: dict[str, str], sub: dict[str, str]) -> None:
    created = api.call("PUT", f"{TASKS}?category=number_management&action=list", headers=dev)
    task_id = created.json()["data"]["_read_only"]["id"]
    for base in (TASKS, f"/v2/accounts/{DEMO_SUB}/tasks"):  # the parent's path, and its own
        path = f"{base}/{task_id}"
        for method, url in [
            ("GET", path),  # see
            ("PATCH", path),  # start
            ("PATCH", f"{path}/stop"),  # stop
            ("DELETE", path),  # delete
            ("GET", f"{path}/input"),  # download
            ("GET", f"{path}/output"),
            ("GET", f"{path}?csv_name=in.csv"),
        ]:
            reply = api.call(method, url, headers=sub)
            assert reply.status == 404, (method, url)
            assert reply.json()["status"] == "error"
    listing = api.call("GET", TASKS, headers=sub)
    assert listing.status == 404 and listing.json()["status"] == "error"
    assert api.call("GET", f"{TASKS}/{task_id}", headers=dev).json()["data"]["_read_only"]["status"] == "pending"

    # Its own account is fine, and shows nothing of the parent's
    own = api.call("GET", f"/v2/accounts/{DEMO_SUB}/tasks", headers=sub)
    assert own.status == 200 and task_id not in {t["id"] for t in own.json()["data"]}


def test_system_tasks_and_the_system_form_are_for_developers(
    api: Api, dev: dict[str, str], user: dict[str, str]
) -> None:
    for auth, base in ((user, TASKS), (user, "/v2/tasks")):
        refused = api.call("PUT", f"{base}?category=number_management&action=list_all", headers=auth)
        assert refused.status == 403 and refused.json()["error"] == "403"
    created = api.call("PUT", "/v2/tasks?category=number_management&action=list_all", headers=dev)
    assert created.status == 200
    task = created.json()["data"]["_read_only"]
    assert task["account_id"] == DEMO
    done = run(api, dev, f"/v2/tasks/{task['id']}")
    assert done["status"] == "success"
    assert api.call("GET", f"/v2/tasks/{task['id']}/output", headers=dev).status == 200
