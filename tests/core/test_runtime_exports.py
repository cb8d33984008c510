"""Exports that read once (issue 26): the plan cuts the work by key ranges, never reading ids; the chunk
reads each record once and writes each part of the file once (a multipart upload's part); a replayed
group, a worker dying before its checkpoint and a stop and resume mid-export still give every record
once; a sort an index serves lists in that order (one it does not is a 400 naming the index); a query
past the cap is a 400 at the request, which never counts past it; the request's count is only the job's
estimate: records it did not count are exported all the same.

Parts are shrunk (`PART_CHARS`, and moto's 5 MiB minimum) so that a few hundred records make several.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import moto.s3.models
import pytest
from backroom.api.runtime import JobView
from backroom.app import exports
from backroom.app.exports import ExportRecordsKind, start_export
from backroom.dynamo import measured
from backroom.errors import Invalid, ServiceFailure
from backroom.identity.models import Caller, Role
from backroom.jobs.models import Job, JobState
from backroom.wiring import Core

from infra.demo.load import demo_app
from tests.core.conftest import QueueDriver, bulk

TENANT = "demo"
DEV = Caller(
    user_id="u-dev", email="dev@demo.local", name="Dev", role=Role.DEVELOPER, account_id=TENANT, tenant_id=TENANT
)
RECORDS = 240


@pytest.fixture
def app(core: Core, monkeypatch: pytest.MonkeyPatch) -> Core:
    core.app.repo.install(TENANT, demo_app(listing_members=True))
    monkeypatch.setattr(exports, "PART_CHARS", 200)  # about 20 rows a part
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1)
    return core


@pytest.fixture
def seeded(app: Core) -> list[str]:
    """RECORDS companies (`Co 0000`...: type a, b, a...; numberOfEmployees 0, 1...), their ids in that order."""
    values = [{"name": f"Co {i:04d}", "type": "ab"[i % 2], "numberOfEmployees": i} for i in range(RECORDS)]
    return bulk(app, TENANT, app.app.repo.entity(TENANT, "companies"), values)


def exported(core: Core, job: Job) -> tuple[Job, list[list[str]]]:
    done = core.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED, done
    stored = core.files.app_file(TENANT, done.results["fileId"])
    assert stored is not None
    return done, list(csv.reader(io.StringIO(core.files.read(stored).decode())))


def test_an_export_reads_each_record_once_and_writes_its_parts_straight_into_the_file(
    app: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch, seeded: list[str]
) -> None:
    scratch: list[str] = []
    put_scratch = app.files.put_scratch
    monkeypatch.setattr(app.files, "put_scratch", lambda o, name, d: (scratch.append(name), put_scratch(o, name, d)))
    job = start_export(app.app, DEV, "companies", {"_fields": "name,numberOfEmployees"}, None)
    assert job.params["count"] == RECORDS  # the table's kept count: recordsCount, and within the cap
    with measured() as cost:
        queue.drain()
    done, lines = exported(app, job)
    assert (done.total_rows, done.results["recordsExported"]) == (RECORDS, RECORDS)
    assert lines[0] == ["name", "numberOfEmployees"]
    assert sorted(lines[1:]) == sorted([f"Co {i:04d}", str(i)] for i in range(RECORDS))  # each once
    # Each record read once (the old plan read every id, then every record), plus the engine's own items
    assert RECORDS <= cost.items_read < RECORDS * 1.25, cost
    assert scratch == ["done.json"]  # the results alone: no row went through a scratch copy


def test_a_replayed_group_a_dying_worker_and_a_stop_and_resume_export_each_record_once(
    app: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch, seeded: list[str]
) -> None:
    job = start_export(app.app, DEV, "companies", {"_fields": "name", "type": "a"}, None)
    real = ExportRecordsKind.before_commit
    groups = {"n": 0}

    def eventful(self: ExportRecordsKind, ctx: Any, job: Job, chunk: Any, outcomes: Any) -> None:
        groups["n"] += 1
        real(self, ctx, job, chunk, outcomes)
        if groups["n"] == 2:  # the second part is written, then the worker dies before its checkpoint
            raise ServiceFailure("ServiceUnavailable", "worker killed")
        if groups["n"] == 3:  # the replayed second part, checkpointed; then a stop before the third
            app.jobs.stop(job.id, TENANT)

    monkeypatch.setattr(ExportRecordsKind, "before_commit", eventful)
    with pytest.raises(ServiceFailure):
        queue.drain()
    # SQS hands the chunk out again: the group is read again from the checkpoint's key, its part rewritten
    queue.sqs.send_message(QueueUrl=queue.url, MessageBody=json.dumps({"job": job.id, "op": "chunk", "chunk": 0}))
    queue.drain()
    stopped = app.jobs.get(job.id, TENANT)
    assert stopped.state is JobState.STOPPED and 0 < stopped.processed < RECORDS // 2, stopped
    app.jobs.resume(job.id, TENANT)
    queue.drain()
    done, lines = exported(app, job)
    ids = {f"Co {i:04d}": rid for i, rid in enumerate(seeded) if i % 2 == 0}
    assert done.results["recordsExported"] == len(ids) and groups["n"] > 4
    assert [line[0] for line in lines[1:]] == sorted(ids, key=ids.__getitem__)  # each once, in id order


def test_a_sort_an_index_serves_lists_in_its_order_with_offset_and_size(
    app: Core, queue: QueueDriver, seeded: list[str]
) -> None:
    params = {"_fields": "numberOfEmployees", "type": "b", "_sortField": "numberOfEmployees", "_sortType": "desc"}
    job = start_export(app.app, DEV, "companies", {**params, "_offset": "2", "_size": "70"}, None)
    queue.drain()
    _, lines = exported(app, job)
    assert [int(n) for (n,) in lines[1:]] == list(range(RECORDS - 1, 0, -2))[2:72]
    with pytest.raises(Invalid, match=r'declare the index \{"equals": \["type"\], "sort": "color"\}'):
        start_export(app.app, DEV, "companies", {"type": "b", "_sortField": "color"}, None)


def test_a_query_past_the_cap_is_a_400_at_the_request(
    app: Core, monkeypatch: pytest.MonkeyPatch, seeded: list[str]
) -> None:
    monkeypatch.setattr(exports, "MAX_RECORDS", RECORDS // 2 - 1)
    with pytest.raises(Invalid, match=f"matches {RECORDS // 2:,} records, more than"):  # an index value's count
        start_export(app.app, DEV, "companies", {"type": "a"}, None)
    with pytest.raises(Invalid, match="matches 240 records"):  # the table's count
        start_export(app.app, DEV, "companies", {}, None)
    with pytest.raises(Invalid, match="Give _size"):  # checked record by record on a table past the cap
        start_export(app.app, DEV, "companies", {"color": "notEquals(red)"}, None)
    job = start_export(app.app, DEV, "companies", {"color": "notEquals(red)", "_size": "10"}, None)
    assert job.params["size"] == 10


def test_the_requests_count_is_an_estimate_never_a_bound(
    app: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch, seeded: list[str]
) -> None:
    """Kept counts lag an import's moves, and records come and go between the request and the chunk: the
    export reads until its key ranges run dry, and ends FINISHED at 100% with the rows it exported."""
    companies = app.app.repo.entity(TENANT, "companies")
    with monkeypatch.context() as lagging:  # the kept count behind the records (an import's moves not added)
        lagging.setattr(app.records.reader, "counted", lambda *_: RECORDS - 100)
        low = start_export(app.app, DEV, "companies", {"_fields": "name"}, None)
    high = start_export(app.app, DEV, "companies", {"_fields": "name", "type": "b"}, None)
    assert (low.params["count"], high.params["count"]) == (RECORDS - 100, RECORDS // 2)
    later = bulk(app, TENANT, companies, [{"name": f"Late {i}", "type": "a"} for i in range(5)])  # after the request
    app.app.delete_many(DEV, "companies", seeded[1:11:2], None)  # five of type b gone since
    queue.drain()
    gone = set(range(1, 11, 2))
    for job, names in (
        (low, {f"Co {i:04d}" for i in range(RECORDS) if i not in gone} | {f"Late {i}" for i in range(len(later))}),
        (high, {f"Co {i:04d}" for i in range(11, RECORDS, 2)}),  # fewer than counted
    ):
        done, lines = exported(app, job)
        assert sorted(line[0] for line in lines[1:]) == sorted(names)  # every record once, none dropped
        view = JobView.of(done, stoppable=True, origin="https://reader.example/runtime")
        assert (view.status, view.progress, view.records_count, view.records_processed) == (
            "FINISHED",
            100,
            len(names),
            len(names),
        )
        assert done.results["recordsExported"] == len(names)
        # a job that kept no root of its request links its file under the reader's
        assert view.results["fileLink"] == f"https://reader.example/runtime/api/files/{done.results['fileId']}"


def test_a_request_never_counts_past_the_cap(app: Core, monkeypatch: pytest.MonkeyPatch, seeded: list[str]) -> None:
    """A range no kept count serves is counted only up to MAX_RECORDS + 1 items (a 400 past it), and not at
    all when `_size` bounds the export."""
    monkeypatch.setattr(exports, "MAX_RECORDS", 20)
    query = {"type": "a", "numberOfEmployees": "greater(9)"}  # an index range: no kept count
    with measured() as cost, pytest.raises(Invalid, match="matches more than the 20 records"):
        start_export(app.app, DEV, "companies", query, None)
    assert cost.items_read < 40, cost  # not the 115 entries of the range
    with measured() as cost:
        job = start_export(app.app, DEV, "companies", {**query, "_size": "5"}, None)
    assert job.params["count"] is None and cost.items_read < 20, cost


def test_who_ran_an_export_may_share_its_file_and_another_user_may_not(
    app: Core, queue: QueueDriver, seeded: list[str]
) -> None:
    # The console downloads a big export through a share link: its runner, a user, must be let share it.
    from backroom.errors import Forbidden

    def user(email: str) -> Caller:
        return Caller(user_id=email, email=email, name=email, role=Role.USER, account_id=TENANT, tenant_id=TENANT)

    runner, other = user("user@demo.local"), user("x@demo.local")
    job = start_export(app.app, runner, "companies", {"_fields": "name"}, None)
    queue.drain()
    done, lines = exported(app, job)
    assert len(lines) == RECORDS + 1
    file_id = done.results["fileId"]
    assert app.app.files.share(runner, file_id, "60000", app.app).file_id == file_id
    with pytest.raises(Forbidden):
        app.app.files.share(other, file_id, None, app.app)
