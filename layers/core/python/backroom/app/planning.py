"""How a runtime job over records (a delete, an action) fixes its records: the plan holds their ids.

The ids given (those that name a record), or those the query matches when the job starts, kept in
the chunks (`CHUNK_IDS` a chunk): records created later are left alone, and a stop and resume goes
on with the very same records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backroom.app.definition import Entity
from backroom.app.querylang import parse
from backroom.errors import NotFound
from backroom.jobs.kinds import JobFailure, JobKind, PerJob
from backroom.jobs.models import ChunkPlan, Job

if TYPE_CHECKING:
    from backroom.app.ports import AppService

CHUNK_IDS = 500


def _entity(app: AppService, job: Job) -> Entity:
    try:
        return app.repo.entity(job.tenant_id, job.params["entity"])
    except NotFound as gone:
        raise JobFailure(str(gone)) from None


entity_of = PerJob(_entity)


def planned_ids(app: AppService, job: Job) -> list[ChunkPlan]:
    entity = entity_of(app, job)
    records = app.records
    ids: list[str] | None = job.params.get("ids")
    if ids is None:  # the service's query reading, without its caller checks
        ids = app.ids_of(job.tenant_id, entity, parse(job.params.get("query") or {}))
    else:  # ids that name no record are not planned: the results count what was there
        ids = [r.rid for r in records.get_many(job.tenant_id, entity.schema, list(dict.fromkeys(ids)))]
    return id_chunks(list(dict.fromkeys(ids)))


def id_chunks(ids: list[str]) -> list[ChunkPlan]:
    """Chunks of `CHUNK_IDS` ids each, in that order, the ids in their cursors."""
    return [
        ChunkPlan(index=i, start=start, count=len(part), cursor={"ids": part})
        for i, start in enumerate(range(0, len(ids), CHUNK_IDS))
        for part in [ids[start : start + CHUNK_IDS]]
    ]


def chunk_ids(cursor: dict[str, Any], skip: int) -> list[str]:
    return list(cursor["ids"][skip:])


class AppJobKind(JobKind):
    """A kind of job over the runtime app's records: given the app's data by the composition root."""

    def __init__(self, app: AppService) -> None:
        self.app = app
