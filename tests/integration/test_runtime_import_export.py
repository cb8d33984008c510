"""Runtime import and export over HTTP: the spec's samples and its error rows, through the local stack."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

from tests.integration.stack import Api
from tests.integration.test_runtime_actions import finished
from tests.integration.test_runtime_data import BASE, call, error, ok


def multipart(content: bytes, filename: str = "companies.csv", field: str = "file") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    body += content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def upload(api: Api, path: str, token: str | None, content: bytes, **kw: Any) -> tuple[int, Any]:
    body, content_type = multipart(content, **kw)
    headers = {"Content-Type": content_type, **({"token": token} if token else {})}
    reply = api.call("POST", BASE + path, body=body, headers=headers)
    try:
        return reply.status, reply.json()
    except ValueError:
        return reply.status, reply.body


def download(api: Api, link: str, token: str) -> list[list[str]]:
    reply = api.call("GET", link, headers={"token": token, "Accept": "*/*"})
    assert reply.status == 200, (reply.status, reply.body[:300])
    return list(csv.reader(io.StringIO(reply.body.decode())))


def test_the_import_sample_creates_the_companies_and_a_second_import_updates_them(api: Api, dev: str) -> None:
    tag = uuid.uuid4().hex[:6]
    rows = f"name,type\ntest1-{tag},a\ntest2-{tag},b\ntest3-{tag},c\n".encode()
    status, ref = upload(api, "/data/companies/import", dev, rows)
    assert status == 200 and set(ref) == {"jobLink", "jobId"}, ref
    job = finished(api, dev, ref)
    assert (job["status"], job["type"], job["results"]) == (
        "FINISHED",
        "IMPORT_RECORDS",
        {"rowsImported": 3, "rowsWithErrors": 0},
    )
    found = ok(api, "GET", f"/data/companies?name=like(-{tag})&_fields=name,type&_sortField=name&_sortType=asc", dev)
    assert [(c["name"], c["type"]) for c in found["items"]] == [
        (f"test{i}-{tag}", t) for i, t in ((1, "a"), (2, "b"), (3, "c"))
    ]
    # The same names again with other types: updated, not added
    status, ref = upload(api, "/data/companies/import", dev, rows.replace(b",a\n", b",c\n"))
    assert finished(api, dev, ref)["results"] == {"rowsImported": 3, "rowsWithErrors": 0}
    again = ok(api, "GET", f"/data/companies?name=like(-{tag})&_fields=type,version&_sortField=name&_sortType=asc", dev)
    assert again["total"] == 3 and again["items"][0]["type"] == "c" and again["items"][0]["version"] == 1


def test_import_rows_with_errors_are_counted_and_logged(api: Api, dev: str) -> None:
    tag = uuid.uuid4().hex[:6]
    _status, ref = upload(
        api, "/data/companies/import", dev, f"name,numberOfEmployees\nok-{tag},3\nbad-{tag},many\n".encode()
    )
    job = finished(api, dev, ref)
    assert job["status"] == "FINISHED" and job["hasErrors"] is True
    assert job["results"] == {"rowsImported": 1, "rowsWithErrors": 1}
    logs = ok(api, "GET", f"/status/jobs/{ref['jobId']}/logs", dev)
    assert any("Row 2" in str(line) and "numberOfEmployees" in str(line) for line in logs.get("items", logs))


def test_import_error_rows(api: Api, dev: str, user: str, sub: str) -> None:
    content = b"name\nx\n"
    error(*upload(api, "/data/contacts/import", sub, b"firstName\nx\n"), 403, "forbidden")  # sub reads contacts only
    error(*upload(api, "/data/nope/import", dev, content), 404, "notFound")
    error(*upload(api, "/data/companies/import", None, content), 401, "unauthorized")
    status, answer = upload(api, "/data/companies/import", dev, b"name,nope,addresses.city\nx,y,z\n")
    error(status, answer, 400, "validationErrors")
    assert {e["field"] for e in answer["errors"]} == {"nope", "addresses.city"}
    error(*upload(api, "/data/companies/import?_skipHistory=true", user, content), 403, "forbidden")
    error(*upload(api, "/data/companies/import?_lowPriority=maybe", dev, content), 400, "validationErrors")
    reply = api.call(
        "POST", BASE + "/data/companies/import", body=content, headers={"token": dev, "Content-Type": "text/csv"}
    )
    assert reply.status == 415 and json.loads(reply.body)["code"] == "unsupportedMediaType", reply.body


def test_the_export_samples_answer_a_job_whose_file_downloads(api: Api, dev: str) -> None:
    status, ref = call(api, "PUT", "/data/companies/export?type=b&_size=50", dev)
    assert status == 200 and set(ref) == {"jobLink", "jobId"}, ref
    job = finished(api, dev, ref)
    assert (job["status"], job["type"]) == ("FINISHED", "EXPORT_RECORDS"), job
    results = job["results"]
    total = ok(api, "GET", "/data/companies?type=b&_size=1", dev)["total"]
    assert results["recordsExported"] == min(50, total) and results["fileLink"].endswith(results["fileId"])
    lines = download(api, results["fileLink"], dev)
    assert lines[0][:3] == ["name", "state", "type"] and "id" not in lines[0] and len(lines) == 1 + min(50, total)
    assert all(row[2] == "b" for row in lines[1:])

    status, ref = call(
        api, "PUT", "/data/companies/export?type=b&_size=50&_fields=name,address.state,mainContact.email", dev
    )
    job = finished(api, dev, ref)
    assert job["status"] == "FINISHED", job
    assert download(api, job["results"]["fileLink"], dev)[0] == ["name", "address.state", "mainContact.email"]


def test_export_error_rows(api: Api, dev: str, sub: str) -> None:
    error(*call(api, "PUT", "/data/companies/export?_size=1000001", dev), 400, "validationErrors")
    error(*call(api, "PUT", "/data/companies/export?_fields=nope", dev), 400, "validationErrors")
    error(*call(api, "PUT", "/data/companies/export?numberOfEmployees=abc", dev), 400, "validationErrors")
    error(*call(api, "PUT", "/data/companies/export", sub), 403, "forbidden")
    error(*call(api, "PUT", "/data/nope/export", dev), 404, "notFound")
    error(*call(api, "PUT", "/data/companies/export", None), 401, "unauthorized")


def test_a_file_uploaded_before_imports_by_its_id(api: Api, dev: str) -> None:
    """The way for a file above API Gateway's payload limit: upload it (POST /files, or its presigned URL),
    then import it by id."""
    tag = uuid.uuid4().hex[:6]
    status, uploaded = upload(api, "/files", dev, f"name,type\nbyid1-{tag},a\nbyid2-{tag},b\n".encode())
    assert status == 200, uploaded
    status, ref = call(api, "POST", "/data/companies/import", dev, {"fileId": uploaded["fileId"]})
    assert status == 200, ref
    assert finished(api, dev, ref)["results"] == {"rowsImported": 2, "rowsWithErrors": 0}
    assert ok(api, "GET", f"/data/companies?name=like(-{tag})", dev)["total"] == 2
    error(*call(api, "POST", "/data/companies/import", dev, {"fileId": "0" * 24}), 404, "notFound")
    error(*call(api, "POST", "/data/companies/import", dev, {"nope": 1}), 400, "validationErrors")


def test_an_uploaded_file_that_is_empty_or_not_utf8_is_a_400_to_import_by_id(api: Api, dev: str) -> None:
    for content in (b"", "name,type\nCaf\u00e9,a\n".encode("latin-1")):  # both were a 500
        status, uploaded = upload(api, "/files", dev, content)
        assert status == 200, uploaded
        status, answer = call(api, "POST", "/data/companies/import", dev, {"fileId": uploaded["fileId"]})
        assert status == 400, (content, answer)
