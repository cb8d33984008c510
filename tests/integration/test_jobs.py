"""The job engine through the running stack: workers on SQS, a killed worker, duplicate messages,
stop / resume / cancel, and the thin routes that show jobs in each dialect."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from backroom import aws
from backroom.identity.models import Caller
from backroom.jobs.models import Job, JobState, NewJob
from backroom.jobs.probe import RowProbe, probe_rows

from tests.integration.stack import Api, LocalStack

DEMO = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"


def caller(local: LocalStack) -> Caller:
    return local.core.identity.login("dev@demo.local", "demo-dev-password").caller


def new_probe(local: LocalStack, rows: int, *, errand: bool = False, **params: int) -> Job:
    who = caller(local)
    spec = NewJob(
        kind=RowProbe.name,
        tenant_id=who.tenant_id,
        account_id=who.account_id,
        created_by=who.user_id,
        created_by_name=who.name,
        label="Row probe",
        type="Probe",
        params={"rows": rows, **params},
    )
    return local.core.errands.create(spec) if errand else local.core.jobs.create(spec)


def wait_until(check: Callable[[], bool], timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def state(local: LocalStack, job: Job) -> JobState:
    return local.core.jobs.get(job.id, DEMO).state


def processed(local: LocalStack, job: Job) -> int:
    return local.core.jobs.get(job.id, DEMO).progress().processed


# Ten chunks of 300 rows, a millisecond a row: two pollers take over a second and a half, long enough to
# kill, duplicate or stop mid-job, and each chunk has six checkpoints (groups of 50) to resume from.
ROWS, CHUNK = 3_000, 300


def assert_exactly_once(local: LocalStack, job: Job, rows: int) -> None:
    done = local.core.jobs.get(job.id, DEMO)
    assert done.state is JobState.FINISHED
    assert (done.processed, done.failed, done.total_rows) == (rows, 0, rows)
    assert probe_rows(local.core.table, job.id) == list(range(rows))


def test_a_worker_killed_mid_chunk_and_restarted_loses_and_repeats_no_row(local: LocalStack) -> None:
    job = new_probe(local, ROWS, chunk_size=CHUNK, pause_ms=1)
    wait_until(lambda: processed(local, job) >= CHUNK * 3 // 2, what="the job to be well under way")

    # When the worker process dies without warning in the middle of its chunks
    local.worker.kill()
    seen = processed(local, job)
    assert state(local, job) is JobState.RUNNING
    assert 0 < seen < ROWS
    time.sleep(1)
    assert processed(local, job) == seen  # nothing runs while it is dead

    # Then a new worker picks the chunks up from their checkpoints once SQS hands them out again
    local.worker.start()
    wait_until(lambda: state(local, job) is JobState.FINISHED, what="the job to finish")
    assert_exactly_once(local, job, ROWS)


def test_every_message_sent_twice_still_runs_each_row_once(local: LocalStack) -> None:
    job = new_probe(local, ROWS, chunk_size=CHUNK, pause_ms=1)
    wait_until(lambda: local.core.jobs.get(job.id, DEMO).chunk_count == ROWS // CHUNK, what="the plan")

    # Given a second copy of the plan and of every chunk message (SQS delivers at least once)
    sqs = aws.client("sqs", local.core.settings)
    copies = [{"job": job.id, "op": "plan"}] + [
        {"job": job.id, "op": "chunk", "chunk": i} for i in range(ROWS // CHUNK)
    ]
    for message in copies:
        sqs.send_message(QueueUrl=local.core.settings.jobs_queue_url, MessageBody=json.dumps(message))

    wait_until(lambda: state(local, job) is JobState.FINISHED, what="the job to finish")
    assert_exactly_once(local, job, ROWS)


def stopped_probe(local: LocalStack) -> Job:
    """A probe job stopped once it is well under way."""
    job = new_probe(local, ROWS, chunk_size=CHUNK, pause_ms=1)
    wait_until(lambda: processed(local, job) >= CHUNK, what="progress")
    local.core.jobs.stop(job.id, DEMO)
    wait_until(lambda: state(local, job) is JobState.STOPPED, what="the job to stop")
    return job


def test_stop_then_resume_finishes_with_every_row(local: LocalStack) -> None:
    job = stopped_probe(local)
    stopped_at = processed(local, job)
    time.sleep(1)
    assert processed(local, job) == stopped_at < ROWS

    local.core.jobs.resume(job.id, DEMO)
    wait_until(lambda: state(local, job) is JobState.FINISHED, what="the job to finish")
    assert_exactly_once(local, job, ROWS)


def test_stop_then_cancel_ends_canceled(local: LocalStack) -> None:
    job = stopped_probe(local)
    local.core.jobs.cancel(job.id, DEMO)
    time.sleep(1)

    assert state(local, job) is JobState.CANCELED
    assert len(probe_rows(local.core.table, job.id)) == processed(local, job) < ROWS


def test_runtime_shows_a_job_as_the_spec_does(local: LocalStack, api: Api, dev_token: str) -> None:
    job = new_probe(local, 300, chunk_size=100)
    wait_until(lambda: state(local, job) is JobState.FINISHED, what="the job to finish")

    reply = api.call("GET", f"/runtime/api/status/jobs/{job.id}", headers={"token": dev_token})

    assert reply.status == 200
    body = reply.json()
    assert body["id"] == job.id
    assert body["status"] == "FINISHED"
    assert (body["progress"], body["recordsCount"], body["recordsProcessed"]) == (100, 300, 300)
    assert body["runBy"] == {"id": "57fce0c3e4b0ce322b0c06b2", "fullName": "Demo Developer"}
    assert body["hasErrors"] is False and body["stoppable"] is True
    assert body["createDate"] <= body["startDate"] <= body["endDate"]
    assert body["parentJob"] is None and body["rootJob"] is None
    missing = api.call("GET", "/runtime/api/status/jobs/0123456789abcdef01234567", headers={"token": dev_token})
    assert (missing.status, missing.json()["code"]) == (404, "notFound")
    too_long = api.call("GET", "/runtime/api/status/jobs/" + "a" * 3000, headers={"token": dev_token})
    assert (too_long.status, too_long.json()["code"]) == (400, "validationErrors")  # never DynamoDB's 2 KB key error


def test_errands_list_and_get_in_the_gateway_shape(local: LocalStack, api: Api, dev_token: str) -> None:
    first = new_probe(local, 50, errand=True)
    second = new_probe(local, 50, errand=True)
    wait_until(lambda: state(local, second) is JobState.FINISHED and state(local, first) is JobState.FINISHED)
    bearer = {"Authorization": f"Bearer {dev_token}"}

    one = api.call("GET", f"/gateway/errand/v1/errands/{second.seq}", headers=bearer)
    assert one.status == 200
    assert one.json() == {
        "id": second.seq,
        "name": "Row probe",
        "type": "Probe",
        "state": "Complete",
        "startTime": one.json()["startTime"],
        "endTime": one.json()["endTime"],
    }
    assert one.json()["startTime"] <= one.json()["endTime"]

    page = api.call("GET", "/gateway/errand/v1/errands?page=0&size=1", headers=bearer).json()
    total = page["page"]["totalElements"]
    assert total >= 2
    assert page["page"] == {"totalPages": total, "totalElements": total, "hasNext": True}
    assert [e["id"] for e in page["results"]] == [1]
    last = api.call("GET", f"/gateway/errand/v1/errands?page={total - 1}&size=1", headers=bearer).json()
    assert last["page"]["hasNext"] is False and [e["id"] for e in last["results"]] == [total]


def test_errand_logs_page_in_the_gateway_shape(local: LocalStack, api: Api, dev_token: str) -> None:
    errand = new_probe(local, 30, errand=True)
    wait_until(lambda: state(local, errand) is JobState.FINISHED, what="the errand")
    bearer = {"Authorization": f"Bearer {dev_token}"}

    everything = api.call("GET", f"/gateway/errand/v1/errands/{errand.seq}/logs?page=0&size=2000", headers=bearer)
    assert everything.status == 200
    lines = everything.json()["results"]
    assert set(lines[0]) == {"logMessage", "status", "createTime"}
    assert lines[0]["logMessage"].startswith("Job started") and lines[-1]["status"] == "ended"
    assert [line["createTime"] for line in lines] == sorted(line["createTime"] for line in lines)
    total = len(lines)
    assert everything.json()["page"] == {"totalPages": 1, "totalElements": total, "hasNext": False}

    second = api.call("GET", f"/gateway/errand/v1/errands/{errand.seq}/logs?page=1&size=1", headers=bearer).json()
    assert second["results"] == lines[1:2]
    assert second["page"] == {"totalPages": total, "totalElements": total, "hasNext": total > 2}

    missing = api.call("GET", "/gateway/errand/v1/errands/999999/logs", headers=bearer)
    assert (missing.status, missing.json()["path"]) == (404, "/v1/errands/999999/logs")
    too_big = api.call("GET", f"/gateway/errand/v1/errands/{errand.seq}/logs?size=2001", headers=bearer)
    assert too_big.status == 400 and too_big.json()["error"] == "Bad Request"


def test_errand_errors_in_the_gateway_shape(api: Api, dev_token: str) -> None:
    bearer = {"Authorization": f"Bearer {dev_token}"}
    missing = api.call("GET", "/gateway/errand/v1/errands/999999", headers=bearer)
    assert missing.status == 404
    assert missing.json()["path"] == "/v1/errands/999999"
    assert missing.json()["error"] == "Not Found"
    for query in ("size=2001", "size=0", "page=-1", "page=x"):
        bad = api.call("GET", f"/gateway/errand/v1/errands?{query}", headers=bearer)
        assert bad.status == 400, query
        assert bad.json()["error"] == "Bad Request" and bad.json()["details"]
    for errand_id in ("abc", "0", "1" * 40):
        assert api.call("GET", f"/gateway/errand/v1/errands/{errand_id}", headers=bearer).status == 400, errand_id
