"""The runtime dialect's files over HTTP (`/runtime/api/files`, `/data/{entity}/{id}/files/{fileId}`): the
spec's samples of Files handling, every listed error, share links that expire, names that are only
metadata, presigned URLs both ways for big files, and the 12-hour sweep of unreferenced uploads.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
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
INLINE = 4 * 1024 * 1024  # the largest file a request or an answer carries inline (a Lambda's 6 MB, base64)


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
def put_to(url: str, data: bytes, headers: dict[str, str]) -> int:
    """A PUT to a presigned S3 URL, as a client does it: no token, the headers the API gave."""
    put = urllib.request.Request(url, data=data, method="PUT", headers=headers)  # noqa: S310
    with urllib.request.urlopen(put, timeout=60) as done:  # noqa: S310 - the local emulator
        return int(done.status)


def follow(api: Api, link: str, token: str) -> tuple[int, Any]:
    """A POST to a link as the API printed it (an absolute URL)."""
    reply = api.call("POST", link, headers={"token": token})
    return reply.status, reply.json()


def test_a_big_file_goes_up_and_down_through_presigned_urls(api: Api, dev: str, user: str) -> None:
    data = bytes(range(256)) * (INLINE // 256) + b"!"  # one byte above what a Lambda request or response carries
    status, answer = upload(api, dev, "big.bin", data, "application/octet-stream")
    error(status, answer, 400, "validationErrors")  # too big inline: the message says how instead

    # Given an upload URL, asked for with the file's size
    asked = ok(
        api,
        "POST",
        "/files",
        dev,
        {"fileName": "big.bin", "contentType": "application/octet-stream", "size": len(data)},
    )
    fid = asked["fileId"]
    link = f"{api.base}{BASE}/files/{fid}"  # absolute, as an export's fileLink
    assert asked["fileLink"] == link and asked["completeLink"] == f"{link}/complete"
    assert asked["uploadMethod"] == "PUT" and asked["expiresIn"] == 900
    assert asked["uploadHeaders"] == {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(len(data)),
        "If-None-Match": "*",
    }
    assert f"/files/app/{TENANT}/{fid}?" in asked["uploadUrl"]  # the key is the id the API chose
    error(*follow(api, asked["completeLink"], dev), 400, "validationErrors")  # no bytes yet

    # When the bytes are PUT there: still no file until the caller (and only the caller) completes it
    assert put_to(asked["uploadUrl"], data, asked["uploadHeaders"]) == 200
    status, _, body = download(api, asked["fileLink"], dev)
    error_of(status, body, 404, "notFound")
    error(*follow(api, asked["completeLink"], user), 404, "notFound")
    for _ in range(2):  # completing again answers the same file
        assert follow(api, asked["completeLink"], dev) == (200, {"fileId": fid, "fileLink": link})
    with pytest.raises(urllib.error.HTTPError) as again:  # the URL writes once: the file's bytes stay
        put_to(asked["uploadUrl"], b"x" * len(data), asked["uploadHeaders"])
    assert again.value.code == 412

    # Then it downloads by a redirect to S3, followed as curl -L does...
    status, location = not_followed(api, asked["fileLink"], dev)
    assert status == 302 and "X-Amz-Signature=" in location
    status, headers, body = download(api, asked["fileLink"], dev)
    assert status == 200 and body == data
    assert headers["content-disposition"] == "attachment; filename=big.bin"
    # ...and a client that says it follows no redirect gets a 406 saying why, not an empty 302
    status, _, body = download(api, f"{asked['fileLink']}?_redirect=false", dev)
    error_of(status, body, 406, "notAcceptable")
    assert "_redirect=false" in json.loads(body)["message"]
    assert download(api, f"/files/{SAMPLE_FILE}?_redirect=false", dev)[:3:2] == (200, CONTENT)  # small: as ever
    status, _, body = download(api, f"/files/{SAMPLE_FILE}?_redirect=maybe", dev)
    error_of(status, body, 400, "validationErrors")


def test_a_presigned_upload_takes_only_its_declared_size(api: Api, dev: str) -> None:
    for size in (None, -1, 1 << 31, "5"):  # no size, or none a presigned upload may take
        status, answer = call(api, "POST", "/files", dev, {"fileName": "x.bin", "size": size})
        error(status, answer, 400, "validationErrors")
        assert answer["errors"][0]["field"] == "size"
    asked = ok(api, "POST", "/files", dev, {"fileName": "x.bin", "size": 10})
    # S3 refuses this PUT (the signed Content-Length); the emulator checks no signature: completing does
    assert put_to(asked["uploadUrl"], b"eleven byte", {"Content-Type": "application/octet-stream"}) == 200
    status, answer = follow(api, asked["completeLink"], dev)
    error(status, answer, 400, "validationErrors")  # 11 bytes, not the 10 declared: discarded
    error(*follow(api, asked["completeLink"], dev), 404, "notFound")


# Records reference files; the sweep removes the others after 12 hours ----------------------
def test_records_reference_files_and_the_sweep_removes_only_unreferenced_ones(
    api: Api, dev: str, local: LocalStack
) -> None:
    # Given an upload a record references (set on create, then replaced on update) and two no record takes
    kept, replaced, orphan = (uploaded(api, dev, f"{n}.txt", n.encode()) for n in ("kept", "replaced", "orphan"))
    never_completed = ok(api, "POST", "/files", dev, {"fileName": "later.bin", "size": 3})["fileId"]
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
    assert {f"{TENANT}/{orphan}", f"{TENANT}/{never_completed}"} <= set(swept.deleted)
    error(*call(api, "POST", f"/files/{never_completed}/complete", dev), 404, "notFound")
    status, _, body = download(api, f"/files/{orphan}", dev)
    error_of(status, body, 404, "notFound")
    for fid in (kept, replaced, SAMPLE_FILE, RECORD_FILE):
        assert download(api, f"/files/{fid}", dev)[0] == 200, fid
    assert download(api, f"/data/companies/{created['id']}/files/{kept}", dev)[2] == b"kept"
