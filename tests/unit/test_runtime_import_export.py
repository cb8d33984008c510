"""Runtime CSV import (`IMPORT_RECORDS`) and export (`EXPORT_RECORDS`) as jobs, on in-process moto.

Imports create or update by the first unique column, create and link related records, log bad rows,
and survive a replayed group and a worker dying before a checkpoint without losing or doubling a row.
Exports pick fields (related ones too), widen multi-valued columns, and read back through the import.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from backroom.app.definition import AppDefinition, Entity
from backroom.app.exports import start_export
from backroom.app.imports import ImportRecordsKind, start_import
from backroom.errors import Forbidden, Invalid
from backroom.identity.models import Caller, Role
from backroom.jobs.models import Job, JobState
from backroom.services import Services
from botocore.exceptions import ClientError

from tests.unit.conftest import QueueDriver

TENANT = "demo"
APP = Path(__file__).parents[2] / "infra" / "demo" / "data" / "app.json"
DEV = Caller(
    user_id="u-dev", email="dev@demo.local", name="Dev", role=Role.DEVELOPER, account_id=TENANT, tenant_id=TENANT
)
USER = Caller(
    user_id="u-user", email="user@demo.local", name="User", role=Role.USER, account_id=TENANT, tenant_id=TENANT
)


@pytest.fixture
def app(core: Services) -> Services:
    core.app.repo.install(TENANT, AppDefinition.model_validate_json(APP.read_text()))
    return core


def entity(core: Services, name: str) -> Entity:
    return core.app.repo.entity(TENANT, name)


def run_import(core: Services, queue: QueueDriver, text: str, name: str = "companies", **flags: str) -> Job:
    job = start_import(core.app, core.files, DEV, name, text.encode(), "data.csv", flags, "203.0.113.7")
    queue.drain()
    return core.jobs.get(job.id, TENANT)


def by_name(core: Services, name: str) -> dict[str, Any]:
    page = core.app.find(DEV, "companies", {"name": name})
    assert page["total"] == 1, page
    return dict(page["items"][0])


def test_an_import_creates_then_updates_by_the_first_unique_column(app: Services, queue: QueueDriver) -> None:
    text = "name,type,numberOfEmployees,addresses[0].city,addresses[1].city,contactInformation.email\n"
    text += "Imp One,a,10,Paris,Lyon,one@x.io\nImp Two,b,20,,,\nImp Bad,z,30,,,\n"
    job = run_import(app, queue, text)
    assert job.state is JobState.FINISHED
    assert job.results == {"rowsImported": 2, "rowsWithErrors": 1}
    one = by_name(app, "Imp One")
    assert one["type"] == "a" and one["numberOfEmployees"] == 10
    assert [a["city"] for a in one["addresses"]] == ["Paris", "Lyon"]
    assert one["contactInformation"]["email"] == "one@x.io"
    assert any("Row 3" in line.message and "type" in line.message for line in app.jobs.logs(job.id))
    # The same rows again, one changed: updates, no new records, versions move only where values changed
    again = run_import(app, queue, text.replace("Imp Two,b,20", "Imp Two,c,21"))
    assert again.results == {"rowsImported": 2, "rowsWithErrors": 1}
    assert by_name(app, "Imp One")["version"] == one["version"]
    two = by_name(app, "Imp Two")
    assert (two["type"], two["numberOfEmployees"], two["version"]) == ("c", 21, 1)


def test_related_records_are_matched_by_their_unique_field_or_created_and_linked(
    app: Services, queue: QueueDriver
) -> None:
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


def test_bad_headers_flags_and_rights_are_refused_before_any_job(app: Services) -> None:
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


def test_a_replayed_group_and_a_worker_dying_before_its_checkpoint_import_each_row_once(
    app: Services, queue: QueueDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = 450
    text = "name,numberOfEmployees\n" + "".join(f"Crash {i:04d},{i}\n" for i in range(rows))
    job = start_import(app.app, app.files, DEV, "companies", text.encode(), None, {}, None)
    real = ImportRecordsKind.before_commit
    calls = {"n": 0}

    def dying(self: ImportRecordsKind, ctx: Any, job: Job, chunk: Any, outcomes: Any) -> None:
        calls["n"] += 1
        real(self, ctx, job, chunk, outcomes)
        if calls["n"] == 2:  # the second group is written, then the worker dies before its checkpoint
            raise ClientError(
                {"Error": {"Code": "ServiceUnavailable", "Message": "worker killed"}}, "TransactWriteItems"
            )

    monkeypatch.setattr(ImportRecordsKind, "before_commit", dying)
    with pytest.raises(ClientError):
        queue.drain()
    monkeypatch.setattr(ImportRecordsKind, "before_commit", real)
    # SQS hands the chunk out again (here at once, as a duplicate would be): the group is replayed
    queue.sqs.send_message(QueueUrl=queue.url, MessageBody=json.dumps({"job": job.id, "op": "chunk", "chunk": 0}))
    queue.drain()
    done = app.jobs.get(job.id, TENANT)
    assert done.state is JobState.FINISHED, done
    assert done.results == {"rowsImported": rows, "rowsWithErrors": 0}
    found = app.app.find(DEV, "companies", {"name": "like(Crash)", "_size": "1000"})
    assert found["total"] == rows
    assert all(item["version"] == 0 for item in found["items"])  # written once each (versions show from 0)
    assert len(app.app.table_history(DEV, "companies", {"_size": "1000"})["items"]) >= rows


def test_an_export_picks_fields_widens_multi_values_and_reads_back_through_the_import(
    app: Services, queue: QueueDriver
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


def test_export_related_fields_labels_and_bad_requests(app: Services, queue: QueueDriver) -> None:
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
    with pytest.raises(Invalid):  # an export lists records in the order they are read
        start_export(app.app, DEV, "companies", {"_sortType": "asc"}, None)
    with pytest.raises(Forbidden):
        start_export(app.app, USER, "companies", {"taxId": "x"}, None)
