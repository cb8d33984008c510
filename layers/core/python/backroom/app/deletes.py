"""`DELETE_RECORDS`: a runtime delete of many records, or of those a query matches, as a job.

The plan fixes which records go (`planning`). Each group of rows is deleted through the records model
before its checkpoint: several records to a transaction, each conditioned on its version, with its
history entry; a replayed group finds its records gone and counts them done. Its results are the
map a synchronous delete answers, for the job's first 1,000 records (`JobEngine.put_results`).

Each of its transactions carries the chunk's `lease_guard`: a delivery that lost its chunk (taken over,
or the job force-stopped) deletes nothing more.

The relationships that name a record decide (`references`): a record a refusing one names is not
deleted (the row fails, its error says how many name it); after the group, one job clears the
references to its records, its id derived from the group's place so a replayed group starts it once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from backroom.app.planning import AppJobKind, chunk_ids, entity_of, planned_ids
from backroom.app.references import Link, References, derived_id
from backroom.app.views import record_view
from backroom.jobs.kinds import JobContext, PerJob, RowOutcome, lease_guard
from backroom.jobs.models import RESULTS_MOST, Chunk, ChunkPlan, Job, Progress
from backroom.records.store import Author, GuardFailed

if TYPE_CHECKING:
    from backroom.app.ports import AppService

logger = logging.getLogger("jobs.deletes")


class DeleteRecordsKind(AppJobKind):
    name = "runtime.delete_records"
    commit_rows = 50

    def __init__(self, app: AppService, references: References) -> None:
        super().__init__(app)
        self.references = references
        # The relationships to the job's entity, read once per job in a worker.
        self.links: PerJob[References, list[Link]] = PerJob(
            lambda refs, job: refs.links(job.tenant_id, job.params["entity"])
        )

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        return planned_ids(self.app, job)

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        return iter(chunk_ids(chunk.cursor, skip))

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        return RowOutcome(output={"id": row})  # the group's deletes run together, before its checkpoint

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        """Delete the group's records, several to a transaction; a replayed group finds them gone.

        The first 1,000 rows of the job (by their place in the plan) keep their outcome in the job's
        results, `{id: {status: "ok", response: {id, version, label}} | {status: "error", errorMessage}}`
        as a synchronous delete answers; the record is read before it goes, for those rows only.
        """
        entity = entity_of(self.app, job)
        author = Author(job.params.get("user", ""), job.params.get("ip"), f"jobs.{job.id}")
        rids = [str((o.output or {})["id"]) for o in outcomes]
        first = chunk.start + chunk.next_row
        shown = [rid for i, rid in enumerate(rids) if first + i < RESULTS_MOST]
        before = {r.rid: r for r in ctx.records.get_many(job.tenant_id, entity.schema, shown)} if shown else {}
        guard = [lease_guard(chunk)] if chunk.lease_owner else []
        refs = self.references
        links = self.links(refs, job)
        refused = refs.refusals(job.tenant_id, entity, rids, links=links)
        try:
            errors = ctx.records.delete_many(
                job.tenant_id, entity.schema, [r for r in rids if r not in refused], author=author, guard=guard
            )
        except GuardFailed:  # the lease is gone: the checkpoint will not move either; the new holder goes on
            logger.info("job %s chunk %d: lease lost, leaving the group", job.id, chunk.index)
            return
        errors.update(refused)
        gone = [rid for rid in rids if not errors.get(rid)]
        refs.deleted(
            job.tenant_id, entity.name, gone, job_id=derived_id(job.id, chunk.index, chunk.next_row), links=links
        )
        results: dict[int, tuple[str, Any]] = {}
        for i, (outcome, rid) in enumerate(zip(outcomes, rids, strict=True)):
            if errors.get(rid):
                outcome.ok, outcome.error = False, f"{rid}: {errors[rid]}"
                ctx.journal.log(job.id, outcome.error, level="ERROR")
                results[first + i] = (rid, {"status": "error", "errorMessage": errors[rid]})
            elif rid in before:
                record = before[rid]
                view = record_view(entity.schema, rid, record.version, record.label, record.data, fields=[])
                results[first + i] = (rid, {"status": "ok", "response": view})
            elif first + i < RESULTS_MOST:  # a replayed row: deleted before the crash
                results[first + i] = (rid, {"status": "ok", "response": {"id": rid}})
        ctx.journal.put_results(job.id, results)

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        """The counts beside the per-record map (record ids are 24 hex digits: no key is shared)."""
        entity_of.forget(job.id)
        self.links.forget(job.id)
        return {"recordsDeleted": progress.processed, "recordsWithErrors": progress.failed}
