"""Runtime CSV import (`IMPORT_RECORDS`) and export (`EXPORT_RECORDS`) as jobs, on in-process moto.

Imports create or update by the first unique column, create and link related records, log bad rows,
and survive a replayed group and a worker dying before a checkpoint without losing or doubling a row.
Exports pick fields (related ones too), widen multi-valued columns, and read back through the import.
Both ask the permission gate in the request and again as each chunk runs (findings 2 and 3); exports
escape formulas (finding 9); a create that loses the race for its unique value updates (finding 10a).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from backroom.app import exports, imports
from backroom.app.definition import AppDefinition, Entity
from backroom.app.exports import ExportRecordsKind, start_export
from backroom.app.imports import start_import
from backroom.errors import Forbidden, Invalid, ServiceFailure
from backroom.identity.models import Caller, Role
from backroom.jobs.models import Job, JobState
from backroom.records import RecordStore, writer
from backroom.records.keys import UNIQUE
from backroom.wiring import Core

from infra.demo.load import demo_app
from tests.core.conftest import QueueDriver

TENANT = "demo"
DEV = Caller(
    user_id="u-dev", email="dev@demo.local", name="Dev", role=Role.DEVELOPER, account_id=TENANT, tenant_id=TENANT
)
USER = Caller(
    user_id="u-user", email="user@demo.local", name="User", role=Role.USER, account_id=TENANT, tenant_id=TENANT
)


@pytest.fixture
def app(core: Core) -> Core:
    core.app.repo.install(TENANT, demo_app(listing_members=True))
    return core


def entity(core: Core, name: str) -> Entity:
    return core.app.repo.entity(TENANT, name)


def run_import(core: Core, queue: QueueDriver, text: str, name: str = "companies", **flags: str) -> Job:
    job = start_import(core.app, core.files, DEV, name, text.encode(), "data.csv", flags, "203.0.113.7")
    queue.drain()
    return core.jobs.get(job.id, TENANT)


def by_name(core: Core, name: str) -> dict[str, Any]:
    page = core.app.find(DEV, "companies", {"name": name})
    assert page["total"] == 1, page
    return dict(page["items"][0])


def test_an_import_creates_then_updates_by_the_first_unique_column(app: Core, queue: QueueDriver) -> None:
    text = "name,type,numberOfEmployees,addresses[0].city,addresses[1].city,contactInformation.email\n"
    text += "Imp One,a,10,Paris,Lyon,one@x.io\nImp Two,b,20,,,\nImp Bad,z,30,,,\n"
    job = run_import(app, queue, text)
    assert job.state is JobState.FINISHED
    assert job.results == {"rowsImported": 2, "rowsWithErrors": 1}
    one = by_name(app, "Imp One")
    assert one["type"] == "a" and one["numberOfEmployees"] == 10
    assert [a["city"] for a in one["addresses"]] == ["Paris", "Lyon"]
    assert one["contactInformation"]["email"] == "one@x.io"
    assert any("Row 3" in line.message and "type" in line.message for line in app.jobs.journal.logs(job.id))
    # The same rows again, one changed: updates, no new records, versions move only where values changed
    again = run_import(app, queue, text.replace("Imp Two,b,20", "Imp Two,c,21"))
    assert again.results == {"rowsImported": 2, "rowsWithErrors": 1}
    assert by_name(app, "Imp One")["version"] == one["version"]
    two = by_name(app, "Imp Two")
    assert (two["type"], two["numberOfEmployees"], two["version"]) == ("c", 21, 1)


def test_related_records_are_matched_by_their_unique_field_or_created_and_linked(app: Core, queue: QueueDriver) -> None:
    app.app.create(DEV, "companies", {"name": "Blogpad", "type": "a"}, None)
    text = "company.name,company.type,firstName,lastName,email\n"
    text += "Blogpad,c,Ann,Lee,ann@x.io\nNew Co,b,Bob,Ray,bob@x.io\nNew Co,b,Cid,Day,cid@x.io\n"
    job = run_import(app, queue, text, name="contacts")
    assert job.state is JobState.FINISHED and job.results == {"rowsImported": 3, "rowsWithErrors": 0}
    contacts = app.app.find(DEV, "contacts", {"email": "ann@x.io,bob@x.io,cid@x.io", "_size": "10"})["items"]
    companies = {c["email"]: c["company"]["label"] for c in contacts}
    assert companies == {"ann@x.io": "Blogpad", "bob@x.io": "New Co", "cid@x.io": "New Co"}
    assert by_name(app, "Blogpad")["type"] == "c"  # the matched company was updated
    assert app.app.find(DEV, "companies", {"name": "New Co"})["total"] == 1  # created once for two rows


def test_bad_headers_flags_and_rights_are_refused_before_any_job(app: Core) -> None:
    def start(text: str, caller: Caller = DEV, **flags: str) -> Job:
        return start_import(app.app, app.files, caller, "companies", text.encode(), None, flags, None)

    with pytest.raises(Invalid) as bad:
        start("name,nope,addresses.city,phone[0]\nx,y,z,w\n")
    assert {e.field for e in bad.value.errors} == {"nope", "addresses.city", "phone[0]"}
    with pytest.raises(Invalid):
        start("name\nx\n", _skipHistory="maybe")
    with pytest.raises(Invalid):
        start("name\nx\n", _unknown="true")
    with pytest.raises(Forbidden):
        start("name\nx\n", USER, _skipHistory="true")
    with pytest.raises(Invalid):
        start_import(app.app, app.files, DEV, "companies", b"\xff\xfename\n", None, {}, None)


@pytest.mark.parametrize(
    ("entity_name", "counted", "settled"),
    [("companies", False, False), ("contacts", False, True), ("contacts", True, False)],
)
def test_a_worker_dying_after_a_groups_rows_imports_each_row_once(
    app: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch, entity_name: str, counted: bool, settled: bool
) -> None:
    """The second group's rows are written, then the worker dies before its checkpoint: before their count
    moves reach the counts, or (`counted`) just after. Companies are matched by their unique name;
    row 140 names row 130's company again, so it updates in the group the record row 130 created.
    Contacts have no unique field (each is created under its row's own id). The chunk is handed out
    again, after the job settled (as a stop, then a resume, would) or not. Each row is applied once:
    one record per new value at its first version (the company twice named at its second, with row
    140's number), one history entry per row, and the counts equal the records (a contact's empty
    `company` has no index entry, nor a count)."""
    rows = 150
    if entity_name == "companies":
        names = [f"Crash {130 if i == 140 else i:04d}" for i in range(rows)]
        text = "name,numberOfEmployees\n" + "".join(f"{name},{i}\n" for i, name in enumerate(names))
    else:
        text = "firstName,lastName\n" + "".join(f"Crash,{i:04d}\n" for i in range(rows))
    job = start_import(app.app, app.files, DEV, entity_name, text.encode(), None, {}, None)
    real = RecordStore.add_moves
    calls = {"n": 0}

    def dying(self: RecordStore, pending: Any, guard: Any = ()) -> None:
        calls["n"] += 1
        if counted or calls["n"] != 2:
            real(self, pending, guard)
        if calls["n"] == 2:
            raise ServiceFailure("ServiceUnavailable", "worker killed")

    monkeypatch.setattr(RecordStore, "add_moves", dying)
    with pytest.raises(ServiceFailure):
        queue.drain()
    monkeypatch.setattr(RecordStore, "add_moves", real)
    if settled:
        app.kinds[imports.IMPORT_KIND].settle(app.job_context, app.jobs.get(job.id, TENANT))
    # SQS hands the chunk out again (here at once, as a duplicate would be): the group is replayed
    queue.sqs.send_message(QueueUrl=queue.url, MessageBody=json.dumps({"job": job.id, "op": "chunk", "chunk": 0}))
    queue.drain()
    done = app.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED, done
    assert done.results == {"rowsImported": rows, "rowsWithErrors": 0}
    stored = list(app.records.stream(TENANT, entity(app, entity_name).schema, {}))  # the import's alone
    assert len(stored) == (rows - 1 if entity_name == "companies" else rows)
    again = [(r.data.get("name"), r.data.get("numberOfEmployees"), r.version) for r in stored if r.version != 1]
    assert again == ([("Crash 0130", 140, 2)] if entity_name == "companies" else [])  # the rest written once
    history = app.app_history.table_history(DEV, entity_name, {"_size": "1000"})["items"]
    assert len(history) == rows  # one entry per row
    assert app.app.find(DEV, entity_name, {"_size": "1"})["total"] == len(stored)  # the counts: each record once


def test_an_export_picks_fields_widens_multi_values_and_reads_back_through_the_import(
    app: Core, queue: QueueDriver
) -> None:
    text = "name,type,addresses[0].city,addresses[1].city,addresses[2].city\n"
    text += "Exp A,b,Rome,Oslo,Kyiv\nExp B,b,Lima,,\n"
    run_import(app, queue, text)
    job = start_export(app.app, DEV, "companies", {"name": "like(Exp )", "_fields": "name,type,addresses.city"}, None)
    queue.drain()
    done = app.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED, done
    assert done.results["recordsExported"] == 2
    stored = app.files.app_file(TENANT, done.results["fileId"])
    assert stored is not None
    lines = list(csv.reader(io.StringIO(app.files.read(stored).decode())))
    assert lines[0] == ["name", "type", "addresses[0].city", "addresses[1].city", "addresses[2].city"]
    assert sorted(lines[1:]) == [["Exp A", "b", "Rome", "Oslo", "Kyiv"], ["Exp B", "b", "Lima", "", ""]]
    # Exported by field name, the file imports back unchanged (no record changes version)
    before = by_name(app, "Exp A")["version"]
    back = run_import(app, queue, app.files.read(stored).decode())
    assert back.results == {"rowsImported": 2, "rowsWithErrors": 0}
    assert by_name(app, "Exp A")["version"] == before


def test_export_related_fields_labels_and_bad_requests(app: Core, queue: QueueDriver) -> None:
    text = "company.name,company.type,firstName,lastName\nAcme,a,Ann,A\nBeta,b,Bob,B\nAcme,a,Cid,C\n"
    assert run_import(app, queue, text, "contacts").results == {"rowsImported": 3, "rowsWithErrors": 0}
    job = start_export(
        app.app, DEV, "contacts", {"_fields": "firstName,company,company.type", "_useLabels": "true"}, None
    )
    queue.drain()
    done = app.jobs.get(job.id, TENANT)
    stored = app.files.app_file(TENANT, done.results["fileId"])
    assert stored is not None
    lines = list(csv.reader(io.StringIO(app.files.read(stored).decode())))
    assert lines[0] == ["First name", "Company", "Company > Type"]
    assert done.results["recordsExported"] == 3 and len(lines) == 4
    assert sorted(lines[1:]) == [["Ann", "Acme", "a"], ["Bob", "Beta", "b"], ["Cid", "Acme", "a"]]
    with pytest.raises(Invalid):
        start_export(app.app, DEV, "companies", {"_fields": "nope"}, None)
    with pytest.raises(Invalid):
        start_export(app.app, DEV, "companies", {"_size": "1000001"}, None)
    with pytest.raises(Invalid, match=r'declare the index \{"equals": \[\], "sort": "color"\}'):
        start_export(app.app, DEV, "companies", {"_sortField": "color"}, None)  # no index lists by color
    with pytest.raises(Forbidden):
        start_export(app.app, USER, "companies", {"taxId": "x"}, None)


# Permissions: every column through the gate, in the request and as each chunk runs -----------------
NO_COMPANIES = "nocompanies@demo.local"  # contacts: everything; companies: nothing
READS_COMPANIES = "reader@demo.local"  # contacts: everything; companies: read only


def caller(email: str) -> Caller:
    return Caller(user_id=email, email=email, name=email, role=Role.USER, account_id=TENANT, tenant_id=TENANT)


def install(core: Core, **changes: dict[str, Any]) -> None:
    """The demo app with two more users, and the Sales group's entity grants replaced by `changes`."""
    app = demo_app(listing_members=True).model_dump(mode="json", by_alias=True)
    sales = next(g for g in app["groups"] if g["name"] == "Sales")
    sales["entities"].update(changes)
    contacts = {"read": True, "create": True, "update": True, "delete": True}
    app["groups"] += [
        {"name": "Contacts only", "users": [NO_COMPANIES], "entities": {"contacts": contacts}},
        {"name": "Readers of companies", "users": [READS_COMPANIES], "entities": {"contacts": contacts}},
    ]
    app["groups"][-1]["entities"]["companies"] = {"read": True}
    if changes.get("companies", {}).get("fields", {}).get("name") == "none":
        # A label may name only fields every reader reads: hiding the name takes it out of the label
        next(e for e in app["entities"] if e["name"] == "companies")["schema"]["label"] = "{state}"
    core.app.repo.install(TENANT, AppDefinition.model_validate(app))


def import_as(core: Core, queue: QueueDriver, who: Caller, name: str, text: str) -> Job:
    job = start_import(core.app, core.files, who, name, text.encode(), "data.csv", {}, None)
    queue.drain()
    return core.jobs.get(job.id, TENANT)


def test_finding_2_a_related_column_needs_read_on_the_related_entity(app: Core) -> None:
    install(app)
    with pytest.raises(Forbidden):  # nothing of companies may be read: 403 in the request, before any job
        start_import(
            app.app,
            app.files,
            caller(NO_COMPANIES),
            "contacts",
            b"firstName,lastName,company.name\nA,B,Acme\n",
            None,
            {},
            None,
        )
    assert app.app.find(DEV, "companies", {"name": "Acme"})["total"] == 0
    # Its own columns still import
    assert start_import(
        app.app, app.files, caller(NO_COMPANIES), "contacts", b"firstName,lastName\nA,B\n", None, {}, None
    )


def test_finding_2_a_reader_of_the_related_entity_links_but_never_creates_or_changes(
    app: Core, queue: QueueDriver
) -> None:
    install(app)
    app.app.create(DEV, "companies", {"name": "Linked Co", "type": "a"}, None)
    app.app.create(DEV, "companies", {"name": "Other Co", "type": "a"}, None)
    text = "firstName,lastName,company.name,company.type\n"
    text += "Ann,Lee,Linked Co,a\nBob,Ray,Other Co,b\nCid,Day,Brand New Co,a\n"
    job = import_as(app, queue, caller(READS_COMPANIES), "contacts", text)
    assert job.state is JobState.FINISHED
    # Row 1 only links (nothing to change); rows 2 and 3 would change or create a company: they fail
    assert job.results == {"rowsImported": 1, "rowsWithErrors": 2}, [
        line.message for line in app.jobs.journal.logs(job.id)
    ]
    messages = " ".join(line.message for line in app.jobs.journal.logs(job.id))
    assert "you may not update records of companies" in messages and "you may not create one" in messages
    assert by_name(app, "Other Co")["type"] == "a" and by_name(app, "Other Co")["version"] == 0
    assert app.app.find(DEV, "companies", {"name": "Brand New Co"})["total"] == 0
    ann = app.app.find(DEV, "contacts", {"firstName": "Ann", "lastName": "Lee"})["items"]
    assert [c["company"]["label"] for c in ann] == ["Linked Co"]


def test_finding_2_hidden_and_read_only_related_fields_are_left_out(app: Core, queue: QueueDriver) -> None:
    # user@demo.local: companies taxId none, rating read only; contacts full
    install(app)
    app.app.create(DEV, "companies", {"name": "Taxed Co", "taxId": "111-AAA", "rating": "2.5"}, None)
    text = "firstName,lastName,company.name,company.taxId,company.rating,company.type\n"
    text += "Ann,Lee,Taxed Co,999-EVIL,0.1,b\nBob,Ray,Fresh Co,999-EVIL,0.1,c\n"
    job = import_as(app, queue, USER, "contacts", text)
    assert job.results == {"rowsImported": 2, "rowsWithErrors": 0}, [
        line.message for line in app.jobs.journal.logs(job.id)
    ]
    taxed, fresh = by_name(app, "Taxed Co"), by_name(app, "Fresh Co")
    assert (taxed["taxId"], taxed["rating"], taxed["type"]) == ("111-AAA", "2.5", "b")  # only type is the user's
    assert "taxId" not in fresh and "rating" not in fresh and fresh["type"] == "c"


def test_finding_2_a_match_on_a_hidden_unique_field_is_refused(app: Core) -> None:
    # The Sales group may no longer read companies' name: a column on it never matches a company
    install(app, companies={"read": True, "create": True, "update": True, "fields": {"name": "none"}})
    with pytest.raises(Invalid) as bad:
        start_import(
            app.app,
            app.files,
            USER,
            "contacts",
            b"firstName,lastName,company.name,company.type\nA,B,X,a\n",
            None,
            {},
            None,
        )
    assert "unique fields you may read" in bad.value.message


def deliver_one(queue: QueueDriver, op: str) -> None:
    """Deliver the next message, which does `op` (the plan, or a chunk)."""
    (message,) = queue.receive(most=1)
    assert json.loads(message["Body"])["op"] == op
    queue.deliver(message)


def test_finding_2_the_import_asks_again_when_its_chunk_runs(
    app: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(app)
    monkeypatch.setattr(imports, "CHUNK_ROWS", 1)  # two rows, two chunks
    job = start_import(app.app, app.files, USER, "contacts", b"firstName,lastName\nKept,A\nGone,B\n", None, {}, None)
    deliver_one(queue, "plan")
    deliver_one(queue, "chunk")
    install(app, contacts={"read": True})  # the Sales group loses `create` on contacts between the chunks
    queue.drain()
    done = app.jobs.get(job.id, TENANT)
    assert done.state is JobState.FAILED and "the import stopped" in (done.error or ""), done
    assert app.app.find(DEV, "contacts", {"firstName": "Kept"})["total"] == 1
    assert app.app.find(DEV, "contacts", {"firstName": "Gone"})["total"] == 0


def test_finding_3_an_export_leaves_out_related_fields_the_caller_may_not_read(app: Core, queue: QueueDriver) -> None:
    install(app)
    app.app.create(DEV, "companies", {"name": "Secret Co", "taxId": "123-SECRET", "rating": "4.5"}, None)
    company_id = by_name(app, "Secret Co")["id"]
    app.app.create(DEV, "contacts", {"firstName": "Exp", "lastName": "Orter", "company": company_id}, None)
    fields = {"firstName": "Exp", "_fields": "firstName,company.name,company.taxId,company.rating"}
    job = start_export(app.app, USER, "contacts", fields, None)
    assert job.params["fields"] == ["firstName", "company.name", "company.rating"]  # taxId is hidden to the user
    queue.drain()
    done = app.jobs.get(job.id, TENANT)
    stored = app.files.app_file(TENANT, done.results["fileId"])
    assert stored is not None
    text = app.files.read(stored).decode()
    assert list(csv.reader(io.StringIO(text))) == [
        ["firstName", "company.name", "company.rating"],
        ["Exp", "Secret Co", "4.5"],
    ]
    assert "SECRET" not in text
    with pytest.raises(Invalid):  # nothing left to export
        start_export(app.app, USER, "contacts", {"_fields": "company.taxId"}, None)
    with pytest.raises(Invalid):  # nor for one who may not read companies at all (not even their schema)
        start_export(app.app, caller(NO_COMPANIES), "contacts", {"_fields": "company.taxId,company.nope"}, None)


@pytest.mark.parametrize(
    ("params", "hidden", "says"),
    [
        ({"_fields": "name,rating", "name": "Rated A,Rated B"}, "rating", "You may no longer read rating"),
        ({"_fields": "name", "rating": "4.5"}, "rating", "You may not query companies by rating"),
        (
            {"_fields": "name", "type": "a", "_sortField": "numberOfEmployees"},
            "numberOfEmployees",
            "You may not query companies by numberOfEmployees",  # the rows' order would tell it
        ),
    ],
)
def test_finding_3_the_export_asks_again_when_its_chunk_runs(
    app: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch, params: dict[str, str], hidden: str, says: str
) -> None:
    """A column, a filter or the sort on a field the job's user may no longer read fails the export."""
    install(app)
    monkeypatch.setattr(exports, "PART_CHARS", 1)  # two records, two parts
    for i, name in enumerate(("Rated A", "Rated B")):
        app.app.create(DEV, "companies", {"name": name, "rating": "4.5", "type": "a", "numberOfEmployees": i}, None)
    job = start_export(app.app, USER, "companies", params, None)
    real = ExportRecordsKind.before_commit
    sales = {"read": True, "create": True, "update": True, "fields": {"taxId": "none", hidden: "none"}}

    def then_hidden(self: ExportRecordsKind, ctx: Any, job: Job, chunk: Any, outcomes: Any) -> None:
        real(self, ctx, job, chunk, outcomes)
        install(app, companies=sales)  # hidden after the first part: the second is not written

    monkeypatch.setattr(ExportRecordsKind, "before_commit", then_hidden)
    queue.drain()
    done = app.jobs.get(job.id, TENANT)
    assert done.state is JobState.FAILED and says in (done.error or ""), done
    assert "fileId" not in done.results


# Finding 10a: two imports of the same new unique values at once ------------------------------------------
def test_finding_10a_a_create_that_loses_the_race_updates_the_winners_record(
    app: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Import A looks its names up (none exists), then import B creates them all, then A writes: A's
    creates lose on the unique markers and update B's records instead, each row once."""
    names = [f"Race {i}" for i in range(5)]
    first = "name,type\n" + "".join(f"{n},a\n" for n in names)
    second = "name,type,numberOfEmployees\n" + "".join(f"{n},b,{i}\n" for i, n in enumerate(names))
    real_lookup = RecordStore.by_unique
    raced: dict[str, Job] = {}

    def lookup_then_race(self: RecordStore, tenant_id: str, schema: Any, name: str, values: Any) -> Any:
        found = real_lookup(self, tenant_id, schema, name, values)
        if not raced and schema.name == "companies":
            raced["b"] = start_import(app.app, app.files, DEV, "companies", second.encode(), None, {}, None)
            queue.drain()  # B runs to its end between A's lookup and A's write
        return found

    real_deliver = queue.deliver

    def deliver(message: dict[str, Any]) -> None:  # the message in hand stays hidden while B runs
        queue.sqs.change_message_visibility(
            QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=300
        )
        real_deliver(message)

    monkeypatch.setattr(queue, "deliver", deliver)
    monkeypatch.setattr(RecordStore, "by_unique", lookup_then_race)
    a = start_import(app.app, app.files, DEV, "companies", first.encode(), None, {}, None)
    queue.drain()
    b = app.jobs.get(raced["b"].id, TENANT)
    assert b.state is JobState.FINISHED and b.results == {"rowsImported": 5, "rowsWithErrors": 0}
    done = app.jobs.get(a.id, TENANT)
    assert done.state is JobState.FINISHED
    assert done.results == {"rowsImported": 5, "rowsWithErrors": 0}, [
        line.message for line in app.jobs.journal.logs(a.id)
    ]
    for i, name in enumerate(names):
        record = by_name(app, name)  # one record per name: B's, updated once by A (A wrote last)
        assert (record["type"], record["numberOfEmployees"], record["version"]) == ("a", i, 1)


# Finding 9: safe CSV -------------------------------------------------------------------------------
def test_finding_9_an_export_escapes_formulas_and_imports_back_unchanged(app: Core, queue: QueueDriver) -> None:
    risky = {'=HYPERLINK("http://x")': "@SUM(1+1)", "-2+3 Co": "+cmd|' /C calc'!A0", "'=Quoted": "\tTabbed"}
    for name, notes in risky.items():
        app.app.create(
            DEV, "companies", {"name": name, "notes": notes, "numberOfEmployees": -5, "rating": "-1.5"}, None
        )

    def export(**options: str) -> list[list[str]]:
        params = {"name": ",".join(risky), "_fields": "name,notes,numberOfEmployees,rating", **options}
        job = start_export(app.app, DEV, "companies", params, None)
        queue.drain()
        done = app.jobs.get(job.id, TENANT)
        stored = app.files.app_file(TENANT, done.results["fileId"])
        assert stored is not None
        return list(csv.reader(io.StringIO(app.files.read(stored).decode())))

    safe = export()
    assert sorted(safe[1:]) == sorted(
        [
            ['\'=HYPERLINK("http://x")', "'@SUM(1+1)", "-5", "-1.5"],  # numbers stay numbers
            ["'-2+3 Co", "'+cmd|' /C calc'!A0", "-5", "-1.5"],
            ["''=Quoted", "'\tTabbed", "-5", "-1.5"],  # a quote more, so the import reads the text back
        ]
    )
    raw = export(_formulaSafe="false")
    assert sorted(raw[1:]) == sorted([[n, t, "-5", "-1.5"] for n, t in risky.items()])
    with pytest.raises(Invalid):
        start_export(app.app, DEV, "companies", {"_formulaSafe": "maybe"}, None)
    # The escaped file imports back as the very same values: no record changes
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(safe)
    back = run_import(app, queue, text.getvalue())
    assert back.results == {"rowsImported": 3, "rowsWithErrors": 0}
    for name, notes in risky.items():
        record = by_name(app, name)
        assert (record["notes"], record["version"]) == (notes, 0)


def _entries_and_notes(core: Core, name: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]], int]:
    """The entity's index entries in the table, those its records hold, and how many notes of entries put
    ahead are left (a scan: the test's own look at the table)."""
    found: set[tuple[str, str]] = set()
    notes = 0
    pages = core.table.client.get_paginator("scan").paginate(TableName=core.table.name)
    for item in (i for page in pages for i in page["Items"]):
        pk = item["pk"]["S"]
        found |= {(pk, item["sk"]["S"])} if pk.startswith(f"IDX#{TENANT}#{name}#") else set()
        notes += pk.startswith("AHEAD#")
    records = core.records.stream(TENANT, entity(core, name).schema, {})
    held = {tuple(k) for r in records for k in r.keys if k[1] != UNIQUE}
    return found, held, notes


@pytest.mark.parametrize("then", ["replayed", "settled"])
def test_entries_put_ahead_of_a_transaction_that_never_commits_go(
    app: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch, then: str
) -> None:
    """A create's index entries are put before its transaction. The worker dies after the entries of the
    group's second transaction are put and before it commits. Then either the chunk is replayed (the
    rows are stamped anew: their `lastUpdate` entries differ from the dead delivery's) and the job
    finishes, or the job settles without a replay (as a stop then a cancel would). Either way no index
    entry is left that no record holds, every entry a record holds is there, and no note is left."""
    rows = 120
    text = "name,numberOfEmployees\n" + "".join(f"Ahead {i:04d},{i}\n" for i in range(rows))
    job = start_import(app.app, app.files, DEV, "companies", text.encode(), None, {}, None)
    real = writer._transact
    noted = {"n": 0}

    def dying(table: Any, writes: Any) -> None:
        if any(w.key and w.key[0].startswith("AHEAD#") for w in writes):
            noted["n"] += 1
            if noted["n"] == 2:
                raise ServiceFailure("ServiceUnavailable", "worker killed")
        real(table, writes)

    monkeypatch.setattr(writer, "_transact", dying)
    with pytest.raises(ServiceFailure):
        queue.drain()
    found, held, notes = _entries_and_notes(app, "companies")
    assert found > held and notes == 1  # the dead transaction's entries, ahead of records that never came
    if then == "replayed":
        queue.sqs.send_message(QueueUrl=queue.url, MessageBody=json.dumps({"job": job.id, "op": "chunk", "chunk": 0}))
        queue.drain()
        done = app.jobs.get(job.id, TENANT)
        assert done.state is JobState.FINISHED and done.results == {"rowsImported": rows, "rowsWithErrors": 0}
    else:
        app.kinds[imports.IMPORT_KIND].settle(app.job_context, app.jobs.get(job.id, TENANT))
    found, held, notes = _entries_and_notes(app, "companies")
    assert found == held and notes == 0
    stored = list(app.records.stream(TENANT, entity(app, "companies").schema, {}))
    assert len(stored) == rows if then == "replayed" else 0 < len(stored) < rows
    listed = app.app.find(DEV, "companies", {"_sortField": "lastUpdate", "_size": "1000"})["items"]
    assert sorted(r["id"] for r in listed) == sorted(r.rid for r in stored)  # each once, by its own entry


def test_big_rows_keep_each_transaction_under_its_byte_bound(
    app: Core, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With its entries put ahead, a create's transaction holds about 3 items a row, so 32 rows fit in 100
    items; rows of big records (a record and its history entry each carry the values) would pass
    DynamoDB's 4 MB first. The writer ends a transaction at its byte estimate too: here the bound is cut
    to 200 KB, against 32 rows of about 20 KB (10,000-character notes), and every row is imported."""
    monkeypatch.setattr(writer, "TRANSACTION_BYTES", 200_000)
    rows, note = 40, "n" * 10_000
    text = "name,notes\n" + "".join(f"Big {i:03d},{note}\n" for i in range(rows))
    sizes: list[int] = []
    real = writer._transact

    def measured(table: Any, writes: Any) -> None:
        sizes.append(sum(writer._estimated_size(w) for w in writes))
        real(table, writes)

    monkeypatch.setattr(writer, "_transact", measured)
    job = run_import(app, queue, text)
    assert job.state is JobState.FINISHED and job.results == {"rowsImported": rows, "rowsWithErrors": 0}
    assert len(sizes) > 2 and max(sizes) <= 200_000
