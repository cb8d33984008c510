"""The job engine's commands and reads: create, start, stop, force stop, resume, cancel, delete; a job
and its listings.

States: PENDING -> RUNNING -> FINISHED; RUNNING -> STOPPING -> STOPPED -> RUNNING (resume) or
CANCELED; PENDING -> STOPPED (nothing ran yet); STOPPING -> STOPPED at once by a force stop; any
live state -> FAILED. Every transition is a conditional write, so two callers racing on the same job
cannot both win. The work itself is the worker's (`backroom.jobs.worker`); what both move a job
through once work has begun is `backroom.jobs.lifecycle`; log lines and results, `backroom.jobs.journal`.

Nothing here reads every chunk of a job to answer "how far is it" or "is it done": the job's
counters item holds exact counts (`processed`, `failed`, `chunks_done`, `active_chunks`) that each
checkpoint moves in the same transaction as the chunk's (see `repository.advance_chunk`). The chunks are read
only when a job is planned, resumed or force-stopped (to queue or free each open one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from backroom.clock import now_ms
from backroom.errors import Conflict, NotFound
from backroom.ids import new_id
from backroom.jobs.chunks import ChunkRepository
from backroom.jobs.journal import JobJournal
from backroom.jobs.lifecycle import Lifecycle
from backroom.jobs.models import Job, JobState, NewJob
from backroom.jobs.queue import JobQueue
from backroom.jobs.repository import JobRepository

logger = logging.getLogger("jobs")

NUMBERING_ATTEMPTS = 20  # writers racing for the next number of one counter


class WrongState(Conflict):
    """The job's state (or kind, or place in its tree) does not allow the command.

    A Conflict (409) for the dialects that say so; the runtime dialect answers it with a 400.
    """


class JobEngine:
    def __init__(
        self, repo: JobRepository, chunks: ChunkRepository, queue: JobQueue, journal: JobJournal, life: Lifecycle
    ) -> None:
        self.repo = repo
        self.chunks = chunks
        self.queue = queue
        self.journal = journal
        self.life = life

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

    def last_number(self, counter: str) -> int:
        """The last number `create_numbered` gave under `counter` (0 before the first)."""
        return self.repo.last_seq(counter)

    def stoppable(self, job: Job) -> bool:
        """Whether the job's kind may be stopped (a kind this deployment no longer knows may not)."""
        return self.life.stoppable(job)

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
        if not self.life.stoppable(job):
            raise WrongState("Jobs of this kind cannot be stopped")
        now = now_ms()
        if job.state is JobState.PENDING:
            stopped = self.repo.transition(job_id, (JobState.PENDING,), JobState.STOPPED, stopped_at=now)
        else:
            stopped = self.repo.transition(job_id, (JobState.RUNNING,), JobState.STOPPING, stopped_at=now)
        if stopped is None:
            raise WrongState(f"The job is {self._state(job_id, job).value} and cannot be stopped")
        self.journal.log(job_id, "Stop requested")
        if stopped.state is JobState.STOPPING:
            self.life.settle_stop(job_id)
        else:
            self.life.queue_settle(stopped)
        return self.get(job_id, tenant_id)

    def force_stop(self, job_id: str, tenant_id: str) -> Job:
        """STOPPING -> STOPPED at once, even if a worker died holding a chunk.

        Every chunk's lease is taken back first: a holder still alive can commit nothing after this
        (its checkpoint and any `lease_guard` fail), and no lease can be taken while the job is not
        RUNNING. Then the job is STOPPED, with no chunk held. Resume goes on from the checkpoints.
        """
        job = self.get(job_id, tenant_id)
        if not self.life.stoppable(job):
            raise WrongState("Jobs of this kind cannot be stopped")
        if job.state is not JobState.STOPPING:
            raise WrongState(f"The job is {job.state.value}; only a STOPPING job can be forced to stop")
        self.chunks.revoke_leases(job_id)
        stopped = self.repo.transition(job_id, (JobState.STOPPING,), JobState.STOPPED, reset_active=True)
        if stopped is None:
            raise WrongState(f"The job is {self._state(job_id, job).value}; only a STOPPING job can be forced to stop")
        self.journal.log(job_id, "Job stopped (forced)")
        logger.info("job %s force-stopped", job_id)
        self.life.queue_settle(stopped)
        return stopped

    def resume(self, job_id: str, tenant_id: str) -> Job:
        job = self.get(job_id, tenant_id)
        target = JobState.RUNNING if job.started_at else JobState.PENDING
        resumed = self.repo.transition(job_id, (JobState.STOPPED,), target)
        if resumed is None:
            raise WrongState(f"The job is {self._state(job_id, job).value} and cannot be resumed")
        self.journal.log(job_id, "Job resumed")
        if target is JobState.RUNNING:
            self.life.enqueue_open_chunks(job_id)
            self.life.check_completion(job_id)
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
        self.journal.log(job_id, "Job canceled", status="ended")
        self.life.queue_settle(canceled)
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
