"""The records repository: the only code that knows how tables, records and indexes sit in DynamoDB.

| item | pk | sk |
| --- | --- | --- |
| schema | `TABLES#<tenant>` | `<table>` |
| record | `REC#<tenant>#<table>#<shard>` | `<id>` |
| index entry (thin) | `IDX#<tenant>#<table>#<index>#<shard>#<digest of equality values>` | `<order key>\\x01<id>` |
| unique marker | `UNIQ#<tenant>#<table>#<field>#<digest of the value>` | `UNIQ` |
| history entry | `HIST#<tenant>#<table>#<id>` | `<version, 12 digits>` |

`shard` is the record id's CRC-32 modulo the table's `shards`, so a big import spreads its writes
over that many partition keys for the records and for every index value; reads merge the shards
in order. A record lists the index entries and unique markers it holds (`keys`), so an update
writes only the entries that change and a delete removes exactly what the record holds.

A single-record write is one transaction conditioned on the record's version; bulk writes from
jobs (`items`, `replacing`, `keys`) follow the engine's idempotent per-row rule instead.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from itertools import islice
from typing import Any

from pydantic import BaseModel, Field

from backroom.clock import now_ms
from backroom.dynamo import Table, TransactionFailed, Write
from backroom.errors import Conflict, FieldError, Invalid, NotFound
from backroom.ids import new_id
from backroom.records.query import SEP, Condition, Plan, Sort, matches, plan, sort_key
from backroom.records.schema import SOURCE_INDEX, Index, Schema, TableField
from backroom.records.values import (
    EXACT,
    BadValue,
    canonical,
    field_path,
    is_empty,
    normalize,
    order_key,
    render_label,
    shard_of,
    typed,
    value_at,
)

MAX_READ = 20_000  # records a request may read to check filters no index serves (then 400, not a timeout)
_READ = ["rid", "data", "version", "label", "created_at", "updated_at"]


class Record(BaseModel):
    rid: str
    data: dict[str, Any]
    version: int = 1
    label: str = ""
    source: str | None = None
    periods: list[int] = Field(default_factory=list)
    created_at: int = 0
    updated_at: int = 0
    keys: list[tuple[str, str]] = Field(default_factory=list)  # the index entries and unique markers it holds


class VersionConflict(Conflict):
    """The record changed since the version the caller holds (409 optimisticLocking)."""


class TooBroad(Invalid):
    """A filter or sort no index serves would read more records than a request may."""


class Page(BaseModel):
    records: list[Record]
    cursor: str | None = None  # where the next page starts; None on the last page
    order: Sort


def _digest(values: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(values)).encode()).hexdigest()[:32]


class RecordStore:
    def __init__(self, table: Table, *, max_read: int = MAX_READ) -> None:
        self.table = table
        self.max_read = max_read

    # Schemas -------------------------------------------------------------
    def define(self, tenant_id: str, schema: Schema) -> Schema:
        self.table.put({"pk": f"TABLES#{tenant_id}", "sk": schema.name, **schema.model_dump()})
        return schema

    def schema(self, tenant_id: str, name: str) -> Schema:
        item = self.table.get(f"TABLES#{tenant_id}", name) if 0 < len(name) <= 255 else None
        if item is None:
            raise NotFound(f"Could not find Custom Table with name {name}")
        return Schema.model_validate(item)

    # Keys ----------------------------------------------------------------
    @staticmethod
    def _records_pk(tenant_id: str, schema: Schema, shard: int) -> str:
        return f"REC#{tenant_id}#{schema.name}#{shard}"

    def _record_key(self, tenant_id: str, schema: Schema, rid: str) -> tuple[str, str]:
        return self._records_pk(tenant_id, schema, shard_of(rid, schema.shards)), rid

    @staticmethod
    def _index_pk(tenant_id: str, schema: Schema, index: Index, shard: int, values: Sequence[str]) -> str:
        return f"IDX#{tenant_id}#{schema.name}#{index.name}#{shard}#{_digest(values)}"

    @staticmethod
    def _unique_key(tenant_id: str, schema: Schema, name: str, value: Any) -> tuple[str, str]:
        return f"UNIQ#{tenant_id}#{schema.name}#{name}#{_digest([canonical(value)])}", "UNIQ"

    def _entries(self, tenant_id: str, schema: Schema, record: Record) -> list[tuple[str, str]]:
        """The index entries a record's values put it in (one per declared index, and its source's)."""
        shard = shard_of(record.rid, schema.shards)
        keys = []
        for index in schema.indexes:
            values = [canonical(value_at(record.data, f)) for f in index.equals]
            sort = value_at(record.data, index.sort) if index.sort else None
            spec = schema.field(index.sort) if index.sort else None
            ordered = "" if spec is None or is_empty(sort) else order_key(spec, sort)
            keys.append((self._index_pk(tenant_id, schema, index, shard, values), f"{ordered}{SEP}{record.rid}"))
        if record.source:
            source = Index(name=SOURCE_INDEX, equals=[SOURCE_INDEX])
            keys.append((self._index_pk(tenant_id, schema, source, shard, [record.source]), f"{SEP}{record.rid}"))
        return keys

    def _uniques(self, tenant_id: str, schema: Schema, data: Mapping[str, Any]) -> dict[tuple[str, str], str]:
        return {
            self._unique_key(tenant_id, schema, name, data[name]): name
            for name in schema.unique_fields
            if not is_empty(data.get(name))
        }

    def _item(self, tenant_id: str, schema: Schema, record: Record) -> dict[str, Any]:
        pk, sk = self._record_key(tenant_id, schema, record.rid)
        return {"pk": pk, "sk": sk, **record.model_dump()}

    # Bulk writes from jobs (idempotent per row) -------------------------
    def items(self, tenant_id: str, schema: Schema, record: Record) -> list[dict[str, Any]]:
        """What a new record puts: its item and its thin index entries (a replay writes the same items)."""
        entries = self._entries(tenant_id, schema, record)
        stored = record.model_copy(update={"keys": entries, "created_at": record.created_at or now_ms()})
        stored.label = stored.label or render_label(schema.label, stored.data)
        thin = [{"pk": pk, "sk": sk, "rid": record.rid} for pk, sk in entries]
        return [self._item(tenant_id, schema, stored), *thin]

    def keys(self, tenant_id: str, schema: Schema, record: Record) -> list[tuple[str, str]]:
        """Every item a record occupies: what a delete removes."""
        return [self._record_key(tenant_id, schema, record.rid), *record.keys]

    def replacing(
        self, tenant_id: str, schema: Schema, record: Record
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Puts and deletes that make `record` replace whatever its id held: only changed entries move."""
        old = self.get(tenant_id, schema, record.rid)
        puts = self.items(tenant_id, schema, record)
        if old is None:
            return puts, []
        puts[0]["version"] = old.version + 1
        puts[0]["created_at"] = old.created_at
        new = set(puts[0]["keys"])
        return [puts[0], *(p for p in puts[1:] if (p["pk"], p["sk"]) not in set(old.keys))], [
            k for k in old.keys if k not in new
        ]

    def put(self, tenant_id: str, schema: Schema, record: Record) -> None:
        puts, deletes = self.replacing(tenant_id, schema, record)
        self.table.batch_write(puts=puts, deletes=deletes)

    # Single-record writes: one transaction each --------------------------
    def create(
        self, tenant_id: str, schema: Schema, values: Mapping[str, Any], *, by: str = "", rid: str | None = None
    ) -> Record:
        checked = normalize(schema, values)
        errors = checked.errors + self._link(tenant_id, checked.data, checked.links)
        if errors:
            raise Invalid("Validation error", errors=errors)
        now = now_ms()
        record = Record(rid=rid or new_id(), data=checked.data, created_at=now, updated_at=now)
        record.label = render_label(schema.label, record.data)
        uniques = self._uniques(tenant_id, schema, record.data)
        record.keys = [*self._entries(tenant_id, schema, record), *uniques]
        writes = [Write(item=self._item(tenant_id, schema, record), condition="attribute_not_exists(pk)")]
        writes += [Write(item={"pk": pk, "sk": sk, "rid": record.rid}) for pk, sk in record.keys if sk != "UNIQ"]
        writes += self._take(uniques, record.rid)
        writes += self._history(tenant_id, schema, record, "create", {}, by)
        self._commit(writes, uniques, record.data)
        return record

    def update(
        self,
        tenant_id: str,
        schema: Schema,
        rid: str,
        changes: Mapping[str, Any],
        *,
        version: int | None = None,
        by: str = "",
    ) -> Record:
        """A partial update (`None` clears a field); with `version`, only if the record is still at it."""
        for _attempt in range(3 if version is None else 1):
            current = self.get(tenant_id, schema, rid)
            if current is None:
                raise NotFound(f"Record {rid} not found")
            checked = normalize(schema, changes, previous=current.data, partial=True)
            errors = checked.errors + self._link(tenant_id, checked.data, checked.links)
            if errors:
                raise Invalid("Validation error", errors=errors)
            expected = current.version if version is None else version
            record = current.model_copy(update={"data": checked.data, "version": expected + 1, "updated_at": now_ms()})
            record.label = render_label(schema.label, record.data)
            old_uniques, uniques = (
                self._uniques(tenant_id, schema, current.data),
                self._uniques(tenant_id, schema, record.data),
            )
            record.keys = [*self._entries(tenant_id, schema, record), *uniques]
            gone = [k for k in current.keys if k not in set(record.keys)]
            added = {k: n for k, n in uniques.items() if k not in old_uniques}
            writes = [
                Write(
                    item=self._item(tenant_id, schema, record),
                    condition="version = :v",
                    values={":v": expected},
                )
            ]
            writes += [
                Write(item={"pk": pk, "sk": sk, "rid": rid})
                for pk, sk in record.keys
                if sk != "UNIQ" and (pk, sk) not in set(current.keys)
            ]
            writes += [self._release(k, rid) if k[1] == "UNIQ" else Write(key=k) for k in gone]
            writes += self._take(added, rid)
            changed = {
                k: {"old": current.data.get(k), "new": record.data.get(k)}
                for k in {*current.data, *record.data}
                if current.data.get(k) != record.data.get(k)
            }
            writes += self._history(tenant_id, schema, record, "update", changed, by)
            try:
                self._commit(writes, added, record.data)
                return record
            except VersionConflict:
                if version is not None:
                    raise
        raise VersionConflict("The record was changed by someone else, try again")

    def delete(self, tenant_id: str, schema: Schema, rid: str, *, version: int | None = None, by: str = "") -> Record:
        current = self.get(tenant_id, schema, rid)
        if current is None:
            raise NotFound(f"Record {rid} not found")
        expected = current.version if version is None else version
        writes = [
            Write(key=self._record_key(tenant_id, schema, rid), condition="version = :v", values={":v": expected})
        ]
        writes += [self._release(k, rid) if k[1] == "UNIQ" else Write(key=k) for k in current.keys]
        gone = current.model_copy(update={"version": expected + 1})
        writes += self._history(tenant_id, schema, gone, "delete", {}, by)
        self._commit(writes, {}, current.data)
        return current

    @staticmethod
    def _take(uniques: Mapping[tuple[str, str], str], rid: str) -> list[Write]:
        return [
            Write(item={"pk": pk, "sk": sk, "rid": rid, "field": name}, condition="attribute_not_exists(pk)")
            for (pk, sk), name in uniques.items()
        ]

    @staticmethod
    def _release(key: tuple[str, str], rid: str) -> Write:
        return Write(key=key, condition="rid = :r", values={":r": rid})

    def _history(
        self, tenant_id: str, schema: Schema, record: Record, action: str, changes: dict[str, Any], by: str
    ) -> list[Write]:
        if not schema.history:
            return []
        entry = {
            "pk": f"HIST#{tenant_id}#{schema.name}#{record.rid}",
            "sk": f"{record.version:012d}",
            "rid": record.rid,
            "version": record.version,
            "action": action,
            "by": by,
            "at": now_ms(),
            "changes": changes if action == "update" else {},
            "data": record.data if action == "create" else None,
        }
        return [Write(item=entry, condition="attribute_not_exists(pk)")]

    def _commit(self, writes: list[Write], taken: Mapping[tuple[str, str], str], data: Mapping[str, Any]) -> None:
        """Run a record's transaction; a failed condition says which: the version or a unique value."""
        try:
            self.table.transact(writes)
        except TransactionFailed as failed:
            names = dict(taken)
            duplicated = [
                names[(w.item["pk"], w.item["sk"])]
                for w, reason in zip(writes, failed.reasons, strict=False)
                if reason == "ConditionalCheckFailed" and w.item is not None and (w.item["pk"], w.item["sk"]) in names
            ]
            if duplicated:
                raise Invalid(
                    "Validation error",
                    errors=[
                        FieldError(n, f"{n} must be unique: {str(data.get(n))[:60]} is taken", "duplicated")
                        for n in duplicated
                    ],
                ) from None
            if failed.reasons and failed.reasons[0] == "ConditionalCheckFailed":
                raise VersionConflict("The record was changed by someone else: its version does not match") from None
            raise Conflict(f"The record could not be written ({failed})") from None

    def _link(
        self, tenant_id: str, data: dict[str, Any], links: list[tuple[list[str | int], str, str]]
    ) -> list[FieldError]:
        """Fill each relationship's label from its record; a related record that does not exist is an error."""
        errors: list[FieldError] = []
        schemas: dict[str, Schema | None] = {}
        for path, entity, rid in links:
            if entity not in schemas:
                try:
                    schemas[entity] = self.schema(tenant_id, entity)
                except NotFound:
                    schemas[entity] = None
            target = schemas[entity]
            found = self.get(tenant_id, target, rid) if target else None
            name = field_path(path)
            if found is None:
                errors.append(FieldError(name, f"{name}: no {entity} record has id {rid}", "notFound"))
                continue
            holder: Any = data
            for step in path[:-1]:
                holder = holder[step]
            holder[path[-1]] = {"id": rid, "label": found.label}
        return errors

    # Reading -------------------------------------------------------------
    def get(self, tenant_id: str, schema: Schema, rid: str) -> Record | None:
        if not 0 < len(rid) <= 128:
            return None
        item = self.table.get(*self._record_key(tenant_id, schema, rid), exact=True)
        return self._record(schema, item) if item else None

    def get_many(self, tenant_id: str, schema: Schema, rids: Sequence[str]) -> list[Record]:
        """The records of `rids` that exist, in that order (BatchGetItem, 100 a request)."""
        keys = [self._record_key(tenant_id, schema, rid) for rid in rids]
        found = self.table.batch_get(keys, exact=True)
        return [self._record(schema, found[k]) for k in keys if k in found]

    def history(self, tenant_id: str, schema: Schema, rid: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """A record's history entries, newest first."""
        pk = f"HIST#{tenant_id}#{schema.name}#{rid}"
        return list(self.table.query("pk = :p", {":p": pk}, forward=False, limit=limit, consistent=True, exact=True))

    @staticmethod
    def _record(schema: Schema, item: Mapping[str, Any]) -> Record:
        record = Record.model_validate(item)
        record.data = _restore(schema.fields, record.data)
        return record

    def conditions(self, schema: Schema, filters: Mapping[str, Any]) -> list[Condition]:
        """Equality filters (`field=value`) as conditions; a value its field cannot hold matches nothing."""
        conditions = []
        for name, raw in filters.items():
            try:
                value = typed(schema, name, raw)
            except BadValue:
                conditions.append(Condition(name, "eq", ()))
                continue
            conditions.append(Condition(name, "empty") if value is None else Condition(name, "eq", (value,)))
        return conditions

    def find(
        self,
        tenant_id: str,
        schema: Schema,
        conditions: Sequence[Condition],
        *,
        sort: Sort | None = None,
        size: int = 20,
        cursor: str | None = None,
    ) -> Page:
        """One page of the records meeting every condition, in the plan's order, and the next page's cursor."""
        chosen = plan(schema, conditions, sort)
        after = _decode(cursor)
        found: list[Record] = []
        last: str | None = None
        for key, record in self._matching(tenant_id, schema, chosen, after, want=size + 1):
            if len(found) == size:
                return Page(records=found, cursor=_encode(last), order=chosen.order)
            found.append(record)
            last = key
        return Page(records=found, cursor=None, order=chosen.order)

    def count(self, tenant_id: str, schema: Schema, conditions: Sequence[Condition]) -> int:
        """How many records meet every condition: Select=COUNT Queries of the matching key ranges."""
        chosen = plan(schema, conditions)
        if chosen.nothing:
            return 0
        if chosen.residual:
            return sum(1 for _ in self._matching(tenant_id, schema, chosen, None))
        total = 0
        for pk, lo, hi in self._ranges(tenant_id, schema, chosen):
            key, values = "pk = :p", {":p": pk}
            if lo is not None and hi is not None:
                if lo >= hi:
                    continue
                key, values = "pk = :p AND sk BETWEEN :lo AND :hi", {**values, ":lo": lo, ":hi": hi}
            elif lo is not None:
                key, values = "pk = :p AND sk >= :lo", {**values, ":lo": lo}
            elif hi is not None:
                key, values = "pk = :p AND sk < :hi", {**values, ":hi": hi}
            total += self.table.count(key, values)
        return total

    def select(
        self, tenant_id: str, schema: Schema, filters: Mapping[str, Any], *, start: int = 0, size: int | None = None
    ) -> tuple[list[Record], int]:
        """Records `start` .. `start + size` matching every equality filter and how many match in all."""
        conditions = self.conditions(schema, filters)
        total = self.count(tenant_id, schema, conditions)
        if start >= total or size == 0:
            return [], total
        chosen = plan(schema, conditions)
        stop = total if size is None else start + size
        if chosen.residual:
            return [r for _, r in islice(self._matching(tenant_id, schema, chosen, None), start, stop)], total
        # Skip the first `start` entries by their keys alone, then read only the page's records.
        rids = [rid for _, rid in islice(self._keys(tenant_id, schema, chosen, None, want=stop), start, stop)]
        return self.get_many(tenant_id, schema, rids), total

    def stream(self, tenant_id: str, schema: Schema, filters: Mapping[str, Any]) -> Iterator[Record]:
        """Every record matching equality `filters`, a page at a time, for jobs (no read cap)."""
        chosen = plan(schema, self.conditions(schema, filters))
        for _, record in self._matching(tenant_id, schema, chosen, None, capped=False, want=1000):
            yield record

    def of_source(self, tenant_id: str, schema: Schema, source: str, limit: int) -> list[Record]:
        """Up to `limit` records written from `source` (an import file)."""
        chosen = plan(schema, [Condition(SOURCE_INDEX, "eq", (source,))])
        rids = [rid for _, rid in islice(self._keys(tenant_id, schema, chosen, None, want=limit), limit)]
        return self.get_many(tenant_id, schema, rids)

    def count_source(self, tenant_id: str, schema: Schema, source: str) -> int:
        return self.count(tenant_id, schema, [Condition(SOURCE_INDEX, "eq", (source,))])

    # Running a plan ------------------------------------------------------
    def _ranges(self, tenant_id: str, schema: Schema, chosen: Plan) -> Iterator[tuple[str, str | None, str | None]]:
        """Every (partition, [lo, hi) of its sort keys) the plan reads: one per shard, value and range."""
        index = chosen.index
        if index is None:
            for shard in range(schema.shards):
                yield self._records_pk(tenant_id, schema, shard), None, None
            return
        for shard in range(schema.shards):
            for combo in chosen.combos:
                pk = self._index_pk(tenant_id, schema, index, shard, combo)
                for lo, hi in chosen.ranges:
                    yield pk, lo, hi

    def _keys(
        self, tenant_id: str, schema: Schema, chosen: Plan, after: str | None, *, want: int = 100
    ) -> Iterator[tuple[str, str]]:
        """(merge key, record id) of every entry the plan's ranges hold, merged across shards in order.

        Each partition is read lazily, its first page sized to its share of the `want` first entries.
        """
        if chosen.nothing:
            return iter(())
        descending = chosen.order.descending and not chosen.sort_in_memory
        ranges = list(self._ranges(tenant_id, schema, chosen))
        hint = max(10, min(1000, want // len(ranges) + 10))
        plain = chosen.index is None
        streams = [
            self._range(pk, lo, hi, after, descending, hint, by_id=chosen.by_id or plain, plain=plain)
            for pk, lo, hi in ranges
        ]
        return heapq.merge(*streams, reverse=descending)

    def _range(
        self,
        pk: str,
        lo: str | None,
        hi: str | None,
        after: str | None,
        descending: bool,
        hint: int,
        *,
        by_id: bool,
        plain: bool = False,
    ) -> Iterator[tuple[str, str]]:
        """One partition's sort keys in [lo, hi), past the cursor, lazily a page at a time."""
        if after is not None:
            mark = (lo or "") + after if by_id and not plain else after
            if not descending:
                lo = mark + SEP if lo is None or mark >= lo else lo
            else:
                hi = mark if hi is None or mark < hi else hi
        if lo is not None and hi is not None and lo >= hi:
            return
        if descending:
            key, values = ("pk = :p AND sk < :b", {":p": pk, ":b": hi}) if hi is not None else ("pk = :p", {":p": pk})
        else:
            key, values = ("pk = :p AND sk >= :b", {":p": pk, ":b": lo}) if lo is not None else ("pk = :p", {":p": pk})
        for item in self.table.query(
            key, values, forward=not descending, page_size=hint, attributes=["sk"], consistent=True
        ):
            sk: str = item["sk"]
            if (descending and lo is not None and sk < lo) or (not descending and hi is not None and sk >= hi):
                return
            rid = sk if plain else sk[sk.index(SEP) + 1 :]
            yield (rid if by_id else sk), rid

    def _matching(
        self, tenant_id: str, schema: Schema, chosen: Plan, after: str | None, *, capped: bool = True, want: int = 100
    ) -> Iterator[tuple[str, Record]]:
        """(merge key, record) of every match in the plan's order; records are read by key in batches.

        What no index serves is checked on the records read, at most `max_read` of them when `capped`.
        """
        keys = self._keys(tenant_id, schema, chosen, None if chosen.sort_in_memory else after, want=want)
        cap = self.max_read if capped and (chosen.residual or chosen.sort_in_memory) else None
        matched = self._checked(tenant_id, schema, chosen, keys, cap, want)
        if not chosen.sort_in_memory:
            yield from matched
            return
        order = chosen.order
        ranked = sorted(
            (("\x03".join(sort_key(schema, r.data, r.rid, order)), r) for _, r in matched),
            key=lambda kr: kr[0],
            reverse=order.descending,
        )
        for key, record in ranked:
            if after is None or (key < after if order.descending else key > after):
                yield key, record

    def _checked(
        self,
        tenant_id: str,
        schema: Schema,
        chosen: Plan,
        keys: Iterator[tuple[str, str]],
        cap: int | None,
        want: int,
    ) -> Iterator[tuple[str, Record]]:
        """The records of `keys` that meet the residual filters; the first batch is the page, then batches double.

        A page an index serves whole reads just its records; one checked on residual filters reads on.
        """
        read, batch_size = 0, max(1, min(want, 100))
        while batch := list(islice(keys, batch_size)):
            batch_size = min(batch_size * 2, 100)
            read += len(batch)
            if cap is not None and read > cap:
                raise self._too_broad(schema)
            found = {r.rid: r for r in self.get_many(tenant_id, schema, [rid for _, rid in batch])}
            for key, rid in batch:
                record = found.get(rid)
                if record is not None and matches(schema, record.data, chosen.residual):
                    yield key, record

    def _too_broad(self, schema: Schema) -> TooBroad:
        return TooBroad(
            f"This filter or sort on {schema.name} is served by no index and would read more than"
            f" {self.max_read} records; add a filter on an indexed field"
        )


def _encode(key: str | None) -> str | None:
    return None if key is None else json.dumps(key)


def _decode(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        value = json.loads(cursor)
    except ValueError:
        raise Invalid("The cursor is not one this API gave") from None
    if not isinstance(value, str):
        raise Invalid("The cursor is not one this API gave")
    return value


def _restore(fields: list[TableField], data: dict[str, Any]) -> dict[str, Any]:
    """Money as stored keeps its scale: DynamoDB gives 60 back for 60.00."""
    for spec in fields:
        value = data.get(spec.name)
        if value is None:
            continue
        if spec.type == "money":
            scale = Decimal(1).scaleb(-spec.scale)
            data[spec.name] = (
                [v.quantize(scale, context=EXACT) for v in value]
                if spec.multi
                else value.quantize(scale, context=EXACT)
            )
        elif spec.type == "group":
            for group in value if spec.multi else [value]:
                if isinstance(group, dict):
                    _restore(spec.fields, group)
    return data
