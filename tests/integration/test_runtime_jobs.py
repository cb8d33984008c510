"""The runtime Jobs API over HTTP (spec: Monitoring and troubleshooting, Jobs): each request, sample
and error row; the listing's filters and pages; stop / forceStop / cancel / resume and who may; a
worker SIGKILLed while its job is STOPPING; a plan message in the dead-letter queue."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest
from backroom import aws
from backroom.identity.models import Caller
from backroom.jobs.models import Job, JobState, NewJob
from backroom.jobs.probe import RowProbe, probe_rows

from infra.local.provision import STACK
from tests.integration.stack import Api, LocalStack

SPEC_FIELDS = {
    "id",
    "label",
    "type",
    "runBy",
    "parentJob",
    "rootJob",
    "createDate",
    "startDate",
    "endDate",
    "status",
    "hasErrors",
    "progress",
    "recordsCount",
    "recordsProcessed",
    "childrenJobsCount",
    "childrenJobsProcessed",
    "stoppable",
    "lowPriority",
    "data",
    "results",
}
JOBS = "/runtime/api/status/jobs"


def who(local: LocalStack, email: str, password: str) -> Caller:
    return local.core.identity.login(email, password).caller


def dev_caller(local: LocalStack) -> Caller:
    return who(local, "dev@demo.local", "demo-dev-password")


def new_job(
    local: LocalStack,
    rows: int,
    *,
    job_type: str = "PROBE",
    by: Caller | None = None,
    start: bool = True,
    kind: str = RowProbe.name,
    **params: object,
) -> Job:
    caller = by or dev_caller(local)
    spec = NewJob(
        kind=kind,
        tenant_id=caller.tenant_id,
        account_id=caller.account_id,
        created_by=caller.user_id,
        created_by_name=caller.name,
        label="Row probe",
        type=job_type,
        params={"rows": rows, **params},
    )
    return local.core.jobs.create(spec, start=start)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def state(local: LocalStack, job: Job) -> JobState:
    found = local.core.jobs.find(job.id)
    assert found is not None
    return found.state


def finished(local: LocalStack, *jobs: Job) -> None:
    """Each job FINISHED and its closing log line written (the line follows the state by a moment)."""

    def ended(job: Job) -> bool:
        return state(local, job) is JobState.FINISHED and any(
            line.status == "ended" for line in local.core.journal.logs(job.id)
        )

    wait_until(lambda: all(ended(j) for j in jobs), "the jobs to finish")


def h(token: str) -> dict[str, str]:
    return {"token": token}


def error(reply_status: int, body: dict[str, object], status: int, code: str) -> None:
    assert reply_status == status, body
    assert body["code"] == code and isinstance(body["message"], str) and body["message"]


# Get one job -------------------------------------------------------------------------------------
def test_get_one_job_has_every_field_of_the_spec(local: LocalStack, api: Api, dev: str) -> None:
    job = new_job(local, 120, chunk_size=50)
    finished(local, job)

    reply = api.call("GET", f"{JOBS}/{job.id}", headers=h(dev))

    assert reply.status == 200 and reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert set(body) == SPEC_FIELDS
    assert body["id"] == job.id and body["label"] == "Row probe" and body["type"] == "PROBE"
    assert body["runBy"] == {"id": job.created_by, "fullName": "Demo Developer"}
    assert body["parentJob"] is None and body["rootJob"] is None
    assert body["status"] == "FINISHED" and body["hasErrors"] is False and body["progress"] == 100
    assert (body["recordsCount"], body["recordsProcessed"]) == (120, 120)
    assert (body["childrenJobsCount"], body["childrenJobsProcessed"]) == (0, 0)
    assert body["stoppable"] is True and body["lowPriority"] is False
    assert body["createDate"] <= body["startDate"] <= body["endDate"]
    assert body["data"] == {"rows": 120, "chunk_size": 50}


def test_get_one_job_errors(local: LocalStack, api: Api, dev: str, user: str) -> None:
    missing = api.call("GET", f"{JOBS}/0123456789abcdef01234567", headers=h(dev))
    error(missing.status, missing.json(), 404, "notFound")
    # Jobs of the other dialects and of other tenants are not the runtime's to show
    errand = local.core.errands.create(
        NewJob(kind=RowProbe.name, tenant_id=dev_caller(local).tenant_id, account_id="a", created_by="x", label="e"),
        start=False,
    )
    other = local.core.jobs.create(
        NewJob(kind=RowProbe.name, tenant_id="another-tenant", account_id="b", created_by="y", label="o"), start=False
    )
    for job in (errand, other):
        reply = api.call("GET", f"{JOBS}/{job.id}", headers=h(dev))
        error(reply.status, reply.json(), 404, "notFound")
    # A user sees the jobs it ran only
    devs = new_job(local, 1, start=False)
    reply = api.call("GET", f"{JOBS}/{devs.id}", headers=h(user))
    error(reply.status, reply.json(), 404, "notFound")
    unauthenticated = api.call("GET", f"{JOBS}/{devs.id}")
    assert unauthenticated.status == 401


# List jobs ---------------------------------------------------------------------------------------
def test_list_jobs_filters_and_pages_newest_first(local: LocalStack, api: Api, dev: str, user: str) -> None:
    kind = f"PROBE_{uuid.uuid4().hex[:8].upper()}"
    done = [new_job(local, 5, job_type=kind) for _ in range(4)]
    pending = new_job(local, 5, job_type=kind, start=False)
    broken = new_job(local, 5, job_type=kind, start=False)
    local.core.worker.dead_letter({"job": broken.id, "op": "plan"})  # FAILED, with an error
    local.core.errands.create(  # an errand of the same type: never in this listing
        NewJob(kind=RowProbe.name, tenant_id=pending.tenant_id, account_id="a", created_by="x", label="e", type=kind),
        start=False,
    )
    finished(local, *done)
    newest_first = [broken.id, pending.id, *[j.id for j in reversed(done)]]

    def listing(query: str, token: str = dev) -> dict[str, object]:
        reply = api.call("GET", f"{JOBS}?type={kind}{query}", headers=h(token))
        assert reply.status == 200, reply.body
        return reply.json()  # type: ignore[no-any-return]

    everything = listing("")
    assert everything["total"] == 6 and [i["id"] for i in everything["items"]] == newest_first  # type: ignore[index, union-attr]
    assert "offset" not in everything or everything["offset"] is None
    assert set(everything["items"][0]) == SPEC_FIELDS  # type: ignore[index]

    # The spec's sample: up to three finished jobs, and the offset of the next page
    first = listing("&status=FINISHED&_size=3")
    assert first["total"] == 4 and [i["id"] for i in first["items"]] == newest_first[2:5]  # type: ignore[union-attr]
    assert first["offset"] == newest_first[4]
    rest = listing(f"&status=FINISHED&_size=3&_offset={first['offset']}")
    assert rest["total"] == 4 and [i["id"] for i in rest["items"]] == newest_first[5:]  # type: ignore[union-attr]
    assert rest.get("offset") is None

    assert [i["id"] for i in listing("&status=PENDING,FAILED")["items"]] == newest_first[:2]  # type: ignore[union-attr]
    assert [i["id"] for i in listing("&hasErrors=true")["items"]] == [broken.id]  # type: ignore[union-attr]
    assert listing("&hasErrors=false")["total"] == 5
    assert listing(f"&type={kind},DELETE_RECORDS&createFrom={pending.created_at}")["total"] == 2
    assert listing(f"&createTo={done[1].created_at}")["total"] == 2
    assert listing("&startFrom=0")["total"] == 4  # the pending and the failed job never started
    assert listing(f"&startTo={done[0].created_at - 1}")["total"] == 0
    ended = local.core.jobs.find(broken.id)
    assert ended is not None and ended.ended_at is not None
    assert [i["id"] for i in listing(f"&endFrom={ended.ended_at}")["items"]] == [broken.id]  # type: ignore[union-attr]
    assert listing(f"&endTo={ended.ended_at - 1}")["total"] == 4
    assert listing("", token=user)["total"] == 0  # a user lists the jobs it ran

    for query, field in (
        ("&status=DONE", "status"),
        ("&hasErrors=maybe", "hasErrors"),
        ("&createFrom=yesterday", "createFrom"),
        ("&_size=0", "_size"),
        ("&_size=1001", "_size"),
        ("&_size=%C2%B2", "_size"),  # "²": a digit to str.isdigit(), not to int() (it was a 500)
        ("&createFrom=%D9%A3", "createFrom"),  # an Arabic-Indic three
        ("&_offset=ffffffffffffffffffffffff", "_offset"),
    ):
        reply = api.call("GET", f"{JOBS}?type={kind}{query}", headers=h(dev))
        error(reply.status, reply.json(), 400, "validationErrors")
        assert reply.json()["errors"][0]["field"] == field


# Logs of a job -------------------------------------------------------------------------------------
def test_job_logs_filter_and_page(local: LocalStack, api: Api, dev: str) -> None:
    job = new_job(local, 20)
    finished(local, job)
    local.core.journal.log(job.id, "Something went wrong here", level="ERROR")
    path = f"{JOBS}/{job.id}/logs"

    everything = api.call("GET", path, headers=h(dev)).json()
    items = everything["items"]
    assert everything["total"] == len(items) >= 3
    assert set(items[0]) == {"timestamp", "level", "message"}
    assert items[0]["message"].startswith("Job started") and items[-1]["level"] == "ERROR"
    assert [i["timestamp"] for i in items] == sorted(i["timestamp"] for i in items)

    def logs(query: str) -> dict[str, object]:
        reply = api.call("GET", f"{path}?{query}", headers=h(dev))
        assert reply.status == 200, reply.body
        return reply.json()  # type: ignore[no-any-return]

    assert [i["message"] for i in logs("level=ERROR")["items"]] == ["Something went wrong here"]  # type: ignore[union-attr]
    assert logs("level=info,error")["total"] == everything["total"]
    assert [i["message"] for i in logs("message=WENT%20wrong")["items"]] == ["Something went wrong here"]  # type: ignore[union-attr]
    assert logs("period=today")["total"] == everything["total"]
    assert logs("period=lastHour")["total"] == everything["total"]
    assert logs("period=yesterday")["total"] == 0
    last = items[-1]["timestamp"]
    assert logs(f"from={last}")["items"][-1] == items[-1]  # type: ignore[index]
    assert logs(f"to={items[0]['timestamp'] - 1}")["total"] == 0
    one = logs("_size=1")
    assert one["items"] == items[:1] and one["offset"] == "1" and one["total"] == everything["total"]
    assert logs("_size=1&_offset=1")["items"] == items[1:2]

    for query, field in (
        ("level=LOUD", "level"),
        ("period=someday", "period"),
        ("from=x", "from"),
        ("_size=0", "_size"),
        ("_size=%C2%B2", "_size"),  # "²": a digit to str.isdigit(), not to int() (it was a 500)
        ("_offset=%C2%B2", "_offset"),
        ("to=%D9%A3", "to"),
    ):
        reply = api.call("GET", f"{path}?{query}", headers=h(dev))
        error(reply.status, reply.json(), 400, "validationErrors")
        assert reply.json()["errors"][0]["field"] == field
    missing = api.call("GET", f"{JOBS}/0123456789abcdef01234567/logs", headers=h(dev))
    error(missing.status, missing.json(), 404, "notFound")


# Stop, force stop, cancel, resume ------------------------------------------------------------------
def command(api: Api, token: str, job: Job | str, verb: str) -> tuple[int, dict[str, object]]:
    job_id = job if isinstance(job, str) else job.id
    reply = api.call("PUT", f"{JOBS}/{job_id}/{verb}", headers=h(token))
    return reply.status, reply.json()


def test_stop_resume_and_cancel_follow_the_spec(local: LocalStack, api: Api, dev: str) -> None:
    job = new_job(local, 3_000, chunk_size=500, pause_ms=2)
    wait_until(lambda: (local.core.jobs.find(job.id) or job).processed >= 100, "the job to be under way")

    status, body = command(api, dev, job, "stop")
    assert status == 200 and body["status"] in ("STOPPING", "STOPPED") and set(body) == SPEC_FIELDS
    wait_until(lambda: state(local, job) is JobState.STOPPED, "the job to stop")
    status, body = command(api, dev, job, "resume")
    assert status == 200 and body["status"] == "RUNNING"
    status, body = command(api, dev, job, "stop")
    assert status == 200
    wait_until(lambda: state(local, job) is JobState.STOPPED, "the job to stop again")
    status, body = command(api, dev, job, "cancel")
    assert status == 200 and body["status"] == "CANCELED"
    assert len(probe_rows(local.core.table, job.id)) == body["recordsProcessed"] < 3_000
    for verb in ("resume", "cancel", "stop", "forceStop"):  # a canceled job is over
        status, body = command(api, dev, job, verb)
        error(status, body, 400, "validationErrors")

    # A job stopped before it started resumes as PENDING
    later = new_job(local, 10, start=False)
    status, body = command(api, dev, later, "stop")
    assert status == 200 and body["status"] == "STOPPED"
    status, body = command(api, dev, later, "resume")
    assert status == 200 and body["status"] == "PENDING"


def test_commands_refuse_wrong_states_other_users_and_non_root_jobs(
    local: LocalStack, api: Api, dev: str, user: str
) -> None:
    done = new_job(local, 5)
    finished(local, done)
    for verb in ("stop", "forceStop", "cancel", "resume"):
        status, body = command(api, dev, done, verb)
        error(status, body, 400, "validationErrors")
        assert "FINISHED" in str(body["message"])
    running = new_job(local, 1, start=False)
    local.core.jobs.repo.transition(running.id, (JobState.PENDING,), JobState.RUNNING, started_at=running.created_at)
    for verb in ("forceStop", "cancel", "resume"):  # forceStop only from STOPPING, cancel only from STOPPED
        status, body = command(api, dev, running, verb)
        error(status, body, 400, "validationErrors")

    # A user commands only the jobs it ran; a developer every job
    status, body = command(api, user, running, "stop")
    error(status, body, 403, "forbidden")
    mine = new_job(local, 1, by=who(local, "user@demo.local", "demo-user-password"), start=False)
    status, body = command(api, user, mine, "stop")
    assert status == 200 and body["status"] == "STOPPED"

    # Only root jobs, only kinds that stop
    child_spec = NewJob(
        kind=RowProbe.name,
        tenant_id=running.tenant_id,
        account_id=running.account_id,
        created_by=running.created_by,
        label="child",
        parent_id=running.id,
        root_id=running.id,
    )
    child = local.core.jobs.create(child_spec, start=False)
    status, body = command(api, dev, child, "stop")
    error(status, body, 400, "validationErrors")
    assert "root" in str(body["message"])
    unstoppable = new_job(local, 1, kind="gateway.batch", start=False)
    status, body = command(api, dev, unstoppable, "stop")
    error(status, body, 400, "validationErrors")
    shown = api.call("GET", f"{JOBS}/{unstoppable.id}", headers=h(dev)).json()
    assert shown["stoppable"] is False

    status, body = command(api, dev, "0123456789abcdef01234567", "stop")
    error(status, body, 404, "notFound")
    status, body = command(api, dev, done, "explode")
    error(status, body, 400, "validationErrors")


def test_a_worker_killed_while_stopping_is_force_stopped_at_once_and_commits_nothing_after(
    local: LocalStack, api: Api, dev: str
) -> None:
    job = new_job(local, 3_000, chunk_size=500, pause_ms=2)
    wait_until(lambda: (local.core.jobs.find(job.id) or job).processed >= 200, "the job to be under way")
    try:
        # Given the worker dies holding its chunks, and the job is then asked to stop
        local.worker.kill()
        held = local.core.jobs.find(job.id)
        assert held is not None
        if held.active_chunks == 0:  # killed between two chunks (rare): a dead worker's hold, made by hand
            chunk = next(c for c in local.core.chunks.chunks(job.id) if not c.done)
            assert local.core.chunks.take_lease(chunk, "dead-worker", held.created_at + 3_600_000)
        status, body = command(api, dev, job, "stop")
        assert status == 200 and body["status"] == "STOPPING"  # the dead worker's chunks are still held
        time.sleep(0.5)
        assert state(local, job) is JobState.STOPPING

        # When it is forced to stop, it is STOPPED at once
        status, body = command(api, dev, job, "forceStop")
        assert status == 200 and body["status"] == "STOPPED"
        committed = len(probe_rows(local.core.table, job.id))
        assert committed == body["recordsProcessed"]
    finally:
        local.worker.start()

    # Then a new worker, handed the chunks again, commits no row of it
    time.sleep(4)  # the killed worker's messages come back after the visibility timeout (3 s)
    assert state(local, job) is JobState.STOPPED
    assert len(probe_rows(local.core.table, job.id)) == committed

    # And the job resumes from its checkpoints to every row exactly once
    status, body = command(api, dev, job, "resume")
    assert status == 200 and body["status"] == "RUNNING"
    wait_until(lambda: state(local, job) is JobState.FINISHED, "the job to finish")
    assert probe_rows(local.core.table, job.id) == list(range(3_000))
    assert (local.core.jobs.find(job.id) or job).processed == 3_000


def test_a_plan_message_in_the_dead_letter_queue_ends_its_job_failed(local: LocalStack, api: Api, dev: str) -> None:
    job = new_job(local, 10, start=False)
    sqs = aws.client("sqs", local.core.settings)
    dead = sqs.get_queue_url(QueueName=f"{STACK}-JobsDeadLetterQueue")["QueueUrl"]

    sqs.send_message(QueueUrl=dead, MessageBody=json.dumps({"job": job.id, "op": "plan"}))

    wait_until(lambda: state(local, job) is JobState.FAILED, "the dead letter to fail the job")
    body = api.call("GET", f"{JOBS}/{job.id}", headers=h(dev)).json()
    assert body["status"] == "FAILED" and body["hasErrors"] is True
    assert "dead-letter queue" in body["results"]["error"]


@pytest.fixture(autouse=True)
def _worker_running(local: LocalStack) -> None:
    """A test that killed the worker restarts it; the next one must find it running."""
    if local.worker.proc is None or local.worker.proc.poll() is not None:
        local.worker.start()


def test_a_delete_job_shows_its_data_and_the_per_record_results_map(api: Api, dev: str) -> None:
    tag = uuid.uuid4().hex[:10]
    made = []
    for i in range(2):
        reply = api.call("POST", "/runtime/api/data/companies", body={"name": f"Jobs {tag} {i}"}, headers=h(dev))
        assert reply.status == 200, reply.body
        made.append(reply.json())
    ids = ",".join(c["id"] for c in made)
    ref = api.call("DELETE", f"/runtime/api/data/companies/{ids}?_async=true", headers=h(dev)).json()

    def job() -> dict[str, object]:
        return api.call("GET", f"{JOBS}/{ref['jobId']}", headers=h(dev)).json()  # type: ignore[no-any-return]

    wait_until(lambda: job()["status"] == "FINISHED", "the delete job")
    body = job()
    assert body["type"] == "DELETE_RECORDS" and body["data"]["entity"] == "companies"  # type: ignore[index]
    results = body["results"]
    assert results == {  # the map a synchronous delete answers: each record whole, with its entity; no counts
        c["id"]: {"status": "ok", "response": {**c, "entity": results[c["id"]]["response"]["entity"]}} for c in made
    }
    assert all(results[c["id"]]["response"]["entity"]["name"] == "Companies" for c in made)
    assert (body["recordsCount"], body["recordsProcessed"], body["hasErrors"]) == (2, 2, False)
