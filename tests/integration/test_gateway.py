"""The Errand and Extract APIs over HTTP, as a gateway client uses them: the specs' examples and errors."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.calculations import broken_script
from tests.integration.stack import Api, LocalStack

TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
ERRAND_FIELDS = {"id", "name", "type", "state", "startTime", "endTime"}


@pytest.fixture(scope="module")
def bearer(dev_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_token}"}


def post(api: Api, path: str, body: Any, bearer: dict[str, str]) -> tuple[int, dict[str, Any]]:
    reply = api.call("POST", "/gateway" + path, body=body, headers=bearer)
    return reply.status, reply.json()


def settled(api: Api, bearer: dict[str, str], errand_id: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        errand: dict[str, Any] = api.call("GET", f"/gateway/errand/v1/errands/{errand_id}", headers=bearer).json()
        if errand["state"] != "Running":
            return errand
        time.sleep(0.3)
    raise AssertionError(f"errand {errand_id} still running after {timeout}s")


def extract(api: Api, bearer: dict[str, str], query: str) -> dict[str, Any]:
    reply = api.call("GET", f"/gateway/extract/v1/custom-tables/{query}", headers=bearer)
    assert reply.status == 200, reply.body
    return dict(reply.json())


def test_the_specs_examples(api: Api, bearer: dict[str, str]) -> None:
    examples = [
        (
            "/errand/v1/calculations",
            {"periodRange": [1, 2, 3], "calculationId": 1, "participantIds": [1, 2, 3]},
            "SIP Calc: Period 1",
            "Calc",
        ),
        (
            "/errand/v1/batches",
            {"periodRange": [1, 2, 3], "batchId": 1, "participantIds": [1, 2, 3]},
            "SIP Batch",
            "Calc",
        ),
        ("/errand/v1/imported-data-deletes", {"importFileId": 1}, "file.csv", "Delete Imported Data"),
        (
            "/errand/v1/imports/file",
            {"importFileId": 1, "periodRange": [1, 2, 3], "importFileTypeId": "standard-3"},
            "Import Test: Period 1",
            "Import",
        ),
        (
            "/errand/v1/imports/records",
            {
                "records": [{"field1": "value1"}, {"field1": "value2"}, {"field1": "value3"}, {"field1": "value4"}],
                "periodRange": [1],
                "importFileTypeId": "standard-1",
            },
            "Account: Period 1",
            "Import",
        ),
        (
            "/errand/v2/calculations",
            {
                "periodRange": [1, 2, 3],
                "calculationId": 1,
                "participantEids": ["test_user_1", "test_user_2", "test_user_3"],
            },
            "SIP Calc: Period 1",
            "Calc",
        ),
        (
            "/errand/v2/batches",
            {"periodRange": [1, 2, 3], "batchId": 1, "participantEids": ["test_user_1", "test_user_2", "test_user_3"]},
            "SIP Batch",
            "Calc",
        ),
    ]
    created = []
    for path, body, name, kind in examples:
        status, errand = post(api, path, body, bearer)
        assert status == 202, (path, errand)
        assert set(errand) == ERRAND_FIELDS and isinstance(errand["id"], int)
        assert (errand["name"], errand["type"], errand["state"], errand["endTime"]) == (name, kind, "Running", None)
        created.append(errand["id"])
        if path == "/errand/v1/imported-data-deletes":
            # The delete of file 1's rows and the import of file 1 that follows would otherwise race (both
            # errands run at once on the workers); a delete that ends last leaves no row for the extract below.
            settled(api, bearer, errand["id"])
    for errand_id in created:
        done = settled(api, bearer, errand_id)
        assert done["state"] == "Complete" and done["endTime"] >= done["startTime"], done
        logs = api.call("GET", f"/gateway/errand/v1/errands/{errand_id}/logs?page=0&size=2000", headers=bearer).json()
        assert logs["results"][-1]["status"] == "ended"
    listed = api.call("GET", "/gateway/errand/v1/errands?page=0&size=20", headers=bearer).json()
    assert listed["page"]["totalElements"] >= len(created) and set(listed["results"][0]) == ERRAND_FIELDS

    found = extract(api, bearer, "test_table_name?field1=value1.1&field2=value1.2")
    assert found == {
        "results": [{"field1": "value1.1", "field2": "value1.2", "field3": "value1.3", "field4": "value1.4"}],
        "page": {"totalPages": 1, "totalElements": 1, "hasNext": False},
    }
    assert extract(api, bearer, "test_table_name?field1=value3")["page"]["totalElements"] == 1  # the records import
    assert extract(api, bearer, "test_table_name?field1=file2.1")["page"]["totalElements"] >= 1  # the file import


ERRORS = [
    # (path, body, status, message part): every error condition the Errand spec lists.
    ("/errand/v1/batches", {"periodRange": [1]}, 400, "batchId"),
    ("/errand/v1/batches", {"periodRange": [3], "batchId": 2}, 422, "not published"),
    ("/errand/v1/batches", {"periodRange": [3], "batchId": 99}, 404, "Could not find Batch with id 99"),
    ("/errand/v2/batches", {"periodRange": [3]}, 400, "batchId"),
    ("/errand/v2/batches", {"batchId": 99}, 404, "Could not find Batch"),
    ("/errand/v2/batches", {"periodRange": [3], "batchId": 2}, 422, "not published"),
    ("/errand/v2/batches", {"periodRange": [12, 13], "batchId": 1}, 422, "are locked: 13"),
    ("/errand/v2/batches", {"periodRange": [14], "batchId": 1}, 422, "do not exist: 14"),
    ("/errand/v2/batches", {"periodRange": [3], "batchId": 1, "participantEids": ["x"]}, 422, "EIDs do not resolve"),
    ("/errand/v1/calculations", {"calculationId": 1}, 400, "periodRange"),
    ("/errand/v1/calculations", {"periodRange": [3]}, 400, "calculationId"),
    ("/errand/v1/calculations", {"periodRange": [3], "calculationId": 2}, 422, "not published"),
    ("/errand/v1/calculations", {"periodRange": [3], "calculationId": 5}, 422, "not active"),
    ("/errand/v1/calculations", {"periodRange": [12, 13], "calculationId": 1}, 422, "not valid for Periods 12..13"),
    (
        "/errand/v1/calculations",
        {"periodRange": [3], "calculationId": 99},
        404,
        "Could not find Calculation with id 99",
    ),
    ("/errand/v2/calculations", {"periodRange": [3]}, 400, "calculationId"),
    ("/errand/v2/calculations", {"calculationId": 99}, 404, "Could not find Calculation"),
    ("/errand/v2/calculations", {"periodRange": [3], "calculationId": 2}, 422, "not published"),
    ("/errand/v2/calculations", {"periodRange": [3], "calculationId": 5}, 422, "not active"),
    ("/errand/v2/calculations", {"periodRange": [12, 13], "calculationId": 1}, 422, "not valid for Periods"),
    ("/errand/v2/calculations", {"periodRange": [12, 13], "calculationId": 3}, 422, "are locked: 13"),
    ("/errand/v2/calculations", {"periodRange": [14], "calculationId": 3}, 422, "do not exist: 14"),
    ("/errand/v2/calculations", {"periodRange": [3], "calculationId": 1, "participantEids": ["x"]}, 422, "EIDs"),
    ("/errand/v1/imported-data-deletes", {}, 400, "importFileId"),
    ("/errand/v1/imported-data-deletes", {"importFileId": 99}, 404, "Could not find Import File with id 99"),
    ("/errand/v1/imports/file", {"importFileId": 1}, 400, "importFileTypeId"),
    ("/errand/v1/imports/file", {"importFileId": 1, "importFileTypeId": "standard-3"}, 400, "periodRange"),
    ("/errand/v1/imports/file", {"importFileId": 99, "importFileTypeId": "standard-1"}, 404, "Import File with id 99"),
    ("/errand/v1/imports/file", {"importFileId": 1, "importFileTypeId": "nope"}, 404, "Import File Type with id nope"),
    ("/errand/v1/imports/records", {"importFileTypeId": "standard-1"}, 400, "records"),
    (
        "/errand/v1/imports/records",
        {"records": [{"field1": "x"}] * 51, "importFileTypeId": "standard-1"},
        400,
        "exceeds the maximum allowed",
    ),
    ("/errand/v1/imports/records", {"records": [{"field1": "x"}], "importFileTypeId": "nope"}, 404, "Import File Type"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), ERRORS)
def test_every_listed_error_condition(
    api: Api, bearer: dict[str, str], path: str, body: Any, status: int, message: str
) -> None:
    got, answer = post(api, path, body, bearer)
    assert got == status, answer
    assert set(answer) >= {"timestamp", "status", "error", "message", "path"}
    assert answer["status"] == status and answer["path"] == path.removeprefix("/errand")
    assert message in answer["message"], answer


def test_extract_errors(api: Api, bearer: dict[str, str]) -> None:
    missing = api.call("GET", "/gateway/extract/v1/custom-tables/test_table_nam", headers=bearer)
    assert missing.status == 404
    assert missing.json()["message"] == "Could not find Custom Table with name test_table_nam"
    assert missing.json()["path"] == "/v1/custom-tables/test_table_nam" and missing.json()["error"] == "Not Found"
    stranger = api.call("GET", "/gateway/extract/v1/custom-tables/test_table_name?field1=a&field9=b", headers=bearer)
    assert stranger.status == 422
    assert stranger.json()["message"] == "Unable to execute the extract."
    assert stranger.json()["details"] == ["The following fields do not belong to test_table_name: field9"]
    for query in ("size=2001", "size=0", "page=-1", "page=x"):
        bad = api.call("GET", f"/gateway/extract/v1/custom-tables/test_table_name?{query}", headers=bearer)
        assert bad.status == 400, query
    assert api.call("GET", "/gateway/extract/v1/custom-tables/test_table_name").status == 401


def test_sip_calc_through_v2_pays_exactly_and_a_rerun_does_not_double(api: Api, bearer: dict[str, str]) -> None:
    sales = [
        {"participant_eid": "test_user_1", "period": 6, "amount": 1200},
        {"participant_eid": "test_user_1", "period": 6, "amount": "34.50"},
        {"participant_eid": "test_user_2", "period": 6, "amount": "999.99"},
        {"participant_eid": "test_user_3", "period": 7, "amount": 80},
    ]
    status, errand = post(
        api, "/errand/v1/imports/records", {"records": sales, "periodRange": [6], "importFileTypeId": "sales-1"}, bearer
    )
    assert status == 202 and settled(api, bearer, errand["id"])["state"] == "Complete"
    expected = {"test_user_1": 61.73, "test_user_2": 50.0, "test_user_3": 0}
    for _ in range(2):
        status, errand = post(api, "/errand/v2/calculations", {"periodRange": [6], "calculationId": 1}, bearer)
        assert status == 202 and errand["name"] == "SIP Calc: Period 6"
        assert settled(api, bearer, errand["id"])["state"] == "Complete"
        found = extract(api, bearer, "sip_results?period=6&size=2000")
        assert {r["participant_eid"]: r["payout"] for r in found["results"]} == expected
        assert found["page"]["totalElements"] == 3
    one = extract(api, bearer, "sip_results?participant_eid=test_user_1&period=6")
    assert one["results"] == [{"participant_eid": "test_user_1", "period": 6, "payout": 61.73}]


def test_upload_import_and_delete_exactly_that_files_rows(api: Api, bearer: dict[str, str]) -> None:
    csv = "participant_eid,period,amount\n" + "".join(f"test_user_{i % 3 + 1},8,{i}\n" for i in range(2500))
    boundary = "----backroom"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="sales-8.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n"
    ).encode()
    uploaded = api.call(
        "POST",
        "/gateway/import/v1/files",
        body=multipart,
        headers={**bearer, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert uploaded.status == 201 and uploaded.json()["name"] == "sales-8.csv"
    file_id = uploaded.json()["id"]
    plain = api.call(
        "POST",
        "/gateway/import/v1/files?name=more.csv",
        body=b"participant_eid,period,amount\ntest_user_1,8,5\n",
        headers={**bearer, "Content-Type": "text/csv"},
    )
    assert plain.status == 201 and plain.json() == {"id": file_id + 1, "name": "more.csv"}
    for fid in (file_id, file_id + 1):
        status, errand = post(
            api,
            "/errand/v1/imports/file",
            {"importFileId": fid, "periodRange": [8], "importFileTypeId": "sales-1"},
            bearer,
        )
        assert status == 202 and errand["name"] == "Sales: Period 8"
        assert settled(api, bearer, errand["id"])["state"] == "Complete"
    page = extract(api, bearer, "sales?period=8&size=2000")
    assert page["page"] == {"totalPages": 2, "totalElements": 2501, "hasNext": True} and len(page["results"]) == 2000
    assert len(extract(api, bearer, "sales?period=8&size=2000&page=1")["results"]) == 501
    status, errand = post(api, "/errand/v1/imported-data-deletes", {"importFileId": file_id}, bearer)
    assert (status, errand["name"], errand["type"]) == (202, "sales-8.csv", "Delete Imported Data")
    assert settled(api, bearer, errand["id"])["state"] == "Complete"
    left = extract(api, bearer, "sales?period=8")
    assert left["page"]["totalElements"] == 1 and left["results"] == [
        {"participant_eid": "test_user_1", "period": 8, "amount": 5}
    ]


def test_a_failed_calculation_says_why_in_its_logs(local: LocalStack, api: Api, bearer: dict[str, str]) -> None:
    broken = broken_script(90, "Broken Script")
    local.core.calcengine.repo.put_calculation(TENANT, broken)
    status, errand = post(api, "/errand/v1/calculations", {"periodRange": [9], "calculationId": 90}, bearer)
    assert status == 202
    assert settled(api, bearer, errand["id"])["state"] == "Failed"
    logs = api.call("GET", f"/gateway/errand/v1/errands/{errand['id']}/logs", headers=bearer).json()["results"]
    assert logs[-1]["status"] == "ended"
    assert "Broken Script failed for participant test_user_1 in period 9: division by zero" in logs[-1]["logMessage"]


def test_v2_without_a_current_period_is_a_422(local: LocalStack, api: Api, bearer: dict[str, str]) -> None:
    repo = local.core.calcengine.repo
    periods = repo.periods(TENANT)
    try:
        for period in periods:  # move every period into the past: none holds today
            start = period.start.replace(year=period.start.year - 5)
            repo.put_period(TENANT, period.model_copy(update={"start": start, "end": start}))
        for path, body in (("/errand/v2/calculations", {"calculationId": 1}), ("/errand/v2/batches", {"batchId": 1})):
            status, answer = post(api, path, body, bearer)
            assert status == 422, answer
            assert "Period Range was omitted and no current Period could be found" in answer["message"]
    finally:
        for period in periods:
            repo.put_period(TENANT, period)
