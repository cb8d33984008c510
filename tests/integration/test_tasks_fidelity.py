"""Issue 15's fidelity points on the Tasks dialect (and the gateway's Content-Type), over HTTP:
one test per point, each as Kazoo (or the Errand spec) answers."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from tests.integration.stack import ROOT, Api
from tests.integration.test_tasks import DEMO, TASKS, csv_body, numbers, put_csv, run

INVALID = {"error": "500", "message": "invalid request", "status": "error"}


@pytest.fixture(scope="module")
def dev(dev_token: str) -> dict[str, str]:
    return {"X-Auth-Token": dev_token}


def kazoo_error(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("data", "error", "message", "status")}


# 1 -------------------------------------------------------------------------
def test_tasks_help_needs_no_token_and_nothing_else_is_public(api: Api) -> None:
    for query in ("", "?category=services", "?category=services&action=descendant_quantities"):
        reply = api.call("GET", f"/v2/tasks{query}")
        assert reply.status == 200, (query, reply.body)
        assert reply.json()["status"] == "success" and reply.json()["auth_token"] == ""
    assert "descendant_quantities" in api.call("GET", "/v2/tasks?category=services").json()["data"]["tasks"]

    for method, path in (("GET", TASKS), ("PUT", "/v2/tasks?category=number_management&action=list")):
        refused = api.call(method, path)
        assert refused.status == 401, (method, path)
        assert refused.json()["error"] == "401"


# 2 -------------------------------------------------------------------------
def test_accept_chooses_between_the_task_and_its_csv(api: Api, dev: dict[str, str]) -> None:
    # Given a task with an input and no output yet
    body = csv_body(["number", "account_id"], [[numbers(1)[0], DEMO]])
    task_id = put_csv(api, dev, "category=number_management&action=add", body).json()["data"]["_read_only"]["id"]
    path = f"{TASKS}/{task_id}"
    as_csv = {**dev, "Accept": "text/csv"}

    # When a CSV is asked for without csv_name, then it is in.csv
    before = api.call("GET", path, headers=as_csv)
    assert before.status == 200 and before.headers["content-type"].startswith("text/csv")
    assert before.body == body and "_in.csv" in before.headers["content-disposition"]

    # And a JSON Accept gets the task even with csv_name
    task = api.call("GET", f"{path}?csv_name=in.csv", headers={**dev, "Accept": "application/json"})
    assert task.status == 200 and task.json()["data"]["_read_only"]["id"] == task_id

    # Once it ran, the CSV is out.csv; csv_name still picks either
    run(api, dev, path)
    after = api.call("GET", path, headers=as_csv)
    assert after.status == 200 and after.body == api.call("GET", f"{path}/output", headers=dev).body
    assert "_out.csv" in after.headers["content-disposition"]
    assert api.call("GET", f"{path}?csv_name=in.csv", headers=as_csv).body == body


# 3 -------------------------------------------------------------------------
def test_every_answer_carries_node_timestamp_and_version(api: Api, dev: dict[str, str]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    answers = [
        api.call("GET", "/v2/tasks"),  # success, public
        api.call("GET", TASKS, headers=dev),  # success, a page
        api.call("GET", f"{TASKS}/{'0' * 30}", headers=dev),  # error
        api.call("GET", TASKS),  # error, no token
    ]
    nodes = set()
    for reply in answers:
        body = reply.json()
        assert {"auth_token", "data", "request_id", "status", "node", "timestamp", "version"} <= set(body)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timestamp"]), body["timestamp"]
        assert body["version"] == version
        nodes.add(body["node"])
    assert [r.status for r in answers] == [200, 200, 404, 401]
    assert len(nodes) == 1 and nodes.pop()


# 4 -------------------------------------------------------------------------
def test_json_with_no_records_is_a_task_with_no_input(api: Api, dev: dict[str, str]) -> None:
    empty = {"data": {"records": []}}
    listed = api.call("PUT", f"{TASKS}?category=number_management&action=list", body=empty, headers=dev)
    assert listed.status == 200, listed.body
    task = listed.json()["data"]["_read_only"]
    assert "total_count" not in task
    assert api.call("GET", f"{TASKS}/{task['id']}", headers=dev).json()["data"]["_read_only"]["csvs"] == []

    added = api.call("PUT", f"{TASKS}?category=number_management&action=add", body=empty, headers=dev)
    assert added.status == 500
    assert kazoo_error(added.json()) == {"data": {"attachment": {"type": {"expected_content": "text/csv"}}}, **INVALID}


# 5 -------------------------------------------------------------------------
def test_the_gateways_json_answers_say_their_charset(api: Api, dev_token: str) -> None:
    bearer = {"Authorization": f"Bearer {dev_token}"}
    listed = api.call("GET", "/gateway/errand/v1/errands?page=0&size=1", headers=bearer)
    missing = api.call("GET", "/gateway/errand/v1/errands/987654321", headers=bearer)
    unauthorized = api.call("GET", "/gateway/errand/v1/errands?page=0&size=1")
    assert [r.status for r in (listed, missing, unauthorized)] == [200, 404, 401]
    for reply in (listed, missing, unauthorized):
        assert reply.headers["content-type"] == "application/json;charset=UTF-8"
        reply.json()


# 10 ------------------------------------------------------------------------
def test_wrong_methods_are_405_and_a_put_without_category_or_action_is_invalid(api: Api, dev: dict[str, str]) -> None:
    task_id = api.call("PUT", f"{TASKS}?category=number_management&action=list", headers=dev).json()["data"][
        "_read_only"
    ]["id"]
    for method, path, allowed in [
        ("POST", TASKS, "GET, PUT"),
        ("DELETE", TASKS, "GET, PUT"),
        ("DELETE", "/v2/tasks", "GET, PUT"),
        ("POST", "/v2/tasks", "GET, PUT"),
        ("PUT", f"{TASKS}/{task_id}", "GET, PATCH, DELETE"),
        ("POST", f"/v2/tasks/{task_id}", "GET, PATCH, DELETE"),
        ("GET", f"{TASKS}/{task_id}/stop", "PATCH"),
        ("POST", f"/v2/tasks/{task_id}/stop", "PATCH"),
        ("PUT", f"{TASKS}/{task_id}/input", "GET"),
        ("DELETE", f"{TASKS}/{task_id}/output", "GET"),
        ("PATCH", f"/v2/tasks/{task_id}/output", "GET"),
    ]:
        for auth in (dev, {}):  # Kazoo checks the method first
            reply = api.call(method, path, headers=auth)
            assert reply.status == 405, (method, path, reply.body)
            assert reply.headers["allow"] == allowed
            assert kazoo_error(reply.json()) == {
                "data": {"message": "method not allowed"},
                "error": "405",
                "message": "method not allowed",
                "status": "error",
            }
    assert api.call("GET", f"{TASKS}/{task_id}", headers=dev).json()["data"]["_read_only"]["status"] == "pending"

    for query in ("", "?category=number_management", "?action=list", "?category=&action=list"):
        reply = api.call("PUT", f"{TASKS}{query}", headers=dev)
        assert reply.status == 500, (query, reply.body)
        assert kazoo_error(reply.json()) == {"data": {"message": "invalid request"}, **INVALID}
    unknown = api.call("PUT", f"{TASKS}?category=nope&action=list", headers=dev)
    assert unknown.status == 404 and unknown.json()["data"] == ["nope"]
