"""The row probe: a diagnostic job that writes one marker item per row.

Operators run it to check a deployment's queue, workers and checkpoints end to end; the test suite
runs it to prove that a crash, a duplicate delivery, a stop or a resume neither loses nor repeats a
row: every marker must exist, once, and the job's counters must equal the row count exactly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from backroom import keys
from backroom.dynamo import Table
from backroom.jobs.kinds import JobContext, JobKind, RowOutcome, chunked
from backroom.jobs.models import Chunk, ChunkPlan, Job

MAX_ROWS = 1_000_000


class RowProbe(JobKind):
    name = "diagnostic.row_probe"
    commit_rows = 50
    atomic_rows = True  # its markers go in the checkpoint's transaction: none is written without it

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        rows = max(0, min(int(job.params.get("rows", 0)), MAX_ROWS))
        return chunked(rows, max(1, int(job.params.get("chunk_size", 1000))))

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        return iter(range(chunk.start + skip, chunk.start + chunk.count))

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        pause_ms = min(int(job.params.get("pause_ms", 0)), 50)
        if pause_ms:
            time.sleep(pause_ms / 1000)
        pk, sk = keys.probe_row(job.id, row)
        return RowOutcome(puts=[{"pk": pk, "sk": sk, "origin": f"{job.id}#{row}"}])


def probe_rows(table: Table, job_id: str) -> list[int]:
    """The rows of a probe job whose marker exists, in order."""
    items = table.query("pk = :p", {":p": keys.probe(job_id)}, consistent=True)
    return [keys.probe_row_of(i["sk"]) for i in items]
