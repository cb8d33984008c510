"""The job engine: atomic state transitions, chunked work over SQS, checkpoints and logs.

States: PENDING -> RUNNING -> FINISHED; RUNNING -> STOPPING -> STOPPED -> RUNNING (resume) or
CANCELED; any live state -> FAILED. Every transition is a conditional write, so two callers racing
on the same job cannot both win.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from backroom.clock import now_ms
from backroom.errors import Conflict, NotFound
from backroom.ids import new_id
from backroom.jobs.kinds import JobContext, JobFailure, JobKind, RowOutcome, Waiting, kind_of
from backroom.jobs.models import Chunk, ChunkStatus, Job, JobState, LogEntry, NewJob, Progress
from backroom.jobs.queue import JobQueue
from backroom.jobs.repository import JobRepository

logger = logging.getLogger("jobs")

_LIVE = (JobState.PENDING, JobState.RUNNING, JobState.STOPPING, JobState.STOPPED)
# A chunk hands itself back to the queue when its invocation has less time left than this.
_RESERVE_MS = 20_000


NUMBERING_ATTEMPTS = 20  # writers racing for the next number of one counter


class JobEngine:
    def __init__(self, repo: JobRepository, queue: JobQueue, ctx: JobContext) -> None:
        self.repo = repo
        self.queue = queue
        self.ctx = ctx

    # Reading -------------------------------------------------------------
    def get(self, job_id: str, tenant_id: str) -> Job:
        """A job of the caller's tenant; another tenant's job is indistinguishable from a missing one."""
        job = self.repo.get(job_id)
        if job is None or job.tenant_id != tenant_id:
            raise NotFound(f"Job {job_id} does not exist")
        return job

    def progress(self, job: Job) -> Progress:
        """Exact counters: from the job once it is over, from its chunk checkpoints while it runs."""
        if job.state.is_final or job.chunk_count == 0:
            return Progress(total=job.total_rows, processed=job.processed, failed=job.failed)
        return self._counted(job, self.repo.chunks(job.id))

    @staticmethod
    def _counted(job: Job, chunks: list[Chunk]) -> Progress:
        """The job's counters as its chunk checkpoints hold them (the source of truth while it runs)."""
        return Progress(
            total=job.total_rows, processed=sum(c.processed for c in chunks), failed=sum(c.failed for c in chunks)
        )

    def log(self, job_id: str, message: str, *, level: str = "INFO", status: str = "") -> None:
        self.repo.add_log(job_id, LogEntry(timestamp=now_ms(), level=level, message=message, status=status))

    def logs(self, job_id: str) -> list[LogEntry]:
        """A job's log lines, oldest first."""
        return self.repo.logs(job_id)

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
            raise Conflict("The job was already started")
        self.queue.send([{"job": job_id, "op": "plan"}])
        return self.get(job_id, tenant_id)

    def stop(self, job_id: str, tenant_id: str) -> Job:
        job = self.get(job_id, tenant_id)
        if not kind_of(job.kind).stoppable:
            raise Conflict("Jobs of this kind cannot be stopped")
        now = now_ms()
        if job.state is JobState.PENDING:
            stopped = self.repo.transition(job_id, (JobState.PENDING,), JobState.STOPPED, stopped_at=now)
        else:
            stopped = self.repo.transition(job_id, (JobState.RUNNING,), JobState.STOPPING, stopped_at=now)
        if stopped is None:
            raise Conflict(f"The job is {job.state.value} and cannot be stopped")
        self.log(job_id, "Stop requested")
        if stopped.state is JobState.STOPPING:
            self._settle_stop(job_id)
        else:
            self._queue_settle(stopped)
        return self.get(job_id, tenant_id)

    def resume(self, job_id: str, tenant_id: str) -> Job:
        job = self.get(job_id, tenant_id)
        target = JobState.RUNNING if job.started_at else JobState.PENDING
        resumed = self.repo.transition(job_id, (JobState.STOPPED,), target)
        if resumed is None:
            raise Conflict(f"The job is {job.state.value} and cannot be resumed")
        self.log(job_id, "Job resumed")
        if target is JobState.RUNNING:
            self._enqueue_open_chunks(job_id)
            self._check_completion(job_id)
        elif job.queued_at:
            self.queue.send([{"job": job_id, "op": "plan"}])
        return self.get(job_id, tenant_id)

    def cancel(self, job_id: str, tenant_id: str) -> Job:
        job = self.get(job_id, tenant_id)
        done = self._counted(job, self.repo.chunks(job_id))  # the rows done before the stop stay counted
        canceled = self.repo.transition(
            job_id,
            (JobState.STOPPED,),
            JobState.CANCELED,
            ended_at=now_ms(),
            processed=done.processed,
            failed=done.failed,
        )
        if canceled is None:
            raise Conflict(f"The job is {job.state.value}; only a stopped job can be canceled")
        self.log(job_id, "Job canceled", status="ended")
        self._queue_settle(canceled)
        return canceled

    def delete(self, job_id: str, tenant_id: str) -> Job:
        """Remove a job that is not being worked on, with its chunks and logs; a live one is a Conflict."""
        job = self.get(job_id, tenant_id)
        if not self.repo.delete(job_id):
            raise Conflict(f"The job is {job.state.value} and cannot be deleted")
        self.repo.delete_rest(job_id)
        return job

    # Work (called by the worker for each SQS message) ---------------------
    def handle(self, message: dict[str, Any], remaining_ms: Callable[[], int] | None = None) -> None:
        job_id = message["job"]
        op = message.get("op")
        if op == "plan":
            self._plan(job_id)
        elif op == "settle":
            self._settle(job_id)
        else:
            self._run_chunk(job_id, int(message["chunk"]), remaining_ms or (lambda: 900_000))

    def _plan(self, job_id: str) -> None:
        job = self.repo.get(job_id)
        if job is None:
            return
        if job.state is JobState.PENDING:
            kind = kind_of(job.kind)
            try:
                plans = kind.plan(self.ctx, job)
            except JobFailure as failure:
                self._fail(job, str(failure))
                return
            for plan in plans:
                self.repo.create_chunk(job_id, plan)
            started = self.repo.transition(
                job_id,
                (JobState.PENDING,),
                JobState.RUNNING,
                started_at=now_ms(),
                chunk_count=len(plans),
                total_rows=sum(p.count for p in plans),
            )
            if started:
                self.log(job_id, f"Job started: {started.total_rows} rows in {len(plans)} chunks")
                logger.info("job %s started: %d rows, %d chunks", job_id, started.total_rows, len(plans))
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
            self._check_completion(job_id)
            return
        if job.state in (JobState.STOPPING, JobState.STOPPED):
            self._pause(job_id, index)
            return
        if job.state is not JobState.RUNNING:
            return
        if not self.repo.set_chunk_status(job_id, index, ChunkStatus.RUNNING):
            self._check_completion(job_id)
            return
        kind = kind_of(job.kind)
        try:
            finished = self._process(kind, job, chunk, remaining_ms)
        except JobFailure as failure:
            self._fail(job, str(failure))
            return
        except ClientError:
            raise  # AWS trouble: let SQS deliver the chunk again; the checkpoint makes that safe
        except Exception as crash:  # the kind's own code crashed: the job fails, committed rows stay
            logger.exception("job %s chunk %d crashed", job_id, index)
            self._fail(job, f"Internal error while processing chunk {index}: {type(crash).__name__}")
            return
        if finished:
            self._check_completion(job_id)

    def _process(self, kind: JobKind, job: Job, chunk: Chunk, remaining_ms: Callable[[], int]) -> bool:
        """Run a chunk from its checkpoint; True when it is done, False when it stopped or yielded."""
        rows = kind.rows(self.ctx, job, chunk, chunk.next_row)
        while chunk.next_row < chunk.count:
            if self.repo.state(job.id) is not JobState.RUNNING:  # honour a stop between groups of rows
                self._pause(job.id, chunk.index)
                return False
            if remaining_ms() < _RESERVE_MS:
                self.repo.set_chunk_status(job.id, chunk.index, ChunkStatus.QUEUED)
                self.queue.send([{"job": job.id, "op": "chunk", "chunk": chunk.index}])
                return False
            size = min(kind.commit_rows, chunk.count - chunk.next_row)
            group = [row for _, row in zip(range(size), rows, strict=False)]
            if len(group) < size:  # the source ran short of what was planned: commit what there is
                size = len(group)
            try:
                outcomes = [kind.apply(self.ctx, job, row) for row in group]
            except Waiting as waiting:  # nothing of the group is committed; the chunk comes back later
                self.repo.set_chunk_status(job.id, chunk.index, ChunkStatus.QUEUED)
                self.queue.send([{"job": job.id, "op": "chunk", "chunk": chunk.index}], delay_seconds=waiting.seconds)
                return False
            last = chunk.next_row + size >= chunk.count or size == 0
            if not self._commit(kind, job, chunk, outcomes, last=last):
                return False
            chunk = chunk.model_copy(
                update={
                    "next_row": chunk.count if last else chunk.next_row + size,
                    "processed": chunk.processed + sum(o.ok for o in outcomes),
                    "failed": chunk.failed + sum(not o.ok for o in outcomes),
                }
            )
            if last:
                break
        logger.info("job %s chunk %d done: %d ok, %d failed", job.id, chunk.index, chunk.processed, chunk.failed)
        return True

    def _commit(self, kind: JobKind, job: Job, chunk: Chunk, outcomes: list[RowOutcome], *, last: bool) -> bool:
        """Write the group's effects (idempotent), then move the checkpoint; False if another delivery owns it."""
        kind.before_commit(self.ctx, job, chunk, outcomes)
        self.repo.table.batch_write(
            puts=[p for o in outcomes for p in o.puts], deletes=[d for o in outcomes for d in o.deletes]
        )
        ok = sum(o.ok for o in outcomes)
        rows = chunk.count - chunk.next_row if last else len(outcomes)
        if not self.repo.advance_chunk(chunk, rows=rows, ok=ok, bad=len(outcomes) - ok, last=last):
            logger.info("job %s chunk %d: checkpoint moved elsewhere, leaving it", job.id, chunk.index)
            return False
        return True

    def _pause(self, job_id: str, index: int) -> None:
        self.repo.set_chunk_status(job_id, index, ChunkStatus.PAUSED)
        self._settle_stop(job_id)

    def _settle_stop(self, job_id: str) -> None:
        """STOPPING becomes STOPPED once no chunk is still being worked on."""
        chunks = self.repo.chunks(job_id)
        if all(c.done for c in chunks):
            self._check_completion(job_id)
            return
        if any(c.status is ChunkStatus.RUNNING for c in chunks):
            return  # the chunk still running pauses itself and comes back here
        stopped = self.repo.transition(job_id, (JobState.STOPPING,), JobState.STOPPED)
        if stopped:
            self.log(job_id, "Job stopped")
            logger.info("job %s stopped", job_id)
            self._queue_settle(stopped)

    def _check_completion(self, job_id: str) -> None:
        job = self.repo.get(job_id)
        if job is None or job.state not in (JobState.RUNNING, JobState.STOPPING):
            return
        chunks = self.repo.chunks(job_id)
        if not all(c.done for c in chunks):
            return
        progress = self._counted(job, chunks)
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
            processed=progress.processed,
            failed=progress.failed,
            results=results,
        )
        if done:
            self.log(job_id, kind.finished_message(progress), status="ended")
            logger.info("job %s finished: %d processed, %d failed", job_id, progress.processed, progress.failed)

    def _fail(self, job: Job, reason: str) -> None:
        progress = self._counted(job, self.repo.chunks(job.id))
        failed = self.repo.transition(
            job.id,
            _LIVE,
            JobState.FAILED,
            ended_at=now_ms(),
            error=reason,
            processed=progress.processed,
            failed=progress.failed,
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
