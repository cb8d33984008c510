"""The hot reads are a GetItem or a Query on a key or index, never a Scan."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from backroom.jobs.models import NewJob
from backroom.jobs.probe import RowProbe
from backroom.services import Services

from infra.demo.load import load_demo
from tests.unit.conftest import QueueDriver


@contextmanager
def dynamodb_calls(core: Services) -> Iterator[list[str]]:
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = core.table.client.meta.events
    events.register("before-call.dynamodb.*", record)
    try:
        yield calls
    finally:
        events.unregister("before-call.dynamodb.*", record)


def test_token_user_job_and_logs_are_found_by_key(core: Services, queue: QueueDriver) -> None:
    load_demo(core)
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
        core.jobs.progress(found)
        logs = core.jobs.repo.logs(job.id, limit=20)  # a page of its logs
        core.jobs.repo.count_logs(job.id)

    assert logs and calls
    assert set(calls) <= {"GetItem", "Query"}, calls
    assert "Scan" not in calls
