"""A big import spreads its writes: no DynamoDB partition key takes more than 1/shards of them."""

from __future__ import annotations

from collections import Counter
from typing import Any

from backroom.calcengine.tables import custom_table
from backroom.wiring import Core

from infra.demo.load import load_demo
from tests.core.conftest import QueueDriver

ROWS = 2_400
# A fair hash gives each of 8 shards 300 rows, give or take sqrt(300 * 7/8) ~ 16: 30% (90 rows) is > 5 sigma.
# An unsharded key would take all the rows (8 times a shard's share), a participant's a third of them (2.7 times).
SLACK = 1.30


def test_a_2400_row_import_writes_no_key_more_than_its_share(core: Core, queue: QueueDriver) -> None:
    # Given the demo's `sales` table (indexes on period, participant and participant+period) and a file
    # whose 2,400 rows all carry the same period and one of three participants
    load_demo(core, app_records=False)  # the runtime records are not read here
    caller = core.identity.login("dev@demo.local", "demo-dev-password").caller
    schema = custom_table(core.records, caller.tenant_id, "sales")
    body = "participant_eid,period,amount\n" + "".join(f"test_user_{i % 3 + 1},3,{i % 997}.25\n" for i in range(ROWS))
    uploaded = core.calcengine.upload(caller, "big.csv", body.encode())
    written: Counter[str] = Counter()

    def record(params: dict[str, Any], **_: Any) -> None:
        for requests in params.get("RequestItems", {}).values():
            for request in requests:
                key = request.get("PutRequest", {}).get("Item") or request.get("DeleteRequest", {}).get("Key")
                written[key["pk"]["S"]] += 1
        for name in ("Item", "Key"):
            if name in params:
                written[params[name]["pk"]["S"]] += 1
        for entry in params.get("TransactItems", []):
            for op in entry.values():
                written[(op.get("Item") or op.get("Key"))["pk"]["S"]] += 1

    events = core.table.client.meta.events
    for call in ("BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"):
        events.register(f"provide-client-params.dynamodb.{call}", record)
    try:
        # When the file is imported for period 3, workers draining the queue
        job = core.calcengine.import_file(caller, uploaded.id, "sales-1", [3])
        queue.drain()
    finally:
        for call in ("BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"):
            events.unregister(f"provide-client-params.dynamodb.{call}", record)

    # Then every row landed, and every partition key took at most its shard's share of the rows
    assert core.jobs.get(job.id, caller.tenant_id).processed == ROWS
    assert core.calcengine.extract(caller, "sales", {"period": ["3"]}, 0, 1)[1] == ROWS
    per_row = 1 + len(schema.indexes) + 1  # the record, its index entries and its import file's entry
    assert sum(written.values()) >= ROWS * per_row
    hottest, most = written.most_common(1)[0]
    assert most <= ROWS / schema.shards * SLACK, (hottest, most)
    # One partition key per shard for the records, and for each index value: every one of them was used.
    records = [pk for pk in written if pk.startswith(f"REC#{caller.tenant_id}#gateway:sales#")]
    assert len(records) == schema.shards
