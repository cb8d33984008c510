"""The app's evolution (`backroom.app.evolution`) on in-process moto: plans, applies, versions, and the
data jobs that carry a change into records already there (index backfill, unique claim, defaults,
field removal, relabel), stopped, resumed, and checked against the items in the table."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from backroom import keys
from backroom.app.definition import AppDefinition
from backroom.app.evolution import Change
from backroom.app.migrations import EvolveKind
from backroom.errors import Conflict, Invalid, ServiceFailure
from backroom.identity.models import Caller, Role
from backroom.jobs.models import Job, JobState
from backroom.records.keys import index_pk, unique_key
from backroom.records.query import Condition, plan
from backroom.records.values import shard_of
from backroom.wiring import Core

from tests.core.conftest import QueueDriver, bulk

TENANT = "evo"
DEV = Caller(
    user_id="u-dev", email="dev@evo.local", name="Dev", role=Role.DEVELOPER, account_id=TENANT, tenant_id=TENANT
)


def app(**changes: Any) -> dict[str, Any]:
    """A small app: companies (and the contacts that point at them); `changes` replace parts of companies."""
    companies = {
        "name": "companies",
        "schema": {
            "name": "companies",
            "label": "{name}",
            "history": True,
            "fields": [
                {"name": "name", "type": "text", "required": True},
                {"name": "code", "type": "text"},
                {"name": "city", "type": "text"},
                {"name": "size", "type": "integer"},
                {"name": "notes", "type": "text"},
            ],
            "indexes": [["name"], {"name": "notes", "equals": ["notes"]}],
        },
    }
    contacts = {
        "name": "contacts",
        "schema": {
            "name": "contacts",
            "label": "{lastName}",
            "fields": [
                {"name": "lastName", "type": "text"},
                {"name": "company", "type": "relationship", "entity": "companies"},
            ],
            "indexes": [{"name": "company", "equals": ["company"]}],
        },
    }
    for key, value in changes.items():
        if key in ("fields", "indexes", "label"):
            companies["schema"][key] = value  # type: ignore[index]
        else:
            companies[key] = value
    groups = [{"name": "Sales", "users": ["s@evo.local"], "entities": {"companies": {"read": True}}}]
    return {"app": "evo", "entities": [companies, contacts], "groups": groups}


def definition(data: dict[str, Any]) -> AppDefinition:
    return AppDefinition.model_validate(data)


def fields(*extra: dict[str, Any], without: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    base = copy.deepcopy(app()["entities"][0]["schema"]["fields"])
    return [f for f in base if f["name"] not in without] + list(extra)


def lines(changes: list[Change]) -> dict[str, tuple[str, bool]]:
    return {c.resource: (c.action, c.destructive is not None) for c in changes}


def run(core: Core, queue: QueueDriver, job_ids: list[str]) -> list[Job]:
    queue.drain()
    return [core.jobs.get(j, TENANT) for j in job_ids]


def schema(core: Core, name: str = "companies") -> Any:
    return core.app.repo.entity(TENANT, name).schema


def test_a_plan_has_a_line_per_change_and_an_apply_again_changes_nothing(core: Core) -> None:
    evolution = core.evolution
    first = evolution.plan(TENANT, definition(app()))
    assert lines(first)["entity companies"] == ("create", False)
    assert evolution.current(TENANT) is None
    applied = evolution.apply(TENANT, definition(app()))
    assert applied.version == 1 and applied.job_ids == []
    stored = evolution.current(TENANT)
    assert stored is not None and stored.version == 1 and stored.definition == definition(app())

    again = evolution.apply(TENANT, definition(app()))
    assert again.version == 1 and again.job_ids == []
    assert {c.action for c in again.changes} == {"no change"}
    assert evolution.current(TENANT).version == 1  # type: ignore[union-attr]

    desired = app(
        fields=fields({"name": "vat", "type": "text", "unique": True}, without=("notes",)),
        indexes=[["name"], ["city", "size"]],
        label="{name} ({city})",
        actions=[{"name": "close", "function": "pkg.mod.close"}],
    )
    desired["entities"][0]["schema"]["fields"][3]["type"] = "decimal"  # size: integer to decimal widens
    desired["groups"] = [{"name": "Ops", "entities": {}}]
    got = lines(evolution.plan(TENANT, definition(desired)))
    assert got["field companies.vat"] == ("create", False)
    assert got["unique companies.vat"] == ("create", False)
    assert got["field companies.notes"] == ("delete", False)  # no records: nothing destroyed
    assert got["field companies.size"] == ("update", False)
    assert got["field companies.name"] == ("no change", False)
    assert got["index companies.city+size"] == ("create", False)
    assert got["index companies.notes"] == ("delete", False)
    assert got["index companies.name"] == ("no change", False)
    assert got["label companies"] == ("update", False)
    assert got["action companies.close"] == ("create", False)
    assert got["group Ops"] == ("create", False) and got["group Sales"] == ("delete", False)
    assert got["entity contacts"] == ("no change", False)
    done = evolution.apply(TENANT, definition(desired))
    assert done.version == 2 and done.job_ids == []  # no records: no data work
    assert schema(core).version == 2


def test_destructive_changes_are_refused_unless_allowed(core: Core, queue: QueueDriver) -> None:
    evolution = core.evolution
    evolution.apply(TENANT, definition(app()))
    core.records.create(TENANT, schema(core), {"name": "Acme", "size": 3, "notes": "n"})
    dropping = definition(app(fields=fields(without=("notes",)), indexes=[["name"]]))
    narrowing = app()
    narrowing["entities"][0]["schema"]["fields"][3]["type"] = "choice"
    narrowing["entities"][0]["schema"]["fields"][3]["choices"] = ["a"]
    required = app(fields=fields({"name": "country", "type": "text", "required": True}))
    for desired in (dropping, definition(narrowing), definition(required)):
        destructive = [c for c in evolution.plan(TENANT, desired) if c.destructive]
        assert len(destructive) == 1, destructive
        with pytest.raises(Invalid, match="destructive"):
            evolution.apply(TENANT, desired)
    gone = definition({**app(), "entities": app()["entities"][1:]})
    assert lines(evolution.plan(TENANT, gone))["entity companies"] == ("delete", True)
    assert evolution.current(TENANT).version == 1  # type: ignore[union-attr]
    applied = evolution.apply(TENANT, dropping, allow_destructive=True)
    assert applied.version == 2 and len(applied.job_ids) == 1
    # a second apply waits for the first one's data work
    with pytest.raises(Conflict, match="still"):
        evolution.apply(
            TENANT,
            definition(app(fields=fields(without=("notes", "city")), indexes=[["name"]])),
            allow_destructive=True,
        )
    (job,) = run(core, queue, applied.job_ids)
    assert job.state is JobState.FINISHED, job.error
    (record,) = core.records.stream(TENANT, schema(core), {})
    assert "notes" not in record.data and record.version == 2


def test_a_required_field_gets_its_default_and_a_new_label_reaches_records_and_relationships(
    core: Core, queue: QueueDriver
) -> None:
    evolution = core.evolution
    evolution.apply(TENANT, definition(app()))
    acme = core.records.create(TENANT, schema(core), {"name": "Acme", "city": "Lyon"})
    doe = core.records.create(TENANT, schema(core, "contacts"), {"lastName": "Doe", "company": acme.rid})
    assert doe.data["company"]["label"] == "Acme"
    desired = app(
        fields=fields({"name": "country", "type": "text", "required": True, "default": "FR"}),
        label="{name} of {city}",
    )
    changes = evolution.plan(TENANT, definition(desired))
    assert not any(c.destructive for c in changes)
    applied = evolution.apply(TENANT, definition(desired))
    jobs = run(core, queue, applied.job_ids)
    assert [j.state for j in jobs] == [JobState.FINISHED, JobState.FINISHED], [j.error for j in jobs]
    company = core.records.get(TENANT, schema(core), acme.rid)
    assert company is not None and company.data["country"] == "FR" and company.label == "Acme of Lyon"
    contact = core.records.get(TENANT, schema(core, "contacts"), doe.rid)
    assert contact is not None and contact.data["company"] == {"id": acme.rid, "label": "Acme of Lyon"}
    # the runtime's label filter on a relationship reads the copied label
    found = core.app.find(DEV, "contacts", {"company": "Acme of Lyon"})
    assert [i["id"] for i in found["items"]] == [doe.rid]
    # history entries record the version they were written under
    core.records.update(TENANT, schema(core), acme.rid, {"city": "Paris"})
    history = core.app_history.history(DEV, "companies", acme.rid, {})
    assert [e["entityVersion"] for e in history["items"]][:1] == [2]
    assert history["items"][-1]["entityVersion"] == 1


def index_items(core: Core, sch: Any, name: str, values: list[str]) -> int:
    """Index entries of `name` for these values, read from every shard's partition."""
    index = next(i for i in sch.indexes if i.name == name)
    return sum(
        len(list(core.table.query("pk = :p", {":p": index_pk(TENANT, sch, index, shard, [v])})))
        for v in values
        for shard in range(sch.shards)
    )


@pytest.mark.slow
def test_an_entity_of_10000_records_gets_an_index_a_failed_unique_and_loses_a_field(
    core: Core, queue: QueueDriver
) -> None:
    evolution = core.evolution
    evolution.apply(TENANT, definition(app()))
    entity = core.app.repo.entity(TENANT, "companies")
    cities = [f"city{i % 37}" for i in range(10_000)]
    values = [
        {
            "name": f"co{i:05d}",
            "code": f"C{i:05d}" if i not in (17, 4242, 9999) else "DUP",
            "city": cities[i],
            "notes": f"note{i % 10}",
        }
        for i in range(10_000)
    ]
    rids = bulk(core, TENANT, entity, values)

    # 1. An index on city: built by a job, stopped and resumed; unused until ready.
    with_city = app(indexes=[["name"], {"name": "notes", "equals": ["notes"]}, {"name": "city", "equals": ["city"]}])
    assert lines(evolution.plan(TENANT, definition(with_city)))["index companies.city"] == ("create", False)
    applied = evolution.apply(TENANT, definition(with_city))
    (job_id,) = applied.job_ids
    wanted = [Condition("city", "eq", ("city7",))]
    assert plan(schema(core), wanted).index is None  # building: the planner does not use it
    for most in (1, 2):  # the plan, then two chunks
        for message in queue.receive(most=most):
            queue.deliver(message)
    core.jobs.stop(job_id, TENANT)
    queue.drain()
    stopped = core.jobs.get(job_id, TENANT)
    assert stopped.state is JobState.STOPPED and 0 < stopped.processed < 10_000
    assert plan(schema(core), wanted).index is None
    core.jobs.resume(job_id, TENANT)
    (job,) = run(core, queue, [job_id])
    assert job.state is JobState.FINISHED and job.processed == 10_000, job.error
    chosen = plan(schema(core), wanted)
    assert chosen.index is not None and chosen.index.name == "city" and not chosen.residual
    served = sorted(r.rid for r in core.records.stream(TENANT, schema(core), wanted))
    every = sorted(rid for rid, city in zip(rids, cities, strict=True) if city == "city7")
    assert served == every and len(every) == 271
    assert core.records.count(TENANT, schema(core), wanted) == 271

    # 2. A unique code: the seeded duplicates fail the job, listed; the constraint is withdrawn.
    unique_code = copy.deepcopy(with_city)
    unique_code["entities"][0]["schema"]["fields"][1]["unique"] = True
    applied = evolution.apply(TENANT, definition(unique_code))
    (job,) = run(core, queue, applied.job_ids)
    assert job.state is JobState.FAILED
    assert job.error and "'DUP'" in job.error and "not enforced" in job.error
    stored = evolution.current(TENANT)
    assert stored is not None and stored.version == applied.version + 1
    assert not stored.definition.entities[0].schema.field("code").unique  # type: ignore[union-attr]
    assert not schema(core).field("code").unique
    release = next(j for j in evolution.jobs_of(TENANT) if j.id != job.id)
    assert release.state is JobState.FINISHED, release.error
    sch = schema(core)
    for value in ("DUP", "C00001", "C05000"):  # no marker left
        assert core.table.get(*unique_key(TENANT, sch, "code", value)) is None

    # 3. Remove notes (indexed): values and index entries gone, as the table's items show.
    old = schema(core)
    assert index_items(core, old, "notes", [f"note{i}" for i in range(10)]) == 10_000
    without = app(fields=fields(without=("notes",)), indexes=[["name"], {"name": "city", "equals": ["city"]}])
    assert lines(evolution.plan(TENANT, definition(without)))["field companies.notes"] == ("delete", True)
    applied = evolution.apply(TENANT, definition(without), allow_destructive=True)
    (job,) = run(core, queue, applied.job_ids)
    assert job.state is JobState.FINISHED, job.error
    assert index_items(core, old, "notes", [f"note{i}" for i in range(10)]) == 0
    for rid in rids[:50]:
        item = core.table.get(keys.records(TENANT, "companies", shard_of(rid, old.shards)), rid)
        assert item is not None and "notes" not in item["data"]
        assert not any("#notes#" in k[0] for k in item["keys"])


def test_a_worker_dying_before_its_checkpoint_rewrites_each_record_once(
    core: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    evolution = core.evolution
    evolution.apply(TENANT, definition(app()))
    entity = core.app.repo.entity(TENANT, "companies")
    rids = bulk(core, TENANT, entity, [{"name": f"co{i}", "notes": "n", "city": "Lyon"} for i in range(300)])
    desired = app(
        fields=fields({"name": "country", "type": "text", "required": True, "default": "FR"}, without=("notes",)),
        indexes=[["name"], ["city"]],
    )
    applied = evolution.apply(TENANT, definition(desired), allow_destructive=True)
    real = EvolveKind.before_commit
    calls = {"n": 0}

    def dying(self: EvolveKind, ctx: Any, job: Job, chunk: Any, outcomes: Any) -> None:
        calls["n"] += 1
        real(self, ctx, job, chunk, outcomes)
        if calls["n"] == 2:  # the second group is rewritten, then the worker dies before its checkpoint
            raise ServiceFailure("ServiceUnavailable", "worker killed")

    monkeypatch.setattr(EvolveKind, "before_commit", dying)
    with pytest.raises(ServiceFailure):
        queue.drain()
    monkeypatch.setattr(EvolveKind, "before_commit", real)
    (job_id,) = applied.job_ids
    open_chunks = [c.index for c in core.chunks.chunks(job_id) if not c.done]
    for index in open_chunks:  # SQS hands the chunks out again
        queue.sqs.send_message(
            QueueUrl=queue.url, MessageBody=json.dumps({"job": job_id, "op": "chunk", "chunk": index})
        )
    (job,) = run(core, queue, [job_id])
    assert job.state is JobState.FINISHED and job.processed == 300, job.error
    records = core.records.get_many(TENANT, schema(core), rids)
    assert {(r.version, r.data.get("country"), "notes" in r.data) for r in records} == {(2, "FR", False)}
    served = core.records.count(TENANT, schema(core), [Condition("city", "eq", ("Lyon",))])
    assert served == 300 and plan(schema(core), [Condition("city", "eq", ("Lyon",))]).index is not None


def test_an_app_installed_before_versions_is_version_1_and_its_entities_are_known(core: Core) -> None:
    core.app.repo.install(TENANT, definition(app()))
    assert core.evolution.current(TENANT) is None
    got = lines(core.evolution.plan(TENANT, definition(app())))
    assert got["entity companies"] == ("no change", False) and got["index companies.notes"] == ("no change", False)
    assert got["group Sales"] == ("create", False)  # groups live only in the stored definition
    assert core.evolution.apply(TENANT, definition(app())).version == 2
    assert schema(core).version == 2


def test_a_label_hiding_a_field_from_a_member_by_its_own_groups_is_refused_before_anything_is_written(
    core: Core,
) -> None:
    """Membership through `User.groups` (not the group's `users` list) counts before the apply writes."""
    evolution = core.evolution
    evolution.apply(TENANT, definition(app()))
    core.identity.create_account(TENANT, "Evo")
    core.identity.create_user("r@evo.local", "pw-123456789", name="R", role=Role.USER, account_id=TENANT)
    core.identity.set_groups("r@evo.local", ["Readers"])
    desired = app(label="{name} ({city})")
    readers = {"name": "Readers", "entities": {"companies": {"read": True, "fields": {"city": "none"}}}}
    desired["groups"].append(readers)
    with pytest.raises(Invalid, match=r"r@evo\.local"):
        evolution.apply(TENANT, definition(desired))
    assert evolution.current(TENANT).version == 1  # type: ignore[union-attr]
    assert schema(core).label == "{name}" and schema(core).version == 1
    assert lines(evolution.plan(TENANT, definition(desired)))["label companies"] == ("update", False)


def test_an_apply_failing_half_way_stores_nothing_and_running_it_again_finishes_it(
    core: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    evolution = core.evolution
    evolution.apply(TENANT, definition(app()))
    acme = core.records.create(TENANT, schema(core), {"name": "Acme", "city": "Lyon"})
    core.records.create(TENANT, schema(core, "contacts"), {"lastName": "Doe", "company": acme.rid})
    desired = definition(app(label="{name} of {city}"))  # a job on companies (relabel) and contacts (relink)
    real = type(evolution)._start
    started: list[str] = []

    def second_fails(self: Any, tenant_id: str, work: Any, version: int) -> Job:
        if started:
            raise ServiceFailure("ServiceUnavailable", "the operator's connection dropped")
        job = real(self, tenant_id, work, version)
        started.append(job.id)
        return job

    monkeypatch.setattr(type(evolution), "_start", second_fails)
    with pytest.raises(ServiceFailure):
        evolution.apply(TENANT, desired)
    monkeypatch.setattr(type(evolution), "_start", real)
    assert evolution.current(TENANT).version == 1  # type: ignore[union-attr]
    assert lines(evolution.plan(TENANT, desired))["label companies"] == ("update", False)
    again = evolution.apply(TENANT, desired)  # the job already live doing the same work is kept
    assert again.version == 2 and started[0] in again.job_ids and len(again.job_ids) == 2
    assert len(evolution.jobs_of(TENANT)) == 2
    assert {j.state for j in run(core, queue, again.job_ids)} == {JobState.FINISHED}
    assert {c.action for c in evolution.plan(TENANT, desired)} == {"no change"}


def test_an_index_whose_job_was_canceled_shows_in_the_plan_and_the_apply_builds_it_again(
    core: Core, queue: QueueDriver
) -> None:
    evolution = core.evolution
    evolution.apply(TENANT, definition(app()))
    core.records.create(TENANT, schema(core), {"name": "Acme", "city": "Lyon"})
    desired = definition(app(indexes=[["name"], {"name": "notes", "equals": ["notes"]}, ["city"]]))
    (job_id,) = evolution.apply(TENANT, desired).job_ids
    assert lines(evolution.plan(TENANT, desired))["index companies.city"] == ("no change", False)  # being built
    core.jobs.stop(job_id, TENANT)
    core.jobs.cancel(job_id, TENANT)
    queue.drain()
    wanted = [Condition("city", "eq", ("Lyon",))]
    assert plan(schema(core), wanted).index is None  # building, for ever
    (line,) = [c for c in evolution.plan(TENANT, desired) if c.resource == "index companies.city"]
    assert line.action == "update" and "building" in line.detail
    applied = evolution.apply(TENANT, desired)
    assert applied.version == 3 and len(applied.job_ids) == 1
    assert [j.state for j in run(core, queue, applied.job_ids)] == [JobState.FINISHED]
    assert plan(schema(core), wanted).index is not None
    assert {c.action for c in evolution.plan(TENANT, desired)} == {"no change"}


def test_a_field_inside_a_group_changing_label_keeps_the_values_and_a_narrowing_inside_is_refused(
    core: Core, queue: QueueDriver
) -> None:
    evolution = core.evolution
    street, zip_code = {"name": "street", "type": "text"}, {"name": "zip", "type": "text"}
    address = {"name": "address", "type": "group", "fields": [street, zip_code]}
    evolution.apply(TENANT, definition(app(fields=fields(address))))
    acme = core.records.create(TENANT, schema(core), {"name": "Acme", "address": {"street": "1 rue", "zip": "69001"}})
    relabelled = {**address, "fields": [street, {**zip_code, "label": "Postcode", "required": True}]}
    desired = definition(app(fields=fields(relabelled)))
    assert lines(evolution.plan(TENANT, desired))["field companies.address"] == ("update", False)
    applied = evolution.apply(TENANT, desired, allow_destructive=True)
    assert applied.version == 2 and applied.job_ids == []
    assert schema(core).field("address").fields[1].label == "Postcode"
    widened = {**address, "fields": [street, zip_code, {"name": "city", "type": "text"}]}
    assert lines(evolution.plan(TENANT, definition(app(fields=fields(widened)))))["field companies.address"] == (
        "update",
        False,
    )
    for inner in ([street, {**zip_code, "type": "integer"}], [street]):
        narrowed = definition(app(fields=fields({**address, "fields": inner})))
        with pytest.raises(Invalid, match="inside a group is not supported"):
            evolution.plan(TENANT, narrowed)
        with pytest.raises(Invalid, match="inside a group is not supported"):
            evolution.apply(TENANT, narrowed, allow_destructive=True)
    run(core, queue, [])
    record = core.records.get(TENANT, schema(core), acme.rid)
    assert record is not None and record.data["address"] == acme.data["address"]
    assert record.data["address"]["zip"] == "69001"


@pytest.mark.parametrize("limit", [4_000_000, 1_000_000])
def test_a_job_over_large_records_keeps_its_transactions_under_dynamodb_size_limit(
    core: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """DynamoDB refuses a transaction over 4 MB (moto does not): simulated here; with a 1 MB limit the
    job falls back to one record a transaction."""
    long = [{"name": n, "type": "text", "max_length": 100_000} for n in ("code", "city", "notes")]
    big = [f for f in fields() if f["name"] not in ("code", "city", "notes")] + long
    evolution = core.evolution

    def one_shard(label: str) -> AppDefinition:  # the records in one chunk, rewritten in one group
        data = app(fields=big, label=label)
        data["entities"][0]["schema"]["shards"] = 1
        return definition(data)

    evolution.apply(TENANT, one_shard("{name}"))
    entity = core.app.repo.entity(TENANT, "companies")
    rids = bulk(
        core, TENANT, entity, [{"name": f"co{i}", **{f["name"]: "x" * 99_000 for f in long}} for i in range(15)]
    )
    table_type = type(core.table)
    real = table_type.transact
    sizes: list[int] = []

    def sized(self: Any, writes: Any) -> None:
        size = len(json.dumps([w.request(self.name) for w in writes], default=str))
        if size > limit:
            raise Invalid("What would be stored is larger than DynamoDB holds (400 KB an item, 4 MB a transaction)")
        sizes.append(size)
        real(self, writes)

    monkeypatch.setattr(table_type, "transact", sized)
    applied = evolution.apply(TENANT, one_shard("{name}!"))
    (job,) = run(core, queue, applied.job_ids)
    assert job.state is JobState.FINISHED and job.processed == 15, job.error
    assert {r.label for r in core.records.get_many(TENANT, schema(core), rids)} == {f"co{i}!" for i in range(15)}
    assert max(sizes) <= limit


def test_an_apply_waits_for_a_job_older_than_the_newest_twenty(core: Core, queue: QueueDriver) -> None:
    """An apply over 22 entities starts 22 jobs; the 20 newest ended, an older one still runs."""

    def many(label: str) -> AppDefinition:
        entities = [
            {"name": f"e{i}", "schema": {"name": f"e{i}", "label": label, "fields": [{"name": "n", "type": "text"}]}}
            for i in range(22)
        ]
        return definition({"app": "evo", "entities": entities})

    evolution = core.evolution
    evolution.apply(TENANT, many("{n}"))
    for i in range(22):
        core.records.create(TENANT, schema(core, f"e{i}"), {"n": "x"})
    applied = evolution.apply(TENANT, many("{n}!"))
    assert len(applied.job_ids) == 22
    newest = evolution.jobs_of(TENANT, most=22)
    for job in newest[:20]:
        core.jobs.stop(job.id, TENANT)
        core.jobs.cancel(job.id, TENANT)
    with pytest.raises(Conflict, match=newest[20].id):
        evolution.apply(TENANT, many("{n}?"))
    assert evolution.current(TENANT).version == 2  # type: ignore[union-attr]
