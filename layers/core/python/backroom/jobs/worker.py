"""The worker's side of the engine: each SQS message plans a job, runs a chunk from its checkpoint, or
wraps up a job that ended early.

A chunk runs in groups of `commit_rows` rows; each group's effects are written (idempotent), then
its checkpoint moves with the counters in one transaction held by the delivery's lease (see
`backroom.jobs.kinds` for the exactly-once rules). A stop is honoured between groups, and a chunk
hands itself back to the queue before its invocation runs out of time.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import suppress
from itertools import islice
from typing import Any

from backroom.clock import now_ms
from backroom.errors import ServiceFailure
from backroom.jobs.chunks import ChunkRepository
from backroom.jobs.journal import JobJournal
from backroom.jobs.kinds import JobContext, JobFailure, JobKind, JobKinds, RowOutcome, Waiting
from backroom.jobs.lifecycle import Lifecycle
from backroom.jobs.models import Chunk, ChunkStatus, Job, JobState
from backroom.jobs.queue import JobQueue
from backroom.jobs.repository import JobRepository

logger = logging.getLogger("jobs")

# A chunk hands itself back to the queue when its invocation has less time left than this.
_RESERVE_MS = 20_000
# How long a chunk's lease lasts without a checkpoint (each checkpoint renews it).
LEASE_MS = 120_000
# A transaction holds at most 100 items: the chunk, the job and the rows' own writes.
_ATOMIC_MOST = 98


class JobWorker:
    def __init__(
        self,
        repo: JobRepository,
        chunks: ChunkRepository,
        queue: JobQueue,
        kinds: JobKinds,
        journal: JobJournal,
        life: Lifecycle,
        ctx: JobContext,
        *,
        lease_ms: int = LEASE_MS,
    ) -> None:
        self.repo = repo
        self.chunks = chunks
        self.queue = queue
        self.kinds = kinds
        self.journal = journal
        self.life = life
        self.ctx = ctx
        self.lease_ms = lease_ms

    def handle(self, message: dict[str, Any], remaining_ms: Callable[[], int] | None = None) -> None:
        job_id = message["job"]
        op = message.get("op")
        try:
            if op == "plan":
                self._plan(job_id)
            elif op == "settle":
                self._settle(job_id)
            else:
                self._run_chunk(job_id, int(message["chunk"]), remaining_ms or (lambda: 900_000))
        except Exception as crash:
            # SQS delivers the message again; if it ends in the dead-letter queue, this is the reason.
            with suppress(Exception):  # the message fails either way
                self.repo.note_error(job_id, f"{type(crash).__name__}: {crash}")
            raise

    def dead_letter(self, message: dict[str, Any], receives: int | None = None) -> None:
        """A message SQS gave up on (the dead-letter queue): its job ends FAILED, with the reason.

        A plan that never ran would leave the job PENDING for ever, a chunk that never ran RUNNING.
        """
        job = self.repo.get(str(message.get("job", "")))
        if job is None or job.state.is_final:
            return
        why = f" Last error: {job.last_error}" if job.last_error else ""
        op = message.get("op")
        if op == "plan":
            reason = f"The job could not be planned: SQS gave up on its plan message (dead-letter queue).{why}"
        elif op == "settle":
            logger.warning("job %s: SQS gave up on its wrap-up after %s deliveries", job.id, receives)
            return
        else:
            reason = f"Chunk {message.get('chunk')} could not be processed: SQS gave up on it (dead-letter queue).{why}"
        logger.warning("job %s: a dead letter after %s deliveries: %s", job.id, receives, reason)
        self.life.fail(job, reason)

    def _plan(self, job_id: str) -> None:
        job = self.repo.get(job_id)
        if job is None:
            return
        if job.state is JobState.PENDING:
            kind = self.kinds[job.kind]
            chunks = rows = 0
            try:  # a kind may plan lazily (a generator): each chunk is written as it comes, memory stays flat
                for plan in kind.plan(self.ctx, job):
                    self.chunks.create_chunk(job_id, plan)
                    chunks, rows = chunks + 1, rows + plan.count
            except JobFailure as failure:
                self.life.fail(job, str(failure))
                return
            started = self.repo.transition(
                job_id,
                (JobState.PENDING,),
                JobState.RUNNING,
                started_at=now_ms(),
                chunk_count=chunks,
                total_rows=rows,
            )
            if started:
                self.journal.log(job_id, f"Job started: {started.total_rows} rows in {chunks} chunks")
                logger.info("job %s started: %d rows, %d chunks", job_id, started.total_rows, chunks)
        # A redelivered plan message re-sends the open chunks, so a crash right after planning loses nothing.
        if self.repo.state(job_id) is JobState.RUNNING:
            self.life.enqueue_open_chunks(job_id)
            self.life.check_completion(job_id)

    def _run_chunk(self, job_id: str, index: int, remaining_ms: Callable[[], int]) -> None:
        job = self.repo.get(job_id)
        chunk = self.chunks.get_chunk(job_id, index)
        if job is None or chunk is None:
            return
        if job.state.is_final:
            return
        if chunk.done:
            # A delivery again after the chunk's last checkpoint: the one before may have died before it
            # completed the job (a crash, a timeout in `finalize`). Completing is idempotent: do it now.
            self.life.check_completion(job_id)
            return
        if job.state in (JobState.STOPPING, JobState.STOPPED):
            if chunk.lease_owner:
                # Another delivery of this chunk holds it: SQS gave the message out again because that
                # one died (or this is a duplicate). Take the lease back so that the stop can settle;
                # a holder still alive then fails its next checkpoint and leaves.
                self.chunks.release_lease(chunk, ChunkStatus.PAUSED)
            self.life.settle_stop(job_id)  # the chunk stays open; resume queues it again
            return
        if job.state is not JobState.RUNNING:
            return
        leased = self.chunks.take_lease(chunk, secrets.token_hex(8), now_ms() + self.lease_ms)
        if leased is None:  # done meanwhile, another delivery took it first, or the job was stopped
            if self.repo.state(job_id) is JobState.STOPPING:
                self.life.settle_stop(job_id)
            return
        kind = self.kinds[job.kind]
        try:
            finished = self._process(kind, job, leased, remaining_ms)
        except ServiceFailure:
            raise  # AWS trouble: SQS delivers the chunk again, whose delivery takes the lease over
        except Exception as crash:
            if not self.chunks.holds_lease(leased):
                # The lease went (taken over, or the job force-stopped) and a guarded write of the kind
                # failed for it: this delivery leaves; it does not fail the job.
                logger.info("job %s chunk %d: lease lost (%s), leaving it", job_id, index, type(crash).__name__)
                return
            if isinstance(crash, JobFailure):
                self.life.fail(job, str(crash))
                return
            # the kind's own code crashed: the job fails, committed rows stay
            logger.exception("job %s chunk %d crashed", job_id, index)
            self.life.fail(job, f"Internal error while processing chunk {index}: {type(crash).__name__}")
            return
        if finished:
            self.life.check_completion(job_id, chunk_done=True)

    def _process(self, kind: JobKind, job: Job, chunk: Chunk, remaining_ms: Callable[[], int]) -> bool:
        """Run a chunk from its checkpoint; True when it is done, False when it stopped, yielded or lost it.

        A planned chunk ends after its `count` rows (or when its rows run short of them); an open-ended
        kind's (`JobKind.open_ended`) when its rows run dry, whatever its `count` said."""
        rows = _Rows(kind.rows(self.ctx, job, chunk, chunk.next_row))
        while kind.open_ended or chunk.next_row < chunk.count:
            if self.repo.state(job.id) is not JobState.RUNNING:  # honour a stop between groups of rows
                self.chunks.release_lease(chunk, ChunkStatus.PAUSED)
                self.life.settle_stop(job.id)
                return False
            if remaining_ms() < _RESERVE_MS:
                self.chunks.release_lease(chunk, ChunkStatus.QUEUED)
                self.queue.send([{"job": job.id, "op": "chunk", "chunk": chunk.index}])
                return False
            wanted = kind.commit_rows if kind.open_ended else min(kind.commit_rows, chunk.count - chunk.next_row)
            group = kind.group(rows, wanted)  # fewer: the source ran short, or the kind ended the group
            try:
                outcomes = [kind.apply(self.ctx, job, row) for row in group]
            except Waiting as waiting:  # nothing of the group is committed; the chunk comes back later
                self.chunks.release_lease(chunk, ChunkStatus.QUEUED)
                self.queue.send([{"job": job.id, "op": "chunk", "chunk": chunk.index}], delay_seconds=waiting.seconds)
                return False
            if kind.open_ended:  # done when nothing follows; the checkpoint moves by the rows done
                last, moved = rows.dry(), len(group)
            else:  # done at `count` (or short of it): the checkpoint lands on `count`
                last = chunk.next_row + len(group) >= chunk.count or not group
                moved = chunk.count - chunk.next_row if last else len(group)
            expires = now_ms() + self.lease_ms
            cursor = kind.checkpoint(chunk, outcomes)
            if not self._commit(kind, job, chunk, outcomes, moved=moved, last=last, expires=expires, cursor=cursor):
                return False
            chunk = chunk.model_copy(
                update={
                    "cursor": chunk.cursor if cursor is None else cursor,
                    "next_row": chunk.next_row + moved,
                    "processed": chunk.processed + sum(o.ok for o in outcomes),
                    "failed": chunk.failed + sum(not o.ok for o in outcomes),
                    "lease_expires": expires,
                }
            )
            if last:
                break
        logger.info("job %s chunk %d done: %d ok, %d failed", job.id, chunk.index, chunk.processed, chunk.failed)
        return True

    def _commit(
        self,
        kind: JobKind,
        job: Job,
        chunk: Chunk,
        outcomes: list[RowOutcome],
        *,
        moved: int,
        last: bool,
        expires: int,
        cursor: dict[str, Any] | None = None,
    ) -> bool:
        """Write the group's effects (idempotent) and move the checkpoint by `moved` rows; False if the
        lease is gone. An open-ended chunk's last checkpoint corrects the job's total by where it ended."""
        kind.before_commit(self.ctx, job, chunk, outcomes)
        puts = [p for o in outcomes for p in o.puts]
        deletes = [d for o in outcomes for d in o.deletes]
        effects = []
        if kind.atomic_rows and len(puts) + len(deletes) <= _ATOMIC_MOST:
            effects = self.chunks.row_writes(puts, deletes)
        else:
            self.chunks.write_rows(puts, deletes)
        ok = sum(o.ok for o in outcomes)
        more = chunk.next_row + moved - chunk.count if kind.open_ended and last else 0
        advanced = self.chunks.advance_chunk(
            chunk,
            rows=moved,
            ok=ok,
            bad=len(outcomes) - ok,
            last=last,
            effects=effects,
            expires=expires,
            cursor=cursor,
            more=more,
        )
        if not advanced:
            logger.info("job %s chunk %d: lease lost or job stopped, leaving it", job.id, chunk.index)
            return False
        return True

    def _settle(self, job_id: str) -> None:
        job = self.repo.get(job_id)
        if job is not None and job.state in (JobState.STOPPED, JobState.FAILED, JobState.CANCELED):
            self.kinds[job.kind].settle(self.ctx, job)


class _Rows:
    """A kind's rows, one of them looked at ahead on demand: an open-ended chunk ends when they run dry."""

    def __init__(self, rows: Iterator[Any]) -> None:
        self._rows = rows
        self._ahead: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return self._ahead.pop() if self._ahead else next(self._rows)

    def dry(self) -> bool:
        """Whether no row follows (reading the next one, kept for the next group)."""
        if not self._ahead:
            self._ahead = list(islice(self._rows, 1))
        return not self._ahead
