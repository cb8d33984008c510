"""Tables and records: the one model behind gateway custom tables (and, later, runtime entities).

Key design, all in the main table:

- schema    `TABLES#<tenant>` / `<table>`: fields (name, type) and indexes (lists of field names).
- record    `ROWS#<tenant>#<table>` / `<rid>`: `data`, `version`, `source`, `periods`, `created_at`.
- index     `INDEX#<tenant>#<table>#<fields>#<digest of the values>` / `<rid>`: a copy of the record,
  one item per declared index (and one for the record's `source`, the import file it came from).

A page of a table is a Query on the record partition; an equality filter on a declared index is a
Query on one index partition, which holds exactly the matching records, in rid order, so its count
is exact and its cost is the number of matching records, never the size of the table. Values reach
DynamoDB only as attribute values and digests: a caller's field name never becomes part of an
expression. `version` is there for optimistic locking; a record's rid is chosen by the writer so
that a replayed write lands on the very same items.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, Field

from backroom.clock import now_ms
from backroom.dynamo import Table
from backroom.errors import NotFound

FieldType = Literal["text", "number"]
SOURCE_INDEX = "_source"
# What a read of rows needs: the rest of an item (keys, version, source...) stays in DynamoDB.
_READ = ["rid", "data"]


class TableField(BaseModel):
    name: str
    type: FieldType = "text"


class Schema(BaseModel):
    name: str
    fields: list[TableField]
    indexes: list[list[str]] = Field(default_factory=list)

    def field(self, name: str) -> TableField | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


class Record(BaseModel):
    rid: str
    data: dict[str, Any]
    version: int = 1
    source: str | None = None
    periods: list[int] = Field(default_factory=list)
    created_at: int = 0


class BadValue(ValueError):
    """A value that does not fit its field's type."""


def typed(schema: Schema, name: str, raw: Any) -> Any:
    """A caller's value as the field stores it: text stays text, numbers become Decimals."""
    declared = schema.field(name)
    if declared is None or declared.type == "text":
        return "" if raw is None else str(raw)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        number = Decimal(str(raw).strip())
    except InvalidOperation:
        raise BadValue(f"{name} is not a number: {str(raw)[:40]}") from None
    if not number.is_finite():
        raise BadValue(f"{name} is not a number: {str(raw)[:40]}")
    return number


def _canonical(value: Any) -> str:
    if isinstance(value, Decimal | int | float):
        number = Decimal(str(value)).normalize()
        return format(number, "f") if number != 0 else "0"
    return "" if value is None else str(value)


def _digest(values: list[str]) -> str:
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:32]


class RecordStore:
    def __init__(self, table: Table) -> None:
        self.table = table

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
    def _rows_pk(tenant_id: str, schema: Schema) -> str:
        return f"ROWS#{tenant_id}#{schema.name}"

    @staticmethod
    def _index_pk(tenant_id: str, schema: Schema, fields: list[str], values: list[str]) -> str:
        return f"INDEX#{tenant_id}#{schema.name}#{'+'.join(fields)}#{_digest(values)}"

    def _source_pk(self, tenant_id: str, schema: Schema, source: str) -> str:
        return self._index_pk(tenant_id, schema, [SOURCE_INDEX], [source])

    def _index_pks(self, tenant_id: str, schema: Schema, record: Record) -> list[str]:
        keys = [
            self._index_pk(tenant_id, schema, fields, [_canonical(record.data.get(f)) for f in fields])
            for fields in schema.indexes
        ]
        if record.source:
            keys.append(self._source_pk(tenant_id, schema, record.source))
        return keys

    # Writing -------------------------------------------------------------
    def items(self, tenant_id: str, schema: Schema, record: Record) -> list[dict[str, Any]]:
        """The record's item and one item per index: what a write puts (replay-safe: same rid, same items)."""
        body = {"rid": record.rid, **record.model_dump(exclude={"rid"})}
        body["created_at"] = record.created_at or now_ms()
        rows = [{"pk": self._rows_pk(tenant_id, schema), "sk": record.rid, **body}]
        return rows + [{"pk": pk, "sk": record.rid, **body} for pk in self._index_pks(tenant_id, schema, record)]

    def keys(self, tenant_id: str, schema: Schema, record: Record) -> list[tuple[str, str]]:
        """Every item a record occupies: what a delete removes."""
        pks = [self._rows_pk(tenant_id, schema), *self._index_pks(tenant_id, schema, record)]
        return [(pk, record.rid) for pk in pks]

    def replacing(
        self, tenant_id: str, schema: Schema, record: Record
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Puts and deletes that make `record` replace whatever its rid held (stale index items go)."""
        old = self.get(tenant_id, schema, record.rid)
        puts = self.items(tenant_id, schema, record)
        if old is None:
            return puts, []
        kept = {(p["pk"], p["sk"]) for p in puts}
        return puts, [k for k in self.keys(tenant_id, schema, old) if k not in kept]

    def put(self, tenant_id: str, schema: Schema, record: Record) -> None:
        puts, deletes = self.replacing(tenant_id, schema, record)
        self.table.batch_write(puts=puts, deletes=deletes)

    # Reading -------------------------------------------------------------
    def get(self, tenant_id: str, schema: Schema, rid: str) -> Record | None:
        item = self.table.get(self._rows_pk(tenant_id, schema), rid)
        return Record.model_validate(item) if item else None

    def plan(self, tenant_id: str, schema: Schema, filters: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The partition to read for `filters` and the filters left to check on what it holds.

        The declared index covering the most filtered fields wins; with none, the record partition.
        """
        best: list[str] = []
        for fields in schema.indexes:
            if all(f in filters for f in fields) and len(fields) > len(best):
                best = fields
        if not best:
            return self._rows_pk(tenant_id, schema), dict(filters)
        values = [_canonical(typed_or_text(schema, f, filters[f])) for f in best]
        rest = {k: v for k, v in filters.items() if k not in best}
        return self._index_pk(tenant_id, schema, best, values), rest

    def select(
        self, tenant_id: str, schema: Schema, filters: Mapping[str, Any], *, start: int = 0, size: int | None = None
    ) -> tuple[list[Record], int]:
        """Records `start` .. `start + size` matching every filter (in rid order) and how many match in all."""
        partition, rest = self.plan(tenant_id, schema, filters)
        if not rest:
            total = self.table.count("pk = :p", {":p": partition})
            if start >= total:
                return [], total
            after = self._key_at(partition, start) if start else None
            items = self.table.query("pk = :p", {":p": partition}, start=after, limit=size, attributes=_READ)
            return [Record.model_validate(i) for i in items], total
        # A filter no index covers: read the partition once (scan), keep the page, count every match.
        page: list[Record] = []
        total = 0
        for record in self.scan(tenant_id, schema, filters):
            if total >= start and (size is None or len(page) < size):
                page.append(record)
            total += 1
        return page, total

    def scan(self, tenant_id: str, schema: Schema, filters: Mapping[str, Any]) -> Iterator[Record]:
        """Every record matching `filters`, streamed a page at a time."""
        partition, rest = self.plan(tenant_id, schema, filters)
        wanted = {k: _canonical(typed_or_text(schema, k, v)) for k, v in rest.items()}
        for item in self.table.query("pk = :p", {":p": partition}, attributes=_READ):
            data = item.get("data", {})
            if all(_canonical(data.get(k)) == v for k, v in wanted.items()):
                yield Record.model_validate(item)

    def of_source(self, tenant_id: str, schema: Schema, source: str, limit: int) -> list[Record]:
        """Up to `limit` records written from `source` (an import file), first ones first."""
        partition = self._source_pk(tenant_id, schema, source)
        return [Record.model_validate(i) for i in self.table.query("pk = :p", {":p": partition}, limit=limit)]

    def count_source(self, tenant_id: str, schema: Schema, source: str) -> int:
        return self.table.count("pk = :p", {":p": self._source_pk(tenant_id, schema, source)})

    def _key_at(self, partition: str, offset: int) -> dict[str, Any] | None:
        """The key of the `offset`-th item of a partition (keys only are read), to start a page after it."""
        keys = self.table.query("pk = :p", {":p": partition}, limit=offset, attributes=["pk", "sk"])
        return deque(keys, maxlen=1).pop() if offset else None


def typed_or_text(schema: Schema, name: str, raw: Any) -> Any:
    """A filter value as its field stores it; a filter that is no number matches no number field."""
    try:
        return typed(schema, name, raw)
    except BadValue:
        return f"\x00{raw}"
