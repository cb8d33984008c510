"""How a runtime job over records (a delete, an action) fixes its records: the plan holds their ids.

The ids given (those that name a record), or those the query matches when the job starts, kept in
the chunks (`CHUNK_IDS` a chunk): records created later are left alone, and a stop and resume goes
on with the very same records.
"""

from __future__ import annotations

from typing import Any

from backroom.app.definition import Entity
from backroom.app.querylang import parse
from backroom.app.repository import AppRepository
from backroom.errors import NotFound
from backroom.jobs.kinds import JobContext, JobFailure, PerJob
from backroom.jobs.models import ChunkPlan, Job
from backroom.records import RecordStore

CHUNK_IDS = 500


def _entity(ctx: JobContext, job: Job) -> Entity:
    try:
        return AppRepository(ctx.table, RecordStore(ctx.table)).entity(job.tenant_id, job.params["entity"])
    except NotFound as gone:
        raise JobFailure(str(gone)) from None


entity_of = PerJob(_entity)


def planned_ids(ctx: JobContext, job: Job) -> list[ChunkPlan]:
    from backroom.app.service import AppData  # the service's query reading, without its caller checks

    entity = entity_of(ctx, job)
    records = RecordStore(ctx.table)
    ids: list[str] | None = job.params.get("ids")
    if ids is None:
        data = AppData(AppRepository(ctx.table, records), records, ctx.engine)
        ids = data.ids_of(job.tenant_id, entity, parse(job.params.get("query") or {}))
    else:  # ids that name no record are not planned: the results count what was there
        ids = [r.rid for r in records.get_many(job.tenant_id, entity.schema, list(dict.fromkeys(ids)))]
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


def chunk_ids(cursor: dict[str, Any], skip: int) -> list[str]:
    return list(cursor["ids"][skip:])
