"""What a request or a job's message cost, as DynamoDB's answers say (`backroom.dynamo.measured`) and as
the functions report it (`backroom.observability`: a log line and, in Lambda, embedded metrics).

On in-process moto, which reports a Query's `ScannedCount` and `Count` as DynamoDB does, but capacity
units that are a fixed guess per call (1 a Query, whatever it reads) and none for a transaction: these
tests assert item counts only. DynamoDB Local reports real units (tests/integration runs on it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from backroom import observability
from backroom.dynamo import Cost, Table, Write, in_context, measured
from backroom.wiring import Core


def partition(table: Table, pk: str, items: int) -> None:
    """`items` items under `pk`."""
    table.batch_write(puts=[{"pk": pk, "sk": f"{i:05d}", "n": i} for i in range(items)])


def read(table: Table, pk: str) -> list[dict[str, Any]]:
    return list(table.query("pk = :p", {":p": pk}))


def test_a_query_counts_every_item_it_reads_and_returns(core: Core) -> None:
    partition(core.table, "COST#a", 30)
    with measured() as cost:
        assert len(read(core.table, "COST#a")) == 30
    assert (cost.items_read, cost.items_returned, cost.items_written) == (30, 30, 0)

    with measured() as cost:  # a reader that stops after 5 reads the pages it asked for, no more
        assert len(list(core.table.query("pk = :p", {":p": "COST#a"}, limit=5))) == 5
    assert (cost.items_read, cost.items_returned) == (5, 5)


def test_a_count_reads_what_it_counts_and_returns_nothing(core: Core) -> None:
    """Select=COUNT: DynamoDB reads (and charges for) every item it counts, though none comes back."""
    partition(core.table, "COST#b", 40)
    with measured() as cost:
        assert core.table.count("pk = :p", {":p": "COST#b"}) == 40
    assert (cost.items_read, cost.items_returned) == (40, 0)


def test_writes_count_the_items_they_write(core: Core) -> None:
    with measured() as cost:
        partition(core.table, "COST#c", 60)  # three BatchWriteItem calls
    assert (cost.items_written, cost.items_read) == (60, 0)

    writes = [Write(item={"pk": "COST#d", "sk": str(i)}) for i in range(4)]
    check = Write(key=("COST#c", "00000"), condition="attribute_exists(pk)", check=True)
    with measured() as cost:
        core.table.transact([*writes, check])  # the ConditionCheck writes nothing
        core.table.put({"pk": "COST#e", "sk": "1"})
        core.table.update("COST#e", "1", "SET v = :v", values={":v": 1})
        core.table.delete("COST#e", "1")
    assert cost.items_written == 4 + 3

    with measured() as cost:
        assert core.table.get("COST#c", "00001") is not None
        assert core.table.get("COST#c", "none") is None
        assert len(core.table.batch_get([("COST#c", "00002"), ("COST#c", "00003"), ("COST#c", "none")])) == 2
    assert (cost.items_read, cost.items_returned) == (3, 3)


def test_a_measurement_counts_its_own_thread_and_the_tasks_it_hands_on_in_context(core: Core) -> None:
    partition(core.table, "COST#f", 10)
    partition(core.table, "COST#g", 25)
    both_open = threading.Barrier(2)
    costs: dict[str, Cost] = {}

    def reader(pk: str) -> None:
        with measured() as cost:
            both_open.wait()  # both measurements open while both read
            read(core.table, pk)
            both_open.wait()
        costs[pk] = cost

    threads = [threading.Thread(target=reader, args=(pk,)) for pk in ("COST#f", "COST#g")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (costs["COST#f"].items_read, costs["COST#g"].items_read) == (10, 25)

    def read_one(pk: str) -> list[dict[str, Any]]:
        return read(core.table, pk)

    with measured() as outer, ThreadPoolExecutor(max_workers=2) as pool:
        with measured() as inner:
            list(pool.map(in_context(read_one), ["COST#f", "COST#g"]))
        list(pool.map(read_one, ["COST#f", "COST#g"]))  # not handed on in context: counted by neither
    assert (inner.items_read, outer.items_read) == (35, 35)


# As the functions report it ---------------------------------------------------------------------------
@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], dict]]:
    """Handlers decorated from here on emit metrics as in Lambda; the metrics their last call emitted."""
    monkeypatch.setattr(observability, "_EMITTING", True)
    monkeypatch.setattr(observability, "metrics", Metrics(namespace="Backroom", service="test"))

    def last() -> dict[str, Any]:
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
        return lines[-1]

    yield last


def context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name="test",
        memory_limit_in_mb=128,
        invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:test",
        aws_request_id="r-1",
        get_remaining_time_in_millis=lambda: 60_000,
    )


def logged_costs(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.cost for r in caplog.records if r.getMessage() == "cost"]  # type: ignore[attr-defined]


def test_a_request_reports_what_it_read_and_wrote(
    core: Core, emitted: Callable[[], dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    partition(core.table, "COST#h", 12)

    @observability.http_handler
    def handler(event: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
        read(core.table, "COST#h")
        core.table.transact([Write(item={"pk": "COST#i", "sk": str(i)}) for i in range(3)])
        return {"statusCode": 200}

    with caplog.at_level("INFO"):
        handler({"routeKey": "GET /companies", "requestContext": {"requestId": "q-1"}}, context())
    metrics = emitted()
    assert metrics["route"] == "GET /companies"
    figures = ("Requests", "ItemsRead", "ItemsReturned", "ItemsWritten")
    assert [metrics[name] for name in figures] == [[1], [12], [12], [3]]  # one value each: one request
    assert metrics["Latency"][0] > 0
    units = {m["Name"]: m["Unit"] for m in metrics["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["Latency"] == "Milliseconds"
    (line,) = logged_costs(caplog)
    assert (line["route"], line["ItemsRead"], line["ItemsWritten"]) == ("GET /companies", 12, 3)


def test_each_message_of_a_batch_reports_its_own_cost(
    core: Core, emitted: Callable[[], dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """A job's chunks arrive several to an invocation: each message is one value of each metric."""
    partition(core.table, "COST#j", 7)
    partition(core.table, "COST#k", 20)
    processor = BatchProcessor(event_type=EventType.SQS)

    @observability.message_handler
    def record_handler(record: Any, lambda_context: Any) -> None:
        read(core.table, record.body)

    @observability.event_handler
    def handler(event: dict[str, Any], lambda_context: Any) -> Any:
        return process_partial_response(event, record_handler, processor, lambda_context)

    messages: list[dict[str, Any]] = [
        {"messageId": f"m-{pk}", "body": pk, "attributes": {}} for pk in ("COST#j", "COST#k")
    ]
    with caplog.at_level("INFO"):
        assert handler({"Records": messages}, context()) == {"batchItemFailures": []}
    metrics = emitted()
    assert metrics["function"] == "test"
    assert metrics["ItemsRead"] == [7, 20]
    assert metrics["ItemsWritten"] == [0, 0]
    assert [(line["message"], line["ItemsRead"]) for line in logged_costs(caplog)] == [
        ("m-COST#j", 7),
        ("m-COST#k", 20),
    ]
