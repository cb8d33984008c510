"""Oversized and unbounded requests: page sizes, id lists, filters, nesting and bodies past every
documented bound answer a 4xx that says so, in the dialect's format; never a 500, never a request that
runs on and on. A value that fits each field's limits but not the store's item size is the caller's
mistake too.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.security.actors import (
    DEMO,
    World,
    ok,
    runtime,
    world_fixture,  # noqa: F401 - the fixture `world`
)

IDS_1001 = ",".join(f"{i:024x}" for i in range(1001))
DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/data/companies?_size=1001"),
        ("GET", "/data/companies?_offset=100001"),
        ("GET", "/data/companies/history?_size=1001"),
        ("GET", "/data/companies/{company}/history?_size=1001"),
        ("GET", "/status/jobs?_size=1001"),
        ("GET", "/status/logs?_size=100000"),
        ("PUT", "/data/companies/export?_size=1000001"),
        ("PUT", "/data/companies/export?_offset=1000001"),
        ("PUT", f"/data/companies/{IDS_1001}/logSomething"),
        ("DELETE", f"/data/contacts/{IDS_1001}"),
        ("GET", "/data/companies?_query=" + "and(" * 11 + "filter('name','x')" + ")" * 11),
        ("GET", "/data/companies?_query=and(" + ",".join(["filter('name','x')"] * 101) + ")"),
        ("GET", "/data/companies?name=like(/" + "a" * 201 + "/)"),
    ],
)
def test_runtime_bounds_are_400(world: World, method: str, path: str) -> None:
    status, answer = runtime(world.api, method, path.format(company=world.secret.company_id), world.dev)
    assert status == 400 and answer["code"] == "validationErrors", (status, answer)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (f"/v2/accounts/{DEMO}/tasks?page_size=1001", "tasks"),
        ("/gateway/errand/v1/errands?size=2001", "gateway"),
        ("/gateway/errand/v1/errands/1/logs?size=2001", "gateway"),
        ("/gateway/extract/v1/custom-tables/test_table_name?size=2001", "gateway"),
        ("/gateway/extract/v1/custom-tables/test_table_name?page=10000001", "gateway"),
    ],
)
def test_tasks_and_gateway_page_bounds_are_400(world: World, path: str, headers: str) -> None:
    reply = world.api.call("GET", path, headers=getattr(world.dev, headers))
    assert reply.status == 400, reply.body


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/gateway/errand/v1/calculations", {"calculationId": 1, "periodRange": list(range(1, 1002))}),
        ("/gateway/errand/v1/calculations", {"calculationId": 1, "participantIds": list(range(1, 10002))}),
        ("/gateway/errand/v2/calculations", {"calculationId": 1, "participantEids": ["e" * 256]}),
        ("/gateway/errand/v1/imports/records", {"records": [{"field1": "x"}] * 51, "importFileTypeId": "standard-1"}),
        (
            "/gateway/errand/v1/imports/records",
            {"records": [{"field1": "x" * 100_000}] * 50, "importFileTypeId": "standard-1"},
        ),
    ],
)
def test_gateway_bodies_past_their_bounds_are_400(world: World, path: str, body: dict[str, Any]) -> None:
    reply = world.api.call("POST", path, body=body, headers=world.dev.gateway)
    assert reply.status == 400, reply.body[:300]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/data/companies/aggregate"),
        ("PUT", "/data/companies/{company}/logSomething"),
        ("PUT", "/data/companies/{company}"),
        ("POST", "/status/logs"),
    ],
)
def test_deeply_nested_bodies_are_400(world: World, method: str, path: str) -> None:
    status, answer = runtime(world.api, method, path.format(company=world.secret.company_id), world.dev, DEEP)
    assert status == 400, (status, answer)


def addresses(count: int, letter: str = "a") -> list[dict[str, str]]:
    """`count` addresses, each field at its longest (200 + 20 + 100 + 50 characters)."""
    return [{"addressLine": letter * 200, "zipCode": "z" * 20, "city": "c" * 100, "state": "s" * 50}] * count


def test_a_record_too_big_for_the_store_is_a_400_on_create(world: World) -> None:
    status, answer = runtime(
        world.api,
        "POST",
        "/data/companies",
        world.user,
        {"name": f"fat-{uuid.uuid4().hex}", "addresses": addresses(1000)},
    )
    assert status == 400, (status, answer)


def test_an_update_too_big_for_its_history_entry_is_not_a_500(world: World) -> None:
    made = ok(
        world.api,
        "POST",
        "/data/companies",
        world.user,
        {"name": f"fat-{uuid.uuid4().hex}", "addresses": addresses(450)},
    )
    status, answer = runtime(
        world.api, "PUT", f"/data/companies/{made['id']}", world.user, {"addresses": addresses(450, "b")}
    )
    assert status in (200, 400), (status, answer)


def test_a_log_too_big_for_the_store_is_a_400(world: World) -> None:
    body = {"level": "INFO", "message": "big", "additionalInfo": {"a": "y" * 500_000}}
    status, answer = runtime(world.api, "POST", "/status/logs", world.dev, body)
    assert status == 400, (status, answer)


def test_a_long_log_message_is_kept_within_bounds(world: World) -> None:
    marker = uuid.uuid4().hex
    status, answer = runtime(
        world.api, "POST", "/status/logs", world.dev, {"level": "INFO", "message": marker + "x" * 1_000_000}
    )
    assert status in (200, 400), (status, str(answer)[:200])
    if status == 200:
        assert len(answer["message"]) < 100_000
