"""Makes moto's DynamoDB Query cost what DynamoDB's does: proportional to the items it can match.

moto 5 answers every Query by sorting every item of the table, so a job's chunk list or a task's
page gets slower with each row any test or import ever wrote (1-3 s per request at 100,000 rows).
This narrows the candidates first (the partition's items, or the items whose index hash key
matches) and lets moto do everything else as before: the same conditions, order, paging and limits.
Only the emulator is touched; the product code and its behaviour on AWS do not change.
infra/local/patches.py installs `PATCHES`.
"""

from __future__ import annotations

import bisect
import copy
import json
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb import responses as responses_module
from moto.dynamodb.models import table as table_module
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult

from infra.local.patches import Patch

_narrowed = threading.local()


def _narrowed_items(every_item: Callable[[Table], list[Any]]) -> Callable[[Table], list[Any]]:
    """Table.all_items answering the candidates `_narrowed_query` chose, while it runs on that table."""

    def all_items(self: Table) -> list[Any]:
        scope = getattr(_narrowed, "scope", None)
        if scope is not None and scope[0] is self:
            if scope[2]:  # one partition, already in sort-key order
                return scope[1]
            return sorted(scope[1], key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)
        return every_item(self)

    return all_items


def _narrowed_query(query: Callable[..., Any]) -> Callable[..., Any]:
    """Table.query over the partition's items (or the index hash key's), cut to what the page can reach."""

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
        projection = kwargs.get("projection_expressions", args[5] if len(args) > 5 else None)
        _narrowed.projecting = bool(projection) and not index_name
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _narrowed.scope = None
            _narrowed.projecting = False

    return narrowed_query


def _marked_counts(handler_query: Callable[..., Any]) -> Callable[..., Any]:
    """DynamoHandler.query that lets `_CopyUnlessCounting` skip the copies of a plain Select=COUNT."""

    def counting_query(self: DynamoHandler) -> Any:
        body = self.body
        _narrowed.counting = (
            body.get("Select") == "COUNT" and not body.get("FilterExpression") and "IndexName" not in body
        )
        try:
            return handler_query(self)
        finally:
            _narrowed.counting = False

    return counting_query


_MOTO_KWARGS = {"hash_key_conditions", "range_key_conditions", "index_name", "consistent_read", "filter_expression"}


def _legacy_filters(kwargs: dict[str, Any]) -> bool:
    """A QueryFilter (not a FilterExpression): moto counts its matches inside the page; leave it be."""
    return any(k not in _MOTO_KWARGS for k in kwargs)


def _page_of(candidates: list[Any], args: tuple[Any, ...], range_attr: str) -> tuple[list[Any], tuple[Any, ...]]:
    """The partition's items a page can touch: past the start key, the first `limit` that match the
    sort-key condition, and the item after them.

    moto skips a page's predecessors one comparison at a time and sizes every item it keeps, so
    paging through a partition cost the square of its size. Cutting the candidates to what the page
    can reach first gives the same page (moto still applies every condition, limit and size cap to
    what is left) at the cost of one sort. The item after a full page is kept whether it matches or
    not: moto answers a LastEvaluatedKey when any item follows a full page. The start key is
    consumed here.
    """
    range_comparison, range_objs, limit, start_key, forward = args[:5]
    candidates.sort(key=lambda item: item.range_key.cast_value)  # one conversion per item, not per comparison
    if start_key:
        keys = [c.range_key for c in candidates]
        mark = DynamoType(start_key[range_attr])
        candidates = (
            candidates[bisect.bisect_right(keys, mark) :] if forward else candidates[: bisect.bisect_left(keys, mark)]
        )
    page: list[Any] = []
    for item in candidates if forward else reversed(candidates):
        if limit and len(page) == limit:
            page.append(item)  # where moto stops, with a LastEvaluatedKey
            break
        if not range_comparison or item.range_key.compare(range_comparison, range_objs):
            page.append(item)
    return page if forward else page[::-1], (range_comparison, range_objs, limit, None, *args[4:])


class _CopyUnlessCounting:
    """moto's `copy` module, whose deepcopy hands a list back as it is while a COUNT is answered, or while
    a Query of the table (not an index) projects what it found: each projected item is built anew
    (`Item.project`), so the copy of the whole items before it was thrown away."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        uncopied = getattr(_narrowed, "counting", False) or getattr(_narrowed, "projecting", False)
        if uncopied and isinstance(value, list):
            return list(value)
        return copy.deepcopy(value, memo)


def _plain_projection(project: Callable[[Item, list[list[str]]], Item]) -> Callable[[Item, list[list[str]]], Item]:
    """Item.project, for top-level string attributes (the keys a Query asks for), without moto's round trip.

    moto turns the whole item into Python values and the projection back into DynamoDB's types: most
    of a keys-only Query's time. A string comes back as it was, so for names of the top level (no
    path, no list index) whose values are strings, the new Item is built from them straight; any other
    projection or value takes moto's way.
    """

    def plain_project(self: Item, projection_expressions: list[list[str]]) -> Item:
        attrs: dict[str, Any] = {}
        for path in projection_expressions:
            if len(path) != 1 or "[" in path[0]:
                return project(self, projection_expressions)
            value = self.attrs.get(path[0])
            if value is None:
                continue  # moto's projection leaves an attribute out that the item does not have
            if value.type != "S":
                return project(self, projection_expressions)
            attrs[path[0]] = {"S": value.value}
        return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=attrs)

    return plain_project


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


def _plain_item_responses(serialize: Callable[..., Any]) -> Callable[..., Any]:
    """Answer item operations with `json.dumps` of moto's result instead of its model-driven serializer.

    moto walks botocore's output shapes value by value: about 15 ms per 8-key record in a
    BatchGetItem answer, most of a bulk delete's time. Anything the fast path cannot dump (binary
    values, errors) takes moto's own way.
    """

    def execute_result(self: DynamoResult, context: Any) -> Any:
        result = self.result
        if context.operation_model.name in _ITEM_OPERATIONS and isinstance(result, dict):
            try:
                body = json.dumps({k: v for k, v in result.items() if v is not None})
            except (TypeError, ValueError):
                return serialize(self, context)
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
        return serialize(self, context)

    return execute_result


def _plain_item_requests(parse: Callable[..., None]) -> Callable[..., None]:
    """Read item operations' requests with `json.loads` instead of moto's model-driven parser.

    moto walks botocore's input shapes value by value to rebuild what `json.loads` already gives for
    these operations: a tenth of an in-process write's time. Its walk changes a request only where it
    decodes binary values (B, BS), drops a null or a member its model does not have (which botocore
    never sends), so a body that holds a binary value or a null (or any `"B"` or `null` text at all),
    or that is not a JSON object, takes moto's own way.
    """

    def parse_parameters(self: DynamoHandler, request: Any) -> None:
        data = request.data
        plain = isinstance(data, bytes) and not any(mark in data for mark in _MOTO_PARSES)
        if plain and self._get_action() in _ITEM_OPERATIONS:
            try:
                params = json.loads(data) if data else {}
            except ValueError:
                params = None
            if isinstance(params, dict):
                self.params = params
                return
        parse(self, request)

    return parse_parameters


_MOTO_PARSES = (b'"B"', b'"BS"', b"null")  # what moto's parser would change: binary values, nulls


def _plain_to_dict(to_dict: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """moto's `dynamo_to_dict` (what DynamoResult does to every answer), with the values an item's answer
    holds (strings, numbers, plain dicts and lists, an item's attributes, a DynamoType of a non-binary type)
    turned straight.

    moto's tests each value against datetime, DynamoType and `hasattr(value, "to_json")` before it hands
    a string back as it is; the failed `hasattr` raises and catches an AttributeError for every string
    of every item: most of a BatchGetItem answer's conversion. The same answer: exact types only, and
    anything else (binary values, datetimes, model objects, subclasses) takes moto's own way.
    """

    def dynamo_to_dict(obj: Any) -> Any:
        kind = type(obj)
        if kind is str or kind is int or kind is bool or kind is float or obj is None:
            return obj
        if kind is dict or kind is LimitedSizeDict:  # an item's attributes (a dict moto sizes as it fills)
            return {k: dynamo_to_dict(v) for k, v in obj.items()}
        if kind is list:
            return [dynamo_to_dict(v) for v in obj]
        if kind is DynamoType and obj.type not in _BINARY:
            return {obj.type: dynamo_to_dict(obj.value)}
        return to_dict(obj)

    return dynamo_to_dict


_BINARY = frozenset({"B", "BS"})


# What infra/local/patches.py replaces for this module (its table says why), with the shapes it expects.
PATCHES = (
    Patch(
        Table,
        "query",
        "(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,"
        " projection_expressions, index_name=None, consistent_read=False, filter_expression=None,"
        " hash_key_conditions=None, range_key_conditions=None, **filter_kwargs)",
        _narrowed_query,
    ),
    Patch(Table, "all_items", "(self)", _narrowed_items),
    Patch(DynamoHandler, "query", "(self)", _marked_counts),
    Patch(table_module, "copy", "module copy", lambda _copy: _CopyUnlessCounting()),
    Patch(Item, "project", "(self, projection_expressions)", _plain_projection),
    Patch(DynamoResult, "execute_result", "(self, context)", _plain_item_responses),
    Patch(DynamoHandler, "parse_parameters", "(self, request)", _plain_item_requests),
    Patch(responses_module, "dynamo_to_dict", "(obj)", _plain_to_dict),
)
