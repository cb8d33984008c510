"""Files as side doors: names that look like paths (or headers), file ids used where they were not
given, share links, what a download is served as, and CSV names in the Tasks and gateway dialects.

A file name is metadata: it never picks a place, never splits a header, and is shown back with its
path separators replaced. A file held by a field its reader may not read is not reachable by its id
through another door: another record's file field, an import, a share link id.
"""

from __future__ import annotations

import uuid

import pytest

from tests.security.actors import (
    BASE,
    DEMO_SUB,
    World,
    finished,
    leaks,
    ok,
    runtime,
    send,
    upload,
    uploaded,
    world_fixture,  # noqa: F401 - the fixture `world`
)

NAMES = [
    "../../etc/passwd",
    "/etc/passwd",
    "..\\..\\windows\\win.ini",
    "C:\\boot.ini",
    "\u2215etc\u2215passwd",  # a division slash, which looks like one
    "..%2F..%2Fescape.txt",
    "\u202etxt.exe",  # a right-to-left override
    "名前 (1).txt",
    "a\r\nSet-Cookie: pwned=1\r\nX: .txt",
    "nul\x00byte.txt",
    "..",
    "x" * 400,
]


@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_a_file_name_is_metadata_and_cannot_split_a_header(world: World, name: str) -> None:
    reply = upload(world.api, world.dev, name, b"harmless")
    assert reply.status == 200, reply.body
    answer = reply.json()
    assert len(answer["fileId"]) == 24 and answer["fileLink"] == f"{world.api.base}{BASE}/files/{answer['fileId']}"
    status, body = runtime(world.api, "GET", f"/files/{answer['fileId']}", world.dev)
    assert (status, body) == (200, b"harmless")
    got = world.api.call("GET", f"{BASE}/files/{answer['fileId']}", headers=world.dev.runtime)
    shown = got.headers["content-disposition"]
    assert shown.startswith("attachment;") and "set-cookie" not in got.headers, got.headers
    assert not any(c in shown for c in "/\\\r\n\x00"), shown
    assert len(shown) < 2000


def test_a_presigned_upload_takes_the_name_as_metadata_too(world: World) -> None:
    status, answer = runtime(
        world.api,
        "POST",
        "/files",
        world.dev,
        {"fileName": "../../etc/passwd", "contentType": "text/html\r\nX: y", "size": 1},
    )
    assert status == 200 and len(answer["fileId"]) == 24, answer
    assert answer["uploadHeaders"]["Content-Type"] == "application/octet-stream", answer
    assert "passwd" not in answer["uploadUrl"].split("?")[0], answer["uploadUrl"]


def test_a_download_is_never_served_as_a_page(world: World) -> None:
    page = b"<html><script>alert(document.cookie)</script></html>"
    file_id = uploaded(world.api, world.dev, "page.html", page)
    company = ok(
        world.api, "POST", "/data/companies", world.dev, {"name": f"page-{uuid.uuid4().hex}", "document": file_id}
    )
    shared = ok(world.api, "PUT", f"/files/{file_id}/share", world.dev)
    for path, actor in [
        (f"/files/{file_id}", world.dev),
        (f"/data/companies/{company['id']}/files/{file_id}", world.user),
        (f"/files/shared/{shared['sharedFileId']}", None),
    ]:
        got = world.api.call("GET", BASE + path, headers=actor.runtime if actor else {})
        assert got.status == 200 and got.body == page, (path, got.status)
        assert "html" not in got.headers["content-type"], got.headers
        assert got.headers["content-disposition"].startswith("attachment"), got.headers


def test_a_file_id_opens_nothing_without_a_token_and_a_share_link_is_not_a_file_id(world: World) -> None:
    for path in (f"/files/{world.secret.document_id}", f"/files/shared/{world.secret.document_id}"):
        status, answer = runtime(world.api, "GET", path, None)
        assert status in (401, 404), (path, status)
        assert answer != b"a document the user may read"
    shared = ok(world.api, "PUT", f"/files/{world.secret.document_id}/share", world.dev)
    assert shared["sharedFileId"] != world.secret.document_id
    assert runtime(world.api, "GET", f"/files/{shared['sharedFileId']}", world.dev)[0] == 404
    for actor in (world.user, world.sub):
        status, answer = runtime(world.api, "PUT", f"/files/{world.secret.contract_id}/share", actor)
        assert status == 403, answer
        status, answer = runtime(world.api, "GET", f"/files/{world.secret.contract_id}", actor)
        assert status == 403 and not leaks(answer, world.secret.contract_row), answer


@pytest.mark.parametrize("segment", ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "contract", "x" * 65])
def test_a_record_file_path_takes_only_a_file_id(world: World, segment: str) -> None:
    path = f"/data/companies/{world.secret.company_id}/files/{segment}"
    status, answer = runtime(world.api, "GET", path, world.user)
    assert status in (400, 404), (status, answer)
    assert not leaks(answer, world.secret.contract_row)


# Side doors to a hidden file -----------------------------------------------------------------------
def test_a_hidden_fields_file_cannot_be_moved_into_a_readable_field(world: World) -> None:
    secret = world.secret
    status, made = runtime(
        world.api,
        "POST",
        "/data/companies",
        world.user,
        {"name": f"carrier-{uuid.uuid4().hex}", "document": secret.contract_id},
    )
    if status == 200:
        status, body = runtime(world.api, "GET", f"/data/companies/{made['id']}/files/{secret.contract_id}", world.user)
        assert status in (403, 404) and not leaks(body, secret.contract_row), (status, body)
    else:
        assert status in (400, 403), made


def test_an_import_by_file_id_reads_no_file_its_caller_may_not_read(world: World) -> None:
    secret = world.secret
    status, ref = runtime(world.api, "POST", "/data/companies/import", world.user, {"fileId": secret.contract_id})
    if status == 200:
        finished(world.api, world.user, ref["jobId"])
    found = ok(world.api, "GET", f"/data/companies?name={secret.contract_row}", world.user)
    assert found["total"] == 0, found


def test_a_file_of_another_user_in_a_field_it_holds_stays_with_its_record(world: World) -> None:
    # The way the files are meant to go: the reader downloads the readable field's file through its record
    secret = world.secret
    status, body = runtime(
        world.api, "GET", f"/data/companies/{secret.company_id}/files/{secret.document_id}", world.user
    )
    assert status == 200 and body == b"a document the user may read"


# Names in the other dialects -------------------------------------------------------------------------
def test_a_tasks_file_name_and_csv_name_are_not_paths(world: World) -> None:
    api, sub = world.api, world.sub
    base = f"/v2/accounts/{DEMO_SUB}/tasks"
    made = send(
        api,
        "PUT",
        f"{base}?category=number_management&action=add&file_name=..%2F..%2Fetc%2Fpasswd",
        sub.tasks,
        b"number,account_id\n+15550001111," + DEMO_SUB.encode() + b"\n",
        "text/csv",
    )
    assert made.status == 200, made.body
    task_id = made.json()["data"]["_read_only"]["id"]
    got = api.call("GET", f"{base}/{task_id}?csv_name=in.csv", headers={**sub.tasks, "Accept": "text/csv"})
    assert got.status == 200 and "passwd" not in got.headers["content-disposition"], got.headers
    for name in ("../../etc/passwd", "..%2Fin.csv", "out.csv%00", "IN.CSV"):
        reply = api.call("GET", f"{base}/{task_id}?csv_name={name}", headers={**sub.tasks, "Accept": "text/csv"})
        assert reply.status in (400, 404), (name, reply.status, reply.body[:200])
    api.call("DELETE", f"{base}/{task_id}", headers=sub.tasks)


def test_a_gateway_import_files_name_is_metadata(world: World) -> None:
    for query, body, kind in (
        ("?name=..%2F..%2Fetc%2Fpasswd", b"field1\nx\n", "text/csv"),
        ("?name=%2Fabsolute.csv", b"field1\nx\n", "text/csv"),
    ):
        reply = send(world.api, "POST", f"/gateway/import/v1/files{query}", world.dev.gateway, body, kind)
        assert reply.status == 201, reply.body
        answer = reply.json()
        assert isinstance(answer["id"], int) and answer["id"] > 0, answer
