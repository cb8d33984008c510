"""`DELETE_RECORDS`: a runtime delete of many records, or of those a query matches, as a job.

The plan fixes which records go (`planning`). Each group of rows is deleted through the records model
before its checkpoint: several records to a transaction, each conditioned on its version, with its
history entry; a replayed group finds its records gone and counts them done. Its results are the
map a synchronous delete answers, for the job's first 1,000 records (`JobJournal.put_results`): the
whole record (as its caller may read it, with its `entity`) or the error, an id that names no record's
included; the counts are the job's own (`recordsCount`, `recordsProcessed`), never in the map.

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

from backroom.app.definition import Entity
from backroom.app.history import with_entity
from backroom.app.planning import (
    AppJobKind,
    absent_ids,
    bounded_entry,
    chunk_ids,
    entity_of,
    no_record,
    planned_ids,
)
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
        results, the map a synchronous delete answers: `{id: {status: "ok", response: <the whole record,
        with its entity>} | {status: "error", errorMessage}}`. Those records are read before they go, and
        each entry is written in the transaction that deletes its record: it says "ok" exactly when the
        record went (a group replayed after its deletes committed finds its records gone, their entries
        there); a row whose delete failed gets its error entry after.
        """
        entity = entity_of(self.app, job)
        author = Author(job.params.get("user", ""), job.params.get("ip"), f"jobs.{job.id}")
        rids = [str((o.output or {})["id"]) for o in outcomes]
        first = chunk.start + chunk.next_row
        absent = absent_ids(chunk.cursor)
        errors: dict[str, str | None] = {rid: no_record(entity.name, rid).message for rid in rids if rid in absent}
        present = [rid for rid in rids if rid not in absent]
        shown = ctx.journal.result_writes(job.id, self._entries(ctx, job, entity, first, rids, present))
        guard = [lease_guard(chunk)] if chunk.lease_owner else []
        refs = self.references
        links = self.links(refs, job)
        refused = refs.refusals(job.tenant_id, entity, present, links=links)
        try:
            errors.update(
                ctx.records.delete_many(
                    job.tenant_id,
                    entity.schema,
                    [r for r in present if r not in refused],
                    author=author,
                    guard=guard,
                    extra=shown,
                )
            )
        except GuardFailed:  # the lease is gone: the checkpoint will not move either; the new holder goes on
            logger.info("job %s chunk %d: lease lost, leaving the group", job.id, chunk.index)
            return
        errors.update(refused)
        gone = [rid for rid in present if not errors.get(rid)]
        refs.deleted(
            job.tenant_id, entity.name, gone, job_id=derived_id(job.id, chunk.index, chunk.next_row), links=links
        )
        failed: dict[int, tuple[str, Any]] = {}
        for i, (outcome, rid) in enumerate(zip(outcomes, rids, strict=True)):
            if errors.get(rid):
                outcome.ok, outcome.error = False, f"{rid[:40]}: {errors[rid]}"
                ctx.journal.log(job.id, outcome.error, level="ERROR")
                failed[first + i] = (rid, {"status": "error", "errorMessage": errors[rid]})
        ctx.journal.put_results(job.id, failed)

    @staticmethod
    def _entries(
        ctx: JobContext, job: Job, entity: Entity, first: int, rids: list[str], present: list[str]
    ) -> dict[int, tuple[str, Any]]:
        """The entries of the group's rows among the job's first 1,000 whose records are still there:
        each record as the job's caller may read it, with its `entity`, as a synchronous delete shows it."""
        shown = {rid for i, rid in enumerate(rids) if first + i < RESULTS_MOST and rid in present}
        found = {r.rid: r for r in ctx.records.get_many(job.tenant_id, entity.schema, list(shown))} if shown else {}
        fields = job.params.get("fields") or []
        entries: dict[int, tuple[str, Any]] = {}
        for i, rid in enumerate(rids):
            record = found.get(rid)
            if record is not None:
                view = record_view(entity.schema, rid, record.version, record.label, record.data, fields=fields)
                slim = {k: view[k] for k in ("id", "version", "label")}
                entries[first + i] = (
                    rid,
                    bounded_entry(with_entity(view, job.tenant_id, entity), with_entity(slim, job.tenant_id, entity)),
                )
        return entries

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        """Nothing beside the per-record map: the counts are the job's `recordsCount` and `recordsProcessed`,
        where the spec puts them, and its `hasErrors`."""
        entity_of.forget(job.id)
        self.links.forget(job.id)
        return {}
