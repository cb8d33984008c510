"""Where tables, records, index entries and history entries sit in DynamoDB: what the records parts
compute for each key (shards, digests, order keys) from a schema and a record. The formats themselves
are in the key registry, `backroom.keys` (its table lists them).

`shard` is the record id's CRC-32 modulo the table's `shards`, so a big import spreads its writes
over that many partition keys for the records and for every index value; reads merge the shards
in order. A record lists the index entries and unique markers it holds (`keys`), so an update
writes only the entries that change and a delete removes exactly what the record holds.
`<table key>` is the table's name, `gateway:<name>` for a gateway custom table (`schema.table_key`):
a runtime entity and a gateway table never share an item.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from backroom import keys
from backroom.records.model import Record
from backroom.records.query import SEP
from backroom.records.schema import RUNTIME, SOURCE_INDEX, Index, Schema
from backroom.records.values import canonical, is_empty, order_key, shard_of, value_at

UNIQUE = keys.UNIQUE  # the sort key of every unique marker: what tells a marker from an index entry in `Record.keys`
COUNT_SLOTS = 8  # items one count is spread over: a transaction adds to one of them, a read sums them all


def _digest(values: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(values)).encode()).hexdigest()[:32]


_NO_VALUES = _digest([])  # the digest of an index without equality fields: its one partition per shard


def schemas_pk(tenant_id: str) -> str:
    return keys.schemas(tenant_id)


def records_pk(tenant_id: str, schema: Schema, shard: int) -> str:
    return keys.records(tenant_id, schema.key, shard)


def record_key(tenant_id: str, schema: Schema, rid: str) -> tuple[str, str]:
    return records_pk(tenant_id, schema, shard_of(rid, schema.shards)), rid


def index_pk(tenant_id: str, schema: Schema, index: Index, shard: int, values: Sequence[str]) -> str:
    return keys.index_entry(tenant_id, schema.key, index.name, shard, _digest(values))


def entry_sk(schema: Schema, sort: str | None, data: Mapping[str, Any], rid: str, *, folded: bool = False) -> str:
    """An index entry's sort key: the order key of the value its index sorts on (none when empty), then
    the id; case-folded for a folded index."""
    value = value_at(data, sort) if sort else None
    spec = schema.field(sort) if sort else None
    ordered = "" if spec is None or is_empty(value) else order_key(spec, value)
    return f"{ordered.casefold() if folded else ordered}{SEP}{rid}"


def index_entries(tenant_id: str, schema: Schema, record: Record) -> list[tuple[str, str]]:
    """The index entries a record's values put it in (one per declared index it has a place in, and its
    source's).

    None where no query could read it (`holds`): an index's entry whose equality values include an empty
    one, or a folded index's whose sort value is empty. An empty sort value of an index that sorts keeps
    its entry (first in the order): it is how a sorted list shows records without the value, and how
    `field=` (empty) is one key range.
    """
    shard = shard_of(record.rid, schema.shards)
    entries = []
    for index in schema.indexes:
        if not holds(index, record.data):
            continue
        values = [canonical(value_at(record.data, f)) for f in index.equals]
        sk = entry_sk(schema, index.sort, record.data, record.rid, folded=index.folded)
        entries.append((index_pk(tenant_id, schema, index, shard, values), sk))
    if record.source:
        source = Index(name=SOURCE_INDEX, equals=[SOURCE_INDEX])
        entries.append((index_pk(tenant_id, schema, source, shard, [record.source]), f"{SEP}{record.rid}"))
    return entries


def holds(index: Index, data: Mapping[str, Any]) -> bool:
    """Whether a record with `data` has an entry in `index`. The planner reads an index's partition only
    for an equality (`eq`, never on an empty value: `field=` is the `empty` condition, which no equality
    field serves), and a folded index with no equality fields only for `like(/v)`, whose prefix is never
    empty: an entry with an empty equality value, or one with an empty sort value in such a folded index,
    would be written and counted and never read. A folded index with equality fields also serves those
    equalities (and their counts), so it keeps its records whose sort value is empty."""
    if any(is_empty(value_at(data, name)) for name in index.equals):
        return False
    return not (index.folded and index.sort and not index.equals and is_empty(value_at(data, index.sort)))


# Counts ---------------------------------------------------------------------
# A runtime table keeps how many records it holds, and how many entries each value of an index with
# equality fields holds (`type=a`: the records whose type is a), in the transaction of every write
# that changes them: a total is read from COUNT_SLOTS items, never from the records.
def counts_kept(schema: Schema) -> bool:
    """Runtime tables keep counts (their writes are transactions); gateway tables' rows do not."""
    return schema.namespace == RUNTIME


def records_family(tenant_id: str, schema: Schema) -> str:
    return keys.family(records_pk(tenant_id, schema, 0))


def index_family(tenant_id: str, schema: Schema, index: Index, values: Sequence[str]) -> str:
    return keys.family(index_pk(tenant_id, schema, index, 0, values))


def count_keys(family: str) -> list[tuple[str, str]]:
    return [keys.count(family, slot) for slot in range(COUNT_SLOTS)]


count_key = keys.count


def since_key(tenant_id: str, schema: Schema) -> tuple[str, str]:
    return keys.counted_since(records_family(tenant_id, schema))


def tally(tenant_id: str, schema: Schema, before: Record | None, after: Record | None) -> dict[str, int]:
    """How a write taking a record from `before` to `after` (None: absent) moves the table's counts:
    the record's own (created or deleted), and one per index entry it takes or leaves."""
    if not counts_kept(schema):
        return {}
    moves: Counter[str] = Counter()
    moves[records_family(tenant_id, schema)] += (after is not None) - (before is not None)
    old = {k for k in (before.keys if before else []) if k[1] != UNIQUE}
    new = {k for k in (after.keys if after else []) if k[1] != UNIQUE}
    for pk, _ in new - old:
        moves[keys.family(pk)] += 1
    for pk, _ in old - new:
        moves[keys.family(pk)] -= 1
    return {family: n for family, n in moves.items() if n and _counted(family)}


def _counted(family: str) -> bool:
    """Not counted: an index without equality fields (its count is the records'), and the import source's
    (`count_source` counts its entries)."""
    if not family.startswith("IDX#"):
        return True
    _, index, digest = family.rsplit("#", 2)
    return digest != _NO_VALUES and index != SOURCE_INDEX


def unique_key(tenant_id: str, schema: Schema, name: str, value: Any) -> tuple[str, str]:
    return keys.unique(tenant_id, schema.key, name, _digest([canonical(value)]))


def unique_markers(tenant_id: str, schema: Schema, data: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """The unique markers a record's values take, each with its field's name."""
    return {
        unique_key(tenant_id, schema, name, data[name]): name
        for name in schema.unique_fields
        if not is_empty(data.get(name))
    }


def history_pk(tenant_id: str, schema: Schema, rid: str) -> str:
    return keys.history(tenant_id, schema.key, rid)


history_sk = keys.history_sk


def table_history_pk(tenant_id: str, schema: Schema, shard: int) -> str:
    return keys.table_history(tenant_id, schema.key, shard)
