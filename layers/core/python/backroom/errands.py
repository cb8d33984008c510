"""Errands: gateway jobs numbered 1, 2, 3... per tenant, listed in that order."""

from __future__ import annotations

from backroom import keys
from backroom.errors import NotFound
from backroom.jobs.engine import JobEngine
from backroom.jobs.models import Job, LogEntry, NewJob


class Errands:
    def __init__(self, engine: JobEngine) -> None:
        self.engine = engine

    def create(self, spec: NewJob, *, start: bool = True) -> Job:
        """Number the errand and create its job with the number's alias, in one transaction.

        A crash can leave no number without its errand, so numbers stay dense and a page is a key
        range. Reading by number is then two GetItems, consistent at once (an index read could miss
        an errand created a moment ago).
        """

        def numbered(seq: int) -> tuple[NewJob, str]:
            update = {"seq": seq, "scope": keys.errand_scope(spec.tenant_id), "scope_order": keys.errand_order(seq)}
            return spec.model_copy(update=update), keys.errand_alias(spec.tenant_id, seq)

        return self.engine.create_numbered(keys.errand_counter(spec.tenant_id), numbered, start=start)

    def get(self, tenant_id: str, errand_id: int) -> Job:
        job = self.engine.by_alias(keys.errand_alias(tenant_id, errand_id))
        if job is None or job.tenant_id != tenant_id:
            raise NotFound(f"Could not find Errand with id {errand_id}")
        return job

    def page(self, tenant_id: str, page: int, size: int) -> tuple[list[Job], int]:
        """One page of errands by number; numbers are dense and errands are never deleted, so a page is a
        key range, not a skip, and the total is the last number given (one read, whatever the count)."""
        total = self.engine.last_number(keys.errand_counter(tenant_id))
        low, high = page * size + 1, (page + 1) * size
        jobs = self.engine.list_scope_between(
            keys.errand_scope(tenant_id), keys.errand_order(low), keys.errand_order(high)
        )
        return jobs, total

    def logs(self, tenant_id: str, errand_id: int, page: int, size: int) -> tuple[list[LogEntry], int]:
        """One page of an errand's log lines, oldest first, and how many there are."""
        job = self.get(tenant_id, errand_id)
        entries = self.engine.journal.logs(job.id, limit=(page + 1) * size)[page * size :]
        return entries, self.engine.journal.count_logs(job.id)
