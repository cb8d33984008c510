"""Runtime actions as jobs (`EXECUTE_ACTION`): exactly once per record across a duplicate delivery,
a worker that dies mid-chunk, and a stop and resume.

The acceptance point: an `_async` action over 10,000 records whose worker is killed mid-chunk ends
with the action applied to each record exactly once: the app's logs hold one line per record (written
with the record's marker). logSomething changes nothing, so no record's version moves. The size is the spec's, and
this the one large case the core tests keep: it is marked `slow` (`-m "not slow"` leaves it out).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from backroom.app.actions import ActionRunner
from backroom.app.definition import AppDefinition, Entity
from backroom.app.history import entity_id, with_entity
from backroom.app.planning import CHUNK_IDS
from backroom.clock import now_ms
from backroom.errors import Forbidden, Invalid, NotFound, ServiceFailure
from backroom.identity.models import Caller, Role
from backroom.ids import object_id
from backroom.jobs.models import ChunkStatus, JobState
from backroom.wiring import Core

from infra.demo.load import demo_app
from tests.core.conftest import QueueDriver, bulk

TENANT = "demo"
DEV = Caller(
    user_id="u-dev", email="dev@demo.local", name="Dev", role=Role.DEVELOPER, account_id=TENANT, tenant_id=TENANT
)
USER = Caller(user_id="u-1", email="user@demo.local", name="User", role=Role.USER, account_id=TENANT, tenant_id=TENANT)
IP = "203.0.113.9"
MATCHING, OTHERS = 10_000, 300


@pytest.fixture
def companies(core: Core) -> Entity:
    core.app.repo.install(TENANT, demo_app(listing_members=True))
    return core.app.repo.entity(TENANT, "companies")


@pytest.mark.slow
def test_an_async_action_over_10000_records_runs_exactly_once_per_record_across_crash_and_stop(
    core: Core, queue: QueueDriver, companies: Entity, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = companies.schema
    since = now_ms()
    # Given 10,000 companies of type c and a few of other types
    targets = bulk(
        core,
        TENANT,
        companies,
        [{"name": f"Target {i:05d}", "type": "c", "numberOfEmployees": i} for i in range(MATCHING)],
    )
    others = bulk(core, TENANT, companies, [{"name": f"Other {i:04d}", "type": "a"} for i in range(OTHERS)])

    # When a developer runs logSomething over `type=c` in the background
    job = core.app.put(
        DEV, "companies", "logSomething", {"param1": "a", "param2": "b"}, {"type": "c"}, IP, run_async=True
    )
    assert job.type == "EXECUTE_ACTION" and job.label == "Execute action logSomething from entity companies"
    assert queue.drain(limit=1) == 1  # the plan fixes the 10,000 ids
    planned = core.jobs.get(job.id, TENANT)
    assert (planned.state, planned.total_rows, planned.chunk_count) == (
        JobState.RUNNING,
        MATCHING,
        MATCHING // CHUNK_IDS,
    )

    # ...one chunk message arrives twice
    [first] = queue.receive(most=1)
    queue.deliver(first)
    queue.deliver(first)
    assert core.jobs.get(job.id, TENANT).progress().processed == CHUNK_IDS

    # ...the worker of the next chunk dies after applying its fourth group of 25, before checkpointing it
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
        queue.deliver(second)  # left in the queue: it comes back after its visibility timeout
    monkeypatch.setattr(core.chunks, "advance_chunk", advance)
    held = core.chunks.get_chunk(job.id, crashed)
    assert held is not None and held.status is ChunkStatus.RUNNING and held.next_row == 75

    # ...and the job is stopped while the dead worker still holds that chunk, then resumed
    assert core.jobs.stop(job.id, TENANT).state is JobState.STOPPING
    queue.drain()
    time.sleep(2.2)  # the crashed message is visible again
    queue.drain()
    assert core.jobs.get(job.id, TENANT).state is JobState.STOPPED
    core.jobs.resume(job.id, TENANT)
    queue.drain()

    # Then the job finished with every record done once
    done = core.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED, done.error
    assert (done.processed, done.failed) == (MATCHING, 0)
    versions = {r.rid: r.version for r in core.records.get_many(TENANT, schema, [*targets, *others])}
    assert set(versions.values()) == {1}, "logSomething changes nothing: no version moved"
    # ...the replayed group's records have no history entry either
    chunk = core.chunks.get_chunk(job.id, crashed)
    assert chunk is not None
    for rid in chunk.cursor["ids"][75:100]:
        assert core.records.history(TENANT, schema, rid).total == 0, rid
    # ...the app's logs hold one line per record
    lines = [
        i for i in core.app.logs.lines(TENANT, since, now_ms()) if i["additionalInfo"].get("action") == "logSomething"
    ]
    assert len(lines) == MATCHING
    assert {i["additionalInfo"]["recordId"] for i in lines} == set(targets)
    assert lines[0]["message"].endswith("param1=a, param2=b") and lines[0]["userEmail"] == DEV.email
    # ...and the results hold the spec's map for at most 1,000 records
    results = core.journal.results(done)
    assert len(results) == 1000
    some = next(iter(results.values()))
    assert some["status"] == "ok" and some["response"]["version"] == 0 and some["response"]["type"] == "c"


def test_a_replayed_row_meets_its_marker_and_is_not_applied_again(core: Core, companies: Entity) -> None:
    [rid] = bulk(core, TENANT, companies, [{"name": "Once", "numberOfEmployees": 3}])
    runner: ActionRunner = core.app.actions
    action = next(a for a in companies.actions if a.name == "logSomething")
    author_record = core.records.get(TENANT, companies.schema, rid)
    assert author_record is not None
    from backroom.records.store import AlreadyApplied, Author

    author = Author(DEV.email, IP, "jobs.j1")
    runner.run_one(
        TENANT, companies, action, {}, author_record, author=author, marker=lambda run: runner.marker("j1", rid, run)
    )
    fresh = core.records.get(TENANT, companies.schema, rid)
    assert fresh is not None and fresh.version == 1  # logSomething changes nothing: only its marker and log line
    with pytest.raises(AlreadyApplied):
        runner.run_one(
            TENANT, companies, action, {}, fresh, author=author, marker=lambda run: runner.marker("j1", rid, run)
        )
    again = core.records.get(TENANT, companies.schema, rid)
    assert again is not None and again.version == 1
    assert core.records.history(TENANT, companies.schema, rid).total == 0


def test_a_type_one_action_that_changes_nothing_leaves_the_version_and_still_logs(
    core: Core, companies: Entity
) -> None:
    since = now_ms()
    one, two = (
        core.app.create(DEV, "companies", {"name": n, "state": "active"}, IP)["id"] for n in ("Still 1", "Still 2")
    )

    def run(name: str, ids: list[str], body: Any) -> Any:
        return core.app.actions.execute(DEV, "companies", name, ids=ids, query=None, body=body, ip=IP, run_async=False)

    # One record, then two (their saves batched): logSomething changes nothing, so nothing moves
    assert run("logSomething", [one], {"param1": "a"})["version"] == 0
    both = run("logSomething", [one, two], {"param1": "b"})
    assert {rid: o["response"]["version"] for rid, o in both.items()} == {one: 0, two: 0}
    for rid in (one, two):
        record = core.records.get(TENANT, companies.schema, rid)
        assert record is not None and record.version == 1  # lastUpdate was not set either
        assert core.records.history(TENANT, companies.schema, rid).total == 1  # its create only
    # ...yet every run wrote its log line
    lines = [
        i for i in core.app.logs.lines(TENANT, since, now_ms()) if i["additionalInfo"].get("action") == "logSomething"
    ]
    assert sorted(i["additionalInfo"]["recordId"] for i in lines) == sorted([one, one, two])
    # An action that changes the record saves it: a new version and its history entry
    assert run("deactivate", [one], {"reason": "closed"})["version"] == 1
    assert core.records.history(TENANT, companies.schema, one).total == 2


def test_actions_check_parameters_preconditions_and_permissions(core: Core, companies: Entity) -> None:
    active = core.app.create(DEV, "companies", {"name": "Active one", "state": "active"}, IP)["id"]
    pending = core.app.create(DEV, "companies", {"name": "Pending one", "state": "pending"}, IP)["id"]

    def run(caller: Caller, name: str, ids: list[str], body: Any) -> Any:
        return core.app.actions.execute(
            caller, "companies", name, ids=ids, query=None, body=body, ip=IP, run_async=False
        )

    with pytest.raises(Invalid) as missing:
        run(DEV, "deactivate", [active], {})
    assert [(e.field, e.code) for e in missing.value.errors] == [("reason", "required")]
    with pytest.raises(Invalid) as wrong:
        run(DEV, "logSomething", [active], {"param1": {"x": 1}, "nope": 1})
    assert {e.field for e in wrong.value.errors} == {"param1", "nope"}
    with pytest.raises(Invalid, match="precondition"):
        run(DEV, "deactivate", [pending], {"reason": "r"})
    both = run(DEV, "deactivate", [active, pending], {"reason": "closed"})
    assert both[active]["status"] == "ok" and both[active]["response"]["state"] == "inactive"
    assert both[pending]["status"] == "error" and "precondition" in both[pending]["errorMessage"]
    with pytest.raises(Forbidden):
        run(USER, "customResponse", [active], None)  # the Sales group may run logSomething and countEmployees only
    assert run(USER, "countEmployees", [active], None) == {"numberOfEmployees": 0}
    with pytest.raises(NotFound):
        run(DEV, "noSuchAction", [active], None)
    with pytest.raises(NotFound):
        run(DEV, "logSomething", [object_id()], None)


def test_an_async_action_over_ids_keeps_in_its_results_the_map_a_synchronous_run_answers(
    core: Core, queue: QueueDriver, companies: Entity
) -> None:
    rids = bulk(core, TENANT, companies, [{"name": f"Co {i}", "numberOfEmployees": i} for i in range(4)])
    unknown, malformed = object_id(), "not-an-id"

    def run(ids: list[str], run_async: bool) -> Any:
        return core.app.actions.execute(
            DEV, "companies", "logSomething", ids=ids, query=None, body={}, ip=IP, run_async=run_async
        )

    answered = run([rids[0], unknown, malformed, rids[1]], False)
    job = run([rids[2], unknown, rids[3], malformed, rids[2]], True)
    queue.drain()

    done = core.jobs.get(job.id, TENANT)
    results = core.jobs.journal.results(done)
    entity = {"id": entity_id(TENANT, "companies"), "name": "Companies"}
    for outcome in (answered, results):  # each record whole, with its entity, after its system fields
        records = [v["response"] for v in outcome.values() if v["status"] == "ok"]
        assert len(records) == 2 and all(list(r)[:4] == ["id", "version", "label", "entity"] for r in records)
        assert all(r["entity"] == entity and r["version"] == 0 and "numberOfEmployees" in r for r in records)
        assert outcome[unknown] == {"status": "error", "errorMessage": f"Record {unknown} of companies does not exist"}
        assert outcome[malformed] == {
            "status": "error",
            "errorMessage": f"Record {malformed} of companies does not exist",
        }
    assert list(results) == [rids[2], unknown, rids[3], malformed]
    assert results[rids[2]]["response"] == with_entity(core.app.get(DEV, "companies", rids[2], {}), TENANT, companies)
    assert done.results == {} and (done.total_rows, done.processed, done.failed) == (4, 2, 2)


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"name": "aggregate"}, "taken by a route"),
        ({"name": "abcdef0123456789abcdef01"}, "looks like a record id"),
        ({"precondition": {"nope": "x"}}, "nope"),
        ({"function": "os.system; rm"}, "function"),
    ],
)
def test_the_app_definition_refuses_an_action_that_could_not_be_routed_or_checked(
    change: dict[str, Any], refusal: str
) -> None:
    app = demo_app(listing_members=True).model_dump(mode="json", by_alias=True)
    app["entities"][0]["actions"][0].update(change)
    with pytest.raises(ValueError, match=refusal):
        AppDefinition.model_validate(app)
