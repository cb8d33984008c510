"""A second tenant against the demo, in the three dialects: every id of the other tenant is a 404 (or
matches nothing), whatever the route, and nothing of its data or its names leaks into an answer.

The other tenant has the demo app installed, its own developer and user, a custom table of the demo's
name with a row of its own, and no errands, import files, calculations or tasks: the demo's ids for
those name nothing there.
"""

from __future__ import annotations

import uuid

import pytest

from tests.security.actors import (
    BASE,
    DEMO,
    MISSING,
    OTHER,
    World,
    finished,
    leaks,
    ok,
    runtime,
    send,
    world_fixture,  # noqa: F401 - the fixture `world`
)

TASKS = f"/v2/accounts/{DEMO}/tasks"


@pytest.fixture(scope="module", autouse=True)
def jobs(world: World) -> dict[str, str]:
    """The module's jobs, started at once: a demo developer's export of the secret company, and the other
    tenant's developer deleting the demo's secret contact by id in a job."""
    secret = world.secret
    return {
        "export": ok(world.api, "PUT", f"/data/companies/export?name={secret.name}", world.dev)["jobId"],
        "delete": ok(world.api, "DELETE", f"/data/contacts/{secret.contact_id}?_async=true", world.other_dev)["jobId"],
    }


@pytest.fixture(scope="module")
def demo_export(world: World, jobs: dict[str, str]) -> str:
    """The demo developer's export, finished."""
    finished(world.api, world.dev, jobs["export"])
    return jobs["export"]


# Runtime data --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/data/companies/{id}", None),
        ("GET", "/data/companies/{id}?_fields=taxId", None),
        ("PUT", "/data/companies/{id}", {"notes": "written by the other tenant"}),
        ("PUT", "/data/companies/{id}", {"notes": "written by the other tenant", "version": 0}),
        ("DELETE", "/data/companies/{id}", None),
        ("PUT", "/data/companies/{id}/logSomething", {"param1": "x"}),
        ("PUT", "/data/companies/{id}/customResponse", None),
        ("GET", "/data/companies/{id}/files/{document}", None),
        ("GET", "/data/contacts/{contact}", None),
        ("PUT", "/data/contacts/{contact}", {"firstName": "Mallory"}),
    ],
)
def test_another_tenants_record_is_404_on_every_route_by_id(
    world: World, method: str, path: str, body: dict[str, object] | None
) -> None:
    secret = world.secret
    url = path.format(id=secret.company_id, document=secret.document_id, contact=secret.contact_id)
    for actor, refusals in ((world.other_dev, {404}), (world.other_user, {403, 404})):  # its user may not delete
        status, answer = runtime(world.api, method, url, actor, body)
        assert status in refusals, (actor.email, method, url, status, answer)
        assert not leaks(answer, secret.name, secret.tax_id, secret.contact_email)
    # Nothing changed, and nothing was made in the other tenant under that id
    mine = ok(world.api, "GET", f"/data/companies/{secret.company_id}", world.dev)
    assert mine["name"] == secret.name and mine.get("notes") != "written by the other tenant"
    assert runtime(world.api, "GET", f"/data/companies/{secret.company_id}", world.other_dev)[0] == 404


def test_another_tenants_ids_in_queries_match_nothing(world: World) -> None:
    secret, api, other = world.secret, world.api, world.other_dev
    listed = ok(api, "GET", f"/data/companies?id={secret.company_id}", other)
    assert listed["total"] == 0 and listed["items"] == []
    by_name = ok(api, "GET", f"/data/companies?name={secret.name}", other)
    assert by_name["total"] == 0
    related = ok(api, "GET", f"/data/contacts?company={secret.company_id}", other)
    assert related["total"] == 0
    status, answer = runtime(api, "GET", f"/data/companies?_offset={secret.company_id}", other)
    assert status == 400 and not leaks(answer, secret.name)
    counted = ok(api, "PUT", f"/data/companies/countEmployees?id={secret.company_id}", other)
    assert counted == {"numberOfEmployees": 0}
    pipeline = [{"match": {"id": secret.company_id}}, {"count": "n"}]
    assert ok(api, "PUT", "/data/companies/aggregate", other, pipeline)["items"] == [{"n": 0}]
    history = ok(api, "GET", f"/data/companies/{secret.company_id}/history", other)
    assert history["total"] == 0 and history["items"] == []
    table_history = ok(api, "GET", "/data/companies/history?_size=1000", other)
    assert not leaks(table_history, secret.name, secret.tax_id)


def test_another_tenants_records_are_not_deleted_by_id_list_or_job(world: World, jobs: dict[str, str]) -> None:
    secret, api, other = world.secret, world.api, world.other_dev
    many = ok(api, "DELETE", f"/data/contacts/{secret.contact_id},{MISSING}", other)
    assert {v["status"] for v in many.values()} == {"error"}, many
    job = finished(api, other, jobs["delete"])
    # Another tenant's id names no record here, as any unknown id: its row fails, saying only that
    assert (job["status"], job["recordsCount"], job["hasErrors"]) == ("FINISHED", 1, True), job
    assert job["results"][secret.contact_id]["status"] == "error" and not leaks(job, secret.contact_email), job
    assert ok(api, "GET", f"/data/contacts/{secret.contact_id}", world.dev)["email"] == secret.contact_email


def test_a_relationship_or_a_file_of_another_tenant_cannot_be_written(world: World) -> None:
    secret, api, other = world.secret, world.api, world.other_dev
    status, answer = runtime(
        api, "POST", "/data/contacts", other, {"firstName": "A", "lastName": "B", "company": secret.company_id}
    )
    assert status == 400 and not leaks(answer, secret.name), answer
    status, answer = runtime(
        api, "POST", "/data/companies", other, {"name": uuid.uuid4().hex, "document": secret.document_id}
    )
    assert status == 400, answer
    status, answer = runtime(
        api, "GET", f"/data/companies/{world.elsewhere.company_id}/files/{secret.document_id}", other
    )
    assert status == 404, answer


def test_unique_values_are_per_tenant_so_they_reveal_nothing(world: World) -> None:
    # A name the demo holds is free in the other tenant: a 400 "taken" would tell it exists elsewhere
    status, made = runtime(world.api, "POST", "/data/companies", world.other_dev, {"name": world.secret.name})
    assert status == 200, made
    ok(world.api, "DELETE", f"/data/companies/{made['id']}", world.other_dev)


# Files, jobs, logs ------------------------------------------------------------------
def test_another_tenants_files_are_404(world: World) -> None:
    secret, api = world.secret, world.api
    for method, path in (
        ("GET", f"/files/{secret.contract_id}"),
        ("GET", f"/files/{secret.document_id}"),
        ("PUT", f"/files/{secret.document_id}/share"),
    ):
        status, answer = runtime(api, method, path, world.other_dev)
        assert status == 404, (path, status, answer)
    # Nor does a file id open a public link: only a share id does
    assert runtime(api, "GET", f"/files/shared/{secret.document_id}", None)[0] == 404
    status, answer = runtime(api, "POST", "/data/companies/import", world.other_dev, {"fileId": secret.contract_id})
    assert status == 404, answer


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("GET", "/logs"), ("PUT", "/stop"), ("PUT", "/forceStop"), ("PUT", "/cancel"), ("PUT", "/resume")],
)
def test_another_tenants_job_is_404_to_read_and_to_command(
    world: World, demo_export: str, method: str, suffix: str
) -> None:
    status, answer = runtime(world.api, method, f"/status/jobs/{demo_export}{suffix}", world.other_dev)
    assert status == 404, (status, answer)
    listed = ok(world.api, "GET", "/status/jobs?_size=1000", world.other_dev)
    assert demo_export not in {j["id"] for j in listed["items"]}
    assert ok(world.api, "GET", f"/status/jobs/{demo_export}", world.dev)["status"] == "FINISHED"


def test_app_logs_are_per_tenant(world: World) -> None:
    marker = f"demo-log-{uuid.uuid4().hex}"
    ok(world.api, "POST", "/status/logs", world.dev, {"level": "INFO", "message": marker})
    assert ok(world.api, "GET", f"/status/logs?message={marker}", world.dev)["total"] == 1
    assert ok(world.api, "GET", f"/status/logs?message={marker}", world.other_dev)["total"] == 0
    theirs = f"other-log-{uuid.uuid4().hex}"
    ok(world.api, "POST", "/status/logs", world.other_dev, {"level": "INFO", "message": theirs})
    assert ok(world.api, "GET", f"/status/logs?message={theirs}", world.dev)["total"] == 0
    # Nor do the demo's own lines (its logins, its records) show there
    assert not leaks(ok(world.api, "GET", "/status/logs?_size=1000", world.other_dev), "dev@demo.local", marker)


def test_a_developer_cannot_impersonate_another_tenants_user(world: World) -> None:
    reply = send(
        world.api,
        "POST",
        f"{BASE}/auth/login",
        {},
        {
            "email": world.other_dev.email,
            "password": "security-suite-password",
            "emailImpersonatedUser": "user@demo.local",
        },
    )
    assert reply.status == 404, reply.body


# Tasks ------------------------------------------------------------------------------
def test_another_tenants_account_and_tasks_are_404(world: World) -> None:
    api = world.api
    made = api.call("PUT", f"{TASKS}?category=number_management&action=list", headers=world.dev.tasks)
    task_id = made.json()["data"]["_read_only"]["id"]
    for path in (TASKS, f"/v2/accounts/{DEMO}/tasks/{task_id}"):
        reply = api.call("GET", path, headers=world.other_dev.tasks)
        assert reply.status == 404 and reply.json()["status"] == "error", (path, reply.body)
    for base in (f"/v2/accounts/{OTHER}/tasks/{task_id}", f"/v2/tasks/{task_id}"):
        for method, path in [
            ("GET", base),
            ("PATCH", base),
            ("PATCH", f"{base}/stop"),
            ("GET", f"{base}/input"),
            ("GET", f"{base}/output"),
            ("DELETE", base),
        ]:
            reply = api.call(method, path, headers=world.other_dev.tasks)
            assert reply.status == 404, (method, path, reply.status, reply.body)
    put = api.call("PUT", f"{TASKS}?category=number_management&action=list", headers=world.other_dev.tasks)
    assert put.status == 404, put.body
    assert api.call("GET", f"{TASKS}/{task_id}", headers=world.dev.tasks).json()["data"]["_read_only"]["status"] == (
        "pending"
    )


# Gateway ----------------------------------------------------------------------------
def test_another_tenants_errands_are_404(world: World) -> None:
    api = world.api
    made = api.call(
        "POST",
        "/gateway/errand/v1/calculations",
        body={"calculationId": 1, "periodRange": [1]},
        headers=world.dev.gateway,
    )
    assert made.status == 202, made.body
    errand = made.json()["id"]
    for path in (f"/gateway/errand/v1/errands/{errand}", f"/gateway/errand/v1/errands/{errand}/logs"):
        reply = api.call("GET", path, headers=world.other_dev.gateway)
        assert reply.status == 404, (path, reply.status, reply.body)
    listed = api.call("GET", "/gateway/errand/v1/errands?size=2000", headers=world.other_dev.gateway).json()
    assert listed["page"]["totalElements"] == 0 and listed["results"] == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/gateway/errand/v1/imported-data-deletes", {"importFileId": 1}),
        ("/gateway/errand/v1/imports/file", {"importFileId": 1, "importFileTypeId": "standard-3", "periodRange": [1]}),
        ("/gateway/errand/v1/imports/records", {"records": [{"field1": "x"}], "importFileTypeId": "standard-1"}),
        ("/gateway/errand/v1/calculations", {"calculationId": 1, "periodRange": [1], "participantIds": []}),
        ("/gateway/errand/v2/calculations", {"calculationId": 1, "periodRange": [1]}),
        ("/gateway/errand/v1/batches", {"batchId": 1, "periodRange": [1], "participantIds": []}),
        ("/gateway/errand/v2/batches", {"batchId": 1, "periodRange": [1]}),
    ],
)
def test_the_demos_gateway_ids_name_nothing_in_another_tenant(world: World, path: str, body: dict[str, object]) -> None:
    reply = world.api.call("POST", path, body=body, headers=world.other_dev.gateway)
    assert reply.status == 404, (reply.status, reply.body)


def test_a_custom_table_of_the_same_name_shows_each_tenant_its_own_rows(world: World) -> None:
    api, value = world.api, world.elsewhere.table_value
    path = "/gateway/extract/v1/custom-tables/test_table_name?size=2000"
    theirs = api.call("GET", path, headers=world.other_dev.gateway).json()
    assert [r["field1"] for r in theirs["results"]] == [value]
    mine = api.call("GET", path, headers=world.dev.gateway).json()
    assert value not in {r["field1"] for r in mine["results"]} and "value1.1" in {r["field1"] for r in mine["results"]}
    filtered = api.call("GET", f"{path}&field1={value}", headers=world.dev.gateway).json()
    assert filtered["page"]["totalElements"] == 0
