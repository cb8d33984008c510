"""What a kind of job must say: how its rows are cut into chunks, read, applied and wrapped up.

Exactly-once rests on two rules. The checkpoint and the row counters live on one chunk item and move
together in one conditional write, so progress is counted once. Every effect of a row is idempotent
and determined by the row: a Put whose key (and `origin`) come from the job and the row's position,
or a conditional write that accepts its own earlier write. A worker that dies between a row's
effects and the checkpoint replays those rows on redelivery and writes the very same items again:
nothing is lost and nothing is doubled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from backroom.config import Settings
from backroom.dynamo import Table
from backroom.jobs.models import Chunk, ChunkPlan, Job, Progress


@dataclass
class JobContext:
    """What a kind may touch while it runs."""

    settings: Settings
    table: Table
    s3: Any
    engine: Any = None  # the JobEngine, for kinds whose rows start jobs of their own (a batch's calculations)


@dataclass
class RowOutcome:
    ok: bool = True
    puts: list[dict[str, Any]] = field(default_factory=list)  # items keyed by the row: replay-safe
    deletes: list[tuple[str, str]] = field(default_factory=list)
    output: dict[str, Any] | None = None
    error: str | None = None


class Waiting(Exception):
    """Raised by `apply` when its row waits on something else (a child job): try the chunk again later."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"waiting {seconds}s")
        self.seconds = max(1, min(seconds, 900))  # SQS delays at most 15 minutes


class JobFailure(Exception):
    """Raised by a kind when the job cannot go on; the job ends FAILED with this message."""


class JobKind:
    """Base of every kind of job; the defaults describe a job with no rows."""

    name: ClassVar[str] = ""
    # Rows between two checkpoints: a stop is honoured and a crash replays at most this many.
    commit_rows: ClassVar[int] = 25
    stoppable: ClassVar[bool] = True
    # Whether `settle` has work to do when the job stops, fails or is canceled.
    settles: ClassVar[bool] = False

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        return []

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        """The chunk's rows, leaving out the first `skip` (already committed)."""
        return iter(())

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        return RowOutcome()

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        """Called with a group's outcomes before its checkpoint moves; idempotent side effects go here."""

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        """Wrap up once every chunk is done; returns the job's results. Must be idempotent."""
        return {}

    def finished_message(self, progress: Progress) -> str:
        """The last line of a finished job's logs."""
        return f"Job finished: {progress.processed} rows processed, {progress.failed} failed"

    def settle(self, ctx: JobContext, job: Job) -> None:
        """Wrap up a job that stopped, failed or was canceled (e.g. write the output of the rows done).

        Runs on a worker, from a message the engine queues; must be idempotent.
        """


T = TypeVar("T")


class PerJob(Generic[T]):
    """What a kind reads once per job in a worker (its configuration), not once per row it applies."""

    def __init__(self, load: Callable[[JobContext, Job], T], most: int = 100) -> None:
        self.load = load
        self.most = most
        self.known: dict[str, T] = {}

    def __call__(self, ctx: JobContext, job: Job) -> T:
        if job.id not in self.known:
            if len(self.known) >= self.most:
                self.known.clear()
            self.known[job.id] = self.load(ctx, job)
        return self.known[job.id]

    def forget(self, job_id: str) -> None:
        self.known.pop(job_id, None)


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
