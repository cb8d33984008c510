"""The records repository: the only code that knows how tables, records and indexes sit in DynamoDB.

| item | pk | sk |
| --- | --- | --- |
| schema | `TABLES#<tenant>` | `<table key>` |
| record | `REC#<tenant>#<table key>#<shard>` | `<id>` |
| index entry (thin) | `IDX#<tenant>#<table key>#<index>#<shard>#<digest of equality values>` | `<order key>\\x01<id>` |
| unique marker | `UNIQ#<tenant>#<table key>#<field>#<digest of the value>` | `UNIQ` |
| history entry | `HIST#<tenant>#<table key>#<id>` | `<version, 12 digits>` |
| (gsi1) table history | `HISTE#<tenant>#<table key>#<shard>` | `<history id>`: time in ms (11 hex), random |

`shard` is the record id's CRC-32 modulo the table's `shards`, so a big import spreads its writes
over that many partition keys for the records and for every index value; reads merge the shards
in order. A record lists the index entries and unique markers it holds (`keys`), so an update
writes only the entries that change and a delete removes exactly what the record holds.
`<table key>` is the table's name, `gateway:<name>` for a gateway custom table (`schema.table_key`):
a runtime entity and a gateway table never share an item.

A single-record write is one transaction conditioned on the record's version; bulk writes from
jobs (`items`, `replacing`, `keys`) follow the engine's idempotent per-row rule instead.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import dropwhile, islice
from typing import Any

from pydantic import BaseModel, Field

from backroom.clock import now_ms
from backroom.dynamo import Table, TransactionFailed, Write
from backroom.errors import BackroomError, Conflict, FieldError, Invalid, NotFound
from backroom.ids import object_id
from backroom.records.query import SEP, Condition, Plan, Sort, matches, plan, sort_key
from backroom.records.schema import SOURCE_INDEX, Index, Namespace, Schema, TableField, table_key
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

MAX_TRANSACTION = 100  # items of one TransactWriteItems
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


@dataclass(frozen=True)
class Author:
    """Who makes a single-record write, for its history entry."""

    user: str = ""
    ip: str | None = None
    context: str = ""  # where the change was made: `entities.companies.update`, a job, a script


class HistoryPage(BaseModel):
    entries: list[dict[str, Any]]
    total: int


class VersionConflict(Conflict):
    """The record changed since the version the caller holds (409 optimisticLocking)."""


@dataclass
class Update:
    """One update of `update_many`: the record as read, its changes, and writes for its transaction."""

    current: Record
    changes: Mapping[str, Any]
    extra: Sequence[Write] = ()


@dataclass
class Create:
    """One create of `write_many`: the record's values under id `rid`, and writes for its transaction."""

    values: Mapping[str, Any]
    rid: str
    extra: Sequence[Write] = ()


class GuardFailed(Conflict):
    """A bulk write's guard (a job's hold on its chunk) no longer holds: nothing of it was written."""


class AlreadyApplied(Conflict):
    """A write carried a marker (`extra`) that exists already: this very write was committed before."""


class TooBroad(Invalid):
    """A filter or sort no index serves would read more records than a request may."""


Check = Callable[[Record], bool]  # a test no key range can make, run on each record read


class Page(BaseModel):
    records: list[Record]
    cursor: str | None = None  # where the next page starts; None on the last page
    order: Sort
    total: int | None = None  # how many match in all, when asked


def _digest(values: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(values)).encode()).hexdigest()[:32]


class RecordStore:
    def __init__(self, table: Table, *, max_read: int = MAX_READ) -> None:
        self.table = table
        self.max_read = max_read

    # Schemas -------------------------------------------------------------
    def define(self, tenant_id: str, schema: Schema) -> Schema:
        """Declare a table in the schema's namespace."""
        self.table.put({"pk": f"TABLES#{tenant_id}", "sk": schema.key, **schema.model_dump()})
        return schema

    def schema(self, tenant_id: str, name: str, *, namespace: Namespace) -> Schema:
        """A table of `namespace` by name; one of the other namespace is not found, as a missing one is."""
        item = self.table.get(f"TABLES#{tenant_id}", table_key(namespace, name)) if 0 < len(name) <= 255 else None
        found = Schema.model_validate(item) if item is not None else None
        if found is None or found.namespace != namespace:
            raise NotFound(f"Could not find Custom Table with name {name}")
        return found

    # Keys ----------------------------------------------------------------
    @staticmethod
    def _records_pk(tenant_id: str, schema: Schema, shard: int) -> str:
        return f"REC#{tenant_id}#{schema.key}#{shard}"

    def _record_key(self, tenant_id: str, schema: Schema, rid: str) -> tuple[str, str]:
        return self._records_pk(tenant_id, schema, shard_of(rid, schema.shards)), rid

    @staticmethod
    def _index_pk(tenant_id: str, schema: Schema, index: Index, shard: int, values: Sequence[str]) -> str:
        return f"IDX#{tenant_id}#{schema.key}#{index.name}#{shard}#{_digest(values)}"

    @staticmethod
    def _unique_key(tenant_id: str, schema: Schema, name: str, value: Any) -> tuple[str, str]:
        return f"UNIQ#{tenant_id}#{schema.key}#{name}#{_digest([canonical(value)])}", "UNIQ"

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
        self,
        tenant_id: str,
        schema: Schema,
        values: Mapping[str, Any],
        *,
        author: Author | None = None,
        rid: str | None = None,
    ) -> Record:
        record, writes, uniques = self._creation(tenant_id, schema, values, rid or object_id(), author)
        self._commit(writes, uniques, record.data)
        return record

    def _creation(
        self, tenant_id: str, schema: Schema, values: Mapping[str, Any], rid: str, author: Author | None
    ) -> tuple[Record, list[Write], dict[tuple[str, str], str]]:
        """The writes that create record `rid` from `values` (conditioned on its absence)."""
        checked = normalize(schema, values)
        errors = checked.errors + self._link(tenant_id, schema, checked.data, checked.links)
        if errors:
            raise Invalid("Validation error", errors=errors)
        now = now_ms()
        record = Record(rid=rid, data=checked.data, created_at=now, updated_at=now)
        record.label = render_label(schema.label, record.data)
        uniques = self._uniques(tenant_id, schema, record.data)
        record.keys = [*self._entries(tenant_id, schema, record), *uniques]
        writes = [Write(item=self._item(tenant_id, schema, record), condition="attribute_not_exists(pk)")]
        writes += [Write(item={"pk": pk, "sk": sk, "rid": record.rid}) for pk, sk in record.keys if sk != "UNIQ"]
        writes += self._take(uniques, record.rid)
        writes += self._history(tenant_id, schema, record, "create", {}, record.data, author)
        return record, writes, uniques

    def update(
        self,
        tenant_id: str,
        schema: Schema,
        rid: str,
        changes: Mapping[str, Any],
        *,
        version: int | None = None,
        author: Author | None = None,
        extra: Sequence[Write] = (),
    ) -> Record:
        """A partial update (`None` clears a field); with `version`, only if the record is still at it.

        `extra` writes join the transaction (log lines, a job's marker conditioned on its absence): when
        one of their conditions fails, nothing is written and `AlreadyApplied` says so.
        """
        for _attempt in range(3 if version is None else 1):
            current = self.get(tenant_id, schema, rid)
            if current is None:
                raise NotFound(f"Record {rid} not found")
            expected = current.version if version is None else version
            record, writes, added = self._update(tenant_id, schema, current, changes, expected, author)
            try:
                self._commit([*writes, *extra], added, record.data, extra=len(extra))
                return record
            except VersionConflict:
                if version is not None:
                    raise
        raise VersionConflict("The record was changed by someone else, try again")

    def update_many(
        self, tenant_id: str, schema: Schema, updates: Sequence[Update], *, author: Author | None = None
    ) -> list[Record | BackroomError]:
        """Updates of records as read (each conditioned on that version), several to a transaction.

        Answers each update's saved record, or its error: `VersionConflict` when the record changed since
        it was read, `AlreadyApplied` when one of its `extra` markers exists, `Invalid` for bad values.
        When a transaction fails, its updates are tried one by one, so one never blocks the others.
        """
        return self.write_many(tenant_id, schema, updates, author=author)

    def write_many(
        self,
        tenant_id: str,
        schema: Schema,
        changes: Sequence[Update | Create],
        *,
        author: Author | None = None,
        guard: Sequence[Write] = (),
    ) -> list[Record | BackroomError]:
        """Creates and updates (as `update_many`), several to a transaction, each with its `extra` writes.

        `guard` joins every transaction (a job's lease check): when it fails, nothing of that transaction
        is written and `GuardFailed` is raised, so a job that lost its chunk stops writing at once.
        """
        outcome: list[Record | BackroomError] = []
        batch: list[Write] = []
        members: list[tuple[int, Update | Create, Record, list[Write], dict[tuple[str, str], str]]] = []
        room = MAX_TRANSACTION - len(guard)

        def flush() -> None:
            if not batch:
                return
            try:
                self.table.transact([*guard, *batch])
            except TransactionFailed as failed:
                if "ConditionalCheckFailed" in failed.reasons[: len(guard)]:
                    raise GuardFailed("The job no longer holds this work") from None
                for index, change, record, writes, added in members:
                    try:
                        self._commit(
                            [*guard, *writes, *change.extra],
                            added,
                            record.data,
                            extra=len(change.extra),
                            guarded=len(guard),
                        )
                    except GuardFailed:
                        raise
                    except BackroomError as err:
                        outcome[index] = err
            batch.clear()
            members.clear()

        for change in changes:
            try:
                if isinstance(change, Create):
                    record, writes, added = self._creation(tenant_id, schema, change.values, change.rid, author)
                else:
                    current = change.current
                    record, writes, added = self._update(
                        tenant_id, schema, current, change.changes, current.version, author
                    )
            except BackroomError as err:
                outcome.append(err)
                continue
            outcome.append(record)
            size = len(writes) + len(change.extra)
            if len(batch) + size > room:
                flush()
            batch.extend([*writes, *change.extra])
            members.append((len(outcome) - 1, change, record, writes, added))
        flush()
        return outcome

    def by_unique(self, tenant_id: str, schema: Schema, name: str, values: Sequence[Any]) -> dict[str, Record]:
        """The records holding each of `values` in unique field `name`, by the value's canonical text."""
        keys = {self._unique_key(tenant_id, schema, name, v): canonical(v) for v in values if not is_empty(v)}
        markers = self.table.batch_get(list(keys), attributes=["rid"])
        owners = {keys[k]: str(item["rid"]) for k, item in markers.items()}
        found = {r.rid: r for r in self.get_many(tenant_id, schema, list(dict.fromkeys(owners.values())))}
        return {value: found[rid] for value, rid in owners.items() if rid in found}

    def _update(
        self,
        tenant_id: str,
        schema: Schema,
        current: Record,
        changes: Mapping[str, Any],
        expected: int,
        author: Author | None,
    ) -> tuple[Record, list[Write], dict[tuple[str, str], str]]:
        """The writes that take `current` (at version `expected`) to its next version with `changes`."""
        rid = current.rid
        checked = normalize(schema, changes, previous=current.data, partial=True)
        errors = checked.errors + self._link(tenant_id, schema, checked.data, checked.links)
        if errors:
            raise Invalid("Validation error", errors=errors)
        record = current.model_copy(update={"data": checked.data, "version": expected + 1, "updated_at": now_ms()})
        record.label = render_label(schema.label, record.data)
        old_uniques, uniques = (
            self._uniques(tenant_id, schema, current.data),
            self._uniques(tenant_id, schema, record.data),
        )
        record.keys = [*self._entries(tenant_id, schema, record), *uniques]
        gone = [k for k in current.keys if k not in set(record.keys)]
        added = {k: n for k, n in uniques.items() if k not in old_uniques}
        writes = [Write(item=self._item(tenant_id, schema, record), condition="version = :v", values={":v": expected})]
        writes += [
            Write(item={"pk": pk, "sk": sk, "rid": rid})
            for pk, sk in record.keys
            if sk != "UNIQ" and (pk, sk) not in set(current.keys)
        ]
        writes += [self._release(k, rid) if k[1] == "UNIQ" else Write(key=k) for k in gone]
        writes += self._take(added, rid)
        changed = sorted(k for k in {*current.data, *record.data} if current.data.get(k) != record.data.get(k))
        old = {k: current.data.get(k) for k in changed}
        new = {k: record.data.get(k) for k in changed}
        writes += self._history(tenant_id, schema, record, "update", old, new, author)
        return record, writes, added

    def delete(
        self, tenant_id: str, schema: Schema, rid: str, *, version: int | None = None, author: Author | None = None
    ) -> Record:
        current = self.get(tenant_id, schema, rid)
        if current is None:
            raise NotFound(f"Record {rid} not found")
        writes = self._deletion(tenant_id, schema, current, current.version if version is None else version, author)
        self._commit(writes, {}, current.data)
        return current

    def delete_many(
        self,
        tenant_id: str,
        schema: Schema,
        rids: Sequence[str],
        *,
        author: Author | None = None,
        guard: Sequence[Write] = (),
    ) -> dict[str, str | None]:
        """Delete these records, several to a transaction (each on the version read); `{id: error or None}`.

        A record already gone counts as deleted. When a transaction fails (a record changed meanwhile),
        its records are deleted one by one, so one conflict never blocks the others. `guard` joins every
        transaction, as in `write_many`: when it fails, `GuardFailed` is raised and nothing more is deleted.
        """
        found = {r.rid: r for r in self.get_many(tenant_id, schema, rids)}
        outcome: dict[str, str | None] = dict.fromkeys(rids)
        batch: list[Write] = []
        members: list[Record] = []

        def flush() -> None:
            if not batch:
                return
            try:
                self.table.transact([*guard, *batch])
            except TransactionFailed as failed:
                if "ConditionalCheckFailed" in failed.reasons[: len(guard)]:
                    raise GuardFailed("The job no longer holds this work") from None
                for record in members:
                    current = self.get(tenant_id, schema, record.rid)
                    if current is None:
                        continue
                    writes = self._deletion(tenant_id, schema, current, current.version, author)
                    try:
                        self._commit([*guard, *writes], {}, current.data, guarded=len(guard))
                    except GuardFailed:
                        raise
                    except Conflict as err:
                        outcome[record.rid] = err.message
            batch.clear()
            members.clear()

        for rid in dict.fromkeys(rids):
            record = found.get(rid)
            if record is None:
                continue
            writes = self._deletion(tenant_id, schema, record, record.version, author)
            if len(batch) + len(writes) > MAX_TRANSACTION - len(guard):
                flush()
            batch.extend(writes)
            members.append(record)
        flush()
        return outcome

    def _deletion(
        self, tenant_id: str, schema: Schema, current: Record, expected: int, author: Author | None
    ) -> list[Write]:
        """The writes that delete a record at version `expected`: it, what it holds, and its history entry."""
        rid = current.rid
        writes = [
            Write(key=self._record_key(tenant_id, schema, rid), condition="version = :v", values={":v": expected})
        ]
        writes += [self._release(k, rid) if k[1] == "UNIQ" else Write(key=k) for k in current.keys]
        gone = current.model_copy(update={"version": expected + 1})
        writes += self._history(tenant_id, schema, gone, "delete", current.data, {}, author)
        return writes

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
        self,
        tenant_id: str,
        schema: Schema,
        record: Record,
        action: str,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        author: Author | None,
    ) -> list[Write]:
        """The history entry of a write, in its transaction; one per version (a second is a conflict)."""
        if not schema.history:
            return []
        who, at = author or Author(), now_ms()
        hid = f"{at:011x}{secrets.token_hex(7)[:13]}"  # 24 hex digits that sort by time
        entry = {
            "pk": f"HIST#{tenant_id}#{schema.key}#{record.rid}",
            "sk": f"{record.version:012d}",
            "gsi1pk": self._history_pk(tenant_id, schema, shard_of(record.rid, schema.shards)),
            "gsi1sk": hid,
            "hid": hid,
            "rid": record.rid,
            "version": record.version,
            "action": action,
            "label": record.label,
            "user": who.user,
            "ip": who.ip,
            "context": who.context,
            "at": at,
            "old": dict(old),
            "new": dict(new),
        }
        return [Write(item=entry, condition="attribute_not_exists(pk)")]

    @staticmethod
    def _history_pk(tenant_id: str, schema: Schema, shard: int) -> str:
        return f"HISTE#{tenant_id}#{schema.key}#{shard}"

    def _commit(
        self,
        writes: list[Write],
        taken: Mapping[tuple[str, str], str],
        data: Mapping[str, Any],
        *,
        extra: int = 0,
        guarded: int = 0,
    ) -> None:
        """Run a record's transaction; a failed condition says which: the guard (the first `guarded`
        writes), a marker (the last `extra`), the version or a unique value."""
        try:
            self.table.transact(writes)
        except TransactionFailed as failed:
            if "ConditionalCheckFailed" in failed.reasons[:guarded]:
                raise GuardFailed("The job no longer holds this work") from None
            if guarded:
                writes, failed = writes[guarded:], TransactionFailed(failed.reasons[guarded:])
            tail = failed.reasons[len(writes) - extra : len(writes)] if extra else []
            if "ConditionalCheckFailed" in tail:
                raise AlreadyApplied("This write was committed before") from None
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
        self, tenant_id: str, schema: Schema, data: dict[str, Any], links: list[tuple[list[str | int], str, str]]
    ) -> list[FieldError]:
        """Fill each relationship's label from its record; a related record that does not exist is an error.

        A related table is looked up in the writer's namespace: a relationship never reaches the other's.
        """
        errors: list[FieldError] = []
        schemas: dict[str, Schema | None] = {}
        for path, entity, rid in links:
            if entity not in schemas:
                try:
                    schemas[entity] = self.schema(tenant_id, entity, namespace=schema.namespace)
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

    def history(
        self, tenant_id: str, schema: Schema, rid: str, *, limit: int = 100, before: str | None = None
    ) -> HistoryPage:
        """A record's history entries, newest first, those older than the entry `before` (a history id)."""
        pk = f"HIST#{tenant_id}#{schema.key}#{rid}"
        entries = self.table.query("pk = :p", {":p": pk}, forward=False, consistent=True, exact=True)
        if before is not None:  # a record's history is short: find the entry, then go on past it
            entries = iter(list(dropwhile(lambda e: e["hid"] != before, entries))[1:])
        return HistoryPage(entries=list(islice(entries, limit)), total=self.table.count("pk = :p", {":p": pk}))

    def table_history(
        self,
        tenant_id: str,
        schema: Schema,
        *,
        actions: set[str] | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 20,
        before: str | None = None,
    ) -> HistoryPage:
        """A table's history entries, newest first: its shards' time-ordered partitions merged (gsi1).

        `since` and `until` (epoch ms, inclusive) and `before` (a history id) are key ranges; `actions` is
        checked on the entries read.
        """
        lo = f"{since:011x}" if since is not None else None
        top = f"{until + 1:011x}" if until is not None else None  # 11 digits: below every id of that ms
        hi = top if before is None else min(top or before, before)
        pks = [self._history_pk(tenant_id, schema, shard) for shard in range(schema.shards)]
        merged = heapq.merge(*(self._history_range(pk, lo, hi) for pk in pks), key=lambda e: e["hid"], reverse=True)
        entries = list(islice((e for e in merged if not actions or e["action"] in actions), limit))
        if actions:
            total = sum(1 for pk in pks for e in self._history_range(pk, lo, top) if e["action"] in actions)
        else:
            total = sum(self.table.count(*self._history_key(pk, lo, top), index="gsi1") for pk in pks)
        return HistoryPage(entries=entries, total=total)

    @staticmethod
    def _history_key(pk: str, lo: str | None, hi: str | None) -> tuple[str, dict[str, Any]]:
        if lo is not None and hi is not None:
            return "gsi1pk = :p AND gsi1sk BETWEEN :lo AND :hi", {":p": pk, ":lo": lo, ":hi": hi}
        if lo is not None:
            return "gsi1pk = :p AND gsi1sk >= :lo", {":p": pk, ":lo": lo}
        if hi is not None:
            return "gsi1pk = :p AND gsi1sk < :hi", {":p": pk, ":hi": hi}
        return "gsi1pk = :p", {":p": pk}

    def _history_range(self, pk: str, lo: str | None, hi: str | None) -> Iterator[dict[str, Any]]:
        key, values = self._history_key(pk, lo, hi)
        for entry in self.table.query(key, values, index="gsi1", forward=False, exact=True, page_size=50):
            if hi is None or entry["gsi1sk"] < hi:  # BETWEEN is inclusive of hi; the range is not
                yield entry

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
        skip: int = 0,
        where: Check | None = None,
        counted: bool = False,
    ) -> Page:
        """One page of the records meeting every condition (and `where`), in the plan's order, after
        `cursor` or past the first `skip` matches, and the next page's cursor; with `counted`, also
        how many match in all."""
        chosen = plan(schema, conditions, sort)
        after = _decode(cursor)
        if counted and (chosen.residual or chosen.sort_in_memory or where):
            return self._read_whole(tenant_id, schema, chosen, after, size, skip, where)
        if counted:
            total = self.count(tenant_id, schema, conditions)
            page = self.find(tenant_id, schema, conditions, sort=sort, size=size, cursor=cursor, skip=skip)
            return page.model_copy(update={"total": total})
        if skip and not (chosen.residual or chosen.sort_in_memory or where):
            # Pass the first `skip` matches by their keys alone; the page starts after the last of them.
            passed = list(islice(self._keys(tenant_id, schema, chosen, after, want=skip + size), skip))
            if len(passed) < skip:
                return Page(records=[], cursor=None, order=chosen.order)
            after, skip = passed[-1][0], 0
        found: list[Record] = []
        last: str | None = None
        for key, record in islice(
            self._matching(tenant_id, schema, chosen, after, want=skip + size + 1, where=where), skip, None
        ):
            if len(found) == size:
                return Page(records=found, cursor=_encode(last), order=chosen.order)
            found.append(record)
            last = key
        return Page(records=found, cursor=None, order=chosen.order)

    def _read_whole(
        self,
        tenant_id: str,
        schema: Schema,
        chosen: Plan,
        after: str | None,
        size: int,
        skip: int,
        where: Check | None,
    ) -> Page:
        """A page and the total of a query checked record by record: one pass over every match (capped)."""
        descending, total, passed, more = chosen.order.descending, 0, 0, False
        found: list[Record] = []
        last: str | None = None
        for key, record in self._matching(tenant_id, schema, chosen, None, want=1000, where=where):
            total += 1
            if after is not None and not (key < after if descending else key > after):
                continue
            if passed < skip:
                passed += 1
            elif len(found) < size:
                found.append(record)
                last = key
            else:
                more = True
        return Page(records=found, cursor=_encode(last) if more else None, order=chosen.order, total=total)

    def cursor_after(
        self, tenant_id: str, schema: Schema, conditions: Sequence[Condition], sort: Sort | None, rid: str
    ) -> str:
        """The cursor of a page that starts right after record `rid` in this query's order."""
        record = self.get(tenant_id, schema, rid)
        if record is None:
            raise Invalid(f"The offset names no record of {schema.name}: {rid[:40]}")
        chosen = plan(schema, conditions, sort)
        if chosen.sort_in_memory:
            key = "\x03".join(sort_key(schema, record.data, rid, chosen.order))
        elif chosen.index is None or chosen.by_id or chosen.index.sort is None:
            key = rid
        else:
            spec = schema.field(chosen.index.sort)
            value = value_at(record.data, chosen.index.sort)
            key = f"{'' if spec is None or is_empty(value) else order_key(spec, value)}{SEP}{rid}"
        return json.dumps(key)

    def count(
        self, tenant_id: str, schema: Schema, conditions: Sequence[Condition], *, where: Check | None = None
    ) -> int:
        """How many records meet every condition: Select=COUNT Queries of the matching key ranges.

        Conditions no index serves, and `where`, are checked on the records read (at most `max_read`).
        """
        chosen = plan(schema, conditions)
        if chosen.nothing:
            return 0
        if chosen.residual or where:
            return sum(1 for _ in self._matching(tenant_id, schema, chosen, None, where=where))
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

    def stream(
        self,
        tenant_id: str,
        schema: Schema,
        filters: Mapping[str, Any] | Sequence[Condition],
        *,
        where: Check | None = None,
    ) -> Iterator[Record]:
        """Every record matching `filters` (equalities, or conditions) and `where`, for jobs (no read cap)."""
        conditions = self.conditions(schema, filters) if isinstance(filters, Mapping) else filters
        chosen = plan(schema, conditions)
        if chosen.index is None and not chosen.nothing:  # no index serves it: the record partitions, items whole
            for record in self._whole(tenant_id, schema):
                if matches(schema, record.data, chosen.residual) and (where is None or where(record)):
                    yield record
            return
        for _, record in self._matching(tenant_id, schema, chosen, None, capped=False, want=1000, where=where):
            yield record

    def _whole(self, tenant_id: str, schema: Schema) -> Iterator[Record]:
        """Every record in id order, read by Query from its shards' partitions (no key read, then BatchGetItem)."""
        shards = [
            self.table.query("pk = :p", {":p": self._records_pk(tenant_id, schema, s)}, consistent=True, exact=True)
            for s in range(schema.shards)
        ]
        for item in heapq.merge(*shards, key=lambda i: str(i["sk"])):
            yield self._record(schema, item)

    def ids(
        self, tenant_id: str, schema: Schema, conditions: Sequence[Condition], *, where: Check | None = None
    ) -> Iterator[str]:
        """The ids of every record matching `conditions` and `where`, for jobs that plan by id (no read cap).

        When an index serves every condition and nothing else is checked, only its thin entries are read.
        """
        chosen = plan(schema, conditions)
        if chosen.residual or where is not None:
            yield from (r.rid for r in self.stream(tenant_id, schema, conditions, where=where))
            return
        keys = (rid for _, rid in self._keys(tenant_id, schema, chosen, None, want=1000))
        index = chosen.index
        if index is None or not any(self._multi(schema, path) for path in index.fields):
            yield from keys
            return
        seen: set[str] = set()  # a multi-valued field has an entry per value: a record may come twice
        for rid in keys:
            if rid not in seen:
                seen.add(rid)
                yield rid

    @staticmethod
    def _multi(schema: Schema, path: str) -> bool:
        head = schema.field(path.split(".")[0])
        inner = schema.field(path)
        return bool((head and head.multi) or (inner and inner.multi))

    def of_source(self, tenant_id: str, schema: Schema, source: str, limit: int) -> list[Record]:
        """Up to `limit` records written from `source` (an import file)."""
        chosen = plan(schema, [Condition(SOURCE_INDEX, "eq", (source,))])
        rids = [rid for _, rid in islice(self._keys(tenant_id, schema, chosen, None, want=limit), limit)]
        return self.get_many(tenant_id, schema, rids)

    def ids_of_source(self, tenant_id: str, schema: Schema, source: str) -> Iterator[str]:
        """The ids of every record written from `source` (its index's thin entries only)."""
        return self.ids(tenant_id, schema, [Condition(SOURCE_INDEX, "eq", (source,))])

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
        self,
        tenant_id: str,
        schema: Schema,
        chosen: Plan,
        after: str | None,
        *,
        capped: bool = True,
        want: int = 100,
        where: Check | None = None,
    ) -> Iterator[tuple[str, Record]]:
        """(merge key, record) of every match in the plan's order; records are read by key in batches.

        What no index serves is checked on the records read, at most `max_read` of them when `capped`.
        """
        keys = self._keys(tenant_id, schema, chosen, None if chosen.sort_in_memory else after, want=want)
        cap = self.max_read if capped and (chosen.residual or chosen.sort_in_memory or where) else None
        matched = self._checked(tenant_id, schema, chosen, keys, cap, want, where)
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
        where: Check | None = None,
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
                if (
                    record is not None
                    and matches(schema, record.data, chosen.residual)
                    and (where is None or where(record))
                ):
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
