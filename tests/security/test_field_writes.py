"""Writes to fields a caller may not write, through every path that writes: update, create, import
(own columns and columns through a relationship), actions' parameters, deletes, and the body's system
fields. `user` may read but not write companies' `rating`, may neither read nor write `taxId` and
`contract`, and may not delete companies; `sub` may only read contacts; `sib` nothing.

Each write is refused (403, or 400 where the path is no field), or done without the forbidden part;
the developer then reads the record as it was.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.security.actors import (
    World,
    finished,
    import_csv,
    leaks,
    ok,
    runtime,
    world_fixture,  # noqa: F401 - the fixture `world`
)


def unchanged(world: World) -> None:
    """The secret company as the developer made it."""
    secret = world.secret
    now = ok(world.api, "GET", f"/data/companies/{secret.company_id}", world.dev)
    assert (now["taxId"], now["rating"], now["contract"]["id"]) == (secret.tax_id, secret.rating, secret.contract_id)


@pytest.mark.parametrize(
    "body",
    [
        {"rating": "1.0"},
        {"taxId": "EVIL"},
        {"taxId": None},
        {"contract": None},
        {"contract": "{document}"},
        {"notes": "fine", "rating": "1.0"},
    ],
)
def test_an_update_of_a_field_user_may_not_write_is_403(world: World, body: dict[str, object]) -> None:
    secret = world.secret
    sent = {k: (v.format(document=secret.document_id) if isinstance(v, str) else v) for k, v in body.items()}
    status, answer = runtime(world.api, "PUT", f"/data/companies/{secret.company_id}", world.user, sent)
    assert status == 403, answer
    unchanged(world)
    status, answer = runtime(world.api, "POST", "/data/companies", world.user, {"name": uuid.uuid4().hex, **sent})
    assert status == 403, answer


@pytest.mark.parametrize(
    "body",
    [
        {"TaxId": "EVIL"},
        {"taxid": "EVIL"},
        {"taxId ": "EVIL"},
        {"taxId\u200b": "EVIL"},
        {"Rating": "1.0"},
        {"contactInformation": {"email": "a@example.test", "taxId": "EVIL"}},
        {"addresses": [{"city": "x", "rating": "1.0"}]},
    ],
)
def test_a_field_name_spelled_otherwise_or_nested_writes_nothing(world: World, body: dict[str, object]) -> None:
    status, answer = runtime(world.api, "PUT", f"/data/companies/{world.secret.company_id}", world.user, body)
    assert status in (400, 403), (status, answer)
    unchanged(world)


def test_the_bodys_id_does_not_redirect_an_update_to_another_record(world: World) -> None:
    secret = world.secret
    mine = ok(world.api, "POST", "/data/companies", world.user, {"name": f"mine-{uuid.uuid4().hex}"})
    ok(world.api, "PUT", f"/data/companies/{mine['id']}", world.user, {"id": secret.company_id, "notes": "redirected?"})
    assert ok(world.api, "GET", f"/data/companies/{secret.company_id}", world.dev).get("notes") != "redirected?"
    assert ok(world.api, "GET", f"/data/companies/{mine['id']}", world.user)["notes"] == "redirected?"


def test_unknown_fields_in_a_body_are_400_not_stored(world: World) -> None:
    for extra in ({"tenant_id": "x"}, {"__proto__": {"admin": True}}, {"entity": "contacts"}):
        status, answer = runtime(world.api, "POST", "/data/companies", world.user, {"name": uuid.uuid4().hex, **extra})
        assert status == 400, (extra, answer)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/data/companies/{id}"),
        ("DELETE", "/data/companies/{id},{id}"),
        ("DELETE", "/data/companies/{id}?_async=true"),
        ("DELETE", "/data/companies?name={name}"),
        ("DELETE", "/data/companies?name={name}&_async=true"),
    ],
)
def test_user_may_not_delete_companies_by_any_route(world: World, method: str, path: str) -> None:
    secret = world.secret
    status, answer = runtime(world.api, method, path.format(id=secret.company_id, name=secret.name), world.user)
    assert status == 403, answer
    assert ok(world.api, "GET", f"/data/companies/{secret.company_id}", world.dev)["name"] == secret.name


def test_sub_and_sib_write_nothing(world: World) -> None:
    secret = world.secret
    for actor in (world.sub, world.sib):
        for method, path, body in [
            ("POST", "/data/contacts", {"firstName": "A", "lastName": "B"}),
            ("PUT", f"/data/contacts/{secret.contact_id}", {"firstName": "Mallory"}),
            ("PUT", f"/data/contacts/{secret.contact_id}", {"email": "mallory@example.test"}),
            ("DELETE", f"/data/contacts/{secret.contact_id}", None),
            ("DELETE", f"/data/contacts?id={secret.contact_id}", None),
            ("POST", "/data/companies", {"name": uuid.uuid4().hex}),
            ("PUT", f"/data/companies/{secret.company_id}", {"notes": "x"}),
        ]:
            status, answer = runtime(world.api, method, path, actor, body)
            assert status == 403, (actor.email, method, path, status, answer)
        status, answer = import_csv(world.api, actor, "contacts", b"firstName,lastName\nA,B\n")
        assert status == 403, answer
    contact = ok(world.api, "GET", f"/data/contacts/{secret.contact_id}", world.dev)
    assert (contact["firstName"], contact["email"]) == ("Sec", secret.contact_email)


def test_an_actions_parameters_are_not_the_records_fields(world: World) -> None:
    secret = world.secret
    for body in ({"rating": "1.0"}, {"taxId": "EVIL"}, {"param1": "a", "notes": "x"}):
        status, answer = runtime(
            world.api, "PUT", f"/data/companies/{secret.company_id}/logSomething", world.user, body
        )
        assert status == 400, (body, answer)
    unchanged(world)


# Imports ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def imports(world: World) -> dict[str, tuple[int, Any]]:
    """The module's imports, started at once (the workers run them side by side): each start's answer,
    and `related`: the company the relationship import aims at, made by the developer."""
    secret, fresh = world.secret, f"imported-{world.tag}"
    related = f"related-{world.tag}"
    company = ok(world.api, "POST", "/data/companies", world.dev, {"name": related, "rating": "4.5"})
    files = {
        "forbidden": (
            "companies",
            "name,rating,taxId,contract,notes\n"
            f"{secret.name},1.0,EVIL,{secret.document_id},imported notes\n"
            f"{fresh},1.0,EVIL,{secret.document_id},new one\n",
        ),
        "related": (
            "contacts",
            f"firstName,lastName,company.name,company.rating\nVia,Import-{world.tag},{related},0.5\n",
        ),
        "error-row": ("companies", f"name,numberOfEmployees\n{secret.name},not-a-number\n"),
    }
    started: dict[str, tuple[int, Any]] = {
        name: import_csv(world.api, world.user, entity, content.encode()) for name, (entity, content) in files.items()
    }
    started["related-company"] = (200, company)
    return started


def over(world: World, start: tuple[int, Any]) -> dict[str, Any]:
    status, ref = start
    assert status == 200, ref
    return finished(world.api, world.user, ref["jobId"])


def test_an_import_writes_none_of_the_columns_user_may_not_write(world: World, imports: dict[str, Any]) -> None:
    job = over(world, imports["forbidden"])
    assert job["status"] == "FINISHED", job
    unchanged(world)
    secret = world.secret
    assert ok(world.api, "GET", f"/data/companies/{secret.company_id}", world.dev)["notes"] == "imported notes"
    made = ok(world.api, "GET", f"/data/companies?name=imported-{world.tag}&_fields=rating,taxId,contract", world.dev)
    assert len(made["items"]) == 1 and set(made["items"][0]) == {"id", "version", "label"}, made


def test_an_import_of_only_forbidden_columns_is_refused(world: World) -> None:
    status, answer = import_csv(world.api, world.user, "companies", b"rating,taxId\n1.0,EVIL\n")
    assert status == 400, answer


def test_an_import_through_a_relationship_writes_no_read_only_field_of_the_related_record(
    world: World, imports: dict[str, Any]
) -> None:
    if imports["related"][0] == 200:
        over(world, imports["related"])
    company = imports["related-company"][1]
    assert ok(world.api, "GET", f"/data/companies/{company['id']}", world.dev)["rating"] == "4.5"


def test_an_import_job_says_nothing_of_hidden_values_in_its_errors(world: World, imports: dict[str, Any]) -> None:
    # A row that fails names its row and field; the record it would have matched keeps its secrets
    job = over(world, imports["error-row"])
    logs = ok(world.api, "GET", f"/status/jobs/{job['id']}/logs", world.user)
    assert job["results"]["rowsWithErrors"] == 1, job
    assert not leaks([job, logs], world.secret.tax_id, world.secret.contract_id)
