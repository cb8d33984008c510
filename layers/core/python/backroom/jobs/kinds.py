"""What a kind of job must say: how its rows are cut into chunks, read, applied and wrapped up.

Exactly-once per row rests on one rule: a row's DynamoDB effects are returned as transaction items
and committed together with the chunk's checkpoint; any other effect (an S3 part, say) must be
idempotent and keyed by the row's position, so that a replay writes the same bytes again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from backroom.config import Settings
from backroom.dynamo import Table
from backroom.jobs.models import Chunk, ChunkPlan, Job, Progress


@dataclass
class JobContext:
    """What a kind may touch while it runs."""

    settings: Settings
    table: Table
    s3: Any


@dataclass
class RowOutcome:
    ok: bool = True
    writes: list[dict[str, Any]] = field(default_factory=list)
    output: dict[str, Any] | None = None
    error: str | None = None


class JobFailure(Exception):
    """Raised by a kind when the job cannot go on; the job ends FAILED with this message."""


class JobKind:
    """Base of every kind of job; the defaults describe a job with no rows."""

    name: ClassVar[str] = ""
    # Rows committed per transaction: (writes per row) x commit_rows + 2 must stay within 100.
    commit_rows: ClassVar[int] = 25
    stoppable: ClassVar[bool] = True

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        return []

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        """The chunk's rows, leaving out the first `skip` (already committed)."""
        return iter(())

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        return RowOutcome()

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        """Called before a group's commit with its outcomes; idempotent side effects go here."""

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        """Wrap up once every chunk is done; returns the job's results. Must be idempotent."""
        return {}


_registry: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    _registry[kind.name] = kind
    return kind


def kind_of(name: str) -> JobKind:
    try:
        return _registry[name]
    except KeyError:
        raise JobFailure(f"Unknown kind of job: {name}") from None


def chunked(total: int, size: int) -> list[ChunkPlan]:
    """Plans for `total` rows in chunks of `size` rows."""
    return [
        ChunkPlan(index=i, start=start, count=min(size, total - start)) for i, start in enumerate(range(0, total, size))
    ]
