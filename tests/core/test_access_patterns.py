"""The hot reads are a GetItem or a Query on a key or index, never a Scan."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from backroom.calcengine.tables import custom_table
from backroom.jobs.models import NewJob
from backroom.jobs.probe import RowProbe
from backroom.wiring import Core

from infra.demo.load import load_demo
from tests.core.conftest import QueueDriver


@contextmanager
def dynamodb_calls(core: Core) -> Iterator[list[str]]:
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = core.table.client.meta.events
    events.register("before-call.dynamodb.*", record)
    try:
        yield calls
    finally:
        events.unregister("before-call.dynamodb.*", record)


def test_token_user_job_and_logs_are_found_by_key(core: Core, queue: QueueDriver) -> None:
    load_demo(core, app_records=False)  # the runtime records are not read here
    token = core.identity.login("dev@demo.local", "demo-dev-password").token
    caller = core.identity.authenticate(token)
    job = core.jobs.create(
        NewJob(
            kind=RowProbe.name,
            tenant_id=caller.tenant_id,
            account_id=caller.account_id,
            created_by=caller.user_id,
            label="probe",
            params={"rows": 120, "chunk_size": 50},
        )
    )
    queue.drain()

    with dynamodb_calls(core) as calls:
        core.identity.authenticate(token)  # a token
        core.identity.repo.get_user("user@demo.local")  # a user by email
        found = core.jobs.get(job.id, caller.tenant_id)  # a job
        found.progress()
        logs = core.jobs.repo.logs(job.id, limit=20)  # a page of its logs
        core.jobs.repo.count_logs(job.id)

    assert logs and calls
    assert set(calls) <= {"GetItem", "Query"}, calls
    assert "Scan" not in calls


def test_an_indexed_extract_is_a_query_of_its_index_partition(core: Core, queue: QueueDriver) -> None:
    load_demo(core, app_records=False)  # the runtime records are not read here
    caller = core.identity.login("dev@demo.local", "demo-dev-password").caller
    rows = [{"participant_eid": f"test_user_{i % 3 + 1}", "period": 3 + i % 2, "amount": i} for i in range(40)]
    core.calcengine.import_records(caller, rows, "sales-1", [3, 4])
    queue.drain()
    queried: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        queried.append(params)

    events = core.table.client.meta.events
    events.register("provide-client-params.dynamodb.Query", record)
    try:
        with dynamodb_calls(core) as calls:
            found, total = core.calcengine.extract(
                caller, "sales", {"participant_eid": ["test_user_1"], "period": ["3"]}, 0, 5
            )
    finally:
        events.unregister("provide-client-params.dynamodb.Query", record)
    assert total == 7 and len(found) == 5
    assert set(calls) <= {"GetItem", "Query", "BatchGetItem"}, calls  # the page's records are read by key
    # Both filters are one declared index: every Query reads that one index value's shards, nothing wider.
    partitions = {q["ExpressionAttributeValues"][":p"]["S"] for q in queried}
    prefix = f"IDX#{caller.tenant_id}#gateway:sales#participant_eid+period#"
    assert partitions and all(p.startswith(prefix) for p in partitions)
    assert len({p.split("#")[-1] for p in partitions}) == 1  # one value (the digest), over its shards
    assert len(partitions) <= custom_table(core.records, caller.tenant_id, "sales").shards
