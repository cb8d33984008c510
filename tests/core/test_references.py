"""References that stay true (`backroom.app.references`), on in-process moto.

The acceptance points: a company referenced by 10,000 contacts is renamed, the worker of the RELABEL
job is killed mid-chunk, and the job stopped and resumed; every contact ends with the new label, one
history entry each (a system change of the job), and `company=<new name>` finds them all. A
referenced record is deleted under each `on_delete` option (clear, through an index and through a
whole read of a multi-valued field; refuse, in a request and in a delete job). And the small cases:
an import with `_skipCascadeUpdates`, two quick renames with a user's write racing the job, a label
that names a relationship passing the rename on; counts that lag an import's writes (existence
decides, not counts); a worker dying between an import's rename and its relabel job's start; a
refusal's detail kept from a caller who may not read the referencing records; an index still built.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from backroom.app.definition import AppDefinition, Entity
from backroom.app.imports import start_import
from backroom.app.references import Referenced
from backroom.errors import ServiceFailure
from backroom.identity.models import Caller, Role
from backroom.ids import object_id
from backroom.jobs.models import Job, JobState
from backroom.records import Record
from backroom.wiring import Core
from pydantic import ValidationError

from infra.demo.load import demo_app
from infra.local.moto_seed import put_items
from tests.core.conftest import QueueDriver, bulk

TENANT = "demo"
DEV = Caller(
    user_id="u-dev", email="dev@demo.local", name="Dev", role=Role.DEVELOPER, account_id=TENANT, tenant_id=TENANT
)
IP = "203.0.113.5"
MANY = 10_000


def entity(core: Core, name: str) -> Entity:
    return core.app.repo.entity(TENANT, name)


def jobs_of(core: Core, job_type: str) -> list[Job]:
    ids = [j["id"] for j in core.jobs.runtime_jobs(TENANT) if j["type"] == job_type]
    return [core.jobs.get(i, TENANT) for i in ids]


def history(core: Core, name: str, rid: str) -> list[dict[str, Any]]:
    return core.records.history(TENANT, entity(core, name).schema, rid).entries


@pytest.fixture
def demo(core: Core) -> Core:
    core.app.repo.install(TENANT, demo_app(listing_members=True))
    return core


@pytest.mark.slow
def test_a_company_renamed_under_10000_contacts_relabels_each_once_across_a_killed_worker_and_a_stop(
    demo: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a company and 10,000 contacts that reference it (contacts declare an index on company, and
    # for this test's speed on moto, no other index)
    contacts = entity(demo, "contacts")
    lean = contacts.schema.model_copy(update={"indexes": [contacts.schema.index("company")]})
    contacts = contacts.model_copy(update={"schema_": lean})
    demo.app.repo.put_entity(TENANT, contacts)
    cid = demo.app.create(DEV, "companies", {"name": "Old Name"}, IP)["id"]
    link = {"id": cid, "label": "Old Name"}
    rids = bulk(
        demo, TENANT, contacts, [{"firstName": "F", "lastName": f"L{i:05d}", "company": link} for i in range(MANY)]
    )

    # When it is renamed, a RELABEL job starts, run as the system
    demo.app.update(DEV, "companies", cid, {"name": "New Name"}, IP)
    [job] = jobs_of(demo, "RELABEL")
    assert (job.created_by, job.params["ids"]) == ("system", [cid])
    assert queue.drain(limit=1) == 1  # the plan: the index's key ranges, 500 ids a chunk
    planned = demo.jobs.get(job.id, TENANT)
    assert (planned.total_rows, planned.chunk_count) == (MANY, MANY // 500)

    # ...and the worker of a chunk dies after writing its fourth group of 48, before checkpointing it
    advance = demo.chunks.advance_chunk
    calls = {"n": 0}

    def dies_at_the_fourth_checkpoint(chunk, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:
            raise ServiceFailure("ServiceUnavailable", "gone")
        return advance(chunk, **kw)

    monkeypatch.setattr(demo.chunks, "advance_chunk", dies_at_the_fourth_checkpoint)
    [message] = queue.receive(most=1)
    with pytest.raises(ServiceFailure):
        queue.deliver(message)  # left in the queue
    monkeypatch.setattr(demo.chunks, "advance_chunk", advance)
    crashed = demo.chunks.get_chunk(job.id, int(json.loads(message["Body"])["chunk"]))
    assert crashed is not None and crashed.next_row == 3 * 48
    # ...and the job is stopped while the dead worker holds that chunk; its message comes back (at once
    # here, not after the visibility timeout), the job stops, and is resumed
    assert demo.jobs.stop(job.id, TENANT).state is JobState.STOPPING
    queue.sqs.change_message_visibility(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    queue.drain()
    stopped = demo.jobs.get(job.id, TENANT)
    assert stopped.state is JobState.STOPPED and stopped.processed < MANY
    demo.jobs.resume(job.id, TENANT)
    queue.drain()

    # Then a query by the company's new label finds every contact, and there is one history entry each
    # (each contact holds the new label, so each was written with an entry; 10,000 entries: one each)
    done = demo.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED, done.error
    assert (done.processed, done.failed) == (MANY, 0)
    assert demo.app.find(DEV, "contacts", {"company": "New Name", "_size": "1"})["total"] == MANY
    assert demo.records.table_history(TENANT, contacts.schema, limit=1).total == MANY
    for rid in crashed.cursor["ids"][3 * 48 : 4 * 48]:  # the group written twice
        [entry] = history(demo, "contacts", rid)
        assert (entry["user"], entry["context"]) == ("system", f"jobs.{job.id}")
        assert entry["new"]["company"] == {"id": cid, "label": "New Name"}
    shown = demo.app_history.history(DEV, "contacts", rids[0], {})["items"][0]
    assert (shown["eventCategory"], shown["user"]) == ("SYSTEM", "system")


def test_two_quick_renames_end_on_the_last_and_a_racing_user_write_is_kept(
    demo: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    contacts = entity(demo, "contacts")
    cid = demo.app.create(DEV, "companies", {"name": "First"}, IP)["id"]
    rids = [
        demo.app.create(DEV, "contacts", {"firstName": "F", "lastName": f"L{i}", "company": cid}, IP)["id"]
        for i in range(3)
    ]
    # Given two renames before any job runs
    demo.app.update(DEV, "companies", cid, {"name": "Second"}, IP)
    demo.app.update(DEV, "companies", cid, {"name": "Third"}, IP)
    assert len(jobs_of(demo, "RELABEL")) == 2

    # ...and a user's write landing between the job's read of the contacts and its write
    read = demo.records.reader.get_many
    raced = {"done": False}

    def user_writes_meanwhile(tenant, schema, ids):  # type: ignore[no-untyped-def]
        found = read(tenant, schema, ids)
        if schema.name == "contacts" and not raced["done"]:
            raced["done"] = True
            demo.app.update(DEV, "contacts", rids[0], {"numberOfSkills": 7}, IP)
        return found

    monkeypatch.setattr(demo.records.reader, "get_many", user_writes_meanwhile)
    queue.drain()

    # Then both jobs finished and every contact holds the last label, the user's value kept
    assert {j.state for j in jobs_of(demo, "RELABEL")} == {JobState.FINISHED}
    records = {r.rid: r for r in demo.records.get_many(TENANT, contacts.schema, rids)}
    assert {r.data["company"]["label"] for r in records.values()} == {"Third"}
    assert records[rids[0]].data["numberOfSkills"] == 7
    # ...with one relabel each: the first job copied the label as it is now, the second found it right
    for rid in rids:
        relabels = [e for e in history(demo, "contacts", rid) if e["user"] == "system"]
        assert [e["new"]["company"]["label"] for e in relabels] == ["Third"], rid
    assert [e["user"] for e in history(demo, "contacts", rids[0])] == ["system", DEV.email, DEV.email]


def test_deleting_a_company_clears_its_contacts_and_a_contact_clears_the_main_contact_read_whole(
    demo: Core, queue: QueueDriver
) -> None:
    cid = demo.app.create(DEV, "companies", {"name": "Doomed"}, IP)["id"]
    kept = demo.app.create(DEV, "companies", {"name": "Kept"}, IP)["id"]
    mine = [
        demo.app.create(DEV, "contacts", {"firstName": "F", "lastName": f"L{i}", "company": cid}, IP)["id"]
        for i in range(3)
    ]
    other = demo.app.create(DEV, "contacts", {"firstName": "O", "lastName": "Other", "company": kept}, IP)["id"]
    demo.app.update(DEV, "companies", kept, {"mainContact": mine[0]}, IP)

    # When the company is deleted (contacts.company clears, the default), then one of its contacts
    demo.app.delete_one(DEV, "companies", cid, IP)
    demo.app.delete_one(DEV, "contacts", mine[0], IP)
    queue.drain()

    # Then its contacts lost the reference, once each, and the other contact kept its own
    jobs = jobs_of(demo, "CLEAR_REFERENCES")
    assert len(jobs) == 2 and {j.state for j in jobs} == {JobState.FINISHED}
    schema = entity(demo, "contacts").schema
    found = {r.rid: r for r in demo.records.get_many(TENANT, schema, [*mine[1:], other])}
    assert [("company" in found[r].data) for r in mine[1:]] == [False, False]
    assert found[other].data["company"]["id"] == kept
    assert [e["user"] for e in history(demo, "contacts", mine[1])] == ["system", DEV.email]
    assert demo.app.find(DEV, "contacts", {"company": cid})["total"] == 0
    # ...and companies.mainContact, which no index serves, was cleared by a job reading companies whole
    company = demo.records.get(TENANT, entity(demo, "companies").schema, kept)
    assert company is not None and "mainContact" not in company.data
    logs = [line.message for j in jobs for line in demo.journal.logs(j.id)]
    assert any("no index has it as its equals" in m for m in logs)


# A small app for the other options: firms and people that reference them three ways.
FIRMS: dict[str, Any] = {
    "app": "refs",
    "entities": [
        {
            "name": "firms",
            "schema": {
                "name": "firms",
                "label": "{name}",
                "history": True,
                "fields": [
                    {"name": "code", "unique": True},
                    {"name": "name"},
                    {"name": "boss", "type": "relationship", "entity": "people"},
                ],
            },
        },
        {
            "name": "people",
            "schema": {
                "name": "people",
                "label": "{name} ({firm})",  # names the relationship: a firm's rename renames its people
                "history": True,
                "fields": [
                    {"name": "name"},
                    {"name": "firm", "type": "relationship", "entity": "firms", "on_delete": "refuse"},
                    {"name": "former", "type": "relationship", "entity": "firms", "multi": True},
                ],
                "indexes": [{"name": "firm", "equals": ["firm"]}],
            },
        },
    ],
}


@pytest.fixture
def firms(core: Core) -> Core:
    core.app.repo.install(TENANT, AppDefinition.model_validate(FIRMS))
    return core


def test_a_refusing_relationship_needs_an_index_on_it() -> None:
    unindexed = json.loads(json.dumps(FIRMS))
    unindexed["entities"][1]["schema"]["indexes"] = []
    with pytest.raises(ValidationError, match="firm refuses deletes"):
        AppDefinition.model_validate(unindexed)


def test_a_refused_delete_names_how_many_reference_it_and_a_delete_job_skips_only_that_record(
    firms: Core, queue: QueueDriver
) -> None:
    held = firms.app.create(DEV, "firms", {"code": "H", "name": "Held"}, IP)["id"]
    free = firms.app.create(DEV, "firms", {"code": "F", "name": "Free"}, IP)["id"]
    ann = firms.app.create(DEV, "people", {"name": "Ann", "firm": held, "former": [free]}, IP)["id"]
    firms.app.create(DEV, "people", {"name": "Bob", "firm": held}, IP)

    with pytest.raises(Referenced, match="referenced by 2 records: 2 of people \\(firm\\)") as refused:
        firms.app.delete_one(DEV, "firms", held, IP)
    assert refused.value.status == 422  # the runtime dialect answers it with a 400, validationErrors

    job = firms.app.delete_async(DEV, "firms", ids=[held, free], params={}, ip=IP)
    queue.drain()
    done = firms.jobs.get(job.id, TENANT)
    results = firms.journal.results(done)
    assert (done.processed, done.failed) == (1, 1)
    assert "referenced by 2 records" in results[held]["errorMessage"] and results[free]["status"] == "ok"
    # ...and the deleted firm left Ann's list of former firms (a multi value: read whole, cleared)
    person = firms.records.get(TENANT, entity(firms, "people").schema, ann)
    assert person is not None and "former" not in person.data and person.data["firm"]["id"] == held


def test_an_import_with_skip_cascade_updates_relabels_nothing_and_without_it_the_rename_passes_on(
    firms: Core, queue: QueueDriver
) -> None:
    acme = firms.app.create(DEV, "firms", {"code": "A", "name": "Acme"}, IP)["id"]
    ann = firms.app.create(DEV, "people", {"name": "Ann", "firm": acme}, IP)["id"]
    firms.app.update(DEV, "firms", acme, {"boss": ann}, IP)
    people, schema = entity(firms, "people").schema, entity(firms, "firms").schema

    def run(text: str, **flags: str) -> None:
        start_import(firms.app, firms.files, DEV, "firms", text.encode(), "f.csv", flags, IP)
        queue.drain()

    run("code,name\nA,Acme Two\n", _skipCascadeUpdates="true")
    assert jobs_of(firms, "RELABEL") == []
    person = firms.records.get(TENANT, people, ann)
    assert person is not None and person.data["firm"]["label"] == "Acme"

    # Without the flag, the rename reaches Ann, whose label names her firm, and from her the firm's boss
    run("code,name\nA,Acme Three\n")
    assert {j.state for j in jobs_of(firms, "RELABEL")} == {JobState.FINISHED}
    person = firms.records.get(TENANT, people, ann)
    assert person is not None and (person.data["firm"]["label"], person.label) == ("Acme Three", "Ann (Acme Three)")
    firm = firms.records.get(TENANT, schema, acme)
    assert firm is not None and firm.data["boss"]["label"] == "Ann (Acme Three)"


def test_counts_that_lag_an_import_still_refuse_the_delete_and_relabel_on_a_rename(firms: Core) -> None:
    # Given a person written as an import's group writes it, whose count move the group has not added yet
    firm = firms.app.create(DEV, "firms", {"code": "L", "name": "Lag"}, IP)["id"]
    people = entity(firms, "people")
    person = Record(rid=object_id(), data={"name": "Ann", "firm": {"id": firm, "label": "Lag"}})
    put_items(firms.table.name, firms.records.items(TENANT, people.schema, person))
    assert firms.app.find(DEV, "people", {"firm": firm})["total"] == 0  # the kept counts say none

    # Then the refusing relationship still refuses (its index holds the entry), and a rename relabels
    with pytest.raises(Referenced, match="referenced by 1 record: 1 of people \\(firm\\)"):
        firms.app.delete_one(DEV, "firms", firm, IP)
    firms.app.update(DEV, "firms", firm, {"name": "Lagged"}, IP)
    [job] = jobs_of(firms, "RELABEL")
    assert job.params["ids"] == [firm]


def test_a_refusal_names_the_referencing_records_only_to_a_caller_who_may_read_them(firms: Core) -> None:
    firm = firms.app.create(DEV, "firms", {"code": "S", "name": "Secret"}, IP)["id"]
    firms.app.create(DEV, "people", {"name": "Ann", "firm": firm}, IP)
    access = firms.app.access(DEV, "firms", "delete")
    links = firms.app.references.links(TENANT, "firms")
    with pytest.raises(Referenced, match=r"^Record .* cannot be deleted: it is referenced by other records$"):
        firms.app.references.check_delete(TENANT, access.entity, firm, links=links, may_see=lambda link: False)
    with pytest.raises(Referenced, match="1 of people \\(firm\\)"):
        firms.app.references.check_delete(TENANT, access.entity, firm, links=links, may_see=lambda link: True)


def test_a_refusing_relationship_whose_index_is_still_built_refuses_deletes_plainly(firms: Core) -> None:
    firm = firms.app.create(DEV, "firms", {"code": "B", "name": "Built"}, IP)["id"]
    people = entity(firms, "people")
    building = [i.model_copy(update={"building": True}) for i in people.schema.indexes]
    firms.app.repo.put_entity(
        TENANT, people.model_copy(update={"schema_": people.schema.model_copy(update={"indexes": building})})
    )
    with pytest.raises(Referenced, match=r"the index on people\.firm .* is still being built"):
        firms.app.delete_one(DEV, "firms", firm, IP)


def test_a_worker_dying_between_an_import_rename_and_its_relabel_job_start_leaves_it_to_the_replay(
    firms: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = firms.app.create(DEV, "firms", {"code": "A", "name": "Acme"}, IP)["id"]
    ann = firms.app.create(DEV, "people", {"name": "Ann", "firm": acme}, IP)["id"]
    job = start_import(firms.app, firms.files, DEV, "firms", b"code,name\nA,Acme Two\n", "f.csv", {}, IP)

    # When the worker dies once the rename is committed, as it starts the job that relabels Ann
    start, died = firms.jobs.start, []

    def dies_once(job_id: str, tenant_id: str) -> Job:
        if not died and firms.jobs.get(job_id, tenant_id).type == "RELABEL":
            died.append(job_id)
            raise ServiceFailure("ServiceUnavailable", "gone")
        return start(job_id, tenant_id)

    monkeypatch.setattr(firms.jobs, "start", dies_once)
    for _ in range(20):
        batch = queue.receive(most=1)
        if not batch:
            break
        try:
            queue.deliver(batch[0])
        except ServiceFailure:  # the import's group, left in the queue: the job is stopped and resumed
            assert firms.jobs.stop(job.id, TENANT).state is JobState.STOPPING
            queue.sqs.change_message_visibility(
                QueueUrl=queue.url, ReceiptHandle=batch[0]["ReceiptHandle"], VisibilityTimeout=0
            )
            queue.drain()
            firms.jobs.resume(job.id, TENANT)
    queue.drain()

    # Then the replayed group finds the relabel job stored before the rename, and starts it: Ann follows
    assert died and firms.jobs.get(job.id, TENANT).state is JobState.FINISHED
    [relabel] = [j for j in jobs_of(firms, "RELABEL") if j.params["depth"] == 0]
    assert relabel.id == died[0] and relabel.state is JobState.FINISHED
    person = firms.records.get(TENANT, entity(firms, "people").schema, ann)
    assert person is not None and (person.data["firm"]["label"], person.label) == ("Acme Two", "Ann (Acme Two)")
