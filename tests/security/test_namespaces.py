"""Namespaces, from the runtime's side: the gateway's custom tables are no runtime entities, whatever
route names them (a read, a write, a history, an export, an import, an aggregate's lookup). The other
direction (the Extract API reading runtime entities) is a known finding with its own test.
"""

from __future__ import annotations

import pytest

from tests.security.actors import (
    World,
    import_csv,
    runtime,
    world_fixture,  # noqa: F401 - the fixture `world`
)

TABLES = ["test_table_name", "sales", "sip_results"]


@pytest.mark.parametrize("table", TABLES)
def test_a_custom_table_is_no_runtime_entity(world: World, table: str) -> None:
    for method, path, body in [
        ("GET", f"/data/{table}", None),
        ("GET", f"/data/{table}/demo.000000001", None),
        ("GET", f"/data/{table}/history", None),
        ("POST", f"/data/{table}", {"field1": "x"}),
        ("DELETE", f"/data/{table}?field1=value1.1", None),
        ("PUT", f"/data/{table}/export", None),
        ("PUT", f"/data/{table}/aggregate", [{"count": "n"}]),
        (
            "PUT",
            "/data/contacts/aggregate",
            [{"lookup": {"localFieldPath": "id", "foreignFieldPath": "field1", "foreignEntityName": table, "as": "x"}}],
        ),
    ]:
        status, answer = runtime(world.api, method, path, world.dev, body)
        assert status in ((400, 404) if "lookup" in str(body) else (404,)), (method, path, status, answer)
        assert "value1.1" not in str(answer)
    status, answer = import_csv(world.api, world.dev, table, b"field1\nfrom-the-runtime\n")
    assert status == 404, answer
    rows = world.api.call(
        "GET", "/gateway/extract/v1/custom-tables/test_table_name?field1=from-the-runtime", headers=world.dev.gateway
    )
    assert rows.json()["page"]["totalElements"] == 0
