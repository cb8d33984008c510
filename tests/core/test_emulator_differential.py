"""The emulator's patches change cost and isolation, never an answer: moto with and without them agree.

A fixed corpus of the DynamoDB operations the product uses runs on in-process moto as it ships and
again with infra/local/patches.py installed, on the product's table (template.yaml); every answer
(items, their order, counts, LastEvaluatedKey, error codes, messages, cancellation reasons) must be
the same. Run it before moving `patches.WRITTEN_FOR` to a new moto.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models.table import Table

from infra.local import patches
from infra.local.provision import provision
from infra.local.template import Template
from tests.core.conftest import offline

Outcome = dict[str, Any]


def S(value: str) -> dict[str, str]:  # DynamoDB's own type letters
    return {"S": value}


def N(value: int) -> dict[str, str]:
    return {"N": str(value)}


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": S(pk), "sk": S(sk)}


def record(n: int) -> dict[str, Any]:
    """A record-like item of partition T#rec: an amount, a region (gsi1) and, for some, a set and bytes."""
    region = ("north", "south", "east")[n % 3]
    item = {
        **key("T#rec", f"r#{n:03d}"),
        "amount": N(n * 7 % 50),
        "region": S(region),
        "version": N(1),
        "gsi1pk": S(f"T#region#{region}"),
        "gsi1sk": S(f"{n * 7 % 50:04d}#{n:03d}"),
    }
    if n % 4 == 0:
        item["tags"] = {"SS": [f"t{n % 3}", "all"]}
    if n % 10 == 0:
        item["blob"] = {"B": bytes([n, 0, 255])}
    return item


@dataclass
class Corpus:
    """Runs the steps on one client, keeping each answer (or error) under its step's label."""

    ddb: Any
    table: str
    answers: list[tuple[str, Outcome]] = field(default_factory=list)

    def step(self, label: str, operation: str, **params: Any) -> Outcome:
        try:
            answer = getattr(self.ddb, operation)(**params)
            outcome: Outcome = {k: v for k, v in answer.items() if k != "ResponseMetadata"}
        except ClientError as err:
            reply = err.response
            outcome = {"error": reply["Error"]["Code"], "message": reply["Error"].get("Message")}
            outcome.update({k: reply[k] for k in ("CancellationReasons", "Item") if k in reply})
        self.answers.append((label, outcome))
        return outcome

    def pages(self, label: str, **params: Any) -> None:
        """Every page of a Query or Scan, each one a step, following LastEvaluatedKey."""
        operation = "scan" if "KeyConditionExpression" not in params else "query"
        start: dict[str, Any] | None = None
        for page in range(50):
            answer = self.step(f"{label} page {page}", operation, TableName=self.table, **params, **_start(start))
            start = answer.get("LastEvaluatedKey")
            if not start:
                return
        raise AssertionError(f"{label}: more than 50 pages")

    def query(self, label: str, condition: str, values: dict[str, Any], **params: Any) -> Outcome:
        return self.step(
            label,
            "query",
            TableName=self.table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            **params,
        )


def _start(start: dict[str, Any] | None) -> dict[str, Any]:
    return {"ExclusiveStartKey": start} if start else {}


def run_corpus(ddb: Any, table: str) -> list[tuple[str, Outcome]]:
    corpus = Corpus(ddb, table)
    _writes_in_batches(corpus)
    _queries(corpus)
    _index_queries(corpus)
    _reads(corpus)
    _conditional_writes(corpus)
    _transactions(corpus)
    _deletes_then_reads(corpus)
    return corpus.answers


def _writes_in_batches(c: Corpus) -> None:
    items = [record(n) for n in range(40)] + [{**key("T#other", f"o#{n}"), "amount": N(n)} for n in range(5)]
    for first in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": it}} for it in items[first : first + 25]]
        c.step(f"batch write from {first}", "batch_write_item", RequestItems={c.table: batch})


def _queries(c: Corpus) -> None:
    rec = {":p": S("T#rec")}
    c.query("whole partition", "pk = :p", rec)
    c.query("whole partition, newest first", "pk = :p", rec, ScanIndexForward=False)
    c.query("begins_with", "pk = :p AND begins_with(sk, :s)", {**rec, ":s": S("r#01")})
    c.query("sk after", "pk = :p AND sk > :s", {**rec, ":s": S("r#035")})
    c.query("no such partition", "pk = :p", {":p": S("T#none")})
    between = {"KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b"}
    bounds = {**rec, ":a": S("r#005"), ":b": S("r#025")}
    c.pages("between, 7 a page", **between, ExpressionAttributeValues=bounds, Limit=7)
    c.pages(
        "between, 7 a page, backwards", **between, ExpressionAttributeValues=bounds, Limit=7, ScanIndexForward=False
    )
    c.pages(
        "filtered, 5 a page (the limit counts before the filter)",
        KeyConditionExpression="pk = :p",
        FilterExpression="amount > :x AND contains(tags, :t)",
        ExpressionAttributeValues={**rec, ":x": N(20), ":t": S("all")},
        Limit=5,
    )
    c.query(
        "projection",
        "pk = :p AND begins_with(sk, :s)",
        {**rec, ":s": S("r#00")},
        ProjectionExpression="sk, #a, tags, #b",
        ExpressionAttributeNames={"#a": "amount", "#b": "blob"},
    )
    c.query(
        "projection of strings, a name missing, 6 a page",
        "pk = :p",
        rec,
        ProjectionExpression="sk, #r, nowhere, pk",
        ExpressionAttributeNames={"#r": "region"},
        Limit=6,
    )
    c.query("count", "pk = :p", rec, Select="COUNT")
    c.query("count, filtered", "pk = :p", {**rec, ":x": N(25)}, Select="COUNT", FilterExpression="amount < :x")
    c.query("count, 9 at most", "pk = :p", rec, Select="COUNT", Limit=9)
    c.query("start key past the end", "pk = :p", rec, ExclusiveStartKey=key("T#rec", "r#999"))
    c.query("unknown index", "pk = :p", rec, IndexName="gsi9")


def _index_queries(c: Corpus) -> None:
    north = {":p": S("T#region#north")}
    c.query("gsi1", "gsi1pk = :p", north, IndexName="gsi1")
    c.query("gsi1 newest first", "gsi1pk = :p", north, IndexName="gsi1", ScanIndexForward=False)
    c.query("gsi1 begins_with", "gsi1pk = :p AND begins_with(gsi1sk, :s)", {**north, ":s": S("00")}, IndexName="gsi1")
    c.pages(
        "gsi1, 3 a page",
        KeyConditionExpression="gsi1pk = :p",
        ExpressionAttributeValues=north,
        IndexName="gsi1",
        Limit=3,
    )
    c.pages(
        "gsi1 between, 4 a page, backwards",
        KeyConditionExpression="gsi1pk = :p AND gsi1sk BETWEEN :a AND :b",
        ExpressionAttributeValues={**north, ":a": S("0010"), ":b": S("0040")},
        IndexName="gsi1",
        Limit=4,
        ScanIndexForward=False,
    )
    c.query("gsi1 count", "gsi1pk = :p", north, IndexName="gsi1", Select="COUNT")
    c.query("gsi2, no item has its keys", "gsi2pk = :p", {":p": S("x")}, IndexName="gsi2")


def _reads(c: Corpus) -> None:
    c.step("get", "get_item", TableName=c.table, Key=key("T#rec", "r#003"), ConsistentRead=True)
    c.step("get with bytes", "get_item", TableName=c.table, Key=key("T#rec", "r#010"))
    c.step("get missing", "get_item", TableName=c.table, Key=key("T#rec", "r#500"))
    c.step("get projected", "get_item", TableName=c.table, Key=key("T#rec", "r#004"), ProjectionExpression="tags")
    keys = [key("T#rec", f"r#{n:03d}") for n in (1, 7, 20, 33)] + [key("T#rec", "r#404"), key("T#other", "o#2")]
    c.step("batch get", "batch_get_item", RequestItems={c.table: {"Keys": keys}})
    c.step(
        "batch get projected", "batch_get_item", RequestItems={c.table: {"Keys": keys, "ProjectionExpression": "sk"}}
    )
    c.pages("scan, 10 a page", Limit=10)
    c.pages("scan filtered", FilterExpression="pk = :p", ExpressionAttributeValues={":p": S("T#other")}, Limit=20)


def _conditional_writes(c: Corpus) -> None:
    t = c.table
    c.step(
        "put if absent, present",
        "put_item",
        TableName=t,
        Item=record(3),
        ConditionExpression="attribute_not_exists(pk)",
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    c.step(
        "put if absent, absent",
        "put_item",
        TableName=t,
        Item=key("T#new", "n#1"),
        ConditionExpression="attribute_not_exists(pk)",
    )
    c.step("put replacing", "put_item", TableName=t, Item={**record(5), "amount": N(99)}, ReturnValues="ALL_OLD")
    bump = {
        "UpdateExpression": "SET version = :next, #r = :r ADD hits :one, tags :more",
        "ExpressionAttributeNames": {"#r": "region"},
    }
    values = {":v": N(1), ":next": N(2), ":r": S("west"), ":one": N(1), ":more": {"SS": ["new"]}}
    c.step(
        "update at version",
        "update_item",
        TableName=t,
        Key=key("T#rec", "r#008"),
        **bump,
        ConditionExpression="version = :v",
        ExpressionAttributeValues=values,
        ReturnValues="ALL_NEW",
    )
    c.step(
        "update at a stale version",
        "update_item",
        TableName=t,
        Key=key("T#rec", "r#008"),
        **bump,
        ConditionExpression="version = :v",
        ExpressionAttributeValues=values,
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    c.step(
        "add to a counter",
        "update_item",
        TableName=t,
        Key=key("T#counter", "c"),
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": N(1)},
        ReturnValues="UPDATED_NEW",
    )
    c.step(
        "add again",
        "update_item",
        TableName=t,
        Key=key("T#counter", "c"),
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": N(5)},
        ReturnValues="UPDATED_OLD",
    )
    c.step(
        "delete if version, stale",
        "delete_item",
        TableName=t,
        Key=key("T#rec", "r#009"),
        ConditionExpression="version = :v",
        ExpressionAttributeValues={":v": N(3)},
    )
    c.step("delete returning", "delete_item", TableName=t, Key=key("T#rec", "r#009"), ReturnValues="ALL_OLD")


def _transactions(c: Corpus) -> None:
    t = c.table

    def check(sk: str, version: int) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "TableName": t,
                "Key": key("T#rec", sk),
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": N(version)},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def writes(guard: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "Put": {
                    "TableName": t,
                    "Item": {**key("T#rec", "r#100"), "version": N(1)},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": t,
                    "Key": key("T#rec", "r#011"),
                    "UpdateExpression": "SET version = version + :one",
                    "ExpressionAttributeValues": {":one": N(1)},
                }
            },
            {"Delete": {"TableName": t, "Key": key("T#rec", "r#012")}},
            guard,
        ]

    c.step("transaction, a check fails", "transact_write_items", TransactItems=writes(check("r#013", 5)))
    c.query(
        "partition after the failed transaction",
        "pk = :p AND sk BETWEEN :a AND :b",
        {":p": S("T#rec"), ":a": S("r#010"), ":b": S("r#100")},
    )
    c.step("transaction, the checks hold", "transact_write_items", TransactItems=writes(check("r#013", 1)))
    c.query(
        "partition after the transaction",
        "pk = :p AND sk BETWEEN :a AND :b",
        {":p": S("T#rec"), ":a": S("r#010"), ":b": S("r#100")},
    )
    c.step(
        "transaction, two operations on one item",
        "transact_write_items",
        TransactItems=[check("r#014", 1), check("r#014", 1)],
    )
    c.step("transaction, one item exists already", "transact_write_items", TransactItems=writes(check("r#013", 1))[:1])
    gets = [{"Get": {"TableName": t, "Key": key("T#rec", sk)}} for sk in ("r#011", "r#012", "r#100")]
    c.step("transact get", "transact_get_items", TransactItems=gets)


def _deletes_then_reads(c: Corpus) -> None:
    deletes = [{"DeleteRequest": {"Key": key("T#rec", f"r#{n:03d}")}} for n in range(15, 25)]
    c.step("batch delete", "batch_write_item", RequestItems={c.table: deletes})
    c.pages(
        "partition after deletes, 6 a page",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": S("T#rec")},
        Limit=6,
    )
    c.query(
        "start key of a deleted item", "pk = :p", {":p": S("T#rec")}, ExclusiveStartKey=key("T#rec", "r#020"), Limit=3
    )
    c.query(
        "start key of a deleted item, backwards",
        "pk = :p",
        {":p": S("T#rec")},
        ExclusiveStartKey=key("T#rec", "r#020"),
        Limit=3,
        ScanIndexForward=False,
    )


# What moto answers on its own, so the corpus is known to reach the paths it means to: step -> error code.
EXPECTED_ERRORS = {
    "unknown index": "ResourceNotFoundException",
    "put if absent, present": "ConditionalCheckFailedException",
    "update at a stale version": "ConditionalCheckFailedException",
    "delete if version, stale": "ConditionalCheckFailedException",
    "transaction, a check fails": "TransactionCanceledException",
    "transaction, two operations on one item": "ValidationException",
    "transaction, one item exists already": "TransactionCanceledException",
}


def on_fresh_moto(run: Callable[[Any, str], list[tuple[str, Outcome]]]) -> list[tuple[str, Outcome]]:
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        template = Template.load()
        stack = provision(session, None, template)  # type: ignore[arg-type]
        (table,) = (stack.refs[name] for name in template.of_type("AWS::DynamoDB::Table"))
        return run(session.client("dynamodb"), table)


@pytest.fixture(scope="module")
def answers() -> Iterator[dict[str, list[tuple[str, Outcome]]]]:
    with pytest.MonkeyPatch.context() as patch:
        offline(patch)  # a local stack started earlier in this process left its endpoint in the environment
        yield _both_ways()


def _both_ways() -> dict[str, list[tuple[str, Outcome]]]:
    with patches.uninstalled():
        assert Table.query.__module__ == "moto.dynamodb.models.table"
        plain = on_fresh_moto(run_corpus)
    with patches.installed():
        assert Table.query.__module__ == "infra.local.moto_queries"
        patched = on_fresh_moto(run_corpus)
    return {"plain": plain, "patched": patched}


def test_the_corpus_reaches_what_it_means_to(answers: dict[str, list[tuple[str, Outcome]]]) -> None:
    plain = dict(answers["plain"])
    errors = {label: outcome["error"] for label, outcome in plain.items() if "error" in outcome}
    assert errors == EXPECTED_ERRORS
    # Paging took several pages, forwards and backwards, on the table and on the index
    for label in (
        "between, 7 a page",
        "between, 7 a page, backwards",
        "gsi1, 3 a page",
        "partition after deletes, 6 a page",
    ):
        assert f"{label} page 2" in plain, label
    assert plain["count"]["Count"] == 40
    assert [r["Code"] for r in plain["transaction, a check fails"]["CancellationReasons"]] == ["None"] * 3 + [
        "ConditionalCheckFailed"
    ]


def test_moto_with_and_without_the_patches_answers_the_same(answers: dict[str, list[tuple[str, Outcome]]]) -> None:
    plain, patched = answers["plain"], answers["patched"]
    assert [label for label, _ in patched] == [label for label, _ in plain]
    for (label, expected), (_, got) in zip(plain, patched, strict=True):
        assert got == expected, label


def resolve_twice() -> list[dict[str, Any]]:
    """A request to a resolver's route and to an included Router's (which reads BaseRouter's class state)."""
    app, router = APIGatewayHttpResolver(), APIGatewayHttpRouter()

    @app.get("/own")
    def own() -> dict[str, Any]:
        return {"q": app.current_event.raw_event["rawQueryString"], "context": app.lambda_context}

    @router.get("/routed")
    def routed() -> dict[str, Any]:
        return {"q": router.current_event.query_string_parameters, "path": router.current_event.path}

    app.include_router(router)
    answers = []
    for path, query in (("/own", "a=1"), ("/routed", "b=2&c=3")):
        http = {"method": "GET", "path": path, "sourceIp": "127.0.0.1"}
        context = {"http": http, "requestId": query, "routeKey": f"GET {path}", "stage": "$default"}
        event = {
            "version": "2.0",
            "routeKey": f"GET {path}",
            "rawPath": path,
            "rawQueryString": query,
            "headers": {},
            "requestContext": context,
        }
        answer = app.resolve({**event, "queryStringParameters": dict(p.split("=") for p in query.split("&"))}, None)
        answers.append({**answer, "body": json.loads(answer["body"])})
    return answers


def test_powertools_answers_the_same_with_its_request_state_per_thread() -> None:
    with patches.uninstalled():
        plain = resolve_twice()
    with patches.installed():
        patched = resolve_twice()
    assert plain[0]["body"] == {"q": "a=1", "context": None}
    assert plain[1]["body"] == {"q": {"b": "2", "c": "3"}, "path": "/routed"}
    assert patched == plain


# Every kind of value an item holds, for the conditions, updates and answers below.
RICH = {
    "pk": S("T#x"),
    "sk": S("1"),
    "s": S("x"),
    "v": N(3),
    "dec": {"N": "1.50"},
    "b": {"B": b"\x00\xff"},
    "bs": {"BS": [b"\x01", b"\x02"]},
    "ss": {"SS": ["p", "q"]},
    "ns": {"NS": ["1", "2.5"]},
    "m": {"M": {"x": {"L": [S("y"), N(1), {"BOOL": True}, {"NULL": True}, {"M": {"z": {"B": b"zz"}}}]}}},
    "t": {"BOOL": False},
    "nl": {"NULL": True},
    "l": {"L": []},
    "em": {"M": {}},
    "holders": {"SS": ["h1"]},
    "st": S("pending"),
}
# (condition, values, names): the product's forms (`attribute_not_exists(pk) OR rid = :r`, IN, sizes,
# booleans, names) with values that hold and that fail, of the wrong type, missing, unused, and malformed.
CONDITIONS: list[tuple[str, dict[str, Any] | None, dict[str, str] | None]] = [
    ("v = :v", {":v": N(3)}, None),
    ("v = :v", {":v": N(4)}, None),
    ("v = :v", {":v": S("3")}, None),
    ("s < :v", {":v": N(1)}, None),
    ("v <> :v", {":v": N(3)}, None),
    ("attribute_not_exists(pk) OR v = :v", {":v": N(3)}, None),
    ("attribute_not_exists(pk) OR v = :v", {":v": N(9)}, None),
    (
        "#s IN (:a, :b) OR (#s = :p AND attribute_not_exists(q))",
        {":a": S("x"), ":b": S("y"), ":p": S("pending")},
        {"#s": "st"},
    ),
    (
        "#s IN (:a, :b) OR (#s = :p AND attribute_not_exists(q))",
        {":a": S("x"), ":b": S("y"), ":p": S("done")},
        {"#s": "st"},
    ),
    ("attribute_exists(pk) AND (attribute_not_exists(holders) OR size(holders) < :n)", {":n": N(2)}, None),
    ("attribute_exists(pk) AND (attribute_not_exists(holders) OR size(holders) < :n)", {":n": N(1)}, None),
    ("NOT t = :t", {":t": {"BOOL": True}}, None),
    ("begins_with(s, :p)", {":p": S("y")}, None),
    ("begins_with(s, :p)", {":p": N(1)}, None),
    ("contains(ss, :p)", {":p": S("p")}, None),
    ("v BETWEEN :a AND :b", {":a": N(4), ":b": N(9)}, None),
    ("v = :v", {":v": N(3), ":unused": N(1)}, None),
    ("v = :w", {":v": N(3)}, None),
    ("v = :v", None, None),
    ("#x = :v", {":v": N(3)}, {"#x": "v", "#y": "s"}),
    ("m.x[0] = :v", {":v": S("n")}, None),
    ("attribute_type(v, :t)", {":t": S("S")}, None),
    ("v = = :v", {":v": N(3)}, None),
    ("v = :v", {":v": {"N": "abc"}}, None),
]
UPDATES = [
    "SET a = :a",
    "SET a = :a, a = :b",
    "SET pk = :a",
    "ADD s :a",
    "SET a = list_append(l, :a)",
    "SET a = if_not_exists(zz, :a)",
    "SET a = :missing",
    "DELETE ss :a",
    "SET a = :a REMOVE a",
    "SET m.nope.x = :a",
    "SET a = v + :a",
]
UPDATE_VALUES: list[dict[str, Any]] = [{":a": N(1)}, {":a": S("x")}, {":a": {"SS": ["p"]}}, {":a": N(1), ":b": N(2)}]


def _outcome(call: Callable[[], dict[str, Any]]) -> Outcome:
    """An answer, DynamoDB's error, or the exception moto raises where DynamoDB would answer a 400."""
    try:
        return {k: v for k, v in call().items() if k != "ResponseMetadata"}
    except ClientError as err:
        reply = err.response
        return {
            "error": reply["Error"]["Code"],
            "message": reply["Error"].get("Message"),
            **{k: reply[k] for k in ("CancellationReasons", "Item") if k in reply},
        }
    except Exception as err:  # moto's own failure (a KeyError for a missing value) is an outcome too
        return {"exception": type(err).__name__}


def run_expressions(ddb: Any, table: str) -> list[tuple[str, Outcome]]:
    """Each condition through a put, an update, a delete and a transaction's check; each update alone and in
    a transaction; the item read back in full and by a projection after each, then put back as it was."""
    seen: list[tuple[str, Outcome]] = []
    key = {"pk": RICH["pk"], "sk": RICH["sk"]}

    def step(label: str, operation: str, **params: Any) -> None:
        seen.append((label, _outcome(lambda: getattr(ddb, operation)(**params))))

    ddb.put_item(TableName=table, Item=RICH)
    step("rich get", "get_item", TableName=table, Key=key)
    step("rich projection", "get_item", TableName=table, Key=key, ProjectionExpression="m.x[4], bs, ns, nl")
    step("rich batch get", "batch_get_item", RequestItems={table: {"Keys": [key]}})
    for n, (condition, values, names) in enumerate(CONDITIONS):
        given = {"ConditionExpression": condition}
        given |= {"ExpressionAttributeValues": values} if values is not None else {}
        given |= {"ExpressionAttributeNames": names} if names is not None else {}
        label = f"condition {n} `{condition}`"
        step(f"{label} put", "put_item", TableName=table, Item=RICH, **given)
        update_values = {**(values or {}), ":zz": N(1)}
        step(
            f"{label} update",
            "update_item",
            TableName=table,
            Key=key,
            UpdateExpression="SET zz = :zz",
            **{**given, "ExpressionAttributeValues": update_values},
        )
        step(f"{label} delete", "delete_item", TableName=table, Key={**key, "pk": S("T#none")}, **given)
        step(
            f"{label} check",
            "transact_write_items",
            TransactItems=[{"ConditionCheck": {"TableName": table, "Key": key, **given}}],
        )
        step(f"{label} after", "get_item", TableName=table, Key=key)
        ddb.put_item(TableName=table, Item=RICH)
    for update in UPDATES:
        for values in UPDATE_VALUES:
            label = f"update `{update}` {json.dumps(values)}"
            step(
                label,
                "update_item",
                TableName=table,
                Key=key,
                UpdateExpression=update,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
            step(
                f"{label} in a transaction",
                "transact_write_items",
                TransactItems=[
                    {
                        "Update": {
                            "TableName": table,
                            "Key": key,
                            "UpdateExpression": update,
                            "ExpressionAttributeValues": values,
                        }
                    }
                ],
            )
            ddb.put_item(TableName=table, Item=RICH)
    return seen


def test_conditions_updates_and_every_value_type_answer_the_same_with_and_without_the_patches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offline(monkeypatch)
    with patches.uninstalled():
        plain = on_fresh_moto(run_expressions)
    with patches.installed():
        patched = on_fresh_moto(run_expressions)
    # the corpus reaches both sides of its conditions and errors of its updates
    outcomes = dict(plain)
    assert "Item" in outcomes["condition 0 `v = :v` after"] and "error" in outcomes["condition 1 `v = :v` put"]
    assert sum("error" in o for o in outcomes.values()) > 40 and sum("error" not in o for o in outcomes.values()) > 40
    assert [label for label, _ in patched] == [label for label, _ in plain]
    for (label, expected), (_, got) in zip(plain, patched, strict=True):
        assert got == expected, label
