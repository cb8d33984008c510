"""The records repository, one handle on its parts: `reader` (records by id, queries, counts), `writer`
(single-record transactions, bulk writes, index upkeep) and `histories` (history entries). `keys` says
where every item sits in DynamoDB; only these modules touch it.

`RecordStore` composes the parts for callers that still hold one handle: each method is its part's, as is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from backroom.dynamo import Table, Write
from backroom.errors import BackroomError
from backroom.records.history import RecordHistory
from backroom.records.model import (
    AlreadyApplied,
    Author,
    Check,
    Create,
    GuardFailed,
    HistoryPage,
    Page,
    Record,
    TooBroad,
    Update,
    VersionConflict,
)
from backroom.records.query import Condition, Plan, Sort
from backroom.records.reader import MAX_READ, RecordReader
from backroom.records.schema import Namespace, Schema
from backroom.records.writer import RecordWriter

__all__ = [
    "AlreadyApplied",
    "Author",
    "Check",
    "Create",
    "GuardFailed",
    "HistoryPage",
    "Page",
    "Record",
    "RecordStore",
    "TooBroad",
    "Update",
    "VersionConflict",
]


class RecordStore:
    def __init__(self, table: Table, *, max_read: int = MAX_READ) -> None:
        self.table = table
        self.reader = RecordReader(table, max_read=max_read)
        self.histories = RecordHistory(table)
        self.writer = RecordWriter(table, self.reader, self.histories)

    # Tables --------------------------------------------------------------
    def define(self, tenant_id: str, schema: Schema) -> Schema:
        return self.writer.define(tenant_id, schema)

    def schema(self, tenant_id: str, name: str, *, namespace: Namespace) -> Schema:
        return self.reader.schema(tenant_id, name, namespace=namespace)

    # Writes --------------------------------------------------------------
    def items(self, tenant_id: str, schema: Schema, record: Record) -> list[dict[str, Any]]:
        return self.writer.items(tenant_id, schema, record)

    def add_counts(self, tenant_id: str, schema: Schema, records: Sequence[Record]) -> None:
        self.writer.add_counts(tenant_id, schema, records)

    def keys(self, tenant_id: str, schema: Schema, record: Record) -> list[tuple[str, str]]:
        return self.writer.keys(tenant_id, schema, record)

    def replacing(
        self, tenant_id: str, schema: Schema, record: Record
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        return self.writer.replacing(tenant_id, schema, record)

    def put(self, tenant_id: str, schema: Schema, record: Record) -> None:
        self.writer.put(tenant_id, schema, record)

    def create(
        self,
        tenant_id: str,
        schema: Schema,
        values: Mapping[str, Any],
        *,
        author: Author | None = None,
        rid: str | None = None,
    ) -> Record:
        return self.writer.create(tenant_id, schema, values, author=author, rid=rid)

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
        return self.writer.update(tenant_id, schema, rid, changes, version=version, author=author, extra=extra)

    def unchanged(
        self, tenant_id: str, schema: Schema, record: Record, extra: Sequence[Write], *, guard: Sequence[Write] = ()
    ) -> None:
        self.writer.unchanged(tenant_id, schema, record, extra, guard=guard)

    def unchanged_many(
        self,
        tenant_id: str,
        schema: Schema,
        kept: Sequence[tuple[Record, Sequence[Write]]],
        *,
        guard: Sequence[Write] = (),
    ) -> list[BackroomError | None]:
        return self.writer.unchanged_many(tenant_id, schema, kept, guard=guard)

    def write_many(
        self,
        tenant_id: str,
        schema: Schema,
        changes: Sequence[Update | Create],
        *,
        author: Author | None = None,
        guard: Sequence[Write] = (),
        counts_to: tuple[str, str] | None = None,
        ahead: tuple[str, str] | None = None,
    ) -> list[Record | BackroomError]:
        return self.writer.write_many(
            tenant_id, schema, changes, author=author, guard=guard, counts_to=counts_to, ahead=ahead
        )

    def add_moves(self, pending: tuple[str, str], guard: Sequence[Write] = ()) -> None:
        self.writer.add_moves(pending, guard)

    def add_moves_of(self, pks: Sequence[str]) -> None:
        self.writer.add_moves_of(pks)

    def settle_ahead(self, pks: Sequence[str]) -> None:
        self.writer.settle_ahead(pks)

    def delete(
        self, tenant_id: str, schema: Schema, rid: str, *, version: int | None = None, author: Author | None = None
    ) -> Record:
        return self.writer.delete(tenant_id, schema, rid, version=version, author=author)

    def delete_many(
        self,
        tenant_id: str,
        schema: Schema,
        rids: Sequence[str],
        *,
        author: Author | None = None,
        guard: Sequence[Write] = (),
        extra: Mapping[str, Sequence[Write]] | None = None,
    ) -> dict[str, str | None]:
        return self.writer.delete_many(tenant_id, schema, rids, author=author, guard=guard, extra=extra)

    # Reads ---------------------------------------------------------------
    def get(self, tenant_id: str, schema: Schema, rid: str) -> Record | None:
        return self.reader.get(tenant_id, schema, rid)

    def get_many(self, tenant_id: str, schema: Schema, rids: Sequence[str]) -> list[Record]:
        return self.reader.get_many(tenant_id, schema, rids)

    def by_unique(self, tenant_id: str, schema: Schema, name: str, values: Sequence[Any]) -> dict[str, Record]:
        return self.reader.by_unique(tenant_id, schema, name, values)

    def conditions(self, schema: Schema, filters: Mapping[str, Any]) -> list[Condition]:
        return self.reader.conditions(schema, filters)

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
        return self.reader.find(
            tenant_id, schema, conditions, sort=sort, size=size, cursor=cursor, skip=skip, where=where, counted=counted
        )

    def cursor_after(
        self, tenant_id: str, schema: Schema, conditions: Sequence[Condition], sort: Sort | None, rid: str
    ) -> str:
        return self.reader.cursor_after(tenant_id, schema, conditions, sort, rid)

    def count(
        self,
        tenant_id: str,
        schema: Schema,
        conditions: Sequence[Condition],
        *,
        where: Check | None = None,
        most: int | None = None,
    ) -> int:
        return self.reader.count(tenant_id, schema, conditions, where=where, most=most)

    def select(
        self, tenant_id: str, schema: Schema, filters: Mapping[str, Any], *, start: int = 0, size: int | None = None
    ) -> tuple[list[Record], int]:
        return self.reader.select(tenant_id, schema, filters, start=start, size=size)

    def stream(
        self,
        tenant_id: str,
        schema: Schema,
        filters: Mapping[str, Any] | Sequence[Condition],
        *,
        where: Check | None = None,
        fields: Sequence[str] | None = None,
        after: str | None = None,
    ) -> Iterator[Record]:
        return self.reader.stream(tenant_id, schema, filters, where=where, fields=fields, after=after)

    def ids(
        self, tenant_id: str, schema: Schema, conditions: Sequence[Condition], *, where: Check | None = None
    ) -> Iterator[str]:
        return self.reader.ids(tenant_id, schema, conditions, where=where)

    def any_in(self, tenant_id: str, schema: Schema, conditions: Sequence[Condition]) -> bool:
        return self.reader.any_in(tenant_id, schema, conditions)

    def counted(self, tenant_id: str, schema: Schema, conditions: Sequence[Condition]) -> int | None:
        return self.reader.counted(tenant_id, schema, conditions)

    def ordered_plan(self, schema: Schema, conditions: Sequence[Condition], sort: Sort | None) -> Plan:
        return self.reader.ordered_plan(schema, conditions, sort)

    def read_in_order(
        self, tenant_id: str, schema: Schema, chosen: Plan, after: str | None, *, where: Check | None = None
    ) -> Iterator[tuple[str, Record]]:
        return self.reader.read_in_order(tenant_id, schema, chosen, after, where=where)

    def skip_keys(
        self, tenant_id: str, schema: Schema, chosen: Plan, count: int, *, where: Check | None = None
    ) -> tuple[str | None, int]:
        return self.reader.skip_keys(tenant_id, schema, chosen, count, where=where)

    def ids_of_source(self, tenant_id: str, schema: Schema, source: str) -> Iterator[str]:
        return self.reader.ids_of_source(tenant_id, schema, source)

    def count_source(self, tenant_id: str, schema: Schema, source: str) -> int:
        return self.reader.count_source(tenant_id, schema, source)

    # History -------------------------------------------------------------
    def history(
        self, tenant_id: str, schema: Schema, rid: str, *, limit: int = 100, before: str | None = None
    ) -> HistoryPage:
        return self.histories.of_record(tenant_id, schema, rid, limit=limit, before=before)

    def deletions(
        self, tenant_id: str, schema: Schema, rids: Sequence[str], known: Mapping[str, int] | None = None
    ) -> dict[str, int | None]:
        return self.histories.deletions(tenant_id, schema, rids, known)

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
        return self.histories.of_table(
            tenant_id, schema, actions=actions, since=since, until=until, limit=limit, before=before
        )
