"""Files: metadata in DynamoDB, bytes in S3, big files composed by streaming; an app's uploads and their
sweep; the app's logs read by time."""

from __future__ import annotations

import urllib.parse

import pytest
from backroom.app.files import disposition
from backroom.app.logs import LogLine, log_query
from backroom.clock import now_ms
from backroom.errors import Invalid
from backroom.records import Schema
from backroom.wiring import Core


def test_a_file_composed_from_parts_bigger_than_one_upload_part_is_exact(core: Core) -> None:
    files = core.files
    parts = [bytes([65 + i]) * (4 * 1024 * 1024 + i) for i in range(3)]  # 12 MiB in all: a multipart upload
    for i, part in enumerate(parts):
        files.put_scratch("job/x", f"parts/{i:010d}.csv", part)

    stored = files.compose("job/x", "out.csv", b"header\n", "parts/")
    files.delete_scratch("job/x", "parts/")

    expected = b"header\n" + b"".join(parts)
    assert stored.size == len(expected)
    assert files.read(stored) == expected
    assert [f.name for f in files.of_owner("job/x")] == ["out.csv"]
    url = urllib.parse.urlparse(files.download_url(stored, "a_b_out.csv"))
    assert url.path.endswith("/files/job/x/out.csv") and "Signature=" in url.query


def test_deleting_an_owners_files_removes_bytes_and_metadata(core: Core) -> None:
    core.files.put("job/y", "in.csv", b"a\n1\n")
    core.files.put_scratch("job/y", "parts/0000000000.csv", b"1\n")
    core.files.delete_all("job/y")
    assert core.files.of_owner("job/y") == []
    assert core.files.get("job/y", "in.csv") is None


# An app's files: uploads, references and the 12-hour sweep --------------------------------------
TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
HOUR = 3_600_000


def _company_schema() -> Schema:
    return Schema.model_validate(
        {
            "name": "docs",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "document", "type": "file"},
                {"name": "pages", "type": "group", "multi": True, "fields": [{"name": "scan", "type": "file"}]},
            ],
        }
    )


def test_a_file_name_is_metadata_never_a_key(core: Core) -> None:
    files = core.app.files
    stored = files.store.upload(
        TENANT, "5f00000000000000000000aa", "../../etc/passwd", b"x", "text/plain", uploaded_by="u"
    )
    assert stored.key == f"files/app/{TENANT}/5f00000000000000000000aa"
    assert stored.filename == "../../etc/passwd"
    assert disposition("a/b.csv") == "attachment; filename=a_b.csv"
    assert disposition("file.ext") == "attachment; filename=file.ext"
    assert disposition('rés "q".txt').startswith("attachment; filename=\"r_s 'q'.txt\"; filename*=UTF-8''r%C3%A9s")


def test_the_sweep_removes_unreferenced_uploads_after_12_hours_and_keeps_referenced_ones(core: Core) -> None:
    # Given three uploads 13 hours old, one referenced by a record, and a fresh one
    files = core.app.files
    old = now_ms() - 13 * HOUR
    for fid in ("5f0000000000000000000001", "5f0000000000000000000002", "5f0000000000000000000003"):
        files.store.upload(TENANT, fid, f"{fid}.txt", b"bytes", "text/plain", uploaded_by="u", at=old)
    files.store.upload(TENANT, "5f0000000000000000000004", "new.txt", b"bytes", "text/plain", uploaded_by="u")
    schema = core.records.define(TENANT, _company_schema())
    values, ids = files.attach(TENANT, schema, {"title": "t", "pages": [{"scan": "5f0000000000000000000002"}]})
    assert ids == ["5f0000000000000000000002"] and files.reference(TENANT, ids) == ids
    core.records.create(TENANT, schema, values)
    # ...and one whose record write failed: released, it waits for the sweep again
    assert files.reference(TENANT, ["5f0000000000000000000003"]) == ["5f0000000000000000000003"]
    files.release(TENANT, ["5f0000000000000000000003"])

    # When the hourly sweep runs
    swept = files.sweep()

    # Then the old unreferenced uploads are gone, bytes and metadata; the referenced and the fresh stay
    assert sorted(swept.deleted) == [f"{TENANT}/5f0000000000000000000001", f"{TENANT}/5f0000000000000000000003"]
    assert files.store.app_file(TENANT, "5f0000000000000000000001") is None
    assert files.store.app_file(TENANT, "5f0000000000000000000002") is not None
    assert files.store.app_file(TENANT, "5f0000000000000000000004") is not None
    keys = [o["Key"] for o in core.files.s3.list_objects_v2(Bucket=core.files.bucket)["Contents"]]
    assert f"files/app/{TENANT}/5f0000000000000000000001" not in keys
    # ...and a record can no longer take a swept file: a 400 on its field
    with pytest.raises(Invalid) as refused:
        files.attach(TENANT, schema, {"document": "5f0000000000000000000001"})
    assert refused.value.errors[0].field == "document"
    # ...a second sweep finds nothing left to do (the markers went with the files)
    assert files.sweep().deleted == []


def test_a_file_the_sweep_takes_first_is_refused_to_the_record_write(core: Core) -> None:
    files = core.app.files
    files.store.upload(TENANT, "5f0000000000000000000009", "a.txt", b"a", "text/plain", uploaded_by="u")
    assert files.store.remove_app_file(TENANT, "5f0000000000000000000009")
    with pytest.raises(Invalid):
        files.reference(TENANT, ["5f0000000000000000000009"])
    # A referenced file is never removed
    files.store.upload(TENANT, "5f000000000000000000000a", "b.txt", b"b", "text/plain", uploaded_by="u")
    files.reference(TENANT, ["5f000000000000000000000a"])
    assert not files.store.remove_app_file(TENANT, "5f000000000000000000000a")


# The app's logs ---------------------------------------------------------------------------------
def test_log_periods_are_utc_days_or_the_last_minutes_hours_days_weeks_or_months() -> None:
    now = 1_764_288_000_000 + 5 * HOUR  # 2025-11-28 05:00 UTC
    midnight = 1_764_288_000_000
    assert log_query({"period": "today", "from": "1", "to": "2"}, now).since == midnight  # period wins
    yesterday = log_query({"period": "yesterday"}, now)
    assert (yesterday.since, yesterday.until) == (midnight - 24 * HOUR, midnight - 1)
    week = log_query({"period": "lastWeek"}, now)
    assert (week.since, week.until) == (now - 7 * 24 * HOUR, now)
    assert log_query({"period": "last3Hours"}, now).since == now - 3 * HOUR
    with pytest.raises(Invalid):
        log_query({"period": "fortnight"}, now)


def test_logs_are_read_newest_first_across_hours_and_shards_with_filters_and_paging(core: Core) -> None:
    logs = core.app.logs
    start = now_ms() - 3 * HOUR
    lines = [
        LogLine(
            message=f"line {i}", level="ERROR" if i % 3 == 0 else "INFO", user=f"u{i % 2}@x.io", at=start + i * 60_000
        )
        for i in range(150)
    ]
    logs.add(TENANT, lines)

    everything = logs.find(TENANT, log_query({}, now_ms()))
    assert everything["total"] == 150 and everything["offset"] == 20
    stamps = [i["timestamp"] for i in everything["items"]]
    assert stamps == sorted(stamps, reverse=True) and everything["items"][0]["message"] == "line 149"

    errors = logs.find(
        TENANT, log_query({"level": "error", "userEmail": "U1@", "_size": "5", "_offset": "5"}, now_ms())
    )
    expected = [f"line {i}" for i in range(149, -1, -1) if i % 3 == 0 and i % 2 == 1]
    assert errors["total"] == len(expected) and [i["message"] for i in errors["items"]] == expected[5:10]
    assert set(errors["items"][0]) == {
        "id",
        "type",
        "subType",
        "level",
        "message",
        "userEmail",
        "adminUserEmail",
        "timestamp",
        "ip",
    }

    window = log_query(
        {"from": str(start + 10 * 60_000), "to": str(start + 19 * 60_000), "message": "LINE 1"}, now_ms()
    )
    assert [i["message"] for i in logs.find(TENANT, window)["items"]] == [f"line {i}" for i in range(19, 9, -1)]
    with pytest.raises(Invalid):
        log_query({"level": "LOUD"}, now_ms())
    with pytest.raises(Invalid):
        log_query({"_size": "0"}, now_ms())


def test_a_log_query_reads_a_bounded_number_of_lines(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = core.app.logs
    start = now_ms() - HOUR
    logs.add(TENANT, [LogLine(message=f"bounded {i}", at=start + i) for i in range(30)])
    monkeypatch.setattr("backroom.app.logs.MAX_COUNTED", 5)
    monkeypatch.setattr("backroom.app.logs.MAX_READ", 10)
    # A full page: the total counts the lines read so far, and the offset says more follow
    page = logs.find(TENANT, log_query({"_size": "2"}, now_ms()))
    assert [i["message"] for i in page["items"]] == ["bounded 29", "bounded 28"]
    assert page["total"] == 5 and page["offset"] == 2
    # A page the bounded read cannot fill is the caller's to narrow
    with pytest.raises(Invalid):
        logs.find(TENANT, log_query({"message": "nothing like it"}, now_ms()))


def test_a_user_shares_files_it_uploaded_or_reads_in_a_record_and_no_other(core: Core) -> None:
    from backroom.errors import Forbidden
    from backroom.identity.models import Caller, Role

    from infra.demo.load import demo_app

    def caller(email: str, role: Role = Role.USER) -> Caller:
        return Caller(user_id=email, email=email, name=email, role=role, account_id=TENANT, tenant_id=TENANT)

    dev, user, stranger = caller("dev@demo.local", Role.DEVELOPER), caller("user@demo.local"), caller("x@demo.local")
    core.app.repo.install(TENANT, demo_app(listing_members=True))  # user@demo.local: Sales (contract hidden)
    files = core.app.files
    document, contract, own = (
        files.upload(who, f"{n}.pdf", "application/pdf", n.encode()).name
        for who, n in ((dev, "document"), (dev, "contract"), (user, "own"))
    )
    company = core.app.create(dev, "companies", {"name": "Shares", "document": document, "contract": contract}, None)
    stored = core.files.app_file(TENANT, document)
    assert stored is not None and stored.holders == [f"companies/{company['id']}"]

    # A user shares the file a record it reads holds in a field it reads, and its own upload
    for file_id in (document, own):
        assert files.share(user, file_id, None, core.app).file_id == file_id
    # ...not a file in a field hidden from it, nor anything for a user who may not read the record
    for who, file_id in ((user, contract), (stranger, document)):
        with pytest.raises(Forbidden):
            files.share(who, file_id, None, core.app)
    # ...nor a file the record no longer holds; a developer shares any file
    core.app.update(dev, "companies", company["id"], {"document": None}, None)
    with pytest.raises(Forbidden):
        files.share(user, document, None, core.app)
    assert files.share(dev, contract, "60000", core.app).file_id == contract
