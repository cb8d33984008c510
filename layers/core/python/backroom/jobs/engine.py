"""The job engine: atomic state transitions, chunked work over SQS, checkpoints, leases and logs.

States: PENDING -> RUNNING -> FINISHED; RUNNING -> STOPPING -> STOPPED -> RUNNING (resume) or
CANCELED; PENDING -> STOPPED (nothing ran yet); STOPPING -> STOPPED at once by a force stop; any
live state -> FAILED. Every transition is a conditional write, so two callers racing on the same job
cannot both win.

Nothing here reads every chunk of a job to answer "how far is it" or "is it done": the job's
counters item holds exact counts (`processed`, `failed`, `chunks_done`, `active_chunks`) that each
checkpoint moves in the same transaction as the chunk's (see `repository.advance_chunk`). The chunks are read
only when a job is planned, resumed or force-stopped (to queue or free each open one).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from typing import Any

from backroom.clock import now_ms
from backroom.errors import Conflict, NotFound, ServiceFailure
from backroom.ids import new_id
from backroom.jobs.kinds import JobContext, JobFailure, JobKind, RowOutcome, Waiting, kind_of
from backroom.jobs.models import RESULTS_MOST, Chunk, ChunkStatus, Job, JobState, LogEntry, NewJob, Progress
from backroom.jobs.queue import JobQueue
from backroom.jobs.repository import JobRepository

logger = logging.getLogger("jobs")

_LIVE = (JobState.PENDING, JobState.RUNNING, JobState.STOPPING, JobState.STOPPED)
# A chunk hands itself back to the queue when its invocation has less time left than this.
_RESERVE_MS = 20_000
# How long a chunk's lease lasts without a checkpoint (each checkpoint renews it).
LEASE_MS = 120_000
# A transaction holds at most 100 items: the chunk, the job and the rows' own writes.
_ATOMIC_MOST = 98


NUMBERING_ATTEMPTS = 20  # writers racing for the next number of one counter


class WrongState(Conflict):
    """The job's state (or kind, or place in its tree) does not allow the command.

    A Conflict (409) for the dialects that say so; the runtime dialect answers it with a 400.
    """


class JobEngine:
    def __init__(self, repo: JobRepository, queue: JobQueue, ctx: JobContext, *, lease_ms: int = LEASE_MS) -> None:
        self.repo = repo
        self.queue = queue
        self.ctx = ctx
        self.lease_ms = lease_ms

    # Reading -------------------------------------------------------------
    def get(self, job_id: str, tenant_id: str) -> Job:
        """A job of the caller's tenant; another tenant's job is indistinguishable from a missing one."""
        job = self.repo.get(job_id)
        if job is None or job.tenant_id != tenant_id:
            raise NotFound(f"Job {job_id} does not exist")
        return job

    def find(self, job_id: str) -> Job | None:
        """A job by id whatever its tenant (for kinds and dialects that resolved the tenant themselves)."""
        return self.repo.get(job_id)

    def by_alias(self, alias: str) -> Job | None:
        return self.repo.by_alias(alias)

    @staticmethod
    def progress(job: Job) -> Progress:
        """Exact counters, as the job read with its counters item holds them (no chunk is read)."""
        return Progress(total=job.total_rows, processed=job.processed, failed=job.failed)

    def log(
        self, job_id: str, message: str, *, level: str = "INFO", status: str = "", at_ns: int | None = None
    ) -> None:
        """A line in the job's logs; `at_ns` places it at the moment what it says was read (default now)."""
        at_ms = at_ns // 1_000_000 if at_ns else now_ms()
        self.repo.add_log(job_id, LogEntry(timestamp=at_ms, level=level, message=message, status=status), at_ns=at_ns)

    def logs(self, job_id: str, *, limit: int | None = None) -> list[LogEntry]:
        """A job's log lines, oldest first."""
        return self.repo.logs(job_id, limit=limit)

    def count_logs(self, job_id: str) -> int:
        return self.repo.count_logs(job_id)

    def logs_between(self, job_id: str, lo_ms: int | None, hi_ms: int | None) -> Iterator[LogEntry]:
        """A job's log lines from `lo_ms` to `hi_ms`, oldest first (a key range of its partition)."""
        return self.repo.logs_between(job_id, lo_ms, hi_ms)

    # Listings of a dialect ------------------------------------------------------
    def count_scope(self, scope: str) -> int:
        return self.repo.count_scope(scope)

    def page_scope(self, scope: str, limit: int, *, after: str | None = None) -> tuple[list[Job], str | None]:
        return self.repo.page_scope(scope, limit, after=after)

    def list_scope_between(self, scope: str, low: str, high: str) -> list[Job]:
        return self.repo.list_scope_between(scope, low, high)

    def runtime_jobs(
        self, tenant_id: str, *, created_from: int | None = None, created_to: int | None = None
    ) -> list[dict[str, Any]]:
        """A tenant's runtime jobs, newest first, thin (the fields a listing filters on)."""
        return self.repo.runtime_jobs(tenant_id, created_from=created_from, created_to=created_to)

    def jobs(self, job_ids: list[str]) -> list[Job]:
        return self.repo.jobs(job_ids)

    # Per-record results ------------------------------------------------------
    def put_results(self, job_id: str, entries: Mapping[int, tuple[str, Any]], *, section: str = "map") -> None:
        """Per-record results of rows by position: `{position: (key, value)}`; positions from 1,000 on are
        left out, so a job keeps the results of its first 1,000 rows, whichever worker ran them.

        Section "map" makes `results[key] = value`; another section makes `results[section]` a list,
        in position order. Each entry is its own item: no item nears DynamoDB's 400 KB.
        """
        kept = {
            f"{position:010d}": {"key": key, "value": value}
            for position, (key, value) in entries.items()
            if position < RESULTS_MOST
        }
        if kept:
            self.repo.put_results(job_id, kept, section=section)

    def results(self, job: Job) -> dict[str, Any]:
        """The job's results: its own (small) `results` and its per-record entries, at most 1,000."""
        merged: dict[str, Any] = dict(job.results)
        for section, entry in self.repo.results(job.id):
            if section == "map":
                merged[str(entry["key"])] = entry["value"]
            else:
                merged.setdefault(section, []).append(entry["value"])
        if job.error is not None:
            merged["error"] = job.error
        return merged

    # Commands ------------------------------------------------------------
    def create(
        self, spec: NewJob, *, start: bool = True, job_id: str | None = None, created_at: int | None = None
    ) -> Job:
        job = Job(id=job_id or new_id(30), created_at=created_at or now_ms(), **spec.model_dump())
        self.repo.create(job)
        if start:
            return self.start(job.id, job.tenant_id)
        return job

    def create_numbered(
        self,
        counter: str,
        numbered: Callable[[int], tuple[NewJob, str]],
        *,
        start: bool = True,
    ) -> Job:
        """Create the job `numbered(n)` gives (the spec and its alias) under the next number n of `counter`.

        Number, alias and job are one transaction: numbers stay dense even if a writer dies midway.
        Two writers racing for one number: the loser takes the next.
        """
        for _ in range(NUMBERING_ATTEMPTS):
            seq = self.repo.last_seq(counter) + 1
            numbered_spec, alias = numbered(seq)
            job = Job(id=new_id(30), created_at=now_ms(), **numbered_spec.model_dump())
            if self.repo.create_numbered(job, counter, seq, alias):
                return self.start(job.id, job.tenant_id) if start else job
        raise Conflict("Too many jobs are being created at once; try again")

    def start(self, job_id: str, tenant_id: str) -> Job:
        """Queue a pending job for planning; a job already started is a Conflict."""
        self.get(job_id, tenant_id)  # the caller's tenant must own it
        if not self.repo.mark_queued(job_id, now_ms()):
            raise WrongState("The job was already started")
        self.queue.send([{"job": job_id, "op": "plan"}])
        return self.get(job_id, tenant_id)

    def stop(self, job_id: str, tenant_id: str) -> Job:
        """PENDING -> STOPPED; RUNNING -> STOPPING, then STOPPED once no delivery holds a chunk."""
        job = self.get(job_id, tenant_id)
        if not _stoppable(job):
            raise WrongState("Jobs of this kind cannot be stopped")
        now = now_ms()
        if job.state is JobState.PENDING:
            stopped = self.repo.transition(job_id, (JobState.PENDING,), JobState.STOPPED, stopped_at=now)
        else:
            stopped = self.repo.transition(job_id, (JobState.RUNNING,), JobState.STOPPING, stopped_at=now)
        if stopped is None:
            raise WrongState(f"The job is {self._state(job_id, job).value} and cannot be stopped")
        self.log(job_id, "Stop requested")
        if stopped.state is JobState.STOPPING:
            self._settle_stop(job_id)
        else:
            self._queue_settle(stopped)
        return self.get(job_id, tenant_id)

    def force_stop(self, job_id: str, tenant_id: str) -> Job:
        """STOPPING -> STOPPED at once, even if a worker died holding a chunk.

        Every chunk's lease is taken back first: a holder still alive can commit nothing after this
        (its checkpoint and any `lease_guard` fail), and no lease can be taken while the job is not
        RUNNING. Then the job is STOPPED, with no chunk held. Resume goes on from the checkpoints.
        """
        job = self.get(job_id, tenant_id)
        if not _stoppable(job):
            raise WrongState("Jobs of this kind cannot be stopped")
        if job.state is not JobState.STOPPING:
            raise WrongState(f"The job is {job.state.value}; only a STOPPING job can be forced to stop")
        self.repo.revoke_leases(job_id)
        stopped = self.repo.transition(job_id, (JobState.STOPPING,), JobState.STOPPED, reset_active=True)
        if stopped is None:
            raise WrongState(f"The job is {self._state(job_id, job).value}; only a STOPPING job can be forced to stop")
        self.log(job_id, "Job stopped (forced)")
        logger.info("job %s force-stopped", job_id)
        self._queue_settle(stopped)
        return stopped

    def resume(self, job_id: str, tenant_id: str) -> Job:
        job = self.get(job_id, tenant_id)
        target = JobState.RUNNING if job.started_at else JobState.PENDING
        resumed = self.repo.transition(job_id, (JobState.STOPPED,), target)
        if resumed is None:
            raise WrongState(f"The job is {self._state(job_id, job).value} and cannot be resumed")
        self.log(job_id, "Job resumed")
        if target is JobState.RUNNING:
            self._enqueue_open_chunks(job_id)
            self._check_completion(job_id)
        elif job.queued_at:
            self.queue.send([{"job": job_id, "op": "plan"}])
        return self.get(job_id, tenant_id)

    def cancel(self, job_id: str, tenant_id: str) -> Job:
        job = self.get(job_id, tenant_id)
        # The rows done before the stop stay counted: the counters hold them already.
        canceled = self.repo.transition(
            job_id,
            (JobState.STOPPED,),
            JobState.CANCELED,
            ended_at=now_ms(),
            processed=job.processed,
            failed=job.failed,
        )
        if canceled is None:
            raise WrongState(f"The job is {self._state(job_id, job).value}; only a stopped job can be canceled")
        self.log(job_id, "Job canceled", status="ended")
        self._queue_settle(canceled)
        return canceled

    def delete(self, job_id: str, tenant_id: str) -> Job:
        """Remove a job that is not being worked on, with its chunks and logs; a live one is a Conflict."""
        job = self.get(job_id, tenant_id)
        if not self.repo.delete(job_id):
            raise WrongState(f"The job is {job.state.value} and cannot be deleted")
        self.repo.delete_rest(job_id)
        return job

    def _state(self, job_id: str, seen: Job) -> JobState:
        return self.repo.state(job_id) or seen.state

    # Work (called by the worker for each SQS message) ---------------------
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
        self._fail(job, reason)

    def _plan(self, job_id: str) -> None:
        job = self.repo.get(job_id)
        if job is None:
            return
        if job.state is JobState.PENDING:
            kind = kind_of(job.kind)
            chunks = rows = 0
            try:  # a kind may plan lazily (a generator): each chunk is written as it comes, memory stays flat
                for plan in kind.plan(self.ctx, job):
                    self.repo.create_chunk(job_id, plan)
                    chunks, rows = chunks + 1, rows + plan.count
            except JobFailure as failure:
                self._fail(job, str(failure))
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
                self.log(job_id, f"Job started: {started.total_rows} rows in {chunks} chunks")
                logger.info("job %s started: %d rows, %d chunks", job_id, started.total_rows, chunks)
        # A redelivered plan message re-sends the open chunks, so a crash right after planning loses nothing.
        if self.repo.state(job_id) is JobState.RUNNING:
            self._enqueue_open_chunks(job_id)
            self._check_completion(job_id)

    def _enqueue_open_chunks(self, job_id: str) -> None:
        open_chunks = [c for c in self.repo.chunks(job_id) if not c.done]
        self.queue.send([{"job": job_id, "op": "chunk", "chunk": c.index} for c in open_chunks])

    def _run_chunk(self, job_id: str, index: int, remaining_ms: Callable[[], int]) -> None:
        job = self.repo.get(job_id)
        chunk = self.repo.get_chunk(job_id, index)
        if job is None or chunk is None:
            return
        if chunk.done or job.state.is_final:
            return
        if job.state in (JobState.STOPPING, JobState.STOPPED):
            if chunk.lease_owner:
                # Another delivery of this chunk holds it: SQS gave the message out again because that
                # one died (or this is a duplicate). Take the lease back so that the stop can settle;
                # a holder still alive then fails its next checkpoint and leaves.
                self.repo.release_lease(chunk, ChunkStatus.PAUSED)
            self._settle_stop(job_id)  # the chunk stays open; resume queues it again
            return
        if job.state is not JobState.RUNNING:
            return
        leased = self.repo.take_lease(chunk, secrets.token_hex(8), now_ms() + self.lease_ms)
        if leased is None:  # done meanwhile, another delivery took it first, or the job was stopped
            if self.repo.state(job_id) is JobState.STOPPING:
                self._settle_stop(job_id)
            return
        kind = kind_of(job.kind)
        try:
            finished = self._process(kind, job, leased, remaining_ms)
        except ServiceFailure:
            raise  # AWS trouble: SQS delivers the chunk again, whose delivery takes the lease over
        except Exception as crash:
            if not self.repo.holds_lease(leased):
                # The lease went (taken over, or the job force-stopped) and a guarded write of the kind
                # failed for it: this delivery leaves; it does not fail the job.
                logger.info("job %s chunk %d: lease lost (%s), leaving it", job_id, index, type(crash).__name__)
                return
            if isinstance(crash, JobFailure):
                self._fail(job, str(crash))
                return
            # the kind's own code crashed: the job fails, committed rows stay
            logger.exception("job %s chunk %d crashed", job_id, index)
            self._fail(job, f"Internal error while processing chunk {index}: {type(crash).__name__}")
            return
        if finished:
            self._check_completion(job_id, chunk_done=True)

    def _process(self, kind: JobKind, job: Job, chunk: Chunk, remaining_ms: Callable[[], int]) -> bool:
        """Run a chunk from its checkpoint; True when it is done, False when it stopped, yielded or lost it."""
        rows = kind.rows(self.ctx, job, chunk, chunk.next_row)
        while chunk.next_row < chunk.count:
            if self.repo.state(job.id) is not JobState.RUNNING:  # honour a stop between groups of rows
                self.repo.release_lease(chunk, ChunkStatus.PAUSED)
                self._settle_stop(job.id)
                return False
            if remaining_ms() < _RESERVE_MS:
                self.repo.release_lease(chunk, ChunkStatus.QUEUED)
                self.queue.send([{"job": job.id, "op": "chunk", "chunk": chunk.index}])
                return False
            size = min(kind.commit_rows, chunk.count - chunk.next_row)
            group = [row for _, row in zip(range(size), rows, strict=False)]
            if len(group) < size:  # the source ran short of what was planned: commit what there is
                size = len(group)
            try:
                outcomes = [kind.apply(self.ctx, job, row) for row in group]
            except Waiting as waiting:  # nothing of the group is committed; the chunk comes back later
                self.repo.release_lease(chunk, ChunkStatus.QUEUED)
                self.queue.send([{"job": job.id, "op": "chunk", "chunk": chunk.index}], delay_seconds=waiting.seconds)
                return False
            last = chunk.next_row + size >= chunk.count or size == 0
            expires = now_ms() + self.lease_ms
            if not self._commit(kind, job, chunk, outcomes, last=last, expires=expires):
                return False
            chunk = chunk.model_copy(
                update={
                    "next_row": chunk.count if last else chunk.next_row + size,
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
        self, kind: JobKind, job: Job, chunk: Chunk, outcomes: list[RowOutcome], *, last: bool, expires: int
    ) -> bool:
        """Write the group's effects (idempotent) and move the checkpoint; False if the lease is gone."""
        kind.before_commit(self.ctx, job, chunk, outcomes)
        puts = [p for o in outcomes for p in o.puts]
        deletes = [d for o in outcomes for d in o.deletes]
        effects = []
        if kind.atomic_rows and len(puts) + len(deletes) <= _ATOMIC_MOST:
            effects = self.repo.row_writes(puts, deletes)
        else:
            self.repo.write_rows(puts, deletes)
        ok = sum(o.ok for o in outcomes)
        rows = chunk.count - chunk.next_row if last else len(outcomes)
        advanced = self.repo.advance_chunk(
            chunk, rows=rows, ok=ok, bad=len(outcomes) - ok, last=last, effects=effects, expires=expires
        )
        if not advanced:
            logger.info("job %s chunk %d: lease lost or job stopped, leaving it", job.id, chunk.index)
            return False
        return True

    def _settle_stop(self, job_id: str) -> None:
        """STOPPING becomes STOPPED once no delivery holds a chunk (one read of the job's two items)."""
        job = self.repo.get(job_id)
        if job is None or job.state is not JobState.STOPPING:
            return
        if job.chunk_count and job.chunks_done >= job.chunk_count:
            self._check_completion(job_id)
            return
        if job.active_chunks > 0:
            return  # the delivery still holding a chunk pauses itself and comes back here
        stopped = self.repo.transition(job_id, (JobState.STOPPING,), JobState.STOPPED, idle=True)
        if stopped:
            self.log(job_id, "Job stopped")
            logger.info("job %s stopped", job_id)
            self._queue_settle(stopped)

    def _check_completion(self, job_id: str, *, chunk_done: bool = False) -> None:
        """FINISHED once every chunk is done: the counters item counts them, no chunk is read.

        After a chunk of a job with more to do, a progress line goes to the job's logs (a dialect that
        shows no counters, the gateway's errands, shows its progress that way)."""
        read_at = time.time_ns()
        job = self.repo.get(job_id)
        if job is None or job.state not in (JobState.RUNNING, JobState.STOPPING):
            return
        if job.chunks_done < job.chunk_count:
            if job.state is JobState.STOPPING:
                self._settle_stop(job_id)
            elif chunk_done:  # placed when the counters were read: before any later line, the last included
                progress = self.progress(job)
                self.log(
                    job_id,
                    f"Progress: {progress.processed + progress.failed} of {progress.total} rows done, "
                    f"{progress.failed} failed ({job.chunks_done} of {job.chunk_count} chunks)",
                    at_ns=read_at,
                )
            return
        progress = self.progress(job)
        try:
            kind = kind_of(job.kind)
            results = kind.finalize(self.ctx, job, progress)
        except JobFailure as failure:
            self._fail(job, str(failure))
            return
        done = self.repo.transition(
            job_id,
            (JobState.RUNNING, JobState.STOPPING),
            JobState.FINISHED,
            ended_at=now_ms(),
            results=results,
            processed=progress.processed,  # copies of the counters (the listing filters on them)
            failed=progress.failed,
        )
        if done:
            self.log(job_id, kind.finished_message(progress), status="ended")
            logger.info("job %s finished: %d processed, %d failed", job_id, progress.processed, progress.failed)

    def _fail(self, job: Job, reason: str) -> None:
        counted = self.repo.get(job.id) or job  # no row is counted once it is FAILED: these are final
        failed = self.repo.transition(
            job.id,
            _LIVE,
            JobState.FAILED,
            ended_at=now_ms(),
            error=reason,
            processed=counted.processed,
            failed=counted.failed,
        )
        if failed:
            self.log(job.id, reason, level="ERROR", status="ended")
            logger.warning("job %s failed: %s", job.id, reason)
            self._queue_settle(failed)

    def _queue_settle(self, job: Job) -> None:
        """Ask a worker to wrap up a job that ended early, if its kind has anything to do then."""
        try:
            settles = kind_of(job.kind).settles
        except JobFailure:
            return
        if settles:
            self.queue.send([{"job": job.id, "op": "settle"}])

    def _settle(self, job_id: str) -> None:
        job = self.repo.get(job_id)
        if job is not None and job.state in (JobState.STOPPED, JobState.FAILED, JobState.CANCELED):
            kind_of(job.kind).settle(self.ctx, job)


def _stoppable(job: Job) -> bool:
    try:
        return kind_of(job.kind).stoppable
    except JobFailure:  # a kind this deployment no longer knows
        return False
