"""Numbers over HTTP: what DynamoDB cannot hold is a 400 in every dialect (finding 11), and a phone
number another tenant holds tells a Tasks caller nothing (finding 10b).

Each test that writes works in a tenant of its own (a root account with the demo app and a sales table),
so that nothing here shows in another test's data; the demo tenant is only read, or holds a number.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from backroom.calcengine.models import Calculation, ImportFileType, Participant, Period
from backroom.calcengine.tables import custom_table, define_custom_table
from backroom.identity.models import Role
from backroom.records import Record, Schema, typed

from infra.demo.load import demo_app
from tests.integration.stack import Api, LocalStack, Reply

DEMO = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
DEMO_SUB = "5b8f1d4c0e3a4f7b9d2c6e8a0f1b3d5c"
# As a JSON body spells them: below 1E-130, above 9.99...E+125, past a float, 40 and 62 digits, no numbers.
UNSTORABLE = ["1e-200", "1E-131", "1e200", "1e400", "1" * 40, "1" + "0" * 60 + "1", "NaN", "-Infinity"]
SALES = {
    "name": "sales",
    "fields": [{"name": "participant_eid"}, {"name": "period", "type": "number"}, {"name": "amount", "type": "number"}],
    "indexes": [["period"]],
}
RESULTS = {
    "name": "results",
    "fields": [
        {"name": "participant_eid"},
        {"name": "period", "type": "number"},
        {"name": "total", "type": "number"},
        {"name": "result", "type": "number"},
    ],
}


@dataclass
class Tenant:
    id: str
    token: str

    @property
    def runtime(self) -> dict[str, str]:
        return {"token": self.token}

    @property
    def gateway(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def tasks(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token}


@pytest.fixture(scope="module")
def own(local: LocalStack) -> Tenant:
    """A root account of its own with a developer, the demo app's entities (no records), sales and results
    tables, two participants and this month as period 1."""
    core, tenant, password = local.core, uuid.uuid4().hex, secrets.token_hex(16)
    core.identity.create_account(tenant, f"numbers-{tenant[:8]}")
    email = f"numbers-{tenant[:8]}@numbers.local"
    core.identity.create_user(email, password, name="Numbers", role=Role.DEVELOPER, account_id=tenant)
    core.app.repo.install(tenant, demo_app())
    for table in (SALES, RESULTS):
        define_custom_table(core.records, tenant, Schema.model_validate(table))
    today = dt.date.today()
    end = (today.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    core.calcengine.repo.put_period(tenant, Period(number=1, start=today.replace(day=1), end=end))
    for number in (1, 2):
        core.calcengine.repo.put_participant(tenant, Participant(id=number, eid=f"p{number}", active=True))
    core.calcengine.repo.put_file_type(tenant, ImportFileType(id="sales-1", name="Sales", table="sales"))
    return Tenant(tenant, local.api.login(email, password))


def raw_json(api: Api, method: str, path: str, text: str, headers: dict[str, str]) -> Reply:
    """A JSON body as written (NaN, 1e400 and 40-digit integers as they are), sent unparsed."""
    return api.call(method, path, body=text.encode(), headers=headers)


def runtime_error(reply: Reply) -> dict[str, Any]:
    assert reply.status == 400, (reply.status, reply.body[:300])
    body: dict[str, Any] = reply.json()
    assert body["code"] == "validationErrors" and "Internal" not in body["message"], body
    return body


# Finding 11: runtime ----------------------------------------------------------------------------------
@pytest.mark.parametrize("number", UNSTORABLE)
def test_finding_11_a_runtime_number_dynamodb_cannot_hold_is_a_400_naming_its_field(
    api: Api, own: Tenant, number: str
) -> None:
    base = "/runtime/api/data/companies"
    created = raw_json(
        api, "POST", base, f'{{"name": "c{uuid.uuid4().hex}", "numberOfEmployees": {number}}}', own.runtime
    )
    assert [e["field"] for e in runtime_error(created).get("errors", [])] == ["numberOfEmployees"]
    rating = raw_json(api, "POST", base, f'{{"name": "r{uuid.uuid4().hex}", "rating": {number}}}', own.runtime)
    assert [e["field"] for e in runtime_error(rating).get("errors", [])] == ["rating"]

    record = api.call("POST", base, body={"name": f"u{uuid.uuid4().hex}"}, headers=own.runtime).json()
    updated = raw_json(api, "PUT", f"{base}/{record['id']}", f'{{"numberOfEmployees": {number}}}', own.runtime)
    assert [e["field"] for e in runtime_error(updated).get("errors", [])] == ["numberOfEmployees"]
    for query in (f"numberOfEmployees={number}", f"numberOfEmployees=greater({number})", f"rating=between(1,{number})"):
        runtime_error(api.call("GET", f"{base}?{query}", headers=own.runtime))
    stage = f'[{{"match": {{"numberOfEmployees": "greater({number})"}}}}]'
    runtime_error(raw_json(api, "PUT", f"{base}/aggregate", stage, own.runtime))
    line = f'{{"level": "INFO", "message": "m", "additionalInfo": {{"n": [1, {number}]}}}}'
    logged = runtime_error(raw_json(api, "POST", "/runtime/api/status/logs", line, own.runtime))
    assert [e["field"] for e in logged["errors"]] == ["additionalInfo.n[1]"]


def test_finding_11_a_runtime_number_at_the_edges_is_stored_and_found(api: Api, own: Tenant) -> None:
    base = "/runtime/api/data/companies"
    for number, shown in (("1e50", 10**50), ("1" + "0" * 60 + ".0", 10**60), ("1E+125", 10**125)):
        name = f"e{uuid.uuid4().hex}"
        created = raw_json(api, "POST", base, f'{{"name": "{name}", "numberOfEmployees": {number}}}', own.runtime)
        assert created.status == 200, created.body
        assert created.json()["numberOfEmployees"] == shown
        found = api.call("GET", f"{base}?numberOfEmployees={shown}", headers=own.runtime).json()
        assert [r["name"] for r in found["items"]] == [name]


def test_finding_11_an_aggregate_skip_past_any_count_is_a_400(api: Api, own: Tenant) -> None:
    for stage in ('[{"skip": 123456789012345678901234567890}]', '[{"limit": 99999999999999999999}]'):
        assert (
            "whole number from"
            in (
                runtime_error(raw_json(api, "PUT", "/runtime/api/data/companies/aggregate", stage, own.runtime))[
                    "message"
                ]
            )
        )


# Finding 11: gateway ----------------------------------------------------------------------------------
@pytest.mark.parametrize("number", UNSTORABLE)
def test_finding_11_a_gateway_records_import_of_an_unstorable_number_is_a_400(
    api: Api, own: Tenant, number: str
) -> None:
    errands = api.call("GET", "/gateway/errand/v1/errands", headers=own.gateway).json()["page"]["totalElements"]
    for record, where in (
        (f'{{"amount": {number}}}', "records[0].amount"),
        (f'{{"x": {{"y": [{number}]}}}}', "records[0].x.y[0]"),
    ):
        body = f'{{"records": [{record}], "importFileTypeId": "sales-1", "periodRange": [1]}}'
        reply = raw_json(api, "POST", "/gateway/errand/v1/imports/records", body, own.gateway)
        assert reply.status == 400, (reply.status, reply.body[:300])
        error = reply.json()
        assert error["status"] == 400 and error["message"].startswith(where), error
    assert api.call("GET", "/gateway/errand/v1/errands", headers=own.gateway).json()["page"]["totalElements"] == errands


def settled(api: Api, tenant: Tenant, errand_id: int) -> tuple[str, list[str]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        errand = api.call("GET", f"/gateway/errand/v1/errands/{errand_id}", headers=tenant.gateway).json()
        if errand["state"] != "Running":
            logs = api.call("GET", f"/gateway/errand/v1/errands/{errand_id}/logs?size=50", headers=tenant.gateway)
            return errand["state"], [entry["logMessage"] for entry in logs.json()["results"]]
        time.sleep(0.3)
    raise AssertionError(f"errand {errand_id} still running")


def test_finding_11_a_calculation_whose_result_no_table_holds_fails_with_a_clear_message(
    api: Api, local: LocalStack, own: Tenant
) -> None:
    """A sum past DynamoDB's range fails the errand saying so; large results within it are calculated."""
    core = local.core
    schema = custom_table(core.records, own.id, "sales")
    for i, (eid, amount) in enumerate([("p1", "9e125"), ("p1", "9e125"), ("p2", "1e30")]):  # p1: 1.8E+126 in all
        row = {"participant_eid": eid, "period": 1, "amount": amount}
        core.records.put(own.id, schema, Record(rid=f"s{i}", data={k: typed(schema, k, v) for k, v in row.items()}))
    ranks = Calculation(
        id=1, name="Ranks", type="leader_board", source="sales", measure="amount", output="results",
        result_field="result", measure_field="total",
    )  # fmt: skip
    payout = Calculation(
        id=2, name="Payout", type="plan_template", source="sales", measure="amount", rate=0.05, output="results",
        result_field="result",
    )  # fmt: skip
    for calc in (ranks, payout):
        core.calcengine.repo.put_calculation(own.id, calc)

    def run(calc_id: int) -> tuple[str, list[str]]:
        body = {"calculationId": calc_id, "periodRange": [1]}
        started = api.call("POST", "/gateway/errand/v1/calculations", body=body, headers=own.gateway)
        assert started.status == 202, started.body
        return settled(api, own, started.json()["id"])

    state, logs = run(1)
    assert state == "Failed" and any("p1 in period 1: total is out of range" in line for line in logs), logs
    assert not any("Internal error" in line for line in logs), logs
    state, logs = run(2)  # 1E+30 x 0.05 rounded to cents: 31 digits, past Decimal's default context
    assert state == "Complete", logs
    rows = api.call("GET", "/gateway/extract/v1/custom-tables/results", headers=own.gateway).json()["results"]
    assert sorted((r["participant_eid"], r["result"]) for r in rows) == [("p1", 9 * 10**124), ("p2", 5 * 10**28)]


# Finding 11: tasks ------------------------------------------------------------------------------------
def test_tasks_cells_are_text_so_an_unstorable_number_fails_its_row_only(api: Api, own: Tenant) -> None:
    """Tasks cells are text (a number is E.164, not a JSON number): NaN or 1e400 fails its row, nothing crashes."""
    records = ", ".join(f'{{"number": {n}, "account_id": "{own.id}"}}' for n in UNSTORABLE)
    path = f"/v2/accounts/{own.id}/tasks"
    created = raw_json(
        api,
        "PUT",
        f"{path}?category=number_management&action=add",
        f'{{"data": {{"records": [{records}]}}}}',
        own.tasks,
    )
    assert created.status == 200, created.body
    task = run_task(api, own.tasks, f"{path}/{created.json()['data']['_read_only']['id']}")
    assert (task["status"], task["failure_count"]) == ("failure", len(UNSTORABLE))


# Finding 10b: a number another tenant holds -------------------------------------------------------------
def run_task(api: Api, auth: dict[str, str], path: str) -> dict[str, Any]:
    assert api.call("PATCH", path, headers=auth).status == 200
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        task: dict[str, Any] = api.call("GET", path, headers=auth).json()["data"]["_read_only"]
        if task["status"] not in ("pending", "executing") and "out.csv" in task["csvs"]:
            return task
        time.sleep(0.2)
    raise AssertionError(f"{path} did not finish")


def add_numbers(api: Api, auth: dict[str, str], account: str, rows: list[tuple[str, str]]) -> list[dict[str, str]]:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([("number", "account_id"), *rows])
    base = f"/v2/accounts/{account}/tasks"
    created = api.call(
        "PUT",
        f"{base}?category=number_management&action=add",
        body=out.getvalue().encode(),
        headers={**auth, "Content-Type": "text/csv"},
    )
    assert created.status == 200, created.body
    run_task(api, auth, f"{base}/{created.json()['data']['_read_only']['id']}")
    output = api.call("GET", f"{base}/{created.json()['data']['_read_only']['id']}/output", headers=auth)
    return list(csv.DictReader(io.StringIO(output.body.decode())))


def test_finding_10b_a_number_another_tenant_holds_tells_nothing(api: Api, dev: str, sub: str, own: Tenant) -> None:
    """Numbers are unique within a tenant: adding one another tenant holds answers as for a free one.

    Within a tenant the text is one, whichever account holds the number: `number already exists`."""
    block = secrets.randbelow(6_000) + 2_000  # area codes 200 to 799: never toll-free (8xx)
    held, free = f"+1{block}5550100", f"+1{block}5550101"
    demo = {"X-Auth-Token": dev}
    assert [r["error"] for r in add_numbers(api, demo, DEMO, [(held, DEMO)])] == [""]

    rows = add_numbers(api, own.tasks, own.id, [(held, own.id), (free, own.id)])
    assert [(r["error"], r["item"]) for r in rows] == [("", "did_us"), ("", "did_us")]  # the held one as the free one

    again = add_numbers(api, {"X-Auth-Token": sub}, DEMO_SUB, [(held, DEMO_SUB)])  # the parent holds it
    assert [r["error"] for r in again] == ["number already exists"]
    mine = add_numbers(api, own.tasks, own.id, [(held, own.id)])
    assert [r["error"] for r in mine] == ["number already exists"]
