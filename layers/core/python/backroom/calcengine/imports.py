"""Imports and imported-data deletes, as jobs on the engine.

A file import never holds the file: planning streams it once from S3 to find where each chunk of
1,000 rows starts, and each chunk then reads only its byte range. A row becomes one record whose
rid is the job's and the row's (a replayed row writes the same items again), tagged with the import
file it came from and the periods it was imported for. A delete reads the file's source index
partition and removes exactly those records, with every index item they occupy.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from typing import Any, TextIO

from backroom import keys
from backroom.calcengine.models import ImportFileType
from backroom.calcengine.tables import custom_table
from backroom.csvfiles import CsvChunker, chunk_rows
from backroom.errors import NotFound
from backroom.jobs.kinds import JobContext, JobFailure, JobKind, PerJob, RowOutcome, log_failed_rows
from backroom.jobs.models import Chunk, ChunkPlan, Job, Progress
from backroom.records import BadValue, Record, Schema, typed

logger = logging.getLogger("imports")

CHUNK_ROWS = 1000
DELETE_CHUNK = 1000  # ids of records to delete in a chunk
MAX_LOGGED_ERRORS = 20
FILE_NAME = "data.csv"
PERIOD_FIELD = "period"  # the field calculations read a row's period from (Calculation.period_field)


def file_source(file_id: int) -> str:
    return f"file:{file_id}"


def scan_csv(stream: TextIO, chunk_rows: int | None = None) -> tuple[list[str], list[ChunkPlan]]:
    """The header and the chunks of a CSV stream (row ranges with their byte ranges), one pass, flat memory."""
    try:
        chunker = CsvChunker(stream, chunk_rows or CHUNK_ROWS)
        header = [h.strip() for h in chunker.header]
        if not header or any(not h for h in header):
            raise JobFailure("The import file has no header row (or an empty column name)")
        chunks = chunker.scan()
    except (csv.Error, UnicodeDecodeError) as err:
        raise JobFailure(f"The import file is not a UTF-8 CSV file: {err}") from None
    return header, [
        ChunkPlan(index=i, start=c.first, count=c.count, cursor={"from": c.start, "to": c.end})
        for i, c in enumerate(chunks)
    ]


def _load(ctx: JobContext, job: Job) -> tuple[ImportFileType, Schema]:
    repo = ctx.calc
    file_type = repo.file_type(job.tenant_id, job.params["file_type"])
    if file_type is None:
        raise JobFailure(f"Import File Type {job.params['file_type']} no longer exists")
    store = ctx.records
    try:
        schema = custom_table(store, job.tenant_id, file_type.table)
    except NotFound:
        raise JobFailure(f"Custom Table {file_type.table} of Import File Type {file_type.id} does not exist") from None
    return file_type, schema


_setup = PerJob(_load)  # a worker reads the file type and schema once per job, not per row


def _log_failures(ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
    log_failed_rows(ctx, job, chunk, outcomes, most=MAX_LOGGED_ERRORS, level="WARN")


def _the_period(periods: list[int]) -> int:
    """The period a row that names none belongs to: the import's, when it names exactly one."""
    if len(periods) != 1:
        raise BadValue(f"the row names no {PERIOD_FIELD} and the import is for periods {periods}: say which")
    return periods[0]


class ImportKind(JobKind):
    """Rows of an import file (or of up to 50 records sent inline) into an import file type's table."""

    name = "gateway.import"
    commit_rows = 100

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        file_type, schema = _setup(ctx, job)
        if "records" in job.params:
            records = job.params["records"]
            return [ChunkPlan(index=0, start=0, count=len(records))] if records else []
        owner = keys.gateway_import_owner(job.tenant_id, job.params["file_id"])
        header, plans = scan_csv(ctx.files.open_text(owner, FILE_NAME))
        fields = [file_type.mapping.get(h, h) for h in header]
        if not any(schema.field(f) for f in fields):
            raise JobFailure(f"None of the file's columns ({', '.join(header)}) is a field of {schema.name}")
        ctx.calc.add_file_table(job.tenant_id, job.params["file_id"], schema.name)
        return [p.model_copy(update={"cursor": {**p.cursor, "header": header}}) for p in plans]

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        if "records" in job.params:
            yield from list(enumerate(job.params["records"]))[skip:]
            return
        owner = keys.gateway_import_owner(job.tenant_id, job.params["file_id"])
        stream = ctx.files.open_text(owner, FILE_NAME, chunk.cursor["from"], chunk.cursor["to"])
        header: list[str] = chunk.cursor["header"]
        for seen, values in chunk_rows(stream, skip):
            row = dict(zip(header, values, strict=False)) if len(values) == len(header) else None
            yield chunk.start + seen, row

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        index, values = row
        if values is None:
            return RowOutcome(ok=False, error=f"Row {index + 1}: the number of values does not match the header")
        file_type, schema = _setup(ctx, job)
        data: dict[str, Any] = {}
        try:
            for column, raw in values.items():
                name = file_type.mapping.get(column, column)
                if schema.field(name) and (value := typed(schema, name, raw)) is not None:
                    data[name] = value
            if file_type.needs_period and schema.field(PERIOD_FIELD) and PERIOD_FIELD not in data:
                data[PERIOD_FIELD] = typed(schema, PERIOD_FIELD, _the_period(job.params.get("periods", [])))
        except BadValue as bad:
            return RowOutcome(ok=False, error=f"Row {index + 1}: {bad}")
        record = Record(
            rid=f"{job.created_at:013d}.{job.id[:12]}.{index:09d}",
            data=data,
            source=job.params.get("source"),
            periods=job.params.get("periods", []),
            created_at=job.created_at,
        )
        return RowOutcome(puts=ctx.records.items(job.tenant_id, schema, record))

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        _log_failures(ctx, job, chunk, outcomes)

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        _setup.forget(job.id)
        file_type = ctx.calc.file_type(job.tenant_id, job.params["file_type"])
        limit = file_type.max_rejected_rows if file_type else None
        if file_type and limit is not None and progress.failed > limit:
            raise JobFailure(
                f"Import failed: {progress.failed} rows rejected, more than the {limit} "
                f"Import File Type {file_type.id} allows ({progress.processed} rows imported)"
            )
        return {"imported": progress.processed, "rejected": progress.failed}

    def finished_message(self, progress: Progress) -> str:
        rejected = f"{progress.failed} rows rejected" if progress.failed else "no rows rejected"
        listed = f" (at most {MAX_LOGGED_ERRORS} per {CHUNK_ROWS} rows are listed above)" if progress.failed else ""
        return f"Import finished: {progress.processed} rows imported, {rejected}{listed}"


class DeleteImportedKind(JobKind):
    """Every record an import file's imports wrote, in every table they wrote to.

    The plan fixes the records (their ids, from the file's source index, `DELETE_CHUNK` to a chunk), so
    a replayed group, or two deliveries of one chunk, delete and count the very same records.
    """

    name = "gateway.delete_imported"
    commit_rows = 100

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        store, first = ctx.records, 0
        plans: list[ChunkPlan] = []
        for name in ctx.calc.file_tables(job.tenant_id, job.params["file_id"]):
            try:
                schema = custom_table(store, job.tenant_id, name)
            except NotFound:
                logger.info("import file %s: table %s is gone, nothing of it to delete", job.params["file_id"], name)
                continue
            ids = list(dict.fromkeys(store.ids_of_source(job.tenant_id, schema, file_source(job.params["file_id"]))))
            for start in range(0, len(ids), DELETE_CHUNK):
                part = ids[start : start + DELETE_CHUNK]
                plans.append(
                    ChunkPlan(index=len(plans), start=first, count=len(part), cursor={"table": name, "ids": part})
                )
                first += len(part)
        return plans

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        return iter(chunk.cursor["ids"][skip:])

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        return RowOutcome(output={"id": row})  # the group's records are read together, before its checkpoint

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        """Each record of the group with every item it holds; a record already gone counts as deleted."""
        store = ctx.records
        schema = custom_table(store, job.tenant_id, chunk.cursor["table"])
        found = {
            r.rid: r for r in store.get_many(job.tenant_id, schema, [str((o.output or {})["id"]) for o in outcomes])
        }
        for outcome in outcomes:
            record = found.get(str((outcome.output or {})["id"]))
            outcome.output = None
            if record is not None:
                outcome.deletes = store.keys(job.tenant_id, schema, record)

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        return {"deleted": progress.processed}
