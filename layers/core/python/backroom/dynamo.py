"""Thin DynamoDB access shared by the repositories: (de)serialisation, paging and conditional writes.

Only repositories use this module; logic above them never sees an expression or a key. A client's error
leaves it as ConditionFailed, TransactionFailed, the caller's Invalid or a `ServiceFailure`, never as the SDK's.

Every number on its way to DynamoDB passes `storable_number`: DynamoDB keeps 38 significant digits,
magnitudes 1E-130 to 9.9999999999999999999999999999999999999E+125, and zero; NaN and infinities are
no numbers. One that does not fit is the caller's `Invalid` (a 400 naming where it was), never a crash
in boto3's serializer; one that fits but is written with more than 38 digits (trailing zeros: 1E+50
as an integer, 1.000...0) is sent as the same value in fewer digits.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar, copy_context
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from backroom.aws import error_code, failure
from backroom.errors import FieldError, Invalid, ServiceFailure

_ser = TypeSerializer()
_deser = TypeDeserializer()

NUMBER_DIGITS = 38  # significant digits DynamoDB keeps, exactly
SMALLEST_EXPONENT, LARGEST_EXPONENT = -130, 125  # of the leading digit: 1E-130 .. 9.99...E+125
# boto3 sends numbers through a context whose last digit can be no smaller than 1E-165 (Emin -128, 38
# digits): a 38-digit number just above 1E-130 fits DynamoDB but not the client, so it is refused too.
_LAST_DIGIT_EXPONENT = -165
NUMBER_RANGE = "at most 38 significant digits, magnitude from 1E-130 to 9.9999999999999999999999999999999999999E+125"
_SAFE_INT = 10**NUMBER_DIGITS  # any int below it in magnitude fits as it is


def storable_number(number: Decimal) -> Decimal | None:
    """`number` as DynamoDB stores it (the same value in at most 38 digits), or None if it cannot be stored."""
    if not number.is_finite():
        return None
    if number.is_zero():
        return Decimal(0)  # no -0, no 0E-200
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    kept = len(digits)
    while digits[kept - 1] == 0:  # exact: the digits as they are, never rounded by a context
        kept -= 1
    if kept > NUMBER_DIGITS or not SMALLEST_EXPONENT <= number.adjusted() <= LARGEST_EXPONENT:
        return None
    if exponent + len(digits) - kept < _LAST_DIGIT_EXPONENT:
        return None
    if len(digits) <= NUMBER_DIGITS:
        return number
    return Decimal((sign, digits[:kept], exponent + len(digits) - kept))


def number_problem(number: Decimal) -> str:
    """Why a number cannot be stored, in words for the caller."""
    if not number.is_finite():
        return f"is not a number: {number}"
    return f"is out of range ({NUMBER_RANGE})"


class _Unstorable(Exception):
    """A number no item can hold, with the path to it (filled in as the walk unwinds)."""

    def __init__(self, number: Decimal) -> None:
        super().__init__(str(number))
        self.number = number
        self.path: list[str | int] = []


def _number(value: int | float | Decimal) -> int | Decimal:
    if isinstance(value, int) and -_SAFE_INT < value < _SAFE_INT:
        return value
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    stored = storable_number(number)
    if stored is None:
        raise _Unstorable(number)
    return stored


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    return value


def _dynamo(value: Any) -> Any:
    """A value as boto3 serializes it: floats as Decimals, every number checked (raises _Unstorable)."""
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes):
        return value
    if isinstance(value, int | float | Decimal):
        return _number(value)
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            try:
                out[key] = _dynamo(inner)
            except _Unstorable as bad:
                bad.path.insert(0, key)
                raise
        return out
    if isinstance(value, list | tuple):
        items = []
        for index, inner in enumerate(value):
            try:
                items.append(_dynamo(inner))
            except _Unstorable as bad:
                bad.path.insert(0, index)
                raise
        return items
    if isinstance(value, set | frozenset):
        return {_dynamo(inner) for inner in value}
    return value


def _path(parts: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def _invalid(bad: _Unstorable, where: str) -> Invalid:
    message = f"{where} {number_problem(bad.number)}"
    return Invalid(message, errors=[FieldError(where, message, "invalid")])


def check_storable(value: Any, name: str) -> None:
    """Raise Invalid naming the first number in `value` (`name` and its path within) no item can hold.

    What `to_item` checks on the way out, for a caller's value stored in another form first (JSON...).
    """
    try:
        _dynamo(value)
    except _Unstorable as bad:
        raise _invalid(bad, _path([name, *bad.path])) from None


def to_item(data: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict as a low-level DynamoDB item; None values are left out.

    A number no item can hold is an Invalid naming its attribute's path (`data.amount`)."""
    item = {}
    for key, value in data.items():
        if value is None:
            continue
        try:
            item[key] = _attribute(value)
        except _Unstorable as bad:
            raise _invalid(bad, _path([key, *bad.path])) from None
    return item


def _attribute(value: Any) -> dict[str, Any]:
    """`value` as boto3's TypeSerializer gives it, the common types (text, flags, ints that fit, maps and
    lists of them: most of what a record holds) built here in one pass, every other value by boto3.
    A write's items are most of the client's work, and boto3's serializer tries each type in turn."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is bool:
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if kind is int and -_SAFE_INT < value < _SAFE_INT:
        return {"N": str(value)}
    if kind is dict:
        out = {}
        for key, inner in value.items():
            try:
                out[key] = _attribute(inner)
            except _Unstorable as bad:
                bad.path.insert(0, key)
                raise
        return {"M": out}
    if kind is list or kind is tuple:
        items = []
        for index, inner in enumerate(value):
            try:
                items.append(_attribute(inner))
            except _Unstorable as bad:
                bad.path.insert(0, index)
                raise
        return {"L": items}
    return _ser.serialize(_dynamo(value))


def to_value(value: Any, name: str = "a value") -> dict[str, Any]:
    try:
        return _attribute(value)
    except _Unstorable as bad:
        raise _invalid(bad, _path([name, *bad.path])) from None


def from_item(item: Mapping[str, Any], *, exact: bool = False) -> dict[str, Any]:
    """A low-level item as a plain dict; numbers are ints and floats, or with `exact` the stored Decimals."""
    if exact:
        return {k: _deser.deserialize(v) for k, v in item.items()}
    return {k: _plain(_deser.deserialize(v)) for k, v in item.items()}


# How DynamoDB words a refusal for size: a put's item ("Item size has exceeded the maximum allowed size"),
# an update that grows one past it ("Item size to update has exceeded..."), a transaction over 4 MB
# ("Transaction payload size cannot exceed 4MB"). moto words only the first, and lets the other two through.
_TOO_LARGE = ("size has exceeded", "size to update has exceeded", "payload size cannot exceed")


def _too_large(err: ClientError) -> bool:
    """DynamoDB's refusal of an item above 400 KB (a put, an update that grows it, a transaction's item),
    or of a transaction above 4 MB."""
    error = err.response.get("Error", {})
    message = str(error.get("Message", ""))
    return error.get("Code") == "ValidationException" and any(words in message for words in _TOO_LARGE)


def _refused(err: ClientError) -> Exception:
    """What a caller may have caused becomes the caller's 400; anything else the service's `ServiceFailure`."""
    if _too_large(err):
        return Invalid(
            "What would be stored is larger than DynamoDB holds (400 KB an item, 4 MB a transaction): "
            "keep large content in a file"
        )
    return failure(err)


class ConditionFailed(Exception):
    """A conditional write whose condition did not hold: nothing was written."""


class TransactionFailed(Exception):
    """A transaction that wrote nothing; `reasons` holds each operation's code (None for those that held)."""

    def __init__(self, reasons: list[str | None]) -> None:
        super().__init__(", ".join(str(r) for r in reasons))
        self.reasons = reasons

    @property
    def conflicted(self) -> bool:
        """It met another transaction on one of its items, or was throttled: trying again may succeed."""
        return any(r in ("TransactionConflict", "ThrottlingError") for r in self.reasons)


T = TypeVar("T")
CONFLICT_ATTEMPTS = 8


def again_on_conflict(write: Callable[[], T], attempts: int = CONFLICT_ATTEMPTS) -> T:
    """`write()`, tried again (jittered backoff) while it meets another transaction on its items: a
    transaction cancelled for a conflict, or a single write refused with TransactionConflict."""
    for attempt in range(attempts):
        try:
            return write()
        except TransactionFailed as failed:
            if not failed.conflicted or attempt == attempts - 1:
                raise
        except ServiceFailure as err:
            if err.code != "TransactionConflictException" or attempt == attempts - 1:
                raise
        time.sleep(min(0.02 * 2**attempt, 1) * (0.5 + secrets.randbelow(100) / 100))
    raise AssertionError("unreachable")


@dataclass
class Write:
    """One operation of a transaction: a put of `item`, or on `key` a delete, an `update` (an update
    expression) or, with `check`, a ConditionCheck that writes nothing; each with an optional condition."""

    item: Mapping[str, Any] | None = None
    key: tuple[str, str] | None = None
    condition: str | None = None
    names: dict[str, str] | None = None
    values: dict[str, Any] | None = None
    update: str | None = None
    check: bool = False

    @property
    def target(self) -> tuple[str, str]:
        """The item it acts on (a transaction may name an item once)."""
        if self.item is not None:
            return str(self.item["pk"]), str(self.item["sk"])
        assert self.key is not None
        return self.key

    def request(self, table: str) -> dict[str, Any]:
        if self.item is not None:
            return {"Put": _expressions({"TableName": table, "Item": to_item(self.item)}, *self._cond())}
        assert self.key is not None
        key = to_item({"pk": self.key[0], "sk": self.key[1]})
        if self.check:
            assert self.condition, "a ConditionCheck needs its condition"
            return {"ConditionCheck": _expressions({"TableName": table, "Key": key}, *self._cond())}
        if self.update is not None:
            return {
                "Update": _expressions({"TableName": table, "Key": key, "UpdateExpression": self.update}, *self._cond())
            }
        return {"Delete": _expressions({"TableName": table, "Key": key}, *self._cond())}

    def _cond(self) -> tuple[str | None, dict[str, str] | None, dict[str, Any] | None]:
        return self.condition, self.names, self.values


def _expressions(
    kwargs: dict[str, Any], condition: str | None, names: dict[str, str] | None, values: dict[str, Any] | None
) -> dict[str, Any]:
    """Add a request's condition and its placeholders (names and values are never spliced in)."""
    if condition:
        kwargs["ConditionExpression"] = condition
    if names:
        kwargs["ExpressionAttributeNames"] = names
    if values:
        kwargs["ExpressionAttributeValues"] = {k: to_value(v) for k, v in values.items()}
    return kwargs


Attribute = str | tuple[str, ...]  # an attribute by name, or a path into a map (`("data", "price")`)


def _project(kwargs: dict[str, Any], attributes: Sequence[Attribute] | None) -> dict[str, Any]:
    """Read only `attributes` (names, or paths into maps given as tuples of names), every name a placeholder."""
    if attributes:
        held: dict[str, str] = {}  # name -> placeholder
        paths = [
            ".".join(held.setdefault(n, f"#a{len(held)}") for n in ((a,) if isinstance(a, str) else a))
            for a in attributes
        ]
        kwargs["ProjectionExpression"] = ", ".join(paths)
        placeholders = {placeholder: name for name, placeholder in held.items()}
        kwargs["ExpressionAttributeNames"] = {**kwargs.get("ExpressionAttributeNames", {}), **placeholders}
    return kwargs


@dataclass
class Cost:
    """What DynamoDB's answers say a block of work cost: items the engine read (a Query's `ScannedCount`,
    what is paid for, also under a filter or a Select=COUNT), items its answers held, items written, and
    the read and write capacity units of their `ConsumedCapacity`. Units are 0 where an engine reports
    none: moto's are a fixed guess per call, and it reports none for a transaction."""

    items_read: int = 0
    items_returned: int = 0
    read_units: float = 0.0
    items_written: int = 0
    write_units: float = 0.0

    def add(self, other: Cost) -> None:
        self.items_read += other.items_read
        self.items_returned += other.items_returned
        self.read_units += other.read_units
        self.items_written += other.items_written
        self.write_units += other.write_units


class ItemCounts:
    """What the process's tables cost (`total`), and each block of work being `measured` in this context.

    One lock serializes every addition: a measurement may be added to from the threads its work runs on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = Cost()
        self._measuring: ContextVar[tuple[Cost, ...]] = ContextVar("measuring", default=())

    def add(self, cost: Cost) -> None:
        with self._lock:
            for counted in (self._total, *self._measuring.get()):
                counted.add(cost)

    def total(self) -> Cost:
        """A copy of the process's totals since it started."""
        with self._lock:
            return replace(self._total)

    @contextmanager
    def measured(self) -> Iterator[Cost]:
        """The cost of the block's DynamoDB calls, in this context only (see `measured`)."""
        cost = Cost()
        token = self._measuring.set((*self._measuring.get(), cost))
        try:
            yield cost
        finally:
            self._measuring.reset(token)


ITEMS = ItemCounts()


def measured() -> AbstractContextManager[Cost]:
    """`with measured() as cost:` the cost of the DynamoDB calls the block makes, and of none other.

    Blocks nest (an outer one counts what inner ones do). It is kept in a context variable, so calls
    that other threads make at the same time are not counted, and neither are those the block's own
    work makes on an executor's threads, unless each task runs in this context: submit `in_context(fn)`.
    """
    return ITEMS.measured()


P = ParamSpec("P")


def in_context(fn: Callable[P, T]) -> Callable[P, T]:
    """`fn`, to run on another thread (an executor's) in a copy of this thread's context as it is now:
    its DynamoDB calls count in the measurements open here. Each call runs in a copy of its own, so
    the wrapped function may run on several threads at once (`pool.map(in_context(read), shards)`)."""
    context = copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return context.copy().run(fn, *args, **kwargs)

    return run


def _units(answer: Mapping[str, Any], reading: bool) -> tuple[float, float]:
    """The read and write capacity units an answer's ConsumedCapacity reports (asked as TOTAL: one entry, or
    one per table for batches and transactions). DynamoDB reports `CapacityUnits` alone, of the call's
    kind (`reading` or writing), unless it splits them. An answer without it (moto's transactions; any
    refused call, though DynamoDB charges for a write whose condition failed) counts 0."""
    consumed = answer.get("ConsumedCapacity") or []
    read = write = 0.0
    for entry in [consumed] if isinstance(consumed, dict) else consumed:
        if "ReadCapacityUnits" in entry or "WriteCapacityUnits" in entry:
            read += float(entry.get("ReadCapacityUnits", 0))
            write += float(entry.get("WriteCapacityUnits", 0))
        elif reading:
            read += float(entry.get("CapacityUnits", 0))
        else:
            write += float(entry.get("CapacityUnits", 0))
    return read, write


def _count_read(answer: Mapping[str, Any], *, read: int, returned: int) -> None:
    read_units, write_units = _units(answer, reading=True)
    ITEMS.add(Cost(items_read=read, items_returned=returned, read_units=read_units, write_units=write_units))


def _count_written(answer: Mapping[str, Any], written: int) -> None:
    read_units, write_units = _units(answer, reading=False)
    ITEMS.add(Cost(items_written=written, read_units=read_units, write_units=write_units))


TOTAL = "TOTAL"  # ReturnConsumedCapacity, asked of every call for its cost (`ITEMS`)


def _request(call: Any, **kwargs: Any) -> Any:
    """One client call; its ClientError becomes ConditionFailed, the caller's Invalid or a ServiceFailure."""
    try:
        return call(**kwargs)
    except ClientError as err:
        if error_code(err) == "ConditionalCheckFailedException":
            raise ConditionFailed(kwargs.get("ConditionExpression", "")) from err
        raise _refused(err) from err


_BETWEEN = re.compile(r"\bBETWEEN\s+(:\w+)\s+AND\s+(:\w+)")


def _empty_range(key: str, values: Mapping[str, Any]) -> bool:
    """A key condition `BETWEEN :lo AND :hi` whose bounds are reversed (a caller's range from after to before):
    DynamoDB refuses it (ValidationException, which would be a 500), where it simply matches nothing; moto
    answers no items. Strings compare by code point, the order of DynamoDB's UTF-8 bytes; numbers by value."""
    found = _BETWEEN.search(key)
    if found is None:
        return False
    lo, hi = (values.get(name) for name in found.groups())
    if isinstance(lo, str) and isinstance(hi, str):
        return lo > hi
    if isinstance(lo, int | float | Decimal) and isinstance(hi, int | float | Decimal):
        return Decimal(str(lo)) > Decimal(str(hi))
    return False


def key_range(
    pk: str, lo: str | None, hi: str | None, *, names: tuple[str, str] = ("pk", "sk")
) -> tuple[str, dict[str, Any]]:
    """A Query's key condition for the sort keys [lo, hi) of partition `pk` (either end open; `names`:
    the partition and sort key attributes, an index's too). Both bounds go to DynamoDB, so a read stops
    at the range's end; BETWEEN takes `hi` too, so the caller leaves out the one key that may equal it."""
    part, sort = names
    if lo is not None and hi is not None:
        return f"{part} = :p AND {sort} BETWEEN :lo AND :hi", {":p": pk, ":lo": lo, ":hi": hi}
    if lo is not None:
        return f"{part} = :p AND {sort} >= :lo", {":p": pk, ":lo": lo}
    if hi is not None:
        return f"{part} = :p AND {sort} < :hi", {":p": pk, ":hi": hi}
    return f"{part} = :p", {":p": pk}


class Table:
    """One DynamoDB table behind the low-level client."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def get(
        self, pk: str, sk: str, *, consistent: bool = True, attributes: list[str] | None = None, exact: bool = False
    ) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "Key": to_item({"pk": pk, "sk": sk}),
            "ConsistentRead": consistent,
            "ReturnConsumedCapacity": TOTAL,
        }
        _project(kwargs, attributes)
        found = _request(self.client.get_item, **kwargs)
        item = found.get("Item")
        _count_read(found, read=int(item is not None), returned=int(item is not None))
        return from_item(item, exact=exact) if item else None

    def put(
        self,
        data: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        """Put an item; with a `condition` that does not hold, raise ConditionFailed."""
        kwargs = _expressions(
            {"TableName": self.name, "Item": to_item(data), "ReturnConsumedCapacity": TOTAL}, condition, names, values
        )
        _count_written(_request(self.client.put_item, **kwargs), 1)

    def update(
        self,
        pk: str,
        sk: str,
        expression: str,
        *,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
        condition: str | None = None,
    ) -> dict[str, Any]:
        """Update one item and return it as it is after the update (ConditionFailed if `condition` fails)."""
        kwargs = _expressions(
            {
                "TableName": self.name,
                "Key": to_item({"pk": pk, "sk": sk}),
                "UpdateExpression": expression,
                "ReturnValues": "ALL_NEW",
                "ReturnConsumedCapacity": TOTAL,
            },
            condition,
            names,
            values,
        )
        answer = _request(self.client.update_item, **kwargs)
        _count_written(answer, 1)
        return from_item(answer["Attributes"])

    def delete(
        self,
        pk: str,
        sk: str,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        """Delete an item; with a `condition` that does not hold, raise ConditionFailed."""
        key = to_item({"pk": pk, "sk": sk})
        kwargs = _expressions(
            {"TableName": self.name, "Key": key, "ReturnConsumedCapacity": TOTAL}, condition, names, values
        )
        _count_written(_request(self.client.delete_item, **kwargs), 1)

    def query(
        self,
        key: str,
        values: dict[str, Any],
        *,
        names: dict[str, str] | None = None,
        index: str | None = None,
        forward: bool = True,
        limit: int | None = None,
        consistent: bool = False,
        start: dict[str, Any] | None = None,
        attributes: Sequence[Attribute] | None = None,
        exact: bool = False,
        page_size: int | None = None,
        filtered: str | None = None,
        scanned: Callable[[int], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Items matching a key condition, following DynamoDB's pages, at most `limit` of them.

        `page_size` asks DynamoDB for that many items a page (a reader that may stop early reads little).
        A reversed BETWEEN range matches nothing, without a request (`_empty_range`). `filtered` is a
        FilterExpression over `names` and `values` (DynamoDB reads every item of the range, and returns
        those that meet it); `scanned` is told each page's ScannedCount, the items read.
        """
        if _empty_range(key, values):
            return
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": key,
            "ExpressionAttributeValues": {k: to_value(v) for k, v in values.items()},
            "ScanIndexForward": forward,
            "ReturnConsumedCapacity": TOTAL,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if index:
            kwargs["IndexName"] = index
        elif consistent:
            kwargs["ConsistentRead"] = True
        if start:
            kwargs["ExclusiveStartKey"] = to_item(start)
        if filtered:
            kwargs["FilterExpression"] = filtered
        _project(kwargs, attributes)
        remaining = limit
        while True:
            if remaining is not None or page_size:
                kwargs["Limit"] = max(1, min(remaining or 1000, page_size or 1000, 1000))
            page = _request(self.client.query, **kwargs)
            _count_read(page, read=page.get("ScannedCount", 0), returned=len(page.get("Items", [])))
            if scanned is not None:
                scanned(page.get("ScannedCount", 0))
            for item in page.get("Items", []):
                yield from_item(item, exact=exact)
            if page_size:
                page_size = min(page_size * 2, 1000)  # a reader that keeps reading gets bigger pages
            if remaining is not None:
                remaining -= len(page.get("Items", []))
                if remaining <= 0:
                    return
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def batch_get(
        self, keys: Sequence[tuple[str, str]], *, attributes: list[str] | None = None, exact: bool = False
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The items found under `keys` (100 a request, retrying what DynamoDB leaves unprocessed)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {
                "Keys": [to_item({"pk": pk, "sk": sk}) for pk, sk in unique[start : start + 100]]
            }
            request["ConsistentRead"] = True
            _project(request, attributes and sorted({"pk", "sk", *attributes}))
            batch = {self.name: request}
            for attempt in range(8):
                answer = _request(self.client.batch_get_item, RequestItems=batch, ReturnConsumedCapacity=TOTAL)
                got = answer.get("Responses", {}).get(self.name, [])
                _count_read(answer, read=len(got), returned=len(got))
                for raw in got:
                    item = from_item(raw, exact=exact)
                    found[(item["pk"], item["sk"])] = item
                batch = answer.get("UnprocessedKeys") or {}
                if not batch:
                    break
                time.sleep(min(0.05 * 2**attempt, 2))
            else:
                raise ServiceFailure("UnprocessedKeys", "DynamoDB left reads unprocessed")  # a job tries again
        return found

    def transact(self, writes: Sequence[Write]) -> None:
        """All `writes` or none (at most 100); a condition that fails raises TransactionFailed."""
        try:
            answer = self.client.transact_write_items(
                TransactItems=[w.request(self.name) for w in writes], ReturnConsumedCapacity=TOTAL
            )
            _count_written(answer, sum(not w.check for w in writes))  # a ConditionCheck writes nothing
        except ClientError as err:
            if error_code(err) != "TransactionCanceledException":
                raise _refused(err) from err
            reasons = err.response.get("CancellationReasons") or []
            codes = [r.get("Code") if r.get("Code") not in (None, "None") else None for r in reasons]
            raise TransactionFailed(codes or ["TransactionCanceled"]) from err

    def count(self, key: str, values: dict[str, Any], *, index: str | None = None, most: int | None = None) -> int:
        """Select=COUNT of a key range; with `most`, it reads no more than `most` items (a Limit) and
        answers at most `most`."""
        if _empty_range(key, values) or (most is not None and most <= 0):
            return 0
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": key,
            "ExpressionAttributeValues": {k: to_value(v) for k, v in values.items()},
            "Select": "COUNT",
            "ReturnConsumedCapacity": TOTAL,
        }
        if index:
            kwargs["IndexName"] = index
        total = 0
        while True:
            if most is not None:
                kwargs["Limit"] = most - total
            page = _request(self.client.query, **kwargs)
            _count_read(page, read=page.get("ScannedCount", 0), returned=0)  # a count's answer holds no item
            total += page.get("Count", 0)
            last = page.get("LastEvaluatedKey")
            if not last or (most is not None and total >= most):
                return total
            kwargs["ExclusiveStartKey"] = last

    def batch_write(self, puts: Sequence[Mapping[str, Any]] = (), deletes: Sequence[tuple[str, str]] = ()) -> None:
        """Put and delete items 25 at a time, retrying what DynamoDB leaves unprocessed.

        A key may appear once per request (AWS refuses duplicates), so the last write of a key wins.
        """
        requests: dict[tuple[str, str], dict[str, Any]] = {}
        for data in puts:
            requests[(data["pk"], data["sk"])] = {"PutRequest": {"Item": to_item(data)}}
        for pk, sk in deletes:
            requests[(pk, sk)] = {"DeleteRequest": {"Key": to_item({"pk": pk, "sk": sk})}}
        pending = list(requests.values())
        for start in range(0, len(pending), 25):
            batch: dict[str, list[dict[str, Any]]] = {self.name: pending[start : start + 25]}
            for attempt in range(8):
                answer = _request(self.client.batch_write_item, RequestItems=batch, ReturnConsumedCapacity=TOTAL)
                left = answer.get("UnprocessedItems") or {}
                _count_written(answer, len(batch[self.name]) - len(left.get(self.name, [])))
                if not left:
                    break
                batch = left
                time.sleep(min(0.05 * 2**attempt, 2))
            else:
                raise ServiceFailure(
                    "UnprocessedItems", f"DynamoDB left {len(batch.get(self.name, []))} writes unprocessed"
                )
