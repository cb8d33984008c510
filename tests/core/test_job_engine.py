"""The job engine: chunks over SQS, exactly-once rows, stop / resume / cancel, logs."""

from __future__ import annotations

import importlib.util
import json
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from backroom.clock import now_ms
from backroom.dynamo import TransactionFailed, Write
from backroom.errors import Conflict, NotFound, ServiceFailure
from backroom.jobs.engine import WrongState
from backroom.jobs.kinds import lease_guard
from backroom.jobs.models import Chunk, Job, JobState, NewJob
from backroom.jobs.probe import RowProbe, probe_rows
from backroom.wiring import Core
from botocore.exceptions import ClientError

from tests.core.conftest import QueueDriver

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def load_function(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"fn_{name.replace('-', '_')}", FUNCTIONS / name / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LambdaContextStub:
    function_name = "JobDeadLetterFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:JobDeadLetterFunction"
    memory_limit_in_mb = 128
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/JobDeadLetterFunction"
    log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


TENANT = "tenant-a"


def probe(core: Core, rows: int, chunk_size: int = 1000, **params: int) -> Job:
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


def assert_each_row_once(core: Core, job: Job, rows: int) -> None:
    """Every row's marker is there, and the job counted each row exactly once."""
    done = core.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED
    assert (done.processed, done.failed) == (rows, 0)
    assert sum(c.processed for c in core.chunks.chunks(job.id)) == rows
    written = probe_rows(core.table, job.id)
    assert written == list(range(rows)), f"{rows - len(written)} rows never processed"


def test_a_job_runs_all_its_chunks_and_finishes(core: Core, queue: QueueDriver) -> None:
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


def test_a_job_with_no_rows_finishes_at_once(core: Core, queue: QueueDriver) -> None:
    job = probe(core, rows=0)
    queue.drain()
    assert core.jobs.get(job.id, TENANT).state is JobState.FINISHED


def test_every_message_delivered_twice_still_applies_each_row_once(core: Core, queue: QueueDriver) -> None:
    job = probe(core, rows=3_000, chunk_size=300)

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
    assert done.processed == 3_000
    assert_each_row_once(core, job, 3_000)


class _Refusing:
    """A DynamoDB client whose transactions fail as the service does when it is unavailable."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def transact_write_items(self, **kw: Any) -> Any:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "gone"}}, "TransactWriteItems")


def test_a_worker_dying_mid_chunk_loses_and_repeats_nothing(
    core: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = probe(core, rows=3_000, chunk_size=1000)
    queue.drain(limit=1)  # the plan: three chunk messages now wait
    advance = core.chunks.advance_chunk
    calls = {"n": 0}

    def dies_after_writing_the_seventh_group(chunk, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 7:  # DynamoDB refuses the seventh group's checkpoint (its rows with it)
            with monkeypatch.context() as during:
                during.setattr(core.jobs.repo.table, "client", _Refusing(core.jobs.repo.table.client))
                return advance(chunk, **kw)
        return advance(chunk, **kw)

    monkeypatch.setattr(core.chunks, "advance_chunk", dies_after_writing_the_seventh_group)
    # When the worker dies in the middle of a chunk, the message is not deleted...
    with pytest.raises(ServiceFailure):
        queue.drain()
    monkeypatch.setattr(core.chunks, "advance_chunk", advance)
    # ...and SQS delivers it again once its visibility timeout (2 s here) has passed
    time.sleep(2.2)
    queue.drain()

    done = core.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED
    assert done.processed == 3_000
    assert_each_row_once(core, job, 3_000)


def test_stop_then_resume_ends_finished_with_every_row(core: Core, queue: QueueDriver) -> None:
    job = probe(core, rows=3_000, chunk_size=500)
    queue.drain(limit=2)  # plan and the first chunk

    stopping = core.jobs.stop(job.id, TENANT)
    assert stopping.state in (JobState.STOPPING, JobState.STOPPED)
    queue.drain()  # the remaining chunk messages find the job stopping and park
    stopped = core.jobs.get(job.id, TENANT)
    assert stopped.state is JobState.STOPPED
    assert 0 < stopped.progress().processed < 3_000

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


def test_stop_then_cancel_ends_canceled_and_runs_no_more_rows(core: Core, queue: QueueDriver) -> None:
    job = probe(core, rows=3_000, chunk_size=500)
    queue.drain(limit=2)
    core.jobs.stop(job.id, TENANT)
    queue.drain()
    processed = core.jobs.get(job.id, TENANT).progress().processed

    canceled = core.jobs.cancel(job.id, TENANT)
    queue.drain()

    assert canceled.state is JobState.CANCELED
    assert canceled.processed == processed  # the rows done before the stop stay counted
    assert core.jobs.get(job.id, TENANT).state is JobState.CANCELED
    assert len(probe_rows(core.table, job.id)) == processed  # nothing ran after the stop
    with pytest.raises(Conflict):
        core.jobs.resume(job.id, TENANT)


def test_a_pending_job_stopped_before_it_started_resumes_as_pending(core: Core, queue: QueueDriver) -> None:
    spec = NewJob(
        kind=RowProbe.name, tenant_id=TENANT, account_id=TENANT, created_by="u1", label="later", params={"rows": 10}
    )
    job = core.jobs.create(spec, start=False)

    assert core.jobs.stop(job.id, TENANT).state is JobState.STOPPED
    assert core.jobs.resume(job.id, TENANT).state is JobState.PENDING
    core.jobs.start(job.id, TENANT)
    queue.drain()
    assert core.jobs.get(job.id, TENANT).state is JobState.FINISHED


def test_invalid_transitions_are_conflicts(core: Core, queue: QueueDriver) -> None:
    job = probe(core, rows=10)
    queue.drain()
    with pytest.raises(Conflict):
        core.jobs.stop(job.id, TENANT)
    with pytest.raises(Conflict):
        core.jobs.cancel(job.id, TENANT)
    with pytest.raises(Conflict):
        core.jobs.start(job.id, TENANT)


def test_another_tenants_job_is_not_found(core: Core) -> None:
    job = probe(core, rows=1)
    with pytest.raises(NotFound):
        core.jobs.get(job.id, "tenant-b")
    with pytest.raises(NotFound):
        core.jobs.stop(job.id, "tenant-b")


def test_a_crash_in_the_kind_fails_the_job_and_keeps_committed_rows(
    core: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
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


def test_numbered_jobs_stay_dense_when_a_writer_dies_or_races(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
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


# Leases, force stop, counters and dead letters ------------------------------------------------------
def held_by_a_dead_worker(core: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch, job: Job) -> Chunk:
    """Deliver one chunk whose worker dies after its third checkpoint: the chunk it held (with its lease)."""
    advance = core.chunks.advance_chunk
    seen: dict[str, Any] = {"n": 0}

    def dies_at_the_third_checkpoint(chunk, **kw):  # type: ignore[no-untyped-def]
        seen["n"] += 1
        if seen["n"] == 3:
            seen["chunk"] = chunk
            raise ServiceFailure("ServiceUnavailable", "gone")
        return advance(chunk, **kw)

    monkeypatch.setattr(core.chunks, "advance_chunk", dies_at_the_third_checkpoint)
    [message] = queue.receive(most=1)
    with pytest.raises(ServiceFailure):
        queue.deliver(message)  # the message stays in the queue, the lease on the chunk
    monkeypatch.setattr(core.chunks, "advance_chunk", advance)
    held: Chunk = seen["chunk"]
    assert held.lease_owner and core.jobs.get(job.id, TENANT).active_chunks == 1
    return held


def test_force_stop_ends_a_stopping_job_at_once_and_nothing_commits_after_it(
    core: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = probe(core, rows=2_000, chunk_size=500)
    queue.drain(limit=1)  # the plan: four chunk messages wait
    held = held_by_a_dead_worker(core, queue, monkeypatch, job)

    # Given the job is stopping while a dead worker holds a chunk: it cannot settle by itself
    assert core.jobs.stop(job.id, TENANT).state is JobState.STOPPING
    with pytest.raises(WrongState):
        core.jobs.cancel(job.id, TENANT)

    # When it is forced to stop, it is STOPPED at once
    stopped = core.jobs.force_stop(job.id, TENANT)
    assert stopped.state is JobState.STOPPED and stopped.active_chunks == 0
    rows_then = probe_rows(core.table, job.id)
    assert len(rows_then) == stopped.processed == 100  # two groups of 50 were committed

    # Then the dead worker's holder, were it alive, could commit nothing: neither a checkpoint with its rows...
    group = [{"pk": f"PROBE#{job.id}", "sk": f"ROW#{row:08d}", "origin": "late"} for row in range(100, 150)]
    late = core.chunks.advance_chunk(held, rows=50, ok=50, bad=0, last=False, effects=core.chunks.row_writes(group, []))
    assert late is False
    # ...nor a transaction of its own guarded by the lease
    with pytest.raises(TransactionFailed):
        core.table.transact([lease_guard(held), Write(item=group[0])])
    # ...nor the redelivered and remaining messages
    time.sleep(2.2)
    queue.drain()
    assert probe_rows(core.table, job.id) == rows_then
    assert core.jobs.get(job.id, TENANT).state is JobState.STOPPED
    assert [e.message for e in core.journal.logs(job.id)][-1] == "Job stopped (forced)"

    # And a resume finishes it from the checkpoints, every row once
    core.jobs.resume(job.id, TENANT)
    queue.drain()
    assert_each_row_once(core, job, 2_000)


def test_a_failed_job_takes_its_leases_back_so_a_live_holder_commits_nothing_after_it(
    core: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job fails (a chunk's crash, a dead letter) while another worker holds a chunk. That holder
    commits nothing after the failure: neither a checkpoint nor a transaction guarded by its lease. So
    the failed job's settle finds all there will be (an import's entries put ahead of a transaction that
    can no longer commit are the settle's to delete)."""
    job = probe(core, rows=2_000, chunk_size=500)
    queue.drain(limit=1)
    held = held_by_a_dead_worker(core, queue, monkeypatch, job)

    core.lifecycle.fail(core.jobs.get(job.id, TENANT), "another chunk crashed")

    assert core.jobs.get(job.id, TENANT).state is JobState.FAILED
    group = [{"pk": f"PROBE#{job.id}", "sk": f"ROW#{row:08d}", "origin": "late"} for row in range(100, 150)]
    late = core.chunks.advance_chunk(held, rows=50, ok=50, bad=0, last=False, effects=core.chunks.row_writes(group, []))
    assert late is False
    with pytest.raises(TransactionFailed):
        core.table.transact([lease_guard(held), Write(item=group[0])])


def test_force_stop_and_the_others_refuse_a_wrong_state(core: Core, queue: QueueDriver) -> None:
    job = probe(core, rows=10)
    with pytest.raises(WrongState):
        core.jobs.force_stop(job.id, TENANT)  # PENDING
    queue.drain()
    for command in (core.jobs.stop, core.jobs.force_stop, core.jobs.cancel, core.jobs.resume):
        with pytest.raises(WrongState):
            command(job.id, TENANT)  # FINISHED


def test_a_delivery_taking_over_a_chunk_leaves_the_first_holder_unable_to_commit(
    core: Core, queue: QueueDriver
) -> None:
    job = probe(core, rows=100, chunk_size=100)
    queue.drain(limit=1)
    chunk = core.chunks.get_chunk(job.id, 0)
    assert chunk is not None
    first = core.chunks.take_lease(chunk, "first", now_ms() + 60_000)
    assert first is not None
    second = core.chunks.take_lease(first, "second", now_ms() + 60_000)  # the message, delivered again
    assert second is not None
    assert not core.chunks.advance_chunk(first, rows=50, ok=50, bad=0, last=False)
    assert core.chunks.advance_chunk(second, rows=50, ok=50, bad=0, last=False)
    assert core.jobs.get(job.id, TENANT).active_chunks == 1  # one holder, counted once
    # An expired lease commits nothing either
    expired = second.model_copy(update={"next_row": 50})
    assert core.chunks.renew_lease(expired, now_ms() - 1)
    assert not core.chunks.advance_chunk(expired, rows=50, ok=50, bad=0, last=True)


class CountingClient:
    """The table's DynamoDB client, counting the calls of each operation (reads must not grow with chunks)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: Counter[str] = Counter()
        self.chunk_reads = 0
        self.job_item_writes = 0  # the job item carries the tenant's listing entry (gsi1)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            values = json.dumps(kwargs.get("ExpressionAttributeValues", {}))
            if name in ("query", "scan") and "CHUNK#" in values:
                self.chunk_reads += 1
            writes = [kwargs] if name in ("update_item", "put_item") else []
            writes += [
                op for t in kwargs.get("TransactItems", []) for kind, op in t.items() if kind != "ConditionCheck"
            ]
            self.job_item_writes += sum((w.get("Key") or w.get("Item") or {}).get("sk") == {"S": "JOB"} for w in writes)
            return method(*args, **kwargs)

        return counted


@pytest.mark.parametrize("chunks", [4, 16])
def test_progress_and_completion_read_the_job_item_alone(
    core: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch, chunks: int
) -> None:
    job = probe(core, rows=chunks * 50, chunk_size=50)
    queue.drain(limit=1)  # the plan (it reads the chunks once, to queue them)
    counting = CountingClient(core.table.client)
    monkeypatch.setattr(core.table, "client", counting)

    # When every chunk runs (one group of rows each) and the job's status is read after each
    while batch := queue.receive():
        for message in batch:
            queue.deliver(message)
            core.jobs.get(job.id, TENANT).progress()

    # Then no chunk was ever listed, and each chunk cost the same few calls, however many chunks there are
    done = core.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED and done.progress().processed == chunks * 50
    assert counting.chunk_reads == 0 and counting.calls["scan"] == 0
    assert counting.job_item_writes == 1  # FINISHED: the checkpoints write the counters item only
    calls = sum(counting.calls.values()) - counting.calls["send_message_batch"]
    assert calls / chunks <= 10, counting.calls


def test_running_progress_is_exact_from_the_job_item(core: Core, queue: QueueDriver) -> None:
    job = probe(core, rows=1_000, chunk_size=500)
    queue.drain(limit=2)  # the plan and the first chunk
    running = core.jobs.get(job.id, TENANT)
    assert running.state is JobState.RUNNING
    assert (running.processed, running.chunks_done, running.progress().percent) == (500, 1, 50)


def test_a_delivery_after_the_last_checkpoint_completes_a_job_whose_first_delivery_died_before_it(
    core: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = probe(core, rows=10)
    queue.deliver(queue.receive(most=1)[0])  # the plan
    [chunk_message] = queue.receive(most=1)
    complete = core.lifecycle.check_completion
    dies_once = {"left": 1}

    def dies_before_completing(job_id: str, **kw: Any) -> None:
        if dies_once["left"]:
            dies_once["left"] -= 1
            raise ServiceFailure("ServiceUnavailable", "the worker lost DynamoDB just after the checkpoint")
        complete(job_id, **kw)

    monkeypatch.setattr(core.lifecycle, "check_completion", dies_before_completing)
    with pytest.raises(ServiceFailure):
        core.worker.handle(json.loads(chunk_message["Body"]))  # SQS keeps the message
    stuck = core.jobs.get(job.id, TENANT)
    assert stuck.state is JobState.RUNNING and stuck.chunks_done == stuck.chunk_count == 1

    core.worker.handle(json.loads(chunk_message["Body"]))  # the redelivery
    done = core.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED and done.processed == 10


def test_a_plan_message_in_the_dead_letter_queue_fails_its_job_with_the_reason(
    core: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = probe(core, rows=10)

    def broken_plan(self: RowProbe, ctx, job):  # type: ignore[no-untyped-def]
        raise ValueError("the source is unreadable")

    monkeypatch.setattr(RowProbe, "plan", broken_plan)
    [message] = queue.receive(most=1)
    with pytest.raises(ValueError):
        queue.deliver(message)  # SQS would try again, then give up
    assert core.jobs.get(job.id, TENANT).state is JobState.PENDING

    core.worker.dead_letter(json.loads(message["Body"]), receives=5)

    failed = core.jobs.get(job.id, TENANT)
    assert failed.state is JobState.FAILED
    assert failed.error is not None and "could not be planned" in failed.error and "unreadable" in failed.error
    core.worker.dead_letter(json.loads(message["Body"]), receives=6)  # a second copy changes nothing
    assert core.jobs.get(job.id, TENANT).error == failed.error


def test_the_dead_letter_function_fails_the_job(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    job = probe(core, rows=10)
    # The function refuses to load without its settings (required at cold start); it then runs on `core`.
    monkeypatch.setenv("BACKROOM_TABLE", core.settings.table_name)
    monkeypatch.setenv("BACKROOM_BUCKET", "unused-by-this-function")
    monkeypatch.setenv("BACKROOM_JOBS_QUEUE_URL", "unused-by-this-function")
    handler = load_function("job-dead-letters")
    monkeypatch.setattr(handler, "core", lambda: core)
    event = {
        "Records": [
            {
                "messageId": "m1",
                "receiptHandle": "r1",
                "body": json.dumps({"job": job.id, "op": "plan"}),
                "attributes": {"ApproximateReceiveCount": "5"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:dead",
                "awsRegion": "us-east-1",
            },
            {
                "messageId": "m2",
                "receiptHandle": "r2",
                "body": "not json",
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:dead",
                "awsRegion": "us-east-1",
            },
        ]
    }
    assert handler.lambda_handler(event, LambdaContextStub()) == {"batchItemFailures": []}
    assert core.jobs.get(job.id, TENANT).state is JobState.FAILED


def test_a_jobs_results_are_read_no_further_than_the_bytes_an_answer_shows(core: Core) -> None:
    job = probe(core, rows=10)
    entry = {"status": "ok", "response": {"notes": "n" * 1_000}}
    core.jobs.journal.put_results(job.id, {i: (f"r{i:03d}", entry) for i in range(40)})

    shown = core.jobs.journal.results(job, most_bytes=10_000)

    assert list(shown) == [f"r{i:03d}" for i in range(9)]  # the first ones, in order, while they fit
    assert len(core.jobs.journal.results(job)) == 40  # all of them, unbounded
