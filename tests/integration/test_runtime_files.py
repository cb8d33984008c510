"""The runtime dialect's files over HTTP (`/runtime/api/files`, `/data/{entity}/{id}/files/{fileId}`): the
spec's samples of Files handling, every listed error, share links that expire, names that are only
metadata, presigned URLs both ways for big files, and the 12-hour sweep of unreferenced uploads.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.stack import Api, LocalStack
from tests.integration.test_runtime_data import BASE, BROWSEZOOM, HEX24, MISSING, call, error, ok

TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
SAMPLE_FILE = "588f9f1eb45fc9000bc1c010"  # the spec's uploaded file (demo: Blogpad's document)
RECORD_FILE = "588fa383b45fc9000bc1c014"  # the spec's record file (demo: Browsezoom's document)
CONTENT = b"this is the content of the file"
HOURS_13 = 13 * 3_600_000


def multipart(filename: str, data: bytes, content_type: str = "text/plain") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def upload(api: Api, token: str, filename: str, data: bytes, content_type: str = "text/plain") -> tuple[int, Any]:
    body, kind = multipart(filename, data, content_type)
    reply = api.call("POST", f"{BASE}/files", body=body, headers={"token": token, "Content-Type": kind})
    return reply.status, reply.json()


def uploaded(api: Api, token: str, filename: str, data: bytes) -> str:
    status, answer = upload(api, token, filename, data)
    assert status == 200, answer
    return str(answer["fileId"])


def download(api: Api, path: str, token: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"token": token} if token else {}
    url = path if path.startswith("http") else BASE + path  # a link as printed, or a path under the API
    reply = api.call("GET", url, headers={"Accept": "application/json", **headers})
    return reply.status, reply.headers, reply.body


def not_followed(api: Api, path: str, token: str) -> tuple[int, str]:
    """A GET whose redirect is not followed: its status and Location."""
    where = urlsplit(api.base)
    conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=60)
    conn.request("GET", urlsplit(path).path if path.startswith("http") else BASE + path, headers={"token": token})
    answer = conn.getresponse()
    answer.read()
    conn.close()
    return answer.status, answer.getheader("Location") or ""


def error_of(status: int, body: bytes, http_status: int, code: str) -> None:
    error(status, json.loads(body), http_status, code)


# The spec's samples -------------------------------------------------------------------
def test_uploading_a_file_answers_its_id_and_link_as_the_spec(api: Api, dev: str) -> None:
    status, answer = upload(api, dev, "test.txt", b"test file in multi-part")
    assert status == 200 and set(answer) == {"fileId", "fileLink"}
    assert answer["fileLink"] == f"{api.base}{BASE}/files/{answer['fileId']}"  # as an export's: absolute
    assert re.match(HEX24, answer["fileId"])
    got, headers, body = download(api, answer["fileLink"], dev)
    assert (got, body) == (200, b"test file in multi-part")
    assert headers["content-disposition"] == "attachment; filename=test.txt"


def test_fetching_a_file_answers_the_specs_sample(api: Api, dev: str) -> None:
    status, headers, body = download(api, f"/files/{SAMPLE_FILE}", dev)
    assert status == 200 and body == CONTENT
    assert headers["content-type"] == "application/force-download"
    assert headers["content-disposition"] == "attachment; filename=file.ext"


def test_fetching_a_record_file_answers_the_specs_sample_to_those_who_read_the_record(
    api: Api, dev: str, user: str
) -> None:
    for token in (dev, user):
        status, headers, body = download(api, f"/data/companies/{BROWSEZOOM}/files/{RECORD_FILE}", token)
        assert (status, body) == (200, CONTENT)
        assert headers["content-type"] == "application/force-download"
        assert headers["content-disposition"] == "attachment; filename=file.ext"
    record = ok(api, "GET", f"/data/companies/{BROWSEZOOM}?_fields=document", dev)
    assert record["document"] == {"id": RECORD_FILE, "name": "file.ext", "contentType": "text/plain"}


def test_sharing_a_file_answers_the_specs_sample_and_the_link_needs_no_token(api: Api, dev: str) -> None:
    answer = ok(api, "PUT", f"/files/{SAMPLE_FILE}/share?ttl=60000", dev)
    assert set(answer) == {"sharedFileId", "sharedFileLink"}
    assert answer["sharedFileLink"] == f"/files/shared/{answer['sharedFileId']}"
    status, headers, body = download(api, answer["sharedFileLink"], None)
    assert (status, body) == (200, CONTENT)
    assert headers["content-disposition"] == "attachment; filename=file.ext"
    # Without a ttl the link lasts the spec's hour
    default = ok(api, "PUT", f"/files/{SAMPLE_FILE}/share", dev)
    assert download(api, default["sharedFileLink"], None)[0] == 200


def test_a_shared_link_downloads_until_its_ttl_then_is_404(api: Api, dev: str) -> None:
    fid = uploaded(api, dev, "short.txt", b"short-lived")
    link = ok(api, "PUT", f"/files/{fid}/share?ttl=1500", dev)["sharedFileLink"]
    status, _, body = download(api, link, None)
    assert (status, body) == (200, b"short-lived")
    time.sleep(1.6)  # waiting for the expiry, nothing more
    status, _, body = download(api, link, None)
    error_of(status, body, 404, "notFound")


# Every listed error ---------------------------------------------------------------------
def test_downloading_by_id_is_for_developers_and_a_missing_file_is_404(api: Api, dev: str, user: str) -> None:
    status, _, body = download(api, f"/files/{SAMPLE_FILE}", user)
    error_of(status, body, 403, "forbidden")
    for missing in (MISSING, "not-an-id"):
        status, _, body = download(api, f"/files/{missing}", dev)
        error_of(status, body, 404, "notFound")
    status, _, body = download(api, f"/files/{SAMPLE_FILE}", None)
    error_of(status, body, 401, "unauthorized")


def test_record_file_errors_404_and_403(api: Api, dev: str, user: str, sub: str) -> None:
    # The entity, the record or the file cannot be found (a file the record does not reference is not its)
    for path in (
        f"/data/nope/{BROWSEZOOM}/files/{RECORD_FILE}",
        f"/data/companies/{MISSING}/files/{RECORD_FILE}",
        f"/data/companies/{BROWSEZOOM}/files/{SAMPLE_FILE}",
        f"/data/companies/{BROWSEZOOM}/files/{MISSING}",
    ):
        status, _, body = download(api, path, dev)
        error_of(status, body, 404, "notFound")
    # No permission: sub may not read companies at all; the sales user may not read `contract`
    status, _, body = download(api, f"/data/companies/{BROWSEZOOM}/files/{RECORD_FILE}", sub)
    error_of(status, body, 403, "forbidden")
    fid = uploaded(api, dev, "contract.pdf", b"%PDF-1.4 secret")
    company = ok(api, "POST", "/data/companies", dev, {"name": f"Contract {uuid.uuid4().hex[:10]}", "contract": fid})
    status, _, body = download(api, f"/data/companies/{company['id']}/files/{fid}", user)
    error_of(status, body, 403, "forbidden")
    assert download(api, f"/data/companies/{company['id']}/files/{fid}", dev)[2] == b"%PDF-1.4 secret"


def test_share_errors(api: Api, dev: str, user: str) -> None:
    for ttl in ("soon", "%C2%B2"):  # "²": a digit to str.isdigit(), not to int() (it was a 500)
        status, answer = call(api, "PUT", f"/files/{SAMPLE_FILE}/share?ttl={ttl}", dev)
        error(status, answer, 400, "validationErrors")
        assert answer["errors"][0]["field"] == "ttl"
    status, answer = call(api, "PUT", f"/files/{MISSING}/share", dev)
    error(status, answer, 404, "notFound")
    status, answer = call(api, "PUT", f"/files/{SAMPLE_FILE}/share", user)
    error(status, answer, 403, "forbidden")
    for shared in (MISSING, "nope"):
        status, _, body = download(api, f"/files/shared/{shared}", None)
        error_of(status, body, 404, "notFound")


def test_an_upload_must_be_multipart_with_a_file(api: Api, dev: str) -> None:
    # Neither multipart nor JSON: a media type the route does not read (415); multipart without a file: a 400.
    reply = api.call("POST", f"{BASE}/files", body=b"plain", headers={"token": dev, "Content-Type": "text/plain"})
    error(reply.status, reply.json(), 415, "unsupportedMediaType")
    body = b"--b\r\nContent-Disposition: form-data; name=other\r\n\r\nx\r\n--b--\r\n"
    headers = {"token": dev, "Content-Type": "multipart/form-data; boundary=b"}
    reply = api.call("POST", f"{BASE}/files", body=body, headers=headers)
    error(reply.status, reply.json(), 400, "validationErrors")
    status, answer = upload(api, "", "x.txt", b"x")
    error(status, answer, 401, "unauthorized")


# Names are metadata ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b.csv"])
def test_a_file_name_is_only_metadata(api: Api, dev: str, local: LocalStack, name: str) -> None:
    fid = uploaded(api, dev, name, b"harmless")
    status, headers, body = download(api, f"/files/{fid}", dev)
    assert (status, body) == (200, b"harmless")
    assert headers["content-disposition"] == f"attachment; filename={name.replace('/', '_')}"
    files = local.core.files
    keys = [o["Key"] for o in files.s3.list_objects_v2(Bucket=files.bucket, Prefix="files/")["Contents"]]
    assert f"files/app/{TENANT}/{fid}" in keys
    assert not [k for k in keys if "passwd" in k or "b.csv" in k or ".." in k]


# Big files: presigned URLs both ways -------------------------------------------------------
def test_a_big_file_goes_up_and_down_through_presigned_urls(api: Api, dev: str) -> None:
    data = bytes(range(256)) * (17 * 1024 + 5)  # 4.25 MiB: above what a Lambda request or response carries
    status, answer = upload(api, dev, "big.bin", data, "application/octet-stream")
    error(status, answer, 400, "validationErrors")  # too big inline: the message says how instead

    asked = ok(api, "POST", "/files", dev, {"fileName": "big.bin", "contentType": "application/octet-stream"})
    assert asked["fileLink"] == f"{api.base}{BASE}/files/{asked['fileId']}" and asked["uploadMethod"] == "PUT"
    status, _, body = download(api, asked["fileLink"], dev)
    error_of(status, body, 404, "notFound")  # nothing uploaded yet
    put = urllib.request.Request(asked["uploadUrl"], data=data, method="PUT", headers=asked["uploadHeaders"])  # noqa: S310
    with urllib.request.urlopen(put, timeout=60) as done:  # noqa: S310 - the local emulator
        assert done.status == 200

    status, location = not_followed(api, asked["fileLink"], dev)
    assert status == 302 and "Signature=" in location
    status, _, body = download(api, asked["fileLink"], dev)  # followed, as curl -L does
    assert status == 200 and body == data


# Records reference files; the sweep removes the others after 12 hours ----------------------
def test_records_reference_files_and_the_sweep_removes_only_unreferenced_ones(
    api: Api, dev: str, local: LocalStack
) -> None:
    # Given an upload a record references (set on create, then replaced on update) and two no record takes
    kept, replaced, orphan = (uploaded(api, dev, f"{n}.txt", n.encode()) for n in ("kept", "replaced", "orphan"))
    created = ok(api, "POST", "/data/companies", dev, {"name": f"Files {uuid.uuid4().hex[:10]}", "document": replaced})
    assert created["document"] == {"id": replaced, "name": "replaced.txt", "contentType": "text/plain"}
    updated = ok(api, "PUT", f"/data/companies/{created['id']}", dev, {"document": {"id": kept}})
    assert updated["document"]["id"] == kept
    # ...and a write naming a file that does not exist is a 400 on that field
    status, answer = call(
        api, "POST", "/data/companies", dev, {"name": f"F {uuid.uuid4().hex[:10]}", "document": MISSING}
    )
    error(status, answer, 400, "validationErrors")
    assert answer["errors"][0]["field"] == "document"

    # When the hourly sweep runs 13 hours from now (the scheduled function's service, called directly)
    swept = local.core.app.files.sweep(now=int(time.time() * 1000) + HOURS_13)

    # Then the unreferenced upload is gone, the referenced ones stay, and so do the demo's files
    assert f"{TENANT}/{orphan}" in swept.deleted
    status, _, body = download(api, f"/files/{orphan}", dev)
    error_of(status, body, 404, "notFound")
    for fid in (kept, replaced, SAMPLE_FILE, RECORD_FILE):
        assert download(api, f"/files/{fid}", dev)[0] == 200, fid
    assert download(api, f"/data/companies/{created['id']}/files/{kept}", dev)[2] == b"kept"
