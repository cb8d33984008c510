"""The job engine: chunks over SQS, exactly-once rows, stop / resume / cancel, logs."""

from __future__ import annotations

import time

import pytest
from backroom.errors import Conflict, NotFound
from backroom.jobs.models import Job, JobState, NewJob
from backroom.jobs.probe import RowProbe, probe_rows
from backroom.services import Services
from botocore.exceptions import ClientError

from tests.unit.conftest import QueueDriver

TENANT = "tenant-a"


def probe(core: Services, rows: int, chunk_size: int = 1000, **params: int) -> Job:
    spec = NewJob(
        kind=RowProbe.name,
        tenant_id=TENANT,
        account_id=TENANT,
        created_by="u1",
        created_by_name="Tester",
        label=f"Probe {rows} rows",
        params={"rows": rows, "chunk_size": chunk_size, **params},
    )
    return core.jobs.create(spec)


def assert_each_row_once(core: Services, job: Job, rows: int) -> None:
    """Every row's marker is there, and the job counted each row exactly once."""
    done = core.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED
    assert (done.processed, done.failed) == (rows, 0)
    assert sum(c.processed for c in core.jobs.repo.chunks(job.id)) == rows
    written = probe_rows(core.table, job.id)
    assert written == list(range(rows)), f"{rows - len(written)} rows never processed"


def test_a_job_runs_all_its_chunks_and_finishes(core: Services, queue: QueueDriver) -> None:
    job = probe(core, rows=2_500, chunk_size=1000)

    queue.drain()

    done = core.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED
    assert (done.total_rows, done.chunk_count, done.processed, done.failed) == (2_500, 3, 2_500, 0)
    assert done.started_at and done.ended_at and done.ended_at >= done.started_at
    assert_each_row_once(core, job, 2_500)
    logs = core.jobs.repo.logs(job.id)
    assert logs[0].message.startswith("Job started")
    assert logs[-1].status == "ended" and "2500 rows processed" in logs[-1].message


def test_a_job_with_no_rows_finishes_at_once(core: Services, queue: QueueDriver) -> None:
    job = probe(core, rows=0)
    queue.drain()
    assert core.jobs.get(job.id, TENANT).state is JobState.FINISHED


def test_every_message_delivered_twice_still_applies_each_row_once(core: Services, queue: QueueDriver) -> None:
    job = probe(core, rows=10_000, chunk_size=1000)

    # Given every message arrives twice (SQS is at-least-once), the copies interleaved
    delivered = 0
    while batch := queue.receive():
        for message in batch:
            queue.deliver(message)
            queue.deliver(message)
            delivered += 2

    # Then each row was applied exactly once and the counters are exact
    assert delivered > 20
    done = core.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED
    assert done.processed == 10_000
    assert_each_row_once(core, job, 10_000)


def test_a_worker_dying_mid_chunk_loses_and_repeats_nothing(
    core: Services, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = probe(core, rows=3_000, chunk_size=1000)
    queue.drain(limit=1)  # the plan: three chunk messages now wait
    advance = core.jobs.repo.advance_chunk
    calls = {"n": 0}

    def dies_after_writing_the_seventh_group(chunk, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 7:  # the group's rows are written, its checkpoint is not
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "gone"}}, "UpdateItem")
        return advance(chunk, **kw)

    monkeypatch.setattr(core.jobs.repo, "advance_chunk", dies_after_writing_the_seventh_group)
    # When the worker dies in the middle of a chunk, the message is not deleted...
    with pytest.raises(ClientError):
        queue.drain()
    monkeypatch.setattr(core.jobs.repo, "advance_chunk", advance)
    # ...and SQS delivers it again once its visibility timeout (2 s here) has passed
    time.sleep(2.2)
    queue.drain()

    done = core.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED
    assert done.processed == 3_000
    assert_each_row_once(core, job, 3_000)


def test_stop_then_resume_ends_finished_with_every_row(core: Services, queue: QueueDriver) -> None:
    job = probe(core, rows=3_000, chunk_size=500)
    queue.drain(limit=2)  # plan and the first chunk

    stopping = core.jobs.stop(job.id, TENANT)
    assert stopping.state in (JobState.STOPPING, JobState.STOPPED)
    queue.drain()  # the remaining chunk messages find the job stopping and park
    stopped = core.jobs.get(job.id, TENANT)
    assert stopped.state is JobState.STOPPED
    assert 0 < core.jobs.progress(stopped).processed < 3_000

    core.jobs.resume(job.id, TENANT)
    queue.drain()

    done = core.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED
    assert done.processed == 3_000
    assert_each_row_once(core, job, 3_000)
    assert [e.message for e in core.jobs.repo.logs(job.id) if e.message.startswith("Job")][-3:] == [
        "Job stopped",
        "Job resumed",
        "Job finished: 3000 rows processed, 0 failed",
    ]


def test_stop_then_cancel_ends_canceled_and_runs_no_more_rows(core: Services, queue: QueueDriver) -> None:
    job = probe(core, rows=3_000, chunk_size=500)
    queue.drain(limit=2)
    core.jobs.stop(job.id, TENANT)
    queue.drain()
    processed = core.jobs.progress(core.jobs.get(job.id, TENANT)).processed

    canceled = core.jobs.cancel(job.id, TENANT)
    queue.drain()

    assert canceled.state is JobState.CANCELED
    assert canceled.processed == processed  # the rows done before the stop stay counted
    assert core.jobs.get(job.id, TENANT).state is JobState.CANCELED
    assert len(probe_rows(core.table, job.id)) == processed  # nothing ran after the stop
    with pytest.raises(Conflict):
        core.jobs.resume(job.id, TENANT)


def test_a_pending_job_stopped_before_it_started_resumes_as_pending(core: Services, queue: QueueDriver) -> None:
    spec = NewJob(
        kind=RowProbe.name, tenant_id=TENANT, account_id=TENANT, created_by="u1", label="later", params={"rows": 10}
    )
    job = core.jobs.create(spec, start=False)

    assert core.jobs.stop(job.id, TENANT).state is JobState.STOPPED
    assert core.jobs.resume(job.id, TENANT).state is JobState.PENDING
    core.jobs.start(job.id, TENANT)
    queue.drain()
    assert core.jobs.get(job.id, TENANT).state is JobState.FINISHED


def test_invalid_transitions_are_conflicts(core: Services, queue: QueueDriver) -> None:
    job = probe(core, rows=10)
    queue.drain()
    with pytest.raises(Conflict):
        core.jobs.stop(job.id, TENANT)
    with pytest.raises(Conflict):
        core.jobs.cancel(job.id, TENANT)
    with pytest.raises(Conflict):
        core.jobs.start(job.id, TENANT)


def test_another_tenants_job_is_not_found(core: Services) -> None:
    job = probe(core, rows=1)
    with pytest.raises(NotFound):
        core.jobs.get(job.id, "tenant-b")
    with pytest.raises(NotFound):
        core.jobs.stop(job.id, "tenant-b")


def test_a_crash_in_the_kind_fails_the_job_and_keeps_committed_rows(
    core: Services, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = probe(core, rows=200, chunk_size=200)
    original = RowProbe.apply

    def crash_at_row_120(self: RowProbe, ctx, job, row):  # type: ignore[no-untyped-def]
        if row == 120:
            raise ValueError("boom")
        return original(self, ctx, job, row)

    monkeypatch.setattr(RowProbe, "apply", crash_at_row_120)
    queue.drain()

    failed = core.jobs.get(job.id, TENANT)
    assert failed.state is JobState.FAILED
    assert failed.error and "Internal error" in failed.error
    assert failed.processed == 100  # two groups of 50 rows were committed before the crash
    assert probe_rows(core.table, job.id) == list(range(100))
    assert core.jobs.repo.logs(job.id)[-1].level == "ERROR"


def test_numbered_jobs_stay_dense_when_a_writer_dies_or_races(core: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = NewJob(kind=RowProbe.name, tenant_id=TENANT, account_id=TENANT, created_by="u1", label="Numbered")

    def numbered(seq: int) -> tuple[NewJob, str]:
        return spec.model_copy(update={"seq": seq}), f"numbered-{seq}"

    # A writer that dies in the middle takes no number
    real = core.table.transact

    def crash_once(writes: list) -> None:  # type: ignore[type-arg]
        monkeypatch.setattr(core.table, "transact", real)
        raise ConnectionError("the writer died")

    monkeypatch.setattr(core.table, "transact", crash_once)
    with pytest.raises(ConnectionError):
        core.jobs.create_numbered("dense", numbered, start=False)
    first = core.jobs.create_numbered("dense", numbered, start=False)
    assert first.seq == 1 and core.jobs.repo.by_alias("numbered-1") == first

    # A writer that loses the race for a number takes the next one
    stale = [0]  # one stale read: number 1 looks free

    def stale_once(counter: str) -> int:
        return stale.pop() if stale else real_last_seq(counter)

    real_last_seq = core.jobs.repo.last_seq
    monkeypatch.setattr(core.jobs.repo, "last_seq", stale_once)
    second = core.jobs.create_numbered("dense", numbered, start=False)
    assert not stale and second.seq == 2 and core.jobs.repo.last_seq("dense") == 2
