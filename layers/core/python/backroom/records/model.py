"""What the records parts take and give: a record as stored, a page of records or of history entries,
the changes of a bulk write, who writes, and the errors a caller tells apart."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from backroom.dynamo import Write
from backroom.errors import Conflict, Invalid
from backroom.records.query import Sort


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
    # Whether a label this write changes is copied on to the records that reference it (`RecordWriter.
    # relabeled`); an import with `_skipCascadeUpdates` says no.
    cascades: bool = True


class HistoryPage(BaseModel):
    entries: list[dict[str, Any]]
    total: int


class VersionConflict(Conflict):
    """The record changed since the version the caller holds (409 optimisticLocking)."""


@dataclass
class Update:
    """One update of `write_many`: the record as read, its changes, and writes for its transaction."""

    current: Record
    changes: Mapping[str, Any]
    extra: Sequence[Write] = ()


@dataclass
class Create:
    """One create of `write_many`: the record's values under id `rid`, and writes for its transaction."""

    values: Mapping[str, Any]
    rid: str
    extra: Sequence[Write] = ()
    # `rid` is the create's own (a job's, derived from its row): a record already at it means this very
    # create was committed before (`AlreadyApplied`), as a row marker in `extra` would say, one item fewer.
    once: bool = False


class GuardFailed(Conflict):
    """A bulk write's guard (a job's hold on its chunk) no longer holds: nothing of it was written."""


class AlreadyApplied(Conflict):
    """A write carried a marker (`extra`) that exists already, or a `once` create found its record: this
    very write was committed before."""


class TooBroad(Invalid):
    """A filter or sort no index serves would read more records than a request may."""


Check = Callable[[Record], bool]  # a test no key range can make, run on each record read


class Page(BaseModel):
    records: list[Record]
    cursor: str | None = None  # where the next page starts; None on the last page
    order: Sort
    total: int | None = None  # how many match in all, when asked
