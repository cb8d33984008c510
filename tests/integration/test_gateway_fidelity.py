"""The gateway's fidelity points (issue 15) over HTTP: extract filters, rejected rows, dense errands, batch logs."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from backroom.calcengine.models import ImportFileType
from backroom.calcengine.tables import define_custom_table
from backroom.jobs.models import NewJob
from backroom.records import Record, Schema

from tests.integration.stack import Api, LocalStack

TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"


@pytest.fixture(scope="module")
def bearer(dev_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_token}"}


def get(api: Api, bearer: dict[str, str], path: str) -> tuple[int, Any]:
    reply = api.call("GET", path, headers=bearer)
    return reply.status, reply.json()


def test_extract_filters_on_fields_named_page_or_size(local: LocalStack, api: Api, bearer: dict[str, str]) -> None:
    # Given a table whose fields are called page and size
    name = f"book_{uuid.uuid4().hex[:8]}"
    schema = define_custom_table(
        local.core.records,
        TENANT,
        Schema.model_validate({"name": name, "fields": [{"name": "page"}, {"name": "size"}, {"name": "n"}]}),
    )
    for i, (page, size) in enumerate([("1", "s"), ("1", "m"), ("2", "m"), ("3", "l")]):
        local.core.records.put(TENANT, schema, Record(rid=f"r{i}", data={"page": page, "size": size, "n": str(i)}))
    base = f"/gateway/extract/v1/custom-tables/{name}"

    # When filtering through filter.<field>, the plain page and size still page
    status, found = get(api, bearer, f"{base}?filter.page=1&size=1&page=1")
    # Then the filter holds and the page is the second of two
    assert status == 200, found
    assert found["page"] == {"totalPages": 2, "totalElements": 2, "hasNext": False}
    assert len(found["results"]) == 1 and found["results"][0]["page"] == "1"
    status, found = get(api, bearer, f"{base}?filter.page=1&filter.size=m")
    assert [r["n"] for r in found["results"]] == ["1"]

    # A repeated filter key is the AND it means, never a comma-joined value
    status, found = get(api, bearer, f"{base}?filter.page=1&filter.page=2")
    assert status == 200 and found["page"]["totalElements"] == 0 and found["results"] == []
    status, found = get(api, bearer, f"{base}?n=2&n=2")
    assert [r["n"] for r in found["results"]] == ["2"]
    status, found = get(api, bearer, f"{base}?filter.colour=red")
    assert status == 422 and found["details"] == [f"The following fields do not belong to {name}: colour"]


def settled(api: Api, bearer: dict[str, str], errand_id: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, errand = get(api, bearer, f"/gateway/errand/v1/errands/{errand_id}")
        if errand["state"] != "Running":
            return dict(errand)
        time.sleep(0.3)
    raise AssertionError(f"errand {errand_id} still running after {timeout}s")


def logs_of(api: Api, bearer: dict[str, str], errand_id: int) -> list[dict[str, Any]]:
    status, logs = get(api, bearer, f"/gateway/errand/v1/errands/{errand_id}/logs?page=0&size=2000")
    assert status == 200, logs
    return list(logs["results"])


def test_an_import_that_rejects_rows_says_so(local: LocalStack, api: Api, bearer: dict[str, str]) -> None:
    # Given a table with a number field, a file type with no threshold and one that allows 5 rejected rows
    name = f"amounts_{uuid.uuid4().hex[:8]}"
    define_custom_table(
        local.core.records,
        TENANT,
        Schema.model_validate({"name": name, "fields": [{"name": "who"}, {"name": "amount", "type": "number"}]}),
    )
    lenient, strict = f"{name}-lenient", f"{name}-strict"
    local.core.calcengine.repo.put_file_type(TENANT, ImportFileType(id=lenient, name="Lenient", table=name))
    local.core.calcengine.repo.put_file_type(
        TENANT, ImportFileType(id=strict, name="Strict", table=name, max_rejected_rows=5)
    )
    records = [{"who": f"p{i}", "amount": str(i) if i < 20 else "lots"} for i in range(50)]  # 30 bad rows

    # When both import the rows
    errands = []
    for type_id in (lenient, strict):
        reply = api.call(
            "POST",
            "/gateway/errand/v1/imports/records",
            body={"records": records, "importFileTypeId": type_id},
            headers=bearer,
        )
        assert reply.status == 202, reply.body
        errands.append(reply.json()["id"])

    # Then the lenient one completes, lists 20 rejected rows and counts all 30 in its last line
    assert settled(api, bearer, errands[0])["state"] == "Complete"
    logs = logs_of(api, bearer, errands[0])
    assert sum(1 for line in logs if line["logMessage"].startswith("Row ")) == 20, logs
    assert logs[-1]["status"] == "ended"
    assert logs[-1]["logMessage"].startswith("Import finished: 20 rows imported, 30 rows rejected"), logs[-1]
    # and the strict one fails past its threshold, saying why
    assert settled(api, bearer, errands[1])["state"] == "Failed"
    last = logs_of(api, bearer, errands[1])[-1]
    assert last["status"] == "ended"
    assert (
        f"30 rows rejected, more than the 5 Import File Type {strict} allows (20 rows imported)" in last["logMessage"]
    )


def test_a_batch_carries_its_calculations_log_lines(local: LocalStack, api: Api, bearer: dict[str, str]) -> None:
    # Given batch 3 (calculations 1, 3 and 4) run for period 7
    reply = api.call("POST", "/gateway/errand/v1/batches", body={"periodRange": [7], "batchId": 3}, headers=bearer)
    assert reply.status == 202, reply.body
    errand_id = reply.json()["id"]

    # When it completes
    assert settled(api, bearer, errand_id)["state"] == "Complete"

    # Then its logs hold each calculation's own lines, prefixed by the calculation's name, in order
    messages = [line["logMessage"] for line in logs_of(api, bearer, errand_id)]
    names = [c.name for c in (local.core.calcengine.repo.calculation(TENANT, n) for n in (1, 3, 4)) if c]
    relayed = [m for m in messages if any(m.startswith(f"{n}: Job finished") for n in names)]
    assert [m.split(": Job finished")[0] for m in relayed] == names, messages
    assert messages[-1].startswith("Job finished: 3 rows processed"), messages


def test_a_crash_while_numbering_an_errand_leaves_no_hole(
    local: LocalStack, api: Api, bearer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a writer that dies while it creates an errand (its job write fails once)
    real = local.core.table.transact

    def crash_once(writes: list[Any]) -> None:
        monkeypatch.setattr(local.core.table, "transact", real)
        raise ConnectionError("the writer died")

    monkeypatch.setattr(local.core.table, "transact", crash_once)
    spec = NewJob(
        kind="gateway.import", tenant_id=TENANT, account_id=TENANT, created_by="u1", label="Lost", type="Import"
    )
    with pytest.raises(ConnectionError):
        local.core.errands.create(spec, start=False)

    # When errands are created after it
    for _ in range(3):
        body = {"records": [{"field1": f"hole-{uuid.uuid4().hex[:6]}"}], "importFileTypeId": "standard-1"}
        reply = api.call("POST", "/gateway/errand/v1/imports/records", body=body, headers=bearer)
        assert reply.status == 202, reply.body

    # Then the pages hold exactly totalElements errands, numbered 1..totalElements
    _, first = get(api, bearer, "/gateway/errand/v1/errands?page=0&size=3")
    total, pages = first["page"]["totalElements"], first["page"]["totalPages"]
    ids: list[int] = []
    for page in range(pages):
        status, listed = get(api, bearer, f"/gateway/errand/v1/errands?page={page}&size=3")
        assert status == 200 and listed["page"]["totalElements"] == total
        assert len(listed["results"]) == (3 if page < pages - 1 else total - 3 * (pages - 1)), (page, listed)
        ids += [e["id"] for e in listed["results"]]
    assert sorted(ids) == list(range(1, total + 1))
