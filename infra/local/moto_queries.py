"""Makes moto's DynamoDB Query cost what DynamoDB's does: proportional to the items it can match.

moto 5 answers every Query by sorting every item of the table, so a job's chunk list or a task's
page gets slower with each row any test or import ever wrote (1-3 s per request at 100,000 rows).
This narrows the candidates first (the partition's items, or the items whose index hash key
matches) and lets moto do everything else as before: the same conditions, order, paging and limits.
Only the emulator is touched; the product code and its behaviour on AWS do not change.
"""

from __future__ import annotations

import bisect
import copy
import json
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import table as table_module
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

from infra.local import moto_transactions

_narrowed = threading.local()
_installed = False


def install() -> None:
    """Patch moto's Table once per process (in-process tests and the emulator server alike)."""
    global _installed
    if _installed:
        return
    _installed = True
    moto_transactions.install()  # transactions roll back item by item, one at a time
    _plain_item_responses()
    every_item: Callable[[Table], list[Any]] = Table.all_items
    query: Callable[..., Any] = Table.query

    def all_items(self: Table) -> list[Any]:
        scope = getattr(_narrowed, "scope", None)
        if scope is not None and scope[0] is self:
            if scope[2]:  # one partition, already in sort-key order
                return scope[1]
            return sorted(scope[1], key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)
        return every_item(self)

    def narrowed_query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        conditions = kwargs.get("hash_key_conditions") or []
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)  # moto passes it by position
        partitions: dict[Any, Any] = self.items
        # Snapshots (list() of a dict is atomic under the GIL): other threads of the server keep writing.
        if index_name:
            candidates = [
                item
                for bucket in list(partitions.values())
                for item in (list(bucket.values()) if self.range_key_attr else [bucket])
                if conditions and all(name in item.attrs and item.attrs[name] == value for name, value in conditions)
            ]
        else:
            bucket = partitions.get(hash_key, {})
            candidates = list(bucket.values()) if self.range_key_attr else [bucket]
            if self.range_key_attr and len(args) >= 6 and not _legacy_filters(kwargs):
                candidates, args = _page_of(candidates, args, self.range_key_attr)
        _narrowed.scope = (self, candidates, not index_name and bool(self.range_key_attr))
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _narrowed.scope = None

    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = narrowed_query  # type: ignore[method-assign]

    # A COUNT answers a number: moto's deep copy of every item it counts (to hand out) is not needed.
    handler_query: Callable[..., Any] = DynamoHandler.query

    def counting_query(self: DynamoHandler) -> Any:
        body = self.body
        _narrowed.counting = (
            body.get("Select") == "COUNT" and not body.get("FilterExpression") and "IndexName" not in body
        )
        try:
            return handler_query(self)
        finally:
            _narrowed.counting = False

    DynamoHandler.query = counting_query  # type: ignore[method-assign]
    table_module.copy = _CopyUnlessCounting()  # type: ignore[assignment]


_MOTO_KWARGS = {"hash_key_conditions", "range_key_conditions", "index_name", "consistent_read", "filter_expression"}


def _legacy_filters(kwargs: dict[str, Any]) -> bool:
    """A QueryFilter (not a FilterExpression): moto counts its matches inside the page; leave it be."""
    return any(k not in _MOTO_KWARGS for k in kwargs)


def _page_of(candidates: list[Any], args: tuple[Any, ...], range_attr: str) -> tuple[list[Any], tuple[Any, ...]]:
    """The partition's items a page can touch: past the start key, matching the sort-key condition, limit + 1.

    moto skips a page's predecessors one comparison at a time and sizes every item it keeps, so
    paging through a partition cost the square of its size. Cutting the candidates to what the page
    can reach first gives the same page (moto still applies every condition, limit and size cap to
    what is left) at the cost of one sort. The start key is consumed here.
    """
    range_comparison, range_objs, limit, start_key, forward = args[:5]
    candidates.sort(key=lambda item: item.range_key.cast_value)  # one conversion per item, not per comparison
    if range_comparison:
        candidates = [c for c in candidates if c.range_key.compare(range_comparison, range_objs)]
    if start_key:
        keys = [c.range_key for c in candidates]
        mark = DynamoType(start_key[range_attr])
        candidates = (
            candidates[bisect.bisect_right(keys, mark) :] if forward else candidates[: bisect.bisect_left(keys, mark)]
        )
    if limit:
        candidates = candidates[: limit + 1] if forward else candidates[-(limit + 1) :]
    return candidates, (range_comparison, range_objs, limit, None, *args[4:])


class _CopyUnlessCounting:
    """moto's `copy` module, whose deepcopy hands a list back as it is while a COUNT is answered."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        if getattr(_narrowed, "counting", False) and isinstance(value, list):
            return list(value)
        return copy.deepcopy(value, memo)


# Data-plane answers are already DynamoDB's JSON once moto has turned its types into dicts.
_ITEM_OPERATIONS = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "TransactGetItems",
    }
)


def _plain_item_responses() -> None:
    """Answer item operations with `json.dumps` of moto's result instead of its model-driven serializer.

    moto walks botocore's output shapes value by value: about 15 ms per 8-key record in a
    BatchGetItem answer, most of a bulk delete's time. Anything the fast path cannot dump (binary
    values, errors) takes moto's own way.
    """
    from moto.dynamodb.responses import DynamoResult

    serialize = DynamoResult.execute_result

    def execute_result(self: DynamoResult, context: Any) -> Any:
        result = self.result
        if context.operation_model.name in _ITEM_OPERATIONS and isinstance(result, dict):
            try:
                body = json.dumps({k: v for k, v in result.items() if v is not None})
            except (TypeError, ValueError):
                return serialize(self, context)
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
        return serialize(self, context)

    DynamoResult.execute_result = execute_result  # type: ignore[method-assign,assignment]
