"""`DELETE_RECORDS`: a runtime delete of many records, or of those a query matches, as a job.

The plan fixes which records go: the ids given, or those the query matches when the job starts,
kept in the chunks (500 a chunk), so records created later are left alone and a stop and resume
goes on with the very same records. Each group of rows is deleted through the records model before
its checkpoint: several records to a transaction, each conditioned on its version, with its
history entry; a replayed group finds its records gone and counts them done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from backroom.app.querylang import parse
from backroom.app.repository import AppRepository
from backroom.errors import NotFound
from backroom.jobs.kinds import JobContext, JobFailure, JobKind, PerJob, RowOutcome, register
from backroom.jobs.models import Chunk, ChunkPlan, Job, Progress
from backroom.records import RecordStore
from backroom.records.store import Author

logger = logging.getLogger("jobs.deletes")
CHUNK_IDS = 500


def _entity(ctx: JobContext, job: Job) -> Any:
    try:
        return AppRepository(ctx.table, RecordStore(ctx.table)).entity(job.tenant_id, job.params["entity"])
    except NotFound as gone:
        raise JobFailure(str(gone)) from None


_entities = PerJob(_entity)


class DeleteRecordsKind(JobKind):
    name = "runtime.delete_records"
    commit_rows = 50

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        from backroom.app.service import AppData  # the service's query reading, without its caller checks

        entity = _entities(ctx, job)
        ids = job.params.get("ids")
        if ids is None:
            data = AppData(AppRepository(ctx.table, RecordStore(ctx.table)), RecordStore(ctx.table), ctx.engine)
            ids = data.ids_of(job.tenant_id, entity, parse(job.params.get("query") or {}))
        else:  # ids that name no record are not planned: the results count what was there to delete
            ids = [
                r.rid for r in RecordStore(ctx.table).get_many(job.tenant_id, entity.schema, list(dict.fromkeys(ids)))
            ]
        ids = list(dict.fromkeys(ids))
        return [
            ChunkPlan(
                index=i,
                start=start,
                count=len(ids[start : start + CHUNK_IDS]),
                cursor={"ids": ids[start : start + CHUNK_IDS]},
            )
            for i, start in enumerate(range(0, len(ids), CHUNK_IDS))
        ]

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        return iter(chunk.cursor["ids"][skip:])

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        return RowOutcome(output={"id": row})  # the group's deletes run together, before its checkpoint

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        """Delete the group's records, several to a transaction; a replayed group finds them gone."""
        entity = _entities(ctx, job)
        author = Author(job.params.get("user", ""), job.params.get("ip"), f"jobs.{job.id}")
        rids = [str((o.output or {})["id"]) for o in outcomes]
        errors = RecordStore(ctx.table).delete_many(job.tenant_id, entity.schema, rids, author=author)
        for outcome, rid in zip(outcomes, rids, strict=True):
            if errors.get(rid):
                outcome.ok, outcome.error = False, f"{rid}: {errors[rid]}"
                ctx.engine.log(job.id, outcome.error, level="ERROR")

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        _entities.forget(job.id)
        return {"recordsDeleted": progress.processed, "recordsWithErrors": progress.failed}


register(DeleteRecordsKind())
