"""Runtime deletes as jobs (`DELETE_RECORDS`): by query and by ids, stopped, crashed, replayed and resumed.

The acceptance point: an `_async` delete by query, stopped and resumed, ends with exactly the records
it planned gone and the others untouched; records the query matches that are created after the job
started stay (the plan fixes the set). 2,000 records make four chunks and many pages of the index: a
duplicate, a crash and chunks parked by the stop; more records would prove nothing more (the 10,000
records of the spec's acceptance run in test_runtime_actions.py, over the same planning and chunks).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from backroom.app import planning
from backroom.app.definition import Entity
from backroom.app.history import entity_id, with_entity
from backroom.app.planning import CHUNK_IDS
from backroom.clock import now_ms
from backroom.errors import Invalid, ServiceFailure
from backroom.identity.models import Caller, Role
from backroom.ids import object_id
from backroom.jobs.models import ChunkStatus, JobState
from backroom.records import Record
from backroom.wiring import Core

from infra.demo.load import demo_app
from tests.core.conftest import QueueDriver, bulk

TENANT = "demo"  # a tenant is its root account
DEV = Caller(
    user_id="u-dev",
    email="dev@demo.local",
    name="Dev",
    role=Role.DEVELOPER,
    account_id=TENANT,
    tenant_id=TENANT,
)
IP = "203.0.113.7"
MATCHING, OTHERS = 2_000, 1_000


@pytest.fixture
def companies(core: Core) -> Entity:
    core.app.repo.install(TENANT, demo_app(listing_members=True))
    return core.app.repo.entity(TENANT, "companies")


def count_matching(core: Core, entity: Entity) -> int:
    """How many entries the `type` index holds for `c`: what a delete must remove besides the records."""
    return core.records.count(TENANT, entity.schema, core.records.conditions(entity.schema, {"type": "c"}))


def dumps(records: list[Record]) -> list[dict[str, Any]]:
    return [r.model_dump() for r in records]


def test_an_async_delete_by_query_stopped_crashed_and_resumed_deletes_exactly_its_records(
    core: Core, queue: QueueDriver, companies: Entity, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = companies.schema
    # Given 2,000 companies of type c and 1,000 of other types
    doomed = bulk(
        core,
        TENANT,
        companies,
        [
            {"name": f"Doomed {i:05d}", "type": "c", "state": ("active", "inactive")[i % 2], "numberOfEmployees": i}
            for i in range(MATCHING)
        ],
    )
    kept = bulk(
        core,
        TENANT,
        companies,
        [
            {"name": f"Kept {i:04d}", "type": ("a", "b")[i % 2], "state": "inactive", "numberOfEmployees": i}
            for i in range(OTHERS)
        ],
    )
    kept_before = dumps(core.records.get_many(TENANT, schema, kept))
    assert len(kept_before) == OTHERS and count_matching(core, companies) == MATCHING

    # When a developer deletes `type=c` asynchronously
    job = core.app.delete_async(DEV, "companies", ids=None, params={"type": "c", "_async": "true"}, ip=IP)
    assert job.type == "DELETE_RECORDS" and job.tenant_id == TENANT
    assert queue.drain(limit=1) == 1  # the plan: it fixes the 2,000 ids in 4 chunks of 500
    planned = core.jobs.get(job.id, TENANT)
    assert planned.state is JobState.RUNNING
    assert (planned.total_rows, planned.chunk_count) == (MATCHING, -(-MATCHING // CHUNK_IDS))
    assert sorted(i for c in core.chunks.chunks(job.id) for i in c.cursor["ids"]) == sorted(doomed)

    # ...and a company of type c is created once the job has started
    late = [core.app.create(DEV, "companies", {"name": "Late 1", "type": "c"}, IP)["id"]]

    # ...one chunk message arrives twice (SQS is at-least-once)
    [first] = queue.receive(most=1)
    queue.deliver(first)
    queue.deliver(first)
    assert core.jobs.get(job.id, TENANT).progress().processed == 500

    # ...the worker of the next chunk dies after deleting its fourth group of 50, before checkpointing it
    advance = core.chunks.advance_chunk
    calls = {"n": 0}

    def dies_at_the_fourth_checkpoint(chunk, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:
            raise ServiceFailure("ServiceUnavailable", "gone")
        return advance(chunk, **kw)

    monkeypatch.setattr(core.chunks, "advance_chunk", dies_at_the_fourth_checkpoint)
    [second] = queue.receive(most=1)
    crashed = int(json.loads(second["Body"])["chunk"])
    with pytest.raises(ServiceFailure):
        queue.deliver(second)  # not deleted from the queue: it comes back after its visibility timeout
    monkeypatch.setattr(core.chunks, "advance_chunk", advance)
    replayed = core.chunks.get_chunk(job.id, crashed)
    assert replayed is not None and replayed.status is ChunkStatus.RUNNING and replayed.next_row == 150

    # ...and the job is stopped while that chunk is still held by the dead worker
    assert core.jobs.stop(job.id, TENANT).state is JobState.STOPPING
    queue.drain()  # the other chunk messages find the job stopping and park
    time.sleep(2.2)  # the crashed message is visible again (visibility timeout 2 s)
    queue.drain()
    stopped = core.jobs.get(job.id, TENANT)
    assert stopped.state is JobState.STOPPED
    assert stopped.progress().processed == 650  # 500 + three checkpointed groups of the crashed chunk
    left = core.records.get_many(TENANT, schema, doomed)
    assert len(left) == MATCHING - 700  # the crashed group's deletes were committed, only its checkpoint was not
    assert queue.drain() == 0  # nothing runs while the job is stopped
    late.append(core.app.create(DEV, "companies", {"name": "Late 2", "type": "c"}, IP)["id"])

    core.jobs.resume(job.id, TENANT)
    queue.drain()

    # Then the job finished, having deleted exactly the 2,000 records it planned
    done = core.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED, done.error
    assert (done.processed, done.failed) == (MATCHING, 0)
    assert done.results == {}  # the counts are the job's recordsCount and recordsProcessed, not in the map
    # ...its results are the first 1,000 records' map, each the whole record deleted (the replayed group's too:
    # their entries were written before their deletes)
    shown = core.jobs.journal.results(done)
    assert crashed == 1 and len(shown) == 1000
    assert all(e["status"] == "ok" and e["response"]["name"].startswith("Doomed") for e in shown.values())
    assert core.records.get_many(TENANT, schema, doomed) == []
    # ...their index entries went with them: only the late companies are still of type c
    assert count_matching(core, companies) == len(late)
    # ...the others and the late ones are untouched
    assert dumps(core.records.get_many(TENANT, schema, kept)) == kept_before
    assert [(r.rid, r.version) for r in core.records.get_many(TENANT, schema, late)] == [(rid, 1) for rid in late]
    # ...each record of the replayed group was deleted once: one history entry, written by the job
    chunk = core.chunks.get_chunk(job.id, crashed)
    assert chunk is not None
    for rid in chunk.cursor["ids"][150:200]:
        page = core.records.history(TENANT, schema, rid)
        assert page.total == 1, rid
        entry = page.entries[0]
        assert (entry["action"], entry["user"], entry["ip"], entry["context"]) == (
            "delete",
            DEV.email,
            IP,
            f"jobs.{job.id}",
        )
    messages = [e.message for e in core.jobs.repo.logs(job.id) if e.message.startswith("Job")]
    assert messages[-3:] == ["Job stopped", "Job resumed", f"Job finished: {MATCHING} rows processed, 0 failed"]


def test_an_async_delete_by_ids_answers_in_its_results_what_a_synchronous_delete_answers(
    core: Core, queue: QueueDriver, companies: Entity
) -> None:
    schema = companies.schema
    rids = bulk(core, TENANT, companies, [{"name": f"Co {i}", "type": "a", "numberOfEmployees": i} for i in range(6)])
    expected = {rid: with_entity(core.app.get(DEV, "companies", rid, {}), TENANT, companies) for rid in rids}
    unknown, malformed = object_id(), "not-an-id"

    job = core.app.delete_async(
        DEV, "companies", ids=[rids[0], unknown, rids[1], rids[0], malformed, rids[2]], params={}, ip=IP
    )
    queue.drain()
    answered = core.app.delete_many(DEV, "companies", [rids[3], unknown, malformed], IP)  # the synchronous form

    done = core.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED, done.error
    assert [r.rid for r in core.records.get_many(TENANT, schema, rids)] == rids[4:]
    # the map, in the order given: each record whole, with its entity, or the error a synchronous delete gives
    missing = {"status": "error", "errorMessage": f"Record {unknown} of companies does not exist"}
    wrong = {"status": "error", "errorMessage": f"Record {malformed} of companies does not exist"}
    assert answered == {rids[3]: {"status": "ok", "response": expected[rids[3]]}, unknown: missing, malformed: wrong}
    assert expected[rids[0]]["entity"] == {"id": entity_id(TENANT, "companies"), "name": "Companies"}
    assert (
        list(expected[rids[0]])[:4] == ["id", "version", "label", "entity"] and "numberOfEmployees" in expected[rids[0]]
    )
    results = core.jobs.journal.results(done)
    assert list(results) == [rids[0], unknown, rids[1], malformed, rids[2]]
    assert results == {
        rids[0]: {"status": "ok", "response": expected[rids[0]]},
        unknown: missing,
        rids[1]: {"status": "ok", "response": expected[rids[1]]},
        malformed: wrong,
        rids[2]: {"status": "ok", "response": expected[rids[2]]},
    }
    # ...and the counts are the job's own: five rows, two of them failed
    assert done.results == {} and (done.total_rows, done.processed, done.failed) == (5, 3, 2)


def test_a_delivery_that_lost_its_chunk_leaves_no_result_saying_a_record_it_did_not_delete_went(
    core: Core, queue: QueueDriver, companies: Entity
) -> None:
    """A worker taken over (or force-stopped) before its group's deletes commit writes neither the deletes
    nor their "ok" entries: each entry is committed with its record's delete, so a job stopped or
    cancelled then never shows a record as deleted that is still there."""
    rids = bulk(core, TENANT, companies, [{"name": f"Held {i}"} for i in range(3)])
    job = core.app.delete_async(DEV, "companies", ids=rids, params={}, ip=IP)
    queue.drain(limit=1)  # the plan: its chunk, not yet run
    chunk = core.chunks.get_chunk(job.id, 0)
    assert chunk is not None
    first = core.chunks.take_lease(chunk, "first", now_ms() + 60_000)
    assert first is not None and core.chunks.take_lease(first, "second", now_ms() + 60_000) is not None

    kind = core.kinds["runtime.delete_records"]
    outcomes = [kind.apply(core.job_context, job, rid) for rid in rids]
    kind.before_commit(core.job_context, core.jobs.get(job.id, TENANT), first, outcomes)  # its guard fails

    assert [r.rid for r in core.records.get_many(TENANT, companies.schema, rids)] == rids
    assert core.jobs.journal.results(core.jobs.get(job.id, TENANT)) == {}


def test_a_request_names_at_most_a_thousand_records_by_id_for_a_job(
    core: Core, queue: QueueDriver, companies: Entity
) -> None:
    """A few characters an id would otherwise make one short request thousands of rows, each an error."""
    with pytest.raises(Invalid) as refused:
        core.app.delete_async(DEV, "companies", ids=[str(i) for i in range(1001)], params={}, ip=IP)
    assert "at most 1000" in refused.value.message
    with pytest.raises(Invalid):
        core.app.actions.execute(
            DEV,
            "companies",
            "logSomething",
            ids=[str(i) for i in range(1001)],
            query=None,
            body={},
            ip=IP,
            run_async=True,
        )
    job = core.app.delete_async(DEV, "companies", ids=["x"] * 1001, params={}, ip=IP)  # one id, named often
    queue.drain()
    assert core.jobs.get(job.id, TENANT).total_rows == 1


def test_a_record_too_big_for_a_result_entry_is_shown_by_its_system_fields(
    core: Core, queue: QueueDriver, companies: Entity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planning, "ENTRY_MOST", 300)  # the notes make the first record's entry longer
    rids = bulk(core, TENANT, companies, [{"name": "Big", "notes": "n" * 400}, {"name": "Small"}])

    job = core.app.delete_async(DEV, "companies", ids=rids, params={}, ip=IP)
    queue.drain()

    results = core.jobs.journal.results(core.jobs.get(job.id, TENANT))
    entity = {"id": entity_id(TENANT, "companies"), "name": "Companies"}
    assert results[rids[0]] == {
        "status": "ok",
        "response": {"id": rids[0], "version": 0, "label": "Big", "entity": entity},
    }
    assert results[rids[1]]["response"]["name"] == "Small"
