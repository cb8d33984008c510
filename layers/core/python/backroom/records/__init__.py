"""Tables and records: the core's one model for gateway custom tables and runtime entities.

`schema` declares tables, `values` checks and encodes values, `query` plans reads; `keys` says where
items sit in DynamoDB, and `reader`, `writer` and `history` are the repository, the only modules here
that touch it (`store.RecordStore` is one handle on the three).
"""

from backroom.records.query import Condition, Sort
from backroom.records.schema import DEFAULT_SHARDS, Index, Schema, TableField
from backroom.records.store import Page, Record, RecordStore, TooBroad, VersionConflict
from backroom.records.values import BadValue, typed

__all__ = [
    "DEFAULT_SHARDS",
    "BadValue",
    "Condition",
    "Index",
    "Page",
    "Record",
    "RecordStore",
    "Schema",
    "Sort",
    "TableField",
    "TooBroad",
    "VersionConflict",
    "typed",
]
