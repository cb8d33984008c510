"""How a runtime job over records (a delete, an action) fixes its records: the plan holds their ids.

The ids given, or those the query matches when the job starts, kept in the chunks (`CHUNK_IDS` a
chunk): records created later are left alone, and a stop and resume goes on with the very same records.
A given id that names no record when the job starts is planned too, marked `absent` in its chunk's
cursor: its row fails with the error a synchronous call answers for it (`no_record`), so the job's
results are the synchronous answer's map; a record gone later (a replayed row's) is told apart from it.

A result entry of a row (`bounded_entry`) keeps the whole record unless its JSON passes `ENTRY_MOST`:
a job keeps its first 1,000 entries, each its own item, and `GET /status/jobs/{id}` reads them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from backroom.app.definition import Entity
from backroom.app.querylang import parse
from backroom.errors import Invalid, NotFound
from backroom.jobs.kinds import JobFailure, JobKind, PerJob
from backroom.jobs.models import ChunkPlan, Job

if TYPE_CHECKING:
    from backroom.app.ports import AppService

CHUNK_IDS = 500
# Ids a request may name for a job (its path): as many as the results map keeps entries for. A few
# characters each would otherwise make one short request thousands of rows, each an error to log.
LISTED_MOST = 1000
ENTRY_MOST = 32 * 1024  # a result entry's JSON: 1,000 of them stay far below a Lambda's memory and answer
_ID = re.compile(r"^[0-9a-f]{24}$")


def no_record(entity: str, rid: str) -> NotFound:
    """The error of an id that names no record of `entity`, as every runtime answer words it."""
    return NotFound(f"Record {rid[:40]} of {entity} does not exist")


def record_id(rid: str) -> bool:
    """Whether `rid` can name a record (24 hex digits): anything else is never a storage key."""
    return bool(_ID.match(rid))


def bounded_entry(response: Any, slim: dict[str, Any]) -> dict[str, Any]:
    """`{status: "ok", response}` with the whole record (or an action's custom response), or with `slim`
    (the record's system fields) past `ENTRY_MOST`: an entry is one item, far below DynamoDB's 400 KB."""
    whole = {"status": "ok", "response": response}
    if len(json.dumps(whole, default=str)) <= ENTRY_MOST:
        return whole
    return {"status": "ok", "response": slim}


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
        return id_chunks(list(dict.fromkeys(app.ids_of(job.tenant_id, entity, parse(job.params.get("query") or {})))))
    given = list(dict.fromkeys(ids))
    found = {r.rid for r in records.get_many(job.tenant_id, entity.schema, [i for i in given if record_id(i)])}
    return id_chunks(given, absent={i for i in given if i not in found})


def listed_ids(ids: Sequence[str] | None) -> list[str] | None:
    """The ids a request names for a job (`None`: it names a query), once each, at most LISTED_MOST."""
    if ids is None:
        return None
    given = list(dict.fromkeys(ids))
    if len(given) > LISTED_MOST:
        raise Invalid(f"A request names at most {LISTED_MOST} records by id; name more with a query")
    return given


def id_chunks(ids: list[str], absent: set[str] | None = None) -> list[ChunkPlan]:
    """Chunks of `CHUNK_IDS` ids each, in that order, the ids in their cursors (and those of `absent`)."""
    plans = []
    for i, start in enumerate(range(0, len(ids), CHUNK_IDS)):
        part = ids[start : start + CHUNK_IDS]
        cursor: dict[str, Any] = {"ids": part}
        missing = [rid for rid in part if absent and rid in absent]
        if missing:
            cursor["absent"] = missing
        plans.append(ChunkPlan(index=i, start=start, count=len(part), cursor=cursor))
    return plans


def chunk_ids(cursor: dict[str, Any], skip: int) -> list[str]:
    return list(cursor["ids"][skip:])


def absent_ids(cursor: dict[str, Any]) -> set[str]:
    """The chunk's ids that named no record when the job was planned."""
    return set(cursor.get("absent") or ())


class AppJobKind(JobKind):
    """A kind of job over the runtime app's records: given the app's data by the composition root."""

    def __init__(self, app: AppService) -> None:
        self.app = app
