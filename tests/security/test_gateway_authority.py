"""The gateway dialect's reach: its own custom tables only (finding 1), and its authority per verb (finding 6).

Gateway data belongs to the tenant's root account. Its developers may do everything, its users may
read and run but not delete imported data, and a sub-account's users may do nothing with it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from backroom.calcengine.models import Calculation, ImportFileType

from tests.integration.stack import Api, LocalStack, Reply

TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
SPRING = {"timestamp", "status", "error", "message", "path"}
PERIOD = 10  # no other test reads or writes this period's gateway data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(api: Api, auth: dict[str, str], path: str, body: Any) -> Reply:
    return api.call("POST", "/gateway" + path, body=body, headers=auth)


def upload(api: Api, auth: dict[str, str], csv: str) -> Reply:
    return api.call(
        "POST",
        f"/gateway/import/v1/files?name=authority-{uuid.uuid4().hex[:8]}.csv",
        body=csv.encode(),
        headers={**auth, "Content-Type": "text/csv"},
    )


def settled(api: Api, auth: dict[str, str], errand_id: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        errand: dict[str, Any] = api.call("GET", f"/gateway/errand/v1/errands/{errand_id}", headers=auth).json()
        if errand["state"] != "Running":
            return errand
        time.sleep(0.3)
    raise AssertionError(f"errand {errand_id} still running after {timeout}s")


def last_log(api: Api, auth: dict[str, str], errand_id: int) -> str:
    logs = api.call("GET", f"/gateway/errand/v1/errands/{errand_id}/logs?size=2000", headers=auth).json()
    return str(logs["results"][-1]["logMessage"])


def sales_rows(marker: str) -> str:
    return "participant_eid,period,amount\n" + "".join(f"{marker},{PERIOD},{i}\n" for i in range(1, 4))


def extracted(api: Api, auth: dict[str, str], query: str) -> dict[str, Any]:
    reply = api.call("GET", f"/gateway/extract/v1/custom-tables/{query}", headers=auth)
    assert reply.status == 200, reply.body
    return dict(reply.json())


# Finding 1: the gateway reaches its own custom tables only ----------------
@pytest.mark.parametrize("entity", ["companies", "contacts"])
def test_finding_1_extract_never_reads_a_runtime_entity(api: Api, dev: str, user: str, sub: str, entity: str) -> None:
    for token in (dev, user, sub):
        reply = api.call("GET", f"/gateway/extract/v1/custom-tables/{entity}", headers=bearer(token))
        assert reply.status in (403, 404), reply.body
        assert b"taxId" not in reply.body and b"contract" not in reply.body
    # For those who may extract, an entity's name is exactly a table that does not exist.
    for token in (dev, user):
        entity_reply = api.call("GET", f"/gateway/extract/v1/custom-tables/{entity}", headers=bearer(token))
        assert entity_reply.status == 404
        body = entity_reply.json()
        assert set(body) == SPRING and body["error"] == "Not Found"
        assert body["message"] == f"Could not find Custom Table with name {entity}"
        assert body["path"] == f"/v1/custom-tables/{entity}"
        # And a filter on one of its fields changes nothing: no 422 naming its fields.
        filtered = api.call("GET", f"/gateway/extract/v1/custom-tables/{entity}?taxId=1", headers=bearer(token))
        assert filtered.status == 404


def test_finding_1_gateway_errands_never_write_or_read_a_runtime_entity(local: LocalStack, api: Api, dev: str) -> None:
    # Given an import file type and calculations a developer pointed at runtime entities
    repo, auth = local.core.calcengine.repo, bearer(dev)
    into = f"into-companies-{uuid.uuid4().hex[:6]}"
    repo.put_file_type(TENANT, ImportFileType(id=into, name="Into Companies", table="companies"))
    reads = Calculation(
        id=81,
        name="Reads Contacts",
        type="plan_template",
        source="contacts",
        measure="numberOfSkills",
        output="sip_results",
        result_field="payout",
        rate=1,
    )
    writes = reads.model_copy(
        update={"id": 82, "name": "Writes Companies", "source": "sales", "measure": "amount", "output": "companies"}
    )
    for calc in (reads, writes):
        repo.put_calculation(TENANT, calc)
    companies = local.core.app.repo.entity(TENANT, "companies").schema
    before = local.core.records.count(TENANT, companies, [])

    # When they run
    name = f"Injected {uuid.uuid4().hex[:8]}"
    imported = post(api, auth, "/errand/v1/imports/records", {"records": [{"name": name}], "importFileTypeId": into})
    assert imported.status == 202, imported.body
    calculated = [
        post(api, auth, "/errand/v1/calculations", {"periodRange": [PERIOD], "calculationId": calc.id})
        for calc in (reads, writes)
    ]

    # Then each fails as a missing custom table would, and the entity's records are as they were
    assert settled(api, auth, imported.json()["id"])["state"] == "Failed"
    assert f"Custom Table companies of Import File Type {into} does not exist" in last_log(
        api, auth, imported.json()["id"]
    )
    for reply, table in zip(calculated, ("contacts", "companies"), strict=True):
        assert reply.status == 202, reply.body
        assert settled(api, auth, reply.json()["id"])["state"] == "Failed"
        assert f"Custom Table {table} does not exist" in last_log(api, auth, reply.json()["id"])
    assert local.core.records.count(TENANT, companies, []) == before


def test_runtime_routes_never_reach_a_gateway_table(api: Api, dev: str) -> None:
    for table in ("sales", "test_table_name", "sip_results"):
        for path in (f"/runtime/api/data/{table}", f"/runtime/api/data/{table}/aggregate"):
            method = "GET" if path.endswith(table) else "POST"
            reply = api.call(method, path, body=[] if method == "POST" else None, headers={"token": dev})
            assert reply.status == 404, (path, reply.body)
            assert b"participant_eid" not in reply.body and b"field1" not in reply.body


# Finding 6: authority per verb ------------------------------------------
def attempts(api: Api, auth: dict[str, str], *, errand_id: int, file_id: int, marker: str) -> dict[str, Reply]:
    """One request of each gateway verb; the runs are for PERIOD and write nothing another test reads."""
    records = {"records": [{"field1": marker}], "importFileTypeId": "standard-1"}
    v1 = {"periodRange": [PERIOD], "participantIds": [1]}
    v2 = {"periodRange": [PERIOD], "participantEids": ["test_user_1"]}
    uploaded = upload(api, auth, sales_rows(marker))
    own = uploaded.json()["id"] if uploaded.status == 201 else file_id  # its own file, when it may upload one
    return {
        "extract": api.call("GET", "/gateway/extract/v1/custom-tables/test_table_name?field1=value1.1", headers=auth),
        "upload": uploaded,
        "import file": post(
            api,
            auth,
            "/errand/v1/imports/file",
            {"importFileId": own, "periodRange": [PERIOD], "importFileTypeId": "sales-1"},
        ),
        "import records": post(api, auth, "/errand/v1/imports/records", records),
        "calculate v1": post(api, auth, "/errand/v1/calculations", {**v1, "calculationId": 1}),
        "calculate v2": post(api, auth, "/errand/v2/calculations", {**v2, "calculationId": 1}),
        "batch v1": post(api, auth, "/errand/v1/batches", {**v1, "batchId": 1}),
        "batch v2": post(api, auth, "/errand/v2/batches", {**v2, "batchId": 1}),
        "errands": api.call("GET", "/gateway/errand/v1/errands", headers=auth),
        "errand": api.call("GET", f"/gateway/errand/v1/errands/{errand_id}", headers=auth),
        "errand logs": api.call("GET", f"/gateway/errand/v1/errands/{errand_id}/logs", headers=auth),
        "delete imported data": post(api, auth, "/errand/v1/imported-data-deletes", {"importFileId": file_id}),
    }


@pytest.fixture(scope="module")
def imported(api: Api, dev: str) -> tuple[int, int, str]:
    """A file of sales the root account's developer imported: (its id, the import's errand, its EID)."""
    marker = f"authority_{uuid.uuid4().hex[:8]}"
    auth = bearer(dev)
    uploaded = upload(api, auth, sales_rows(marker))
    assert uploaded.status == 201, uploaded.body
    file_id = uploaded.json()["id"]
    body = {"importFileId": file_id, "periodRange": [PERIOD], "importFileTypeId": "sales-1"}
    errand = post(api, auth, "/errand/v1/imports/file", body).json()
    assert settled(api, auth, errand["id"])["state"] == "Complete"
    return file_id, errand["id"], marker


def test_finding_6_a_sub_account_user_can_use_no_gateway_verb(
    api: Api, dev: str, sub: str, imported: tuple[int, int, str]
) -> None:
    file_id, errand_id, marker = imported
    root = bearer(dev)
    errands_before = api.call("GET", "/gateway/errand/v1/errands", headers=root).json()["page"]["totalElements"]

    replies = attempts(api, bearer(sub), errand_id=errand_id, file_id=file_id, marker=f"sub_{marker}")

    for verb, reply in replies.items():
        assert reply.status == 403, (verb, reply.body)
        body = reply.json()
        assert set(body) == SPRING and (body["status"], body["error"]) == (403, "Forbidden"), verb
        assert "sub-account" in body["message"], (verb, body)
    # Nothing was started, and the root account's imported sales are all there
    assert api.call("GET", "/gateway/errand/v1/errands", headers=root).json()["page"]["totalElements"] == errands_before
    assert extracted(api, root, f"sales?participant_eid={marker}")["page"]["totalElements"] == 3


def test_finding_6_a_root_user_may_read_and_run_but_not_delete_imported_data(
    api: Api, user: str, dev: str, imported: tuple[int, int, str]
) -> None:
    file_id, errand_id, marker = imported
    replies = attempts(api, bearer(user), errand_id=errand_id, file_id=file_id, marker=f"user_{marker}")

    refused = replies.pop("delete imported data")
    assert refused.status == 403 and refused.json()["message"] == "Only developers may delete imported data"
    expected = {"extract": 200, "upload": 201, "errands": 200, "errand": 200, "errand logs": 200}
    assert {verb: reply.status for verb, reply in replies.items()} == {
        verb: expected.get(verb, 202) for verb in replies
    }
    assert extracted(api, bearer(dev), f"sales?participant_eid={marker}")["page"]["totalElements"] == 3


def test_a_developer_may_use_every_gateway_verb(api: Api, dev: str) -> None:
    # Given a file of its own, imported (the module's file stays for the other tests)
    auth, marker = bearer(dev), f"dev_{uuid.uuid4().hex[:8]}"
    file_id = upload(api, auth, sales_rows(marker)).json()["id"]
    body = {"importFileId": file_id, "periodRange": [PERIOD], "importFileTypeId": "sales-1"}
    errand_id = post(api, auth, "/errand/v1/imports/file", body).json()["id"]
    assert settled(api, auth, errand_id)["state"] == "Complete"

    replies = attempts(api, auth, errand_id=errand_id, file_id=file_id, marker=marker)

    expected = {"extract": 200, "upload": 201, "errands": 200, "errand": 200, "errand logs": 200}
    assert {verb: reply.status for verb, reply in replies.items()} == {
        verb: expected.get(verb, 202) for verb in replies
    }
    assert settled(api, auth, replies["delete imported data"].json()["id"])["state"] == "Complete"
