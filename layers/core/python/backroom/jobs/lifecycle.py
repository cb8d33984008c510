"""How a job moves between states once work has begun: completion, stop settling, failure, wrap-up.

Shared by the engine (commands: a resume checks completion, a stop settles) and the worker (a
checkpoint completes a job, a crash fails it). Every transition is a conditional write, so two
callers racing on the same job cannot both win.
"""

from __future__ import annotations

import logging
import time

from backroom.clock import now_ms
from backroom.jobs.chunks import ChunkRepository
from backroom.jobs.journal import JobJournal
from backroom.jobs.kinds import JobContext, JobFailure, JobKinds
from backroom.jobs.models import Job, JobState
from backroom.jobs.queue import JobQueue
from backroom.jobs.repository import JobRepository

logger = logging.getLogger("jobs")

_LIVE = (JobState.PENDING, JobState.RUNNING, JobState.STOPPING, JobState.STOPPED)


class Lifecycle:
    def __init__(
        self,
        repo: JobRepository,
        chunks: ChunkRepository,
        queue: JobQueue,
        kinds: JobKinds,
        journal: JobJournal,
        ctx: JobContext,
    ) -> None:
        self.repo = repo
        self.chunks = chunks
        self.queue = queue
        self.kinds = kinds
        self.journal = journal
        self.ctx = ctx

    def stoppable(self, job: Job) -> bool:
        try:
            return self.kinds[job.kind].stoppable
        except JobFailure:  # a kind this deployment no longer knows
            return False

    def enqueue_open_chunks(self, job_id: str) -> None:
        open_chunks = [c for c in self.chunks.chunks(job_id) if not c.done]
        self.queue.send([{"job": job_id, "op": "chunk", "chunk": c.index} for c in open_chunks])

    def settle_stop(self, job_id: str) -> None:
        """STOPPING becomes STOPPED once no delivery holds a chunk (one read of the job's two items)."""
        job = self.repo.get(job_id)
        if job is None or job.state is not JobState.STOPPING:
            return
        if job.chunk_count and job.chunks_done >= job.chunk_count:
            self.check_completion(job_id)
            return
        if job.active_chunks > 0:
            return  # the delivery still holding a chunk pauses itself and comes back here
        stopped = self.repo.transition(job_id, (JobState.STOPPING,), JobState.STOPPED, idle=True)
        if stopped:
            self.journal.log(job_id, "Job stopped")
            logger.info("job %s stopped", job_id)
            self.queue_settle(stopped)

    def check_completion(self, job_id: str, *, chunk_done: bool = False) -> None:
        """FINISHED once every chunk is done: the counters item counts them, no chunk is read.

        After a chunk of a job with more to do, a progress line goes to the job's logs (a dialect that
        shows no counters, the gateway's errands, shows its progress that way)."""
        read_at = time.time_ns()
        job = self.repo.get(job_id)
        if job is None or job.state not in (JobState.RUNNING, JobState.STOPPING):
            return
        if job.chunks_done < job.chunk_count:
            if job.state is JobState.STOPPING:
                self.settle_stop(job_id)
            elif chunk_done:  # placed when the counters were read: before any later line, the last included
                progress = job.progress()
                self.journal.log(
                    job_id,
                    f"Progress: {progress.processed + progress.failed} of {progress.total} rows done, "
                    f"{progress.failed} failed ({job.chunks_done} of {job.chunk_count} chunks)",
                    at_ns=read_at,
                )
            return
        progress = job.progress()
        try:
            kind = self.kinds[job.kind]
            results = kind.finalize(self.ctx, job, progress)
        except JobFailure as failure:
            self.fail(job, str(failure))
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
            self.journal.log(job_id, kind.finished_message(progress), status="ended")
            logger.info("job %s finished: %d processed, %d failed", job_id, progress.processed, progress.failed)

    def fail(self, job: Job, reason: str) -> None:
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
            # Its other chunks' holders commit nothing more (their lease checks fail), so what the settle
            # finds is all there will be: an import's entries put ahead of a transaction are not taken
            # from under a record about to commit.
            self.chunks.revoke_leases(job.id)
            self.journal.log(job.id, reason, level="ERROR", status="ended")
            logger.warning("job %s failed: %s", job.id, reason)
            self.queue_settle(failed)

    def queue_settle(self, job: Job) -> None:
        """Ask a worker to wrap up a job that ended early, if its kind has anything to do then."""
        try:
            settles = self.kinds[job.kind].settles
        except JobFailure:
            return
        if settles:
            self.queue.send([{"job": job.id, "op": "settle"}])
