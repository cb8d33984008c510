"""`AGGREGATE_RECORDS`: an aggregate query run by a job (`PUT /data/{entity}/aggregate?_async=true`), its
answer left as a JSON file. An extension of the runtime spec, for a pipeline past a request's budget.

The request checks the pipeline as a synchronous aggregate does (a 400 or 403 now, not a failed job)
and starts the job, which runs as the caller: each page builds the pipeline again with the job user's
gate, its grants read anew (as an export's chunks do), so a field it may no longer read fails the job.

One chunk; its rows are the entity's records as counted when the job starts, `PAGE` a group (the last
group reads every record left, so records created meanwhile are not missed). A group is one page: the
next records in id order after the id where the page before ended, read from every shard at once with
only the fields the pipeline uses (`Pipeline.page`), the leading matches checked on each. The page runs
the stages up to the first that needs every document and keeps what they give as a part (a scratch
object named by the page's first row): a group's partial groups, a count, or the documents. Its first
line says where the page ended and what the budget had spent, so the next page starts from it.

Exactly once: a page is determined by the part before it (its cursor and budget) and the records, and
writes its part under its own name before its checkpoint moves; a replay (a crash, a lease taken over,
a stop and resume between pages) reads the same part before and writes the same part again. When the
chunk is done, `finalize` merges the parts in order (groups gathered in pages merge into what one pass
gives: sums and counts add, the first/min win ties as in one pass), runs the stages after, and writes
`{"items": [...], "total": n}` (every document, not the first 1,000) as an app file: `fileLink` and
`fileId` in the job's results, as an export's; a rerun finds the results it wrote.

The budget (`async_limits`): `ASYNC_MAX_READ` records read and `ASYNC_MAX_DOCUMENTS` documents, counted
over all pages; past either, the job fails with the 400's message.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from backroom import keys
from backroom.app.aggregate import Part, Pipeline, async_limits, json_value
from backroom.app.definition import Entity
from backroom.app.permissions import Gate
from backroom.app.planning import AppJobKind, entity_of
from backroom.errors import Forbidden, Invalid, NotFound
from backroom.identity.models import Caller
from backroom.jobs.kinds import JobContext, JobFailure, PerJob, RowOutcome
from backroom.jobs.models import Chunk, ChunkPlan, Job, Progress

if TYPE_CHECKING:
    from backroom.app.ports import AppService

AGGREGATE_KIND = "runtime.aggregate_records"
PAGE = 5000  # records a page reads: a checkpoint, and what a crash replays
FILE_NAME = "aggregate.json"
DONE = "done.json"


def start_aggregate(
    data: AppService, caller: Caller, name: str, body: Any, ip: str | None, origin: str | None = None
) -> Job:
    """Check the pipeline as `caller` may run it (400, 403, 404 now), then start the job (`origin`: the
    dialect's, kept as the job's data for the file's link and never read here)."""
    Pipeline.of(data.records, caller.tenant_id, data.gate(caller), name, body, async_limits())
    params = {"entity": name, "pipeline": body, "user": caller.email, "developer": caller.is_developer, "ip": ip}
    if origin:
        params["origin"] = origin
    return data.start_job(caller, AGGREGATE_KIND, "AGGREGATE_RECORDS", f"Aggregate records of {name}", params)


def aggregate_file_id(job: Job) -> str:
    """The result's file id (24 hex digits), the same however often the job is finished."""
    return f"{job.created_at // 1000:08x}{hashlib.sha256(f'aggregate/{job.id}'.encode()).hexdigest()[:16]}"


def _part_name(row: int) -> str:
    return f"part-{row:09d}.json"


class AggregateRecordsKind(AppJobKind):
    name = AGGREGATE_KIND
    commit_rows = PAGE  # a group of rows is one page

    def __init__(self, app: AppService) -> None:
        super().__init__(app)
        self._entities: PerJob[AppService, dict[str, Entity]] = PerJob(_definitions)

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        """One chunk of as many rows as the entity has records now (at least one: the last page reads on)."""
        entity = entity_of(self.app, job)
        self._pipeline(job)  # a pipeline the user may no longer run fails the job now
        total = self.app.records.count(job.tenant_id, entity.schema, [])
        return [ChunkPlan(index=0, start=0, count=max(1, total))]

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        return iter(range(skip, chunk.count))

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        return RowOutcome()  # the page is read and worked through as a group, before its checkpoint

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        """Work through the page that starts at the chunk's checkpoint, from the part before it."""
        owner, start = keys.aggregate_owner(job.tenant_id, job.id), chunk.next_row
        before = None
        if start:
            before = Part(**json.loads(ctx.files.first_line(owner, _part_name(start - self.commit_rows))))
            if not before.more:  # the records ran out before the count the plan made: nothing is left
                ctx.files.put_scratch(owner, _part_name(start), _empty(before).encode())
                return
        pipeline = self._pipeline(job, before)
        last = start + len(outcomes) >= chunk.count
        try:
            part = pipeline.page(None if before is None else before.after, None if last else len(outcomes))
        except Invalid as past:  # past the budget
            raise JobFailure(past.message) from None
        ctx.files.put_scratch(owner, _part_name(start), pipeline.dump(part).encode())

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        """Merge the parts in order, run the stages after, and write the answer as an app file."""
        files, owner = ctx.files, keys.aggregate_owner(job.tenant_id, job.id)
        if files.scratch_names(owner, DONE):  # finished before (a redelivery): the same results
            return dict(json.loads(files.first_line(owner, DONE)))
        names = sorted(files.scratch_names(owner, "part-"))
        last = Part(**json.loads(files.first_line(owner, names[-1])))
        pipeline = self._pipeline(job, last)
        parts = (pipeline.load(files.open_text(owner, name).read()) for name in names)
        total = [0]
        try:
            docs = pipeline.answer(pipeline.combine(parts))
            stored = files.write_stream(owner, FILE_NAME, b'{"items":[', _items(docs, total), "application/json")
        except Invalid as past:  # past the budget while merging or after
            raise JobFailure(past.message) from None
        file_id = aggregate_file_id(job)
        files.adopt(job.tenant_id, file_id, stored, f"{job.params['entity']}-aggregate.json", job.params.get("user"))
        results = {  # the dialect shows the file's link beside its id (from the `origin` the request left)
            "fileId": file_id,
            "total": total[0],
            "recordsRead": last.read,
        }
        files.put_scratch(owner, DONE, json.dumps(results).encode())  # before the parts go: a rerun finds it
        files.delete_scratch(owner, "part-")
        self._entities.forget(job.id)
        return results

    def finished_message(self, progress: Progress) -> str:
        return "Aggregate finished: its result is the job's fileLink"

    def _pipeline(self, job: Job, before: Part | None = None) -> Pipeline:
        """The job's pipeline as its user may run it now (grants read anew), its budget where `before` left it."""
        gate = Gate.for_job(self.app.repo, job.tenant_id, job.params, self._entities(self.app, job))
        spent = (0, 0) if before is None else (before.read, before.spent)
        try:
            return Pipeline.of(
                self.app.records,
                job.tenant_id,
                gate,
                job.params["entity"],
                job.params["pipeline"],
                async_limits(),
                spent=spent,
            )
        except (Invalid, Forbidden, NotFound) as refused:
            raise JobFailure(f"{refused.message}: the aggregate stopped") from None


def _definitions(app: AppService, job: Job) -> dict[str, Entity]:
    """The entity's definition, read once a job in a worker (a lookup's entities are read by the gate)."""
    entity = entity_of(app, job)
    return {entity.name: entity}


def _empty(before: Part) -> str:
    """The part of a page with no record left to read: where the one before ended, and nothing else."""
    return json.dumps({**before.head(), "taken": 0}) + "\n" + json.dumps({"documents": []}) + "\n"


def _items(docs: Iterable[dict[str, Any]], total: list[int]) -> Iterator[bytes]:
    """The answer's documents as the JSON array's body, then its end and the total; a megabyte a piece."""
    out = io.StringIO()
    for document in docs:
        out.write(("," if total[0] else "") + json.dumps(json_value(document), separators=(",", ":")))
        total[0] += 1
        if out.tell() > 1 << 20:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    out.write(f'],"total":{total[0]}}}')
    yield out.getvalue().encode()
