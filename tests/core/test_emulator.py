"""The emulator's DynamoDB transactions: all or nothing, one at a time, as DynamoDB runs them.

moto's own TransactWriteItems copies whole tables to roll back; infra/local/moto_transactions.py
undoes only the items a transaction touched. These tests pin what must not change: a cancelled
transaction leaves every item as it was, the error answers are moto's, and of concurrent writers
conditioned on the same version exactly one wins.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from backroom import aws
from backroom.config import Settings
from botocore.exceptions import ClientError

from infra.local import patches


@pytest.fixture
def ddb(settings: Settings) -> Any:
    return aws.client("dynamodb", settings)


@pytest.fixture
def table(settings: Settings) -> str:
    return settings.table_name


def key(pk: str, sk: str = "r") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def item(pk: str, sk: str = "r", **attrs: Any) -> dict[str, Any]:
    return {**key(pk, sk), **{k: {"N": str(v)} if isinstance(v, int) else {"S": v} for k, v in attrs.items()}}


def stored(ddb: Any, table: str, pk: str, sk: str = "r") -> dict[str, Any] | None:
    found: dict[str, Any] | None = ddb.get_item(TableName=table, Key=key(pk, sk), ConsistentRead=True).get("Item")
    return found


def put(table: str, it: dict[str, Any], condition: str | None = None, **values: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"TableName": table, "Item": it}
    if condition:
        op["ConditionExpression"] = condition
    if values:
        op["ExpressionAttributeValues"] = values
    return {"Put": op}


def bump(table: str, pk: str, sk: str = "r", *, expected: int = 1) -> dict[str, Any]:
    """Set version expected + 1 where the version is `expected`."""
    return {
        "Update": {
            "TableName": table,
            "Key": key(pk, sk),
            "UpdateExpression": "SET version = :next, touched = :yes",
            "ConditionExpression": "version = :v",
            "ExpressionAttributeValues": {
                ":v": {"N": str(expected)},
                ":next": {"N": str(expected + 1)},
                ":yes": {"S": "y"},
            },
        }
    }


@pytest.fixture
def eager_threads() -> Iterator[None]:
    """Switch threads as often as the interpreter can, so that a missing lock shows as a lost race."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def cancelled(call: Any) -> list[dict[str, Any]]:
    """The CancellationReasons of the TransactionCanceledException the call raises."""
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException", error
    reasons: list[dict[str, Any]] = error["CancellationReasons"]
    return reasons


@pytest.fixture
def seeded(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    """Four items a transaction will try to change, and an unrelated neighbour in the same partition."""
    items = {
        "record": item("T#rec", version=1, name="Ann"),
        "replaced": item("T#unique", "email#ann@x", holder="rec-1"),
        "deleted": item("T#index", "old#1", target="rec-1"),
        "guard": item("T#guard", version=7),
        "neighbour": item("T#index", "old#2", target="rec-2"),
    }
    for it in items.values():
        ddb.put_item(TableName=table, Item=it)
    return items


def test_a_transaction_with_one_failed_condition_writes_nothing(
    ddb: Any, table: str, seeded: dict[str, dict[str, Any]]
) -> None:
    # Given a transaction whose operations before and after the failing one would all write:
    # an update of an existing item, a Put replacing one, a Delete of one, Puts of new items
    writes = [
        bump(table, "T#rec"),
        put(table, item("T#unique", "email#ann@x", holder="rec-2")),
        {"Delete": {"TableName": table, "Key": key("T#index", "old#1")}},
        {
            "ConditionCheck": {
                "TableName": table,
                "Key": key("T#guard"),
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": {"N": "1"}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        put(table, item("T#history", "v#2", version=2), "attribute_not_exists(pk)"),
        put(table, item("T#new", "n", gsi1pk="G#new", gsi1sk="1")),
    ]

    reasons = cancelled(lambda: ddb.transact_write_items(TransactItems=writes))

    # Then the answer names the failed condition at its position, with the item as it is
    assert [r["Code"] for r in reasons] == ["None", "None", "None", "ConditionalCheckFailed", "None", "None"]
    assert reasons[3]["Item"] == seeded["guard"]
    # And every item is as it was: updated, replaced and deleted ones back, new ones absent
    for name, it in seeded.items():
        assert stored(ddb, table, it["pk"]["S"], it["sk"]["S"]) == it, name
    assert stored(ddb, table, "T#history", "v#2") is None
    assert stored(ddb, table, "T#new", "n") is None
    # (queries see the same: the partition and the index hold what they held)
    partition = ddb.query(
        TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "T#index"}}
    )
    assert [i["sk"]["S"] for i in partition["Items"]] == ["old#1", "old#2"]
    index = ddb.query(
        TableName=table,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :p",
        ExpressionAttributeValues={":p": {"S": "G#new"}},
    )
    assert index["Items"] == []


def test_a_transaction_whose_conditions_hold_writes_all(
    ddb: Any, table: str, seeded: dict[str, dict[str, Any]]
) -> None:
    ddb.transact_write_items(
        TransactItems=[
            bump(table, "T#rec"),
            put(table, item("T#unique", "email#ann@x", holder="rec-2"), "holder = :o", **{":o": {"S": "rec-1"}}),
            {
                "Delete": {
                    "TableName": table,
                    "Key": key("T#index", "old#1"),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {
                "ConditionCheck": {
                    "TableName": table,
                    "Key": key("T#guard"),
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": {":v": {"N": "7"}},
                }
            },
            put(table, item("T#history", "v#2", version=2), "attribute_not_exists(pk)"),
        ]
    )

    assert stored(ddb, table, "T#rec") == {**seeded["record"], "version": {"N": "2"}, "touched": {"S": "y"}}
    assert stored(ddb, table, "T#unique", "email#ann@x") == item("T#unique", "email#ann@x", holder="rec-2")
    assert stored(ddb, table, "T#index", "old#1") is None
    assert stored(ddb, table, "T#index", "old#2") == seeded["neighbour"]
    assert stored(ddb, table, "T#guard") == seeded["guard"]
    assert stored(ddb, table, "T#history", "v#2") == item("T#history", "v#2", version=2)


def test_a_transaction_refused_as_invalid_midway_writes_nothing(
    ddb: Any, table: str, seeded: dict[str, dict[str, Any]]
) -> None:
    # Two operations on one item: moto refuses the second after the first has written
    with pytest.raises(ClientError) as twice:
        ddb.transact_write_items(
            TransactItems=[
                put(table, item("T#new", "n")),
                bump(table, "T#rec"),
                {"Delete": {"TableName": table, "Key": key("T#rec")}},
            ]
        )
    assert twice.value.response["Error"]["Code"] == "ValidationException"
    assert "multiple operations on one item" in twice.value.response["Error"]["Message"]
    # An entry with two operations: moto stops there without rolling back what came before
    with pytest.raises(ClientError) as two_ops:
        ddb.transact_write_items(
            TransactItems=[
                put(table, item("T#new", "n")),
                {"Delete": {"TableName": table, "Key": key("T#index", "old#1")}},
                {**bump(table, "T#guard", expected=7), "Delete": {"TableName": table, "Key": key("T#guard")}},
            ]
        )
    assert two_ops.value.response["Error"]["Code"] == "ValidationException"

    for name, it in seeded.items():
        assert stored(ddb, table, it["pk"]["S"], it["sk"]["S"]) == it, name
    assert stored(ddb, table, "T#new", "n") is None


@pytest.mark.usefixtures("eager_threads")
def test_of_eight_concurrent_writers_on_one_version_exactly_one_wins(ddb: Any, table: str) -> None:
    for round_ in range(5):
        pk = f"T#race{round_}"
        ddb.put_item(TableName=table, Item=item(pk, version=1))
        start = threading.Barrier(8)
        outcomes: dict[int, str] = {}

        def write(n: int, pk: str = pk, start: threading.Barrier = start, outcomes: dict[int, str] = outcomes) -> None:
            # Each writer's transaction also adds its own history item: only the winner's may exist
            writes = [bump(table, pk), put(table, item(pk, f"h#{n}", writer=n), "attribute_not_exists(pk)")]
            start.wait()
            try:
                ddb.transact_write_items(TransactItems=writes)
                outcomes[n] = "won"
            except ClientError as err:
                reasons = err.response.get("CancellationReasons", [])
                outcomes[n] = ",".join(r["Code"] for r in reasons) or err.response["Error"]["Code"]

        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        winners = [n for n, outcome in outcomes.items() if outcome == "won"]
        assert len(winners) == 1, outcomes
        assert sorted(o for o in outcomes.values() if o != "won") == ["ConditionalCheckFailed,None"] * 7
        assert stored(ddb, table, pk) == {**item(pk, version=2), "touched": {"S": "y"}}
        history = ddb.query(
            TableName=table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :h)",
            ExpressionAttributeValues={":p": {"S": pk}, ":h": {"S": "h#"}},
        )["Items"]
        assert [h["writer"]["N"] for h in history] == [str(winners[0])]


@pytest.mark.usefixtures("eager_threads")
def test_single_item_conditional_writes_and_transactions_race_fairly(ddb: Any, table: str) -> None:
    # Four PutItems and four transactions, all conditioned on version 1: one of the eight wins
    for round_ in range(5):
        pk = f"T#mixed{round_}"
        ddb.put_item(TableName=table, Item=item(pk, version=1))
        start = threading.Barrier(8)
        won: list[int] = []

        def write(n: int, pk: str = pk, start: threading.Barrier = start, won: list[int] = won) -> None:
            start.wait()
            try:
                if n % 2:
                    ddb.put_item(
                        TableName=table,
                        Item=item(pk, version=2, writer=n),
                        ConditionExpression="version = :v",
                        ExpressionAttributeValues={":v": {"N": "1"}},
                    )
                else:
                    ddb.transact_write_items(TransactItems=[bump(table, pk)])
                won.append(n)
            except ClientError as err:
                code = err.response["Error"]["Code"]
                assert code in ("ConditionalCheckFailedException", "TransactionCanceledException"), code

        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert len(won) == 1, won
        assert stored(ddb, table, pk)["version"] == {"N": "2"}  # type: ignore[index]


def test_concurrent_requests_in_the_local_gateway_each_see_their_own_event() -> None:
    # Given the local gateway's fix (powertools keeps the request on a class, one per process)
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    from infra.local import patches

    patches.install()

    def container() -> APIGatewayHttpResolver:  # one warm "container": its own resolver
        app = APIGatewayHttpResolver()

        @app.get("/echo")
        def echo() -> dict[str, str]:
            before = app.current_event.raw_event["rawQueryString"]
            time.sleep(0.02)  # another thread resolves its request meanwhile
            return {"before": before, "after": app.current_event.raw_event["rawQueryString"]}

        return app

    def event(q: str) -> dict[str, Any]:
        http = {"method": "GET", "path": "/echo", "sourceIp": "127.0.0.1"}
        context = {"http": http, "requestId": q, "routeKey": "GET /echo", "stage": "$default"}
        return {
            "version": "2.0",
            "routeKey": "GET /echo",
            "rawPath": "/echo",
            "rawQueryString": q,
            "headers": {},
            "requestContext": context,
        }

    seen: list[tuple[str, dict[str, str]]] = []

    def caller(q: str) -> None:
        app = container()
        for _ in range(5):
            seen.append((q, json.loads(app.resolve(event(q), None)["body"])))

    # When 8 threads resolve requests at once
    threads = [threading.Thread(target=caller, args=(f"q={i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # Then every handler read its own request from start to end
    assert len(seen) == 40
    assert all(answer == {"before": q, "after": q} for q, answer in seen)


def test_one_condition_with_another_value_each_time_is_judged_by_each_requests_own_value(ddb: Any, table: str) -> None:
    """The emulator keeps a condition's syntax tree by expression and names (infra/local/moto_items.py): each
    request's own values decide, as on DynamoDB, and a request missing a value the condition reads is
    refused as moto refuses it, even after the same expression held with its value."""
    condition = "attribute_not_exists(pk) OR rid = :r"
    ddb.put_item(TableName=table, Item=item("cond", rid="a"))
    for rid, holds in (("a", True), ("b", False), ("a", True), ("c", False)):
        request = {"TableName": table, "Item": item("cond", rid="a"), "ConditionExpression": condition}
        if holds:
            ddb.put_item(**request, ExpressionAttributeValues={":r": {"S": rid}})
        else:
            with pytest.raises(ClientError) as failed:
                ddb.put_item(**request, ExpressionAttributeValues={":r": {"S": rid}})
            assert failed.value.response["Error"]["Code"] == "ConditionalCheckFailedException", rid
    ok = [put(table, item("cond", rid="a"), condition, **{":r": {"S": "a"}})]
    ddb.transact_write_items(TransactItems=ok)
    wrong = [put(table, item("cond", rid="a"), condition, **{":r": {"S": "z"}})]
    with pytest.raises(ClientError) as cancelled:
        ddb.transact_write_items(TransactItems=wrong)
    assert cancelled.value.response["CancellationReasons"][0]["Code"] == "ConditionalCheckFailed"
    errors = []
    for context in (contextlib.nullcontext(), patches.uninstalled()):
        with context, pytest.raises(Exception) as missing:  # whatever moto raises, both alike
            ddb.put_item(TableName=table, Item=item("cond", rid="b"), ConditionExpression=condition)
        errors.append((type(missing.value), str(missing.value)))
    assert errors[0] == errors[1]
    assert stored(ddb, table, "cond") == item("cond", rid="a")
