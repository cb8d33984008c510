"""Makes moto's TransactWriteItems cost what its items cost, and as isolated as DynamoDB's.

moto 5 deep-copies every table a transaction names before running it (to roll back on a failure),
so each transaction cost the size of the table: seconds at 20,000 items, and, as moto keeps every
model object it ever made (`instances_tracked`), about 100 MB of memory for good. This keeps a copy of only
the items the transaction can write (found by their keys, before it runs), lets moto do everything
else as before (the same checks, order, writes and error answers), and on any failure puts exactly
those items back. One process-wide lock runs transactions and single-item writes one at a time, so
of two writers conditioned on the same version exactly one wins, as on DynamoDB. Only the emulator
is touched; the product code and its behaviour on AWS do not change. infra/local/patches.py installs
`PATCHES`.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb import models as models_module
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.responses import DynamoHandler

from infra.local.patches import Patch

# Reentrant: moto's transaction calls the backend's own put_item/update_item/delete_item/get_item.
_writes = threading.RLock()
_undoing = threading.local()


def _undone_on_failure(transact: Callable[..., None]) -> Callable[..., None]:
    """moto's transact_write_items, one at a time, with only the items it can write put back on a failure."""

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        with _writes:
            undo = _UndoLog(self, transact_items)
            _undoing.active = True
            try:
                transact(self, transact_items)
            except BaseException:
                undo.restore()
                raise
            finally:
                _undoing.active = False

    return transact_write_items


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    """The method under the transactions' lock: a condition and its write, or a read, with nothing between."""

    @functools.wraps(method)
    def serialised(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _writes:
            return method(self, *args, **kwargs)

    return serialised


def _serialised_update(update: Callable[..., Any]) -> Callable[..., Any]:
    """update_item under the transactions' lock, without moto's copy of the item for a table with no stream.

    moto deep-copies the item before it changes it only to hand the old image to the table's stream
    (`stream_shard.add`); with no stream the copy was thrown away, a fifth of an update's time.
    """

    @functools.wraps(update)
    def serialised_update(self: DynamoDBBackend, table_name: str, *args: Any, **kwargs: Any) -> Any:
        with _writes:
            try:
                streamless = self.get_table(table_name).stream_shard is None
            except Exception:  # moto's own call refuses the table, with its own error
                streamless = False
            _undoing.streamless = streamless
            try:
                return update(self, table_name, *args, **kwargs)
            finally:
                _undoing.streamless = False

    return serialised_update


class _UndoLog:
    """The items a transaction can write, as they were before it ran, and how to put them back.

    An operation whose key cannot be read here (no such table, a key attribute missing, a malformed
    value) fails in moto's own key lookup too, before that operation writes anything.
    """

    def __init__(self, backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        self.items: dict[tuple[int, DynamoType, DynamoType | None], tuple[Table, Item | None, LimitedSizeDict]] = {}
        self.streams: dict[int, tuple[Table, StreamShard, list[Any], int]] = {}
        for entry in transact_items:
            if len(entry) != 1:
                continue  # moto stops at it (TransactWriteSingleOpException) before it writes
            op_type, op = next(iter(entry.items()))
            try:
                table = backend.get_table(op["TableName"])
                if op_type == "Put":
                    attrs = op["Item"]
                    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = attrs[table.range_key_attr]
                else:
                    key = op["Key"]
                hash_key, range_key = backend.get_keys_value(table, key)
                current = _stored(table, hash_key, range_key)
            except Exception:  # noqa: S112 - see the class docstring: moto writes nothing for it
                continue
            # The first sighting is the state before the transaction (a second one is refused by moto).
            # The item itself is kept with its attributes: only an Update changes them in place, so only
            # its are copied (a Put stores a new Item, a Delete drops it). A copied Item would stay in
            # moto's instances_tracked for good, as every Item does.
            found = (id(table), hash_key, range_key)
            if found not in self.items:
                attrs = _copy_of_attrs(current) if op_type == "Update" else _attrs_of(current)
                self.items[found] = (table, current, attrs)
            shard = table.stream_shard
            if shard is not None and id(table) not in self.streams:
                self.streams[id(table)] = (table, shard, shard.items, len(shard.items))

    def restore(self) -> None:
        for (_, hash_key, range_key), (table, before, attrs) in self.items.items():
            partitions: dict[Any, Any] = table.items  # [hash] = item, or [hash][range] = item
            if before is not None:
                before.attrs = attrs
            if table.range_key_attr is not None:
                if before is not None:
                    partitions[hash_key][range_key] = before
                elif hash_key in partitions:
                    partitions[hash_key].pop(range_key, None)
            elif before is not None:
                partitions[hash_key] = before
            else:
                partitions.pop(hash_key, None)
        # The stream records of writes that are undone go too (unless moto already handed them on).
        for table, shard, records, count in self.streams.values():
            if table.stream_shard is shard and shard.items is records:
                del records[count:]


def _copy_of_attrs(item: Item | None) -> LimitedSizeDict:
    """The item's attributes as they are now, copied the way moto's Item.__deepcopy__ copies them."""
    attrs = LimitedSizeDict.__new__(LimitedSizeDict)  # no size check on each insert: it passed on write
    dict.__init__(attrs)
    for name, value in item.attrs.items() if item is not None else ():
        dict.__setitem__(attrs, name, copy.deepcopy(value))
    return attrs


def _attrs_of(item: Item | None) -> LimitedSizeDict:
    """The item's own attributes, for an operation that replaces or drops the Item and leaves them be."""
    return item.attrs if item is not None else _copy_of_attrs(None)


def _stored(table: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Item | None:
    """The item at a key, without moto's get_item side effect of adding an empty partition."""
    partitions: dict[Any, Any] = table.items
    if table.range_key_attr is None:
        found: Item | None = partitions.get(hash_key)
        return found
    return (partitions.get(hash_key) or {}).get(range_key) if range_key is not None else None


def _sized_once(init: Callable[..., None]) -> Callable[..., None]:
    """moto's Item.__init__, with DynamoDB's item size checked once for the whole item: moto's
    LimitedSizeDict sums the sizes of every attribute already set on each insert (quadratic in the
    attributes, a tenth of an in-process write's time). The same limit, the same error, the same total."""

    def __init__(self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        stored = LimitedSizeDict.__new__(LimitedSizeDict)
        dict.__init__(stored)
        for key, value in attrs.items():
            dict.__setitem__(stored, key, DynamoType(value))
        if sum(bytesize(key) + value.size() for key, value in stored.items()) > 405_000:  # moto's own limit
            raise ItemSizeTooLarge
        self.attrs = stored

    return __init__


class _CopyUnlessUndoing:
    """moto's `copy` module, whose deepcopy hands a Table back as it is while a transaction runs here,
    and an Item while an update of a table with no stream runs (`_serialised_update`).

    moto's rollback (`self.tables[name] = <the copy>`) then puts the same table back, a no-op, and the
    undo log restores the items before moto's own error goes on to the caller.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        if getattr(_undoing, "active", False) and isinstance(value, Table):
            return value
        if getattr(_undoing, "streamless", False) and isinstance(value, Item):
            return value
        return copy.deepcopy(value, memo)


# What infra/local/patches.py replaces for this module (its table says why), with the shapes it expects.
PATCHES = (
    Patch(DynamoDBBackend, "transact_write_items", "(self, transact_items)", _undone_on_failure),
    Patch(models_module, "copy", "module copy", lambda _copy: _CopyUnlessUndoing()),
    Patch(Item, "__init__", "(self, hash_key, range_key, attrs)", _sized_once),
    Patch(
        DynamoDBBackend,
        "put_item",
        "(self, table_name, item_attrs, expected=None, condition_expression=None, expression_attribute_names=None,"
        " expression_attribute_values=None, overwrite=False, return_values_on_condition_check_failure=None)",
        _serialised,
    ),
    Patch(
        DynamoDBBackend,
        "update_item",
        "(self, table_name, key, update_expression, expression_attribute_names, expression_attribute_values,"
        " attribute_updates=None, expected=None, condition_expression=None,"
        " return_values_on_condition_check_failure=None)",
        _serialised_update,
    ),
    Patch(
        DynamoDBBackend,
        "delete_item",
        "(self, table_name, key, expression_attribute_names=None, expression_attribute_values=None,"
        " condition_expression=None, return_values_on_condition_check_failure=None)",
        _serialised,
    ),
    Patch(DynamoDBBackend, "get_item", "(self, table_name, keys, projection_expressions=None)", _serialised),
    Patch(DynamoHandler, "transact_get_items", "(self)", _serialised),
)
