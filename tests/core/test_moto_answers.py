"""The emulator's DynamoDB answers that hold items are moto's own, only cheaper to make.

moto serializes an answer by walking botocore's output shapes value by value (seconds for a read of a
few hundred items); infra/local/moto_queries.py dumps moto's result with `json.dumps` instead, for
every item operation, in the in-process tests and in the emulator server alike. Here each answer is
made both ways and must be the same, for every operation whose answer holds items and every attribute
type, so that the shortcut cannot drift from moto's serializer unnoticed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from backroom import aws
from backroom.config import Settings
from moto.core.responses import ActionResult
from moto.dynamodb.responses import DynamoResult

# The operations whose answers hold items, which moto makes as a DynamoResult: the shortcut's to answer.
# (BatchWriteItem and TransactWriteItems answer a plain ActionResult: moto's serializer, as before.)
ITEM_ANSWERS = {"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem", "TransactGetItems"}


@pytest.fixture
def compared(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Each answer made by the shortcut and by moto's serializer, compared; the count by operation.

    `settings` comes first: its stack installs the shortcut (conftest's `stack`)."""
    shortcut: Callable[[DynamoResult, Any], Any] = DynamoResult.execute_result
    counts: Counter[str] = Counter()

    def both(result: DynamoResult, context: Any) -> Any:
        status, headers, body = shortcut(result, context)
        moto_status, _, moto_body = ActionResult.execute_result(result, context)
        name = context.operation_model.name
        assert (status, json.loads(body)) == (moto_status, json.loads(moto_body)), name
        counts[name] += 1
        return status, headers, body

    monkeypatch.setattr(DynamoResult, "execute_result", both)
    return counts


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def item(pk: str, sk: str, n: int) -> dict[str, Any]:
    """An item with a value of each type DynamoDB has (binary ones included), on both indexes."""
    return {
        **key(pk, sk),
        "gsi1pk": {"S": "answers"},
        "gsi1sk": {"S": f"{sk}#{n:03d}"},
        "gsi2pk": {"S": "answers"},
        "gsi2sk": {"N": str(n)},
        "text": {"S": f'Zoë, "quoted" {n}\n'},
        "number": {"N": f"{n}.25"},
        "flag": {"BOOL": n % 2 == 0},
        "nothing": {"NULL": True},
        "texts": {"SS": ["a", f"b{n}"]},
        "numbers": {"NS": ["1", str(n + 2)]},
        "list": {"L": [{"S": "x"}, {"N": "-3"}, {"M": {"deep": {"L": []}}}]},
        "map": {"M": {"a": {"S": ""}, "b": {"BOOL": False}}},
        **({"blob": {"B": b"\x00\xff"}, "blobs": {"BS": [b"1", b"2"]}} if n % 3 == 0 else {}),
    }


def test_every_item_operation_answers_as_motos_serializer_does(settings: Settings, compared: Counter[str]) -> None:
    ddb, table = aws.client("dynamodb", settings), settings.table_name
    items = [item("ANSWERS", f"i{n:02d}", n) for n in range(12)]
    for it in items[:8]:
        ddb.put_item(TableName=table, Item=it, ReturnConsumedCapacity="TOTAL")
    ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": it}} for it in items[8:]]})
    ddb.put_item(TableName=table, Item=items[0], ReturnValues="ALL_OLD")  # an answer with the old item

    ddb.get_item(TableName=table, Key=key("ANSWERS", "i01"), ConsistentRead=True)
    ddb.get_item(TableName=table, Key=key("ANSWERS", "none"))  # no item
    ddb.get_item(
        TableName=table,
        Key=key("ANSWERS", "i03"),
        ProjectionExpression="#t, #b, #m.b",
        ExpressionAttributeNames={"#t": "text", "#b": "blob", "#m": "map"},
    )
    pages = ddb.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "ANSWERS"}},
        PaginationConfig={"PageSize": 5},
    )
    assert sum(len(page["Items"]) for page in pages) == 12  # pages with and without LastEvaluatedKey
    for index, sk in (("gsi1", {"S": "i05#005"}), ("gsi2", {"N": "4"})):
        ddb.query(
            TableName=table,
            IndexName=index,
            KeyConditionExpression=f"{index}pk = :p AND {index}sk > :s",
            ExpressionAttributeValues={":p": {"S": "answers"}, ":s": sk},
            ScanIndexForward=False,
            Limit=3,
        )
    ddb.query(
        TableName=table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "ANSWERS"}},
        Select="COUNT",
    )
    ddb.scan(TableName=table, FilterExpression="flag = :t", ExpressionAttributeValues={":t": {"BOOL": True}})
    ddb.batch_get_item(
        RequestItems={table: {"Keys": [key("ANSWERS", f"i{n:02d}") for n in (0, 3, 7)] + [key("x", "y")]}}
    )
    ddb.update_item(
        TableName=table,
        Key=key("ANSWERS", "i02"),
        UpdateExpression="SET #n = #n + :one ADD texts :c",
        ExpressionAttributeNames={"#n": "number"},
        ExpressionAttributeValues={":one": {"N": "1"}, ":c": {"SS": ["c"]}},
        ReturnValues="ALL_NEW",
    )
    ddb.update_item(TableName=table, Key=key("ANSWERS", "i04"), UpdateExpression="REMOVE nothing")
    ddb.delete_item(TableName=table, Key=key("ANSWERS", "i06"), ReturnValues="ALL_OLD")
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": table, "Item": item("ANSWERS", "t1", 99)}},
            {"Delete": {"TableName": table, "Key": key("ANSWERS", "i07")}},
        ]
    )
    ddb.transact_get_items(
        TransactItems=[{"Get": {"TableName": table, "Key": key("ANSWERS", sk)}} for sk in ("t1", "i09", "gone")]
    )

    assert set(compared) == ITEM_ANSWERS
