"""`DELETE_RECORDS`: a runtime delete of many records, or of those a query matches, as a job.

The plan fixes which records go (`planning`). Each group of rows is deleted through the records model
before its checkpoint: several records to a transaction, each conditioned on its version, with its
history entry; a replayed group finds its records gone and counts them done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from backroom.app.planning import chunk_ids, entity_of, planned_ids
from backroom.jobs.kinds import JobContext, JobKind, RowOutcome, register
from backroom.jobs.models import Chunk, ChunkPlan, Job, Progress
from backroom.records import RecordStore
from backroom.records.store import Author

logger = logging.getLogger("jobs.deletes")


class DeleteRecordsKind(JobKind):
    name = "runtime.delete_records"
    commit_rows = 50

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        return planned_ids(ctx, job)

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        return iter(chunk_ids(chunk.cursor, skip))

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        return RowOutcome(output={"id": row})  # the group's deletes run together, before its checkpoint

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        """Delete the group's records, several to a transaction; a replayed group finds them gone."""
        entity = entity_of(ctx, job)
        author = Author(job.params.get("user", ""), job.params.get("ip"), f"jobs.{job.id}")
        rids = [str((o.output or {})["id"]) for o in outcomes]
        errors = RecordStore(ctx.table).delete_many(job.tenant_id, entity.schema, rids, author=author)
        for outcome, rid in zip(outcomes, rids, strict=True):
            if errors.get(rid):
                outcome.ok, outcome.error = False, f"{rid}: {errors[rid]}"
                ctx.engine.log(job.id, outcome.error, level="ERROR")

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        entity_of.forget(job.id)
        return {"recordsDeleted": progress.processed, "recordsWithErrors": progress.failed}


register(DeleteRecordsKind())
