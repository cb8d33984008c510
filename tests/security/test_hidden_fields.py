"""Hidden fields, through every path a value can take out of the core.

`user` may not read companies' `taxId` and `contract`; `sub` may not read contacts' `email`, nor anything
of companies. The secret company holds a tax id (changed once, so its history holds two), a contract
file and a contact whose email is hidden from sub. Each path either leaves the field out or refuses
(403, or 400 where the path names no field): the secret values never appear in an answer, and a filter,
a sort or a pipeline on a hidden field is no oracle either.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.security.actors import (
    Actor,
    World,
    finished,
    leaks,
    ok,
    runtime,
    world_fixture,  # noqa: F401 - the fixture `world`
)


@pytest.fixture(scope="module", autouse=True)
def jobs(world: World) -> dict[str, tuple[int, Any]]:
    """The module's jobs, started at once (the workers run them side by side): each start's status and answer."""
    secret = world.secret
    starts = {
        "export": (world.user, f"/data/companies/export?name={secret.name}"),
        "export-fields": (
            world.user,
            f"/data/companies/export?name={secret.name}&_fields=name,taxId,contract&_useLabels=true",
        ),
        "export-sub": (world.sub, f"/data/contacts/export?id={secret.contact_id}&_fields=firstName,email"),
        "export-related": (
            world.sub,
            f"/data/contacts/export?id={secret.contact_id}&_fields=firstName,company.homepage",
        ),
        "action": (world.user, f"/data/companies/{secret.company_id}/logSomething?_async=true"),
    }
    return {
        name: runtime(world.api, "PUT", path, actor, {} if name == "action" else None)
        for name, (actor, path) in starts.items()
    }


def secrets_of(world: World) -> tuple[str, ...]:
    s = world.secret
    return (s.tax_id, f"OLD-{s.tax_id}", s.contract_id, s.contract_row)


def refused(
    world: World, actor: Actor, method: str, path: str, body: Any = None, *, allowed: tuple[int, ...] = (403,)
) -> None:
    status, answer = runtime(world.api, method, path, actor, body)
    assert status in allowed, (method, path, status, answer)
    assert not leaks(answer, *secrets_of(world), world.secret.contact_email)


# Reading a record or a page ------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "",
        "?_fields=taxId,contract,name",
        "?_fields=contactInformation.email,taxId",
        "?_format=plainText",
        "?_relationshipsToFetch=mainContact",
    ],
)
def test_a_record_and_a_page_leave_hidden_fields_out(world: World, query: str) -> None:
    secret = world.secret
    one = ok(world.api, "GET", f"/data/companies/{secret.company_id}{query}", world.user)
    assert "taxId" not in one and "contract" not in one and not leaks(one, *secrets_of(world))
    joiner = "&" if query else "?"
    page = ok(world.api, "GET", f"/data/companies{query}{joiner}name={secret.name}", world.user)
    assert page["total"] == 1 and not leaks(page, *secrets_of(world))


def test_related_records_fetched_inline_are_seen_as_their_reader_may(world: World) -> None:
    secret = world.secret
    contact = ok(world.api, "GET", f"/data/contacts/{secret.contact_id}?_relationshipsToFetch=company", world.user)
    assert contact["company"]["name"] == secret.name and not leaks(contact, *secrets_of(world))
    for query in ("?_relationshipsToFetch=company", "?_fields=company.taxId,company.name,email"):
        mine = ok(world.api, "GET", f"/data/contacts/{secret.contact_id}{query}", world.sub)
        assert set(mine["company"]) <= {"id", "label"}, mine  # sub reads nothing of companies
        assert "email" not in mine and not leaks(mine, secret.contact_email, *secrets_of(world))


@pytest.mark.parametrize(
    "query",
    [
        "taxId={tax}",
        "taxId=like({tax})",
        "taxId=empty()",
        "taxId=notEmpty()",
        "taxId=notEquals(x)",
        "contract=notEmpty()",
        "contract.id={contract}",  # not a path of a file field: a 400 that says so is as good
        "_query=filter('taxId','{tax}')",
        "_query=or(filter('name','nobody'),filter('taxId','{tax}'))",
        "_sortField=taxId",
        "_sortField=contract",
    ],
)
def test_filtering_or_sorting_companies_by_a_hidden_field_is_403(world: World, query: str) -> None:
    secret = world.secret
    text = query.format(tax=quote(secret.tax_id), contract=secret.contract_id)
    refused(world, world.user, "GET", f"/data/companies?{text}", allowed=(400, 403) if ".id" in query else (403,))
    refused(world, world.user, "PUT", f"/data/companies/export?{text}", allowed=(400, 403))
    refused(world, world.user, "PUT", f"/data/companies/countEmployees?{text}", allowed=(400, 403))


@pytest.mark.parametrize(
    "query",
    [
        "email={email}",
        "email=like(hidden)",
        "email=notEmpty()",
        "_query=filter('email','{email}')",
        "_sortField=email",
        "company.taxId={tax}",
        "company.name={name}",
        "_sortField=company.taxId",
    ],
)
def test_filtering_or_sorting_contacts_by_what_sub_may_not_read_is_refused(world: World, query: str) -> None:
    secret = world.secret
    text = query.format(email=quote(secret.contact_email), tax=quote(secret.tax_id), name=secret.name)
    refused(world, world.sub, "GET", f"/data/contacts?{text}", allowed=(400, 403))
    refused(world, world.sub, "PUT", f"/data/contacts/export?{text}", allowed=(400, 403))


def test_a_related_hidden_field_is_no_filter_for_user_either(world: World) -> None:
    secret = world.secret
    for query in (f"company.taxId={quote(secret.tax_id)}", "_sortField=company.taxId", "company.contract=notEmpty()"):
        refused(world, world.user, "GET", f"/data/contacts?{query}", allowed=(400, 403))


def test_a_whole_entity_sub_may_not_read_is_403_on_every_route(world: World) -> None:
    secret = world.secret
    for method, path, body in [
        ("GET", "/data/companies", None),
        ("GET", f"/data/companies/{secret.company_id}", None),
        ("GET", "/data/companies/history", None),
        ("GET", f"/data/companies/{secret.company_id}/history", None),
        ("GET", f"/data/companies/{secret.company_id}/files/{secret.document_id}", None),
        ("PUT", "/data/companies/aggregate", [{"count": "n"}]),
        ("PUT", "/data/companies/export", None),
        ("PUT", f"/data/companies/{secret.company_id}/logSomething", None),
        ("PUT", "/data/companies/countEmployees", None),
        (
            "PUT",
            "/data/contacts/aggregate",
            [
                {
                    "lookup": {
                        "localFieldPath": "company",
                        "foreignFieldPath": "id",
                        "foreignEntityName": "companies",
                        "as": "c",
                    }
                }
            ],
        ),
    ]:
        refused(world, world.sub, method, path, body)
    for actor in (world.sib,):  # in no group: nothing of the app at all
        refused(world, actor, "GET", "/data/contacts")
        refused(world, actor, "GET", f"/data/contacts/{secret.contact_id}")


# Aggregate ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pipeline",
    [
        [{"match": {"taxId": "{tax}"}}],
        [{"match": {"_query": "filter('taxId','{tax}')"}}],
        [{"project": "name,taxId"}],
        [{"project": "contract"}],
        [{"group": {"by": "taxId", "n": "count()"}}],
        [{"group": {"by": "name", "t": "first(taxId)"}}],
        [{"group": {"by": "name", "t": "max(contract)"}}],
        [{"sort": {"taxId": "asc"}}],
        [{"unwind": {"fieldPath": "taxId"}}],
    ],
)
def test_an_aggregate_on_a_hidden_field_is_403(world: World, pipeline: list[dict[str, Any]]) -> None:
    stages = json.loads(json.dumps(pipeline).replace("{tax}", world.secret.tax_id))
    refused(world, world.user, "PUT", "/data/companies/aggregate", stages)


def test_an_aggregate_shows_only_readable_fields_even_through_a_lookup(world: World) -> None:
    secret = world.secret
    plain = ok(world.api, "PUT", "/data/companies/aggregate", world.user, [{"match": {"name": secret.name}}])
    assert plain["total"] == 1 and not leaks(plain, *secrets_of(world))
    lookup = {
        "lookup": {"localFieldPath": "company", "foreignFieldPath": "id", "foreignEntityName": "companies", "as": "c"}
    }
    joined = ok(
        world.api, "PUT", "/data/contacts/aggregate", world.user, [{"match": {"id": secret.contact_id}}, lookup]
    )
    assert joined["items"][0]["c"][0]["name"] == secret.name and not leaks(joined, *secrets_of(world))
    # A match on what the lookup left out tells nothing: the secret value matches as much as a made-up one
    counts = []
    for value in (secret.tax_id, "no-such-tax-id"):
        stages = [{"match": {"id": secret.contact_id}}, lookup, {"match": {"c.taxId": value}}, {"count": "n"}]
        status, answer = runtime(world.api, "PUT", "/data/contacts/aggregate", world.user, stages)
        counts.append((status, answer))
    assert counts[0] == counts[1], counts
    by_tax = {"lookup": {**lookup["lookup"], "foreignFieldPath": "taxId"}}
    refused(world, world.user, "PUT", "/data/contacts/aggregate", [by_tax])
    mine = ok(world.api, "PUT", "/data/contacts/aggregate", world.sub, [{"match": {"id": secret.contact_id}}])
    assert mine["total"] == 1 and not leaks(mine, secret.contact_email)
    refused(world, world.sub, "PUT", "/data/contacts/aggregate", [{"group": {"by": "email", "n": "count()"}}])


# History ----------------------------------------------------------------------------------------
def test_history_leaves_hidden_fields_out_of_every_entry(world: World) -> None:
    secret = world.secret
    mine = ok(world.api, "GET", f"/data/companies/{secret.company_id}/history", world.user)
    assert mine["total"] >= 2  # the create, then the change of the tax id
    for entry in mine["items"]:
        for side in (entry["oldRecord"], entry["newRecord"]):
            assert "taxId" not in side and "contract" not in side, entry
    assert not leaks(mine, *secrets_of(world))
    table = ok(world.api, "GET", "/data/companies/history?_size=1000", world.user)
    assert not leaks(table, secret.tax_id, f"OLD-{secret.tax_id}")
    # (the contract's id and content may be elsewhere: the findings' tests put them in records of their own)
    assert not leaks([e for e in table["items"] if e["recordId"] == secret.company_id], *secrets_of(world))
    # Neither group has the history of contacts
    for actor in (world.user, world.sub):
        refused(world, actor, "GET", f"/data/contacts/{secret.contact_id}/history")
        refused(world, actor, "GET", "/data/contacts/history")


# Actions ----------------------------------------------------------------------------------------
def test_an_actions_answer_and_its_jobs_results_leave_hidden_fields_out(
    world: World, jobs: dict[str, tuple[int, Any]]
) -> None:
    secret = world.secret
    answer = ok(world.api, "PUT", f"/data/companies/{secret.company_id}/logSomething", world.user, {"param1": "a"})
    assert answer["name"] == secret.name and not leaks(answer, *secrets_of(world))
    many = ok(world.api, "PUT", f"/data/companies/{secret.company_id},{secret.company_id}/logSomething", world.user, {})
    assert not leaks(many, *secrets_of(world))
    status, ref = jobs["action"]
    assert status == 200, ref
    job = finished(world.api, world.user, ref["jobId"])
    assert job["status"] == "FINISHED" and not leaks(job, *secrets_of(world))
    logs = ok(world.api, "GET", f"/status/jobs/{ref['jobId']}/logs", world.user)
    assert not leaks(logs, *secrets_of(world))
    # An action user may not run is refused before it runs
    refused(world, world.user, "PUT", f"/data/companies/{secret.company_id}/customResponse")
    refused(world, world.user, "PUT", f"/data/companies/{secret.company_id}/deactivate", {"reason": "x"})


# Record files -------------------------------------------------------------------------------------
def test_a_file_in_a_hidden_field_is_403_through_its_record(world: World) -> None:
    secret = world.secret
    refused(world, world.user, "GET", f"/data/companies/{secret.company_id}/files/{secret.contract_id}")
    status, body = runtime(
        world.api, "GET", f"/data/companies/{secret.company_id}/files/{secret.document_id}", world.user
    )
    assert status == 200 and body == b"a document the user may read"
    # A file of the tenant that this record does not hold is no file of the record
    refused(
        world,
        world.user,
        "GET",
        f"/data/companies/{world.secret.company_id}/files/{world.elsewhere.file_id}",
        allowed=(404,),
    )


# Export -------------------------------------------------------------------------------------------
def exported(world: World, actor: Actor, start: tuple[int, Any]) -> list[list[str]]:
    """The rows of an export `actor` started (the developer downloads the file: a user may not)."""
    status, ref = start
    assert status == 200, ref
    job = finished(world.api, actor, ref["jobId"])
    assert job["status"] == "FINISHED", job
    status, body = runtime(world.api, "GET", f"/files/{job['results']['fileId']}", world.dev)
    assert status == 200, body
    return list(csv.reader(io.StringIO(body.decode())))


def test_an_export_leaves_hidden_fields_out_whatever_the_fields_asked(
    world: World, jobs: dict[str, tuple[int, Any]]
) -> None:
    secret = world.secret
    for name in ("export", "export-fields"):
        rows = exported(world, world.user, jobs[name])
        assert len(rows) == 2 and not leaks("\n".join(",".join(r) for r in rows).encode(), *secrets_of(world)), rows
        assert not {"taxId", "contract", "Tax ID", "Contract"} & set(rows[0]), rows[0]
    rows = exported(world, world.sub, jobs["export-sub"])
    assert rows[0] == ["firstName"] and not leaks(str(rows).encode(), secret.contact_email)


def test_an_export_leaves_out_related_fields_of_an_entity_its_caller_may_not_read(
    world: World, jobs: dict[str, tuple[int, Any]]
) -> None:
    status, answer = jobs["export-related"]
    if status == 200:
        body = exported(world, world.sub, (status, answer))
        assert not leaks(str(body).encode(), f"{world.tag}.example.test"), body
    else:
        assert status in (400, 403), answer
