"""Errands: gateway jobs numbered 1, 2, 3... per tenant, listed in that order."""

from __future__ import annotations

from backroom.api.gateway import errand_order, errand_scope
from backroom.errors import NotFound
from backroom.ids import new_id
from backroom.jobs.engine import JobEngine
from backroom.jobs.models import Job, LogEntry, NewJob


class Errands:
    def __init__(self, engine: JobEngine) -> None:
        self.engine = engine

    def create(self, spec: NewJob, *, start: bool = True) -> Job:
        """Number the errand, point its number at the job, then create the job.

        The pointer goes first: a crash in between leaves a number that answers 404, never a job
        its number cannot find. Reading by number is then two GetItems, consistent at once (an
        index read could miss an errand created a moment ago).
        """
        seq = self.engine.repo.next_seq(f"errand#{spec.tenant_id}")
        numbered = spec.model_copy(
            update={"seq": seq, "scope": errand_scope(spec.tenant_id), "scope_order": errand_order(seq)}
        )
        job_id = new_id(30)
        self.engine.repo.put_alias(_alias(spec.tenant_id, seq), job_id)
        return self.engine.create(numbered, start=start, job_id=job_id)

    def get(self, tenant_id: str, errand_id: int) -> Job:
        job = self.engine.repo.by_alias(_alias(tenant_id, errand_id))
        if job is None or job.tenant_id != tenant_id:
            raise NotFound(f"Could not find Errand with id {errand_id}")
        return job

    def page(self, tenant_id: str, page: int, size: int) -> tuple[list[Job], int]:
        """One page of errands by number; numbers are dense, so a page is a key range, not a skip."""
        repo = self.engine.repo
        total = repo.count_scope(errand_scope(tenant_id))
        low, high = page * size + 1, (page + 1) * size
        jobs = repo.list_scope_between(errand_scope(tenant_id), errand_order(low), errand_order(high))
        return jobs, total

    def logs(self, tenant_id: str, errand_id: int, page: int, size: int) -> tuple[list[LogEntry], int]:
        """One page of an errand's log lines, oldest first, and how many there are."""
        job = self.get(tenant_id, errand_id)
        repo = self.engine.repo
        entries = repo.logs(job.id, limit=(page + 1) * size)[page * size :]
        return entries, repo.count_logs(job.id)


def _alias(tenant_id: str, seq: int) -> str:
    return f"ERRAND#{tenant_id}#{errand_order(seq)}"
