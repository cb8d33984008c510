"""The calculation engine on the core: tables and records, imports, deletes, calculations, batches, rules."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from backroom import wiring
from backroom.api import resolver
from backroom.app.definition import Entity
from backroom.calcengine.formulas import ScriptError, evaluate
from backroom.calcengine.models import ImportFileType, Participant
from backroom.calcengine.tables import define_custom_table
from backroom.errors import BackroomError, Forbidden, Invalid, NotFound, Unprocessable
from backroom.identity.models import Caller, Role
from backroom.jobs.models import Job, JobState
from backroom.records import Condition, Record, Schema
from backroom.records.query import plan
from backroom.records.schema import GATEWAY, RUNTIME
from backroom.wiring import Core

from infra.demo.load import load_demo
from infra.local.gateway import build_event
from infra.local.lambdas import FunctionPool, ensure_layer_on_path
from infra.local.template import Template
from tests.calculations import broken_script
from tests.core.conftest import QueueDriver

TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"  # the demo tenant (infra/demo/tenant)
DEV = Caller(user_id="d", email="dev@demo.local", name="Dev", role=Role.DEVELOPER, account_id=TENANT, tenant_id=TENANT)


@pytest.fixture
def demo(core: Core) -> Caller:
    load_demo(core, app_records=False)  # the runtime records are not read here
    return core.identity.login("dev@demo.local", "demo-dev-password").caller


def finished(core: Core, queue: QueueDriver, job: Job) -> Job:
    queue.drain()
    done = core.jobs.get(job.id, job.tenant_id)
    assert done.state.is_final, done
    return done


def extract(
    core: Core, table: str, page: int = 0, size: int = 2000, **filters: str
) -> tuple[list[dict[str, Any]], int]:
    return core.calcengine.extract(DEV, table, {k: [v] for k, v in filters.items()}, page, size)


def sales(core: Core, caller: Caller, queue: QueueDriver, rows: list[dict[str, Any]], period: int) -> Job:
    job = core.calcengine.import_records(caller, rows, "sales-1", [period])
    return finished(core, queue, job)


# Tables and records ------------------------------------------------------
def test_filters_use_the_declared_index_and_count_exactly(core: Core, demo: Caller) -> None:
    schema = define_custom_table(
        core.records,
        TENANT,
        Schema.model_validate(
            {"name": "t", "fields": [{"name": "a"}, {"name": "b"}, {"name": "n", "type": "number"}], "indexes": [["a"]]}
        ),
    )
    for i in range(30):
        core.records.put(
            TENANT, schema, Record(rid=f"r{i:03d}", data={"a": f"x{i % 3}", "b": f"y{i % 2}", "n": Decimal(i % 5)})
        )
    chosen = plan(schema, core.records.conditions(schema, {"a": "x1", "b": "y0"}))
    assert chosen.index is not None and chosen.index.name == "a"
    assert chosen.residual == [Condition("b", "eq", ("y0",))]
    rows, total = extract(core, "t", a="x1")
    assert total == 10 and [r["a"] for r in rows] == ["x1"] * 10
    rows, total = extract(core, "t", a="x1", b="y0")
    assert total == 5 and all(r["b"] == "y0" for r in rows)
    page, total = extract(core, "t", page=1, size=4, a="x1")
    assert total == 10 and [r["n"] for r in page] == [3, 1, 4, 2]  # rows 13, 16, 19, 22 in rid order
    assert extract(core, "t", n="4.0")[1] == 6  # numbers compare as numbers
    assert extract(core, "t", n="four") == ([], 0)
    # Replacing a record moves it out of its old index partition.
    core.records.put(TENANT, schema, Record(rid="r001", data={"a": "x0", "b": "y1", "n": Decimal(1)}))
    assert extract(core, "t", a="x1")[1] == 9 and extract(core, "t", a="x0")[1] == 11


def test_extract_rules(core: Core, demo: Caller) -> None:
    rows, total = extract(core, "test_table_name", field1="value1.1", field2="value1.2")
    assert (rows, total) == (
        [{"field1": "value1.1", "field2": "value1.2", "field3": "value1.3", "field4": "value1.4"}],
        1,
    )
    with pytest.raises(NotFound, match="Could not find Custom Table with name nope"):
        extract(core, "nope")
    with pytest.raises(Unprocessable) as err:
        extract(core, "test_table_name", field9="x", field1="y")
    assert err.value.details == ["The following fields do not belong to test_table_name: field9"]


# Namespaces: gateway custom tables and runtime entities -----------------
def test_a_custom_table_and_an_entity_of_one_name_keep_their_own_records(core: Core, demo: Caller) -> None:
    # Given the demo app's entity `companies` with a record, and a gateway table of the same name with another
    entity = core.app.repo.entity(TENANT, "companies").schema
    core.records.create(TENANT, entity, {"name": "Entity Co", "taxId": "secret"}, rid="e" * 24)
    table = define_custom_table(
        core.records, TENANT, Schema.model_validate({"name": "companies", "fields": [{"name": "region"}]})
    )
    core.records.put(TENANT, table, Record(rid="g1", data={"region": "north"}))

    # Then the extract reads the gateway's table only, and the entity reads its own record only
    assert extract(core, "companies") == ([{"region": "north"}], 1)
    assert [r.data["name"] for r in core.records.stream(TENANT, entity, {})] == ["Entity Co"]
    assert core.records.schema(TENANT, "companies", namespace=RUNTIME).field("taxId") is not None
    assert core.records.schema(TENANT, "companies", namespace=GATEWAY).field_names == ["region"]
    assert table.key == "gateway:companies" and entity.key == "companies"


def test_no_lookup_crosses_namespaces(core: Core, demo: Caller) -> None:
    with pytest.raises(NotFound, match="Could not find Custom Table with name contacts"):
        extract(core, "contacts")  # an entity, to the gateway, is a table that does not exist
    for name in ("sales", "gateway:sales"):  # a gateway table, even by its key, is no runtime table
        with pytest.raises(NotFound):
            core.records.schema(TENANT, name, namespace=RUNTIME)
    # A runtime relationship never links a gateway table's record
    linking = core.records.define(
        TENANT,
        Schema.model_validate(
            {"name": "linking", "fields": [{"name": "sale", "type": "relationship", "entity": "test_table_name"}]}
        ),
    )
    with pytest.raises(Invalid) as refused:
        core.records.create(TENANT, linking, {"sale": "demo.000000001"})
    assert [e.code for e in refused.value.errors] == ["notFound"]
    # Nor can an app declare an entity in the gateway's namespace, or a runtime table a gateway key
    with pytest.raises(ValueError, match="namespace"):
        Entity.model_validate({"name": "sales", "schema": {"name": "sales", "fields": [], "namespace": "gateway"}})
    with pytest.raises(ValueError, match="colon"):
        Schema.model_validate({"name": "gateway:sales", "fields": []})


def test_gateway_errands_fail_on_an_entity_as_on_a_missing_table(core: Core, demo: Caller, queue: QueueDriver) -> None:
    # Given an import type and a calculation a developer pointed at the app's entities
    core.calcengine.repo.put_file_type(TENANT, ImportFileType(id="into-companies", name="Into", table="companies"))
    calc = broken_script(8, "Into Contacts").model_copy(update={"source": "contacts", "output": "companies"})
    core.calcengine.repo.put_calculation(TENANT, calc)
    entity = core.app.repo.entity(TENANT, "companies").schema

    imported = finished(
        core, queue, core.calcengine.import_records(demo, [{"name": "Injected"}], "into-companies", None)
    )
    calculated = finished(core, queue, core.calcengine.calculate(demo, 8, [6]))

    assert (imported.state, calculated.state) == (JobState.FAILED, JobState.FAILED)
    assert imported.error == "Custom Table companies of Import File Type into-companies does not exist"
    assert calculated.error == "Into Contacts failed: Custom Table contacts does not exist"
    assert list(core.records.stream(TENANT, entity, {})) == []


# Authority -------------------------------------------------------------------
def caller_of(core: Core, email: str, password: str) -> Caller:
    return core.identity.login(email, password).caller


def test_a_sub_account_user_is_refused_every_verb_before_any_lookup(core: Core, demo: Caller) -> None:
    sub = caller_of(core, "sub@demo.local", "demo-sub-password")
    gateway = core.calcengine
    verbs: dict[str, Callable[[], object]] = {
        "extract": lambda: gateway.extract(sub, "no_such_table", {}, 0, 20),
        "upload": lambda: gateway.upload(sub, "x.csv", b"a\n1\n"),
        "import file": lambda: gateway.import_file(sub, 999, "standard-1", None),
        "import records": lambda: gateway.import_records(sub, [{"field1": "x"}], "standard-1", None),
        "delete imported data": lambda: gateway.delete_imported(sub, 999),
        "calculate": lambda: gateway.calculate(sub, 999, [1]),
        "run a batch": lambda: gateway.run_batch(sub, 999, [1]),
        "errands": lambda: gateway.errand_page(sub, 0, 20),
        "errand": lambda: gateway.errand(sub, 999),
        "errand logs": lambda: gateway.errand_logs(sub, 999, 0, 20),
    }
    outcomes: dict[str, str] = {}
    for verb, attempt in verbs.items():
        try:
            attempt()
            outcomes[verb] = "done"
        except BackroomError as err:
            outcomes[verb] = f"{err.status} {err.message}"
    # 403, not 404: nothing it names (none of which exists) is looked up
    refused = "403 Gateway data belongs to the root account: a sub-account's users may not use it"
    assert outcomes == dict.fromkeys(verbs, refused)
    assert core.errands.page(TENANT, 0, 20)[1] == 0  # nothing was started


def test_a_root_user_may_read_and_run_but_only_developers_delete_imported_data(
    core: Core, demo: Caller, queue: QueueDriver
) -> None:
    user = caller_of(core, "user@demo.local", "demo-user-password")
    uploaded = core.calcengine.upload(user, "sales.csv", b"participant_eid,period,amount\ntest_user_1,4,10\n")
    done = finished(core, queue, core.calcengine.import_file(user, uploaded.id, "sales-1", [4]))
    assert done.state is JobState.FINISHED and done.created_by == user.user_id
    assert finished(core, queue, core.calcengine.calculate(user, 1, [4])).state is JobState.FINISHED
    assert core.calcengine.extract(user, "sip_results", {"period": ["4"]}, 0, 20)[1] == 3
    assert core.calcengine.errand(user, done.seq or 0).id == done.id
    with pytest.raises(Forbidden, match="Only developers may delete imported data"):
        core.calcengine.delete_imported(user, uploaded.id)
    deleted = finished(core, queue, core.calcengine.delete_imported(demo, uploaded.id))
    assert deleted.processed == 1


# Imports and deletes -----------------------------------------------------
def test_file_import_streams_chunks_and_delete_removes_exactly_its_rows(
    core: Core, demo: Caller, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backroom.calcengine import imports

    monkeypatch.setattr(imports, "CHUNK_ROWS", 7)
    body = "participant_eid,period,amount\n" + "".join(f"test_user_{i % 3 + 1},3,{i}\n" for i in range(50))
    body += "test_user_1,3,not-a-number\ntest_user_1,3\n"
    uploaded = core.calcengine.upload(demo, "sales.csv", body.encode())
    job = core.calcengine.import_file(demo, uploaded.id, "sales-1", [3])
    assert job.label == "Sales: Period 3"
    done = finished(core, queue, job)
    assert (done.state, done.chunk_count, done.processed, done.failed) == (JobState.FINISHED, 8, 50, 2)
    logs = [e.message for e in core.jobs.repo.logs(job.id)]
    assert any("amount is not a number" in m for m in logs) and any("number of values" in m for m in logs)
    assert extract(core, "sales", period="3")[1] == 50
    # Rows of another import stay when this file's imported data is deleted.
    sales(core, demo, queue, [{"participant_eid": "test_user_1", "period": 3, "amount": 7}], 3)
    deleted = finished(core, queue, core.calcengine.delete_imported(demo, uploaded.id))
    assert (deleted.label, deleted.type, deleted.processed) == ("sales.csv", "Delete Imported Data", 50)
    rows, total = extract(core, "sales", period="3")
    assert total == 1 and rows[0]["amount"] == 7
    assert extract(core, "sales", participant_eid="test_user_2")[1] == 0


def test_import_replayed_messages_write_each_row_once(core: Core, demo: Caller, queue: QueueDriver) -> None:
    body = "field1,field2,field3,field4\n" + "".join(f"k{i},b,c,d\n" for i in range(120))
    uploaded = core.calcengine.upload(demo, "dup.csv", body.encode())
    job = core.calcengine.import_file(demo, uploaded.id, "standard-1", None)
    while batch := queue.receive():
        for message in batch:
            core.worker.handle(json.loads(message["Body"]))
            queue.deliver(message)  # every message delivered twice
    assert core.jobs.get(job.id, TENANT).processed == 120
    assert extract(core, "test_table_name", field1="k5")[1] == 1
    assert extract(core, "test_table_name")[1] == 121


def test_import_rules(core: Core, demo: Caller) -> None:
    with pytest.raises(NotFound, match="Import File with id 99"):
        core.calcengine.import_file(demo, 99, "standard-3", [1])
    with pytest.raises(NotFound, match="Import File Type with id nope"):
        core.calcengine.import_file(demo, 1, "nope", [1])
    with pytest.raises(Invalid, match="periodRange"):
        core.calcengine.import_file(demo, 1, "standard-3", None)
    with pytest.raises(Invalid, match="exceeds the maximum allowed"):
        core.calcengine.import_records(demo, [{"field1": "x"}] * 51, "standard-1", None)
    with pytest.raises(NotFound, match="Import File with id 42"):
        core.calcengine.delete_imported(demo, 42)
    job = core.calcengine.import_file(demo, 1, "standard-3", [3, 1, 2])
    assert (job.label, job.type, job.params["periods"]) == ("Import Test: Period 1", "Import", [1, 2, 3])


# Calculations ------------------------------------------------------------
def test_sip_calc_pays_five_percent_and_a_rerun_replaces(core: Core, demo: Caller, queue: QueueDriver) -> None:
    sales(
        core,
        demo,
        queue,
        [
            {"participant_eid": "test_user_1", "period": 3, "amount": "1000"},
            {"participant_eid": "test_user_1", "period": 3, "amount": "234.50"},
            {"participant_eid": "test_user_2", "period": 3, "amount": "99.99"},
            {"participant_eid": "test_user_3", "period": 4, "amount": "10"},
        ],
        3,
    )
    for _ in range(2):
        job = core.calcengine.calculate(demo, 1, [3, 4], eids=["test_user_1", "test_user_2", "test_user_3"], v2=True)
        assert job.label == "SIP Calc: Period 3"
        assert finished(core, queue, job).state is JobState.FINISHED
    rows, total = extract(core, "sip_results")
    payouts = {(r["participant_eid"], r["period"]): r["payout"] for r in rows}
    assert total == 6
    assert payouts[("test_user_1", 3)] == 61.73  # 1234.50 x 5%, rounded half up
    assert (
        payouts[("test_user_2", 3)] == 5.0 and payouts[("test_user_3", 4)] == 0.5 and payouts[("test_user_3", 3)] == 0
    )
    # New sales, same participants and periods: the rerun's payouts replace the first ones.
    sales(core, demo, queue, [{"participant_eid": "test_user_2", "period": 3, "amount": "0.01"}], 3)
    finished(core, queue, core.calcengine.calculate(demo, 1, [3], participant_ids=[2]))
    rows, total = extract(core, "sip_results", participant_eid="test_user_2", period="3")
    assert total == 1 and rows[0]["payout"] == 5.0  # 100.00 x 5%
    assert extract(core, "sip_results")[1] == 6


def test_rows_without_a_period_belong_to_the_imports_period(core: Core, demo: Caller, queue: QueueDriver) -> None:
    # Given sales rows that name no period, imported for period 5 (sales-1 needs a period)
    rows = [{"participant_eid": "test_user_1", "amount": "400"}, {"participant_eid": "test_user_1", "amount": "600"}]
    assert sales(core, demo, queue, rows, 5).processed == 2
    # Then an extract on period 5 finds them and SIP Calc of period 5 counts them: 1000 x 5%
    assert extract(core, "sales", period="5")[1] == 2
    finished(core, queue, core.calcengine.calculate(demo, 1, [5], participant_ids=[1]))
    assert extract(core, "sip_results", participant_eid="test_user_1", period="5")[0][0]["payout"] == 50
    # A range of periods cannot say which one such a row is for: that row fails, logged; the others go in.
    both = [
        {"participant_eid": "test_user_2", "amount": "1"},
        {"participant_eid": "test_user_2", "period": 7, "amount": "2"},
    ]
    done = finished(core, queue, core.calcengine.import_records(demo, both, "sales-1", [6, 7]))
    assert (done.processed, done.failed) == (1, 1)
    assert any("names no period" in e.message for e in core.jobs.repo.logs(done.id))
    assert extract(core, "sales", participant_eid="test_user_2")[1] == 1


def test_v2_defaults_to_the_current_period_and_every_active_participant(
    core: Core, demo: Caller, queue: QueueDriver
) -> None:
    core.calcengine.repo.put_participant(TENANT, Participant(id=4, eid="gone", active=False))
    month = dt.datetime.now(dt.UTC).month  # this year's periods 1..12 are open; 13 (last December) never holds today
    job = core.calcengine.calculate(demo, 1, None, v2=True)
    assert job.params["periods"] == [month] and job.label == f"SIP Calc: Period {month}"
    assert finished(core, queue, job).processed == 3
    assert {r["participant_eid"] for r in extract(core, "sip_results")[0]} == {
        "test_user_1",
        "test_user_2",
        "test_user_3",
    }
    for period in core.calcengine.repo.periods(TENANT):
        core.calcengine.repo.put_period(TENANT, period.model_copy(update={"end": period.start}))
    if dt.datetime.now(dt.UTC).day != 1:
        with pytest.raises(Unprocessable, match="no current Period"):
            core.calcengine.calculate(demo, 1, [], v2=True)


def test_leader_board_script_and_tiers(core: Core, demo: Caller, queue: QueueDriver) -> None:
    sales(
        core,
        demo,
        queue,
        [
            {"participant_eid": "test_user_1", "period": 5, "amount": "300"},
            {"participant_eid": "test_user_2", "period": 5, "amount": "2000"},
            {"participant_eid": "test_user_3", "period": 5, "amount": "300"},
        ],
        5,
    )
    for calc in (3, 4, 6):
        assert finished(core, queue, core.calcengine.calculate(demo, calc, [5])).state is JobState.FINISHED
    ranks = {r["participant_eid"]: (r["rank"], r["total_sales"]) for r in extract(core, "sales_ranks")[0]}
    assert ranks == {"test_user_2": (1, 2000), "test_user_1": (2, 300), "test_user_3": (2, 300)}
    # Calculation 6 (tiers: 2% to 1000, 5% above) ran after 4 and replaced nothing of it: different rids.
    assert extract(core, "bonus_results")[1] == 6
    rows = extract(core, "bonus_results", participant_eid="test_user_2", period="5")[0]
    assert sorted(r["bonus"] for r in rows) == [70, 200]  # tiers: 20 + 50; script: 2000 x 10%
    rows = extract(core, "bonus_results", participant_eid="test_user_1", period="5")[0]
    assert sorted(r["bonus"] for r in rows) == [0, 6]  # script: max(0, 300 - 500) x 2%; tiers: 300 x 2%


def test_a_failing_script_fails_the_errand_and_says_why(core: Core, demo: Caller, queue: QueueDriver) -> None:
    core.calcengine.repo.put_calculation(TENANT, broken_script(9, "Broken"))
    done = finished(core, queue, core.calcengine.calculate(demo, 9, [6]))
    assert done.state is JobState.FAILED
    last = core.jobs.repo.logs(done.id)[-1]
    assert (
        last.status == "ended"
        and "Broken failed for participant test_user_1 in period 6: division by zero" in last.message
    )


def test_calculation_rules(core: Core, demo: Caller) -> None:
    cases: list[tuple[Any, type[BackroomError], str]] = [
        (lambda: core.calcengine.calculate(demo, 77, [1]), NotFound, "Could not find Calculation with id 77"),
        (lambda: core.calcengine.calculate(demo, 2, [1]), Unprocessable, "not published"),
        (lambda: core.calcengine.calculate(demo, 5, [1]), Unprocessable, "not active"),
        (lambda: core.calcengine.calculate(demo, 1, [12, 13]), Unprocessable, "not valid for Periods 12..13"),
        (lambda: core.calcengine.calculate(demo, 3, [12, 13], v2=True), Unprocessable, "are locked: 13"),
        (lambda: core.calcengine.calculate(demo, 1, [13], v2=True), Unprocessable, "not valid for Periods 13..13"),
        (lambda: core.calcengine.calculate(demo, 3, [40], v2=True), Unprocessable, "do not exist: 40"),
        (
            lambda: core.calcengine.calculate(demo, 1, [3], eids=["nobody"], v2=True),
            Unprocessable,
            "EIDs do not resolve",
        ),
        (lambda: core.calcengine.calculate(demo, 1, [3], participant_ids=[99]), Unprocessable, "IDs do not resolve"),
        (lambda: core.calcengine.run_batch(demo, 9, [1]), NotFound, "Could not find Batch with id 9"),
        (lambda: core.calcengine.run_batch(demo, 2, [1]), Unprocessable, "not published"),
        (lambda: core.calcengine.run_batch(demo, 1, [13], v2=True), Unprocessable, "locked"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    # v1 lists no locked-period error: it runs (see docs/dialects.md, "Gateway API notes").
    assert core.calcengine.calculate(demo, 1, [1, 2, 3]).params["periods"] == [1, 2, 3]


def test_a_batch_runs_its_calculations_in_order_as_children(core: Core, demo: Caller, queue: QueueDriver) -> None:
    sales(core, demo, queue, [{"participant_eid": "test_user_1", "period": 7, "amount": "2000"}], 7)
    batch = core.calcengine.run_batch(demo, 3, [7])
    assert (batch.label, batch.type) == ("Sales Batch", "Calc")
    for _ in range(60):
        queue.drain()
        if core.jobs.get(batch.id, TENANT).state.is_final:
            break
        time.sleep(1)  # the batch polls its running child through delayed messages
    done = core.jobs.get(batch.id, TENANT)
    assert done.state is JobState.FINISHED, [e.message for e in core.jobs.repo.logs(batch.id)]
    children = [core.jobs.repo.get(f"{batch.id}-{i}") for i in range(3)]
    assert [c.label for c in children if c] == [
        "SIP Calc: Period 7",
        "Sales Leader Board: Period 7",
        "Bonus Script: Period 7",
    ]
    assert all(c and c.parent_id == batch.id and c.state is JobState.FINISHED for c in children)
    ends = [c.ended_at or 0 for c in children if c]
    starts = [c.started_at or 0 for c in children if c]
    assert starts[1] >= ends[0] and starts[2] >= ends[1]  # in order, one after the other
    assert extract(core, "sip_results", participant_eid="test_user_1", period="7")[0][0]["payout"] == 100


def test_scripts_are_evaluated_without_eval() -> None:
    assert (
        evaluate(
            "max(0, sum - 10) * rate if count > 1 else -1",
            {"sum": Decimal(30), "rate": Decimal("0.5"), "count": Decimal(2)},
        )
        == 10
    )
    for bad in ("__import__('os')", "sum.__class__", "[1][0]", "lambda: 1", "open('x')", "'a' * 3", "sum ** 2"):
        with pytest.raises(ScriptError):
            evaluate(bad, {"sum": Decimal(1)})


# Internal errors -----------------------------------------------------------
INTERNAL = [
    (
        "ExtractFunction",
        "GET",
        "/gateway/extract/v1/custom-tables/sales",
        None,
        "extract",
        "Unable to execute the extract.",
    ),
    (
        "ErrandsFunction",
        "POST",
        "/gateway/errand/v1/calculations",
        {"periodRange": [3], "calculationId": 1},
        "calculate",
        "Due to an internal issue a Calculation Errand could not be created.",
    ),
    (
        "ErrandsFunction",
        "POST",
        "/gateway/errand/v2/calculations",
        {"periodRange": [3], "calculationId": 1},
        "calculate",
        "Due to an internal issue a Calculation Errand could not be created.",
    ),
    (
        "ErrandsFunction",
        "POST",
        "/gateway/errand/v1/batches",
        {"periodRange": [3], "batchId": 1},
        "run_batch",
        "Due to an internal issue a Batch Errand could not be created.",
    ),
    (
        "ErrandsFunction",
        "POST",
        "/gateway/errand/v1/imports/file",
        {"importFileId": 1, "periodRange": [3], "importFileTypeId": "standard-3"},
        "import_file",
        "Due to an internal issue an Import Errand could not be created.",
    ),
    (
        "ErrandsFunction",
        "POST",
        "/gateway/errand/v2/batches",
        {"periodRange": [3], "batchId": 1},
        "run_batch",
        "Due to an internal issue a Batch Errand could not be created.",
    ),
    (
        "ErrandsFunction",
        "POST",
        "/gateway/errand/v1/imports/records",
        {"records": [{"field1": "x"}], "importFileTypeId": "standard-1"},
        "import_records",
        "Due to an internal issue an Import Errand could not be created.",
    ),
    (
        "ErrandsFunction",
        "POST",
        "/gateway/errand/v1/imported-data-deletes",
        {"importFileId": 1},
        "delete_imported",
        "Due to an internal issue an Imported Data Delete Errand could not be created.",
    ),
]


@pytest.mark.parametrize(("function", "method", "path", "body", "broken", "message"), INTERNAL)
def test_an_internal_failure_is_a_spring_500_with_the_specs_message(
    core: Core,
    demo: Caller,
    monkeypatch: pytest.MonkeyPatch,
    function: str,
    method: str,
    path: str,
    body: Any,
    broken: str,
    message: str,
) -> None:
    ensure_layer_on_path()
    template = Template.load()
    # The handler modules, loaded below, bind `services` when they are imported: they get this core.
    monkeypatch.setattr(wiring, "core", lambda: core)
    monkeypatch.setattr(resolver, "core", lambda: core)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database caught fire")

    monkeypatch.setattr(core.calcengine, broken, crash)
    route = next(r for r in template.routes() if r.method == method and r.pattern().fullmatch(path))
    pool = FunctionPool(template.functions()[function], size=1)
    token = core.identity.login("dev@demo.local", "demo-dev-password").token
    payload = json.dumps(body).encode() if body is not None else b""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    event = build_event(route, method, path, {}, "", headers, payload, "127.0.0.1")
    reply = pool.invoke(event)
    answer = json.loads(reply["body"])
    assert reply["statusCode"] == 500
    assert answer["message"] == message and answer["error"] == "Internal Server Error"
    assert answer["path"] == path.removeprefix("/gateway/errand").removeprefix("/gateway/extract")
    assert "fire" not in reply["body"]  # nothing of the cause reaches the caller


def test_errand_states_map_from_the_job_engine(core: Core, demo: Caller, queue: QueueDriver) -> None:
    from backroom.api.gateway import ErrandView
    from backroom.jobs.models import NewJob
    from backroom.jobs.probe import RowProbe

    def errand() -> Job:
        spec = NewJob(
            kind=RowProbe.name,
            tenant_id=TENANT,
            account_id=TENANT,
            created_by=demo.user_id,
            label="probe",
            params={"rows": 60, "chunk_size": 30},
        )
        return core.errands.create(spec)

    def state(job: Job) -> str:
        return ErrandView.of(core.errands.get(TENANT, job.seq or 0)).state

    core.calcengine.repo.put_calculation(TENANT, broken_script(9, "Broken", "1 / 0"))
    running, stopped, canceled = errand(), errand(), errand()
    failed = core.calcengine.calculate(demo, 9, [6])
    assert {state(j) for j in (running, stopped, canceled, failed)} == {"Running"}
    core.jobs.stop(stopped.id, TENANT)
    core.jobs.stop(canceled.id, TENANT)
    core.jobs.cancel(canceled.id, TENANT)
    queue.drain()
    assert [state(j) for j in (running, stopped, canceled, failed)] == [
        "Complete",
        "Terminated",
        "Terminated",
        "Failed",
    ]
    assert core.jobs.repo.logs(failed.id)[-1].status == "ended"
