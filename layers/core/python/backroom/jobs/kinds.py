"""What a kind of job must say: how its rows are cut into chunks, read, applied and wrapped up.

Exactly-once rests on three rules. The checkpoint and the row counters move together in one
transaction: the chunk's `next_row` and counters, and the same counts added to the job's counters
item (with `chunks_done` on the chunk's last checkpoint), conditioned on where the checkpoint stood,
on the delivery holding the chunk's lease, and on the job being RUNNING or STOPPING. So progress is
counted once, and the job's own items say how far it is without reading a chunk. Every effect of a row is idempotent
and determined by the row: a Put whose key (and `origin`) come from the job and the row's position,
or a conditional write that accepts its own earlier write. A worker that dies between a row's
effects and the checkpoint replays those rows on redelivery and writes the very same items again:
nothing is lost and nothing is doubled.

Leases. A delivery that runs a chunk first takes its lease (an owner token and an expiry, renewed
at each checkpoint); the chunk handed to `rows` and `before_commit` carries it (`chunk.lease_owner`).
Another delivery of the same chunk takes the lease over, and a force stop takes every lease back:
from then on the old holder's checkpoint fails, so none of its rows is counted. Row effects the
engine writes itself (`RowOutcome.puts` / `deletes`) are written with the checkpoint in one
transaction when the kind sets `atomic_rows` (at most 98 items a group), else just before it (a
row written then by a holder that lost its lease is replayed, never counted twice). A kind that
writes its rows' effects in its own DynamoDB transactions (in `before_commit`) puts
`lease_guard(chunk)` in each of them, once: the transaction then fails as soon as the lease is gone,
and no row of it is written after a force stop.

Kinds get repositories, not the raw table and bucket: `JobContext` below, handed to every call.
`ctx.journal` is where a kind writes its job's log lines and per-record results. A kind that needs a
service of a higher layer (the runtime app's data, the engine itself to start child jobs) is given it
by its constructor, in the composition root (`backroom.wiring`), which also registers every kind in
the `JobKinds` the engine and the worker share: nothing registers itself by being imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from backroom.clock import now_ms
from backroom.dynamo import Write
from backroom.jobs.models import Chunk, ChunkPlan, Job, Progress

if TYPE_CHECKING:
    from backroom.calcengine.repository import CalcRepository
    from backroom.files import FileStore
    from backroom.identity.repository import IdentityRepository
    from backroom.jobs.journal import JobJournal
    from backroom.numbers import NumberRepository
    from backroom.quantities import QuantityLedger
    from backroom.records import RecordStore


@dataclass
class JobContext:
    """What a kind may touch while it runs: the repositories of the concepts jobs work on."""

    journal: JobJournal
    files: FileStore
    records: RecordStore
    calc: CalcRepository
    identity: IdentityRepository
    numbers: NumberRepository
    quantities: QuantityLedger


def log_failed_rows(
    ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome], *, most: int, level: str
) -> None:
    """The errors of a group's failed rows to the job's logs, the first `most` of each chunk (a replayed
    group may log a row twice)."""
    budget = most - chunk.failed
    for outcome in outcomes:
        if outcome.error and budget > 0:
            ctx.journal.log(job.id, outcome.error, level=level)
            budget -= 1


def lease_guard(chunk: Chunk) -> Write:
    """A ConditionCheck for a kind's own TransactWriteItems: it holds only while the delivery that
    handed `chunk` to the kind still holds a live lease on it (never after a takeover or a force stop).

    Put it once in each transaction (DynamoDB refuses two operations on one item in a transaction).
    """
    from backroom.jobs.chunks import ChunkRepository

    return ChunkRepository.lease_check(chunk, now_ms())


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
    # Whether the engine writes the rows' `puts` / `deletes` in the checkpoint's own transaction (so a
    # holder whose lease is gone writes none of them); needs `commit_rows` small enough (98 items).
    atomic_rows: ClassVar[bool] = False
    # Whether `settle` has work to do when the job stops, fails or is canceled.
    settles: ClassVar[bool] = False
    # Whether a chunk's `count` is an estimate: the chunk then ends when its rows run dry (its `rows`
    # bounds itself), not after `count` rows, and its last checkpoint corrects the job's `total_rows`
    # by the difference, so that a finished job's total is the rows it did.
    open_ended: ClassVar[bool] = False

    def plan(self, ctx: JobContext, job: Job) -> Iterable[ChunkPlan]:
        """The job's chunks, in order (a list, or a generator for a plan too big to hold)."""
        return []

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        """The chunk's rows, leaving out the first `skip` (already committed)."""
        return iter(())

    def group(self, rows: Iterator[Any], size: int) -> list[Any]:
        """The next group of rows, at most `size` of them: what one checkpoint commits. A kind may end a
        group sooner (an export, when its rows make a part of the output file); an empty group ends the chunk."""
        return list(islice(rows, size))

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        return RowOutcome()

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        """Called with a group's outcomes before its checkpoint moves; idempotent side effects go here.

        `chunk` carries the delivery's lease: a transaction written here includes `lease_guard(chunk)`.
        """

    def checkpoint(self, chunk: Chunk, outcomes: list[RowOutcome]) -> dict[str, Any] | None:
        """The chunk's cursor once this group is committed, written with its checkpoint in the same
        transaction (a kind that reads by key keeps its last key there); None leaves it as it is."""
        return None

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


S = TypeVar("S")
T = TypeVar("T")


class PerJob(Generic[S, T]):
    """What a kind reads once per job in a worker (its configuration), not once per row it applies;
    `load` reads it from a source (the job context, or a service the kind was given)."""

    def __init__(self, load: Callable[[S, Job], T], most: int = 100) -> None:
        self.load = load
        self.most = most
        self.known: dict[str, T] = {}

    def __call__(self, source: S, job: Job) -> T:
        if job.id not in self.known:
            if len(self.known) >= self.most:
                self.known.clear()
            self.known[job.id] = self.load(source, job)
        return self.known[job.id]

    def forget(self, job_id: str) -> None:
        self.known.pop(job_id, None)


class JobKinds:
    """The kinds this deployment runs, by name. The composition root gives the list as a function,
    called at the first lookup: building the engine imports no kind, and the kinds may need services
    (the runtime app's data) that are themselves built on the engine."""

    def __init__(self, load: Callable[[], Iterable[JobKind]]) -> None:
        self._load = load
        self._kinds: dict[str, JobKind] | None = None

    def __getitem__(self, name: str) -> JobKind:
        if self._kinds is None:
            self._kinds = {kind.name: kind for kind in self._load()}
        try:
            return self._kinds[name]
        except KeyError:
            raise JobFailure(f"Unknown kind of job: {name}") from None


def chunked(total: int, size: int) -> list[ChunkPlan]:
    """Plans for `total` rows in chunks of `size` rows."""
    return [
        ChunkPlan(index=i, start=start, count=min(size, total - start)) for i, start in enumerate(range(0, total, size))
    ]
