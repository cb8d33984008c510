"""The task runner: one kind of job that runs any registered task action on the job engine.

A task with input reads its chunk's byte range of `in.csv` from S3, checks each cell, applies the
action and keeps the row's output. Each group of rows writes its output as one scratch part before
its checkpoint moves (replay-safe: the part's key is the group's first row); the parts become
`out.csv` when the task finishes, stops or fails, streamed in order behind the header.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from backroom import keys
from backroom.csvfiles import SafeCsvWriter, chunk_rows
from backroom.jobs.kinds import JobContext, JobFailure, JobKind, RowOutcome
from backroom.jobs.models import Chunk, ChunkPlan, Job, Progress
from backroom.quantities import month_of
from backroom.tasks.registry import RowFailed, RowResult, TaskAction, TaskActions, TaskRun, origin

KIND = "tasks.run"
IN_CSV, OUT_CSV = "in.csv", "out.csv"
_PARTS = "parts/"


def action_of(actions: TaskActions, job: Job) -> TaskAction:
    found = actions.find(job.params.get("category", ""), job.params.get("action", ""))
    if found is None:
        raise JobFailure(f"No task {job.params.get('category')}/{job.params.get('action')}")
    return found


def output_columns(job: Job, action: TaskAction) -> list[str]:
    if job.params.get("has_input"):
        return [*job.params["columns"], *action.columns, "error"]
    return list(action.columns)


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    SafeCsvWriter(out).writerows(rows)  # out.csv is opened in spreadsheets: formulas escaped
    return out.getvalue()


class TaskJob(JobKind):
    name = KIND
    settles = True
    commit_rows = 100

    def __init__(self, actions: TaskActions) -> None:
        self.actions = actions

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        if job.params.get("has_input"):
            return [
                ChunkPlan(index=i, start=first, count=rows, cursor={"from": start, "to": end})
                for i, (first, rows, start, end) in enumerate(job.params["chunks"])
            ]
        plans, first = [], 0
        for i, source in enumerate(action_of(self.actions, job).sources(TaskRun(ctx, job))):
            plans.append(ChunkPlan(index=i, start=first, count=source.count, cursor=source.cursor))
            first += source.count
        return plans

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        if not job.params.get("has_input"):
            produced = action_of(self.actions, job).produce(TaskRun(ctx, job), chunk.cursor, skip)
            yield from enumerate(produced, start=chunk.start + skip)
            return
        stream = ctx.files.open_text(keys.task_owner(job.id), IN_CSV, chunk.cursor["from"], chunk.cursor["to"])
        for seen, values in chunk_rows(stream, skip):
            yield chunk.start + seen, values

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        index, values = row
        action = action_of(self.actions, job)
        if not job.params.get("has_input"):
            return RowOutcome(output={"cells": [values.get(c, "") for c in action.columns]})
        cells = dict(zip(job.params["columns"], values, strict=True))
        result, error = RowResult(), ""
        bad = next((f for f, v in cells.items() if v and f in action.checks and not action.checks[f](v)), None)
        if bad:
            error = f"bad {bad}"
        else:
            try:
                result = action.apply(TaskRun(ctx, job), cells, origin(job, index))
            except RowFailed as failed:
                error = str(failed)
        output = [*values, *(result.columns.get(c, "") for c in action.columns), error]
        return RowOutcome(ok=not error, output={"cells": output, "quantities": result.quantities})

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        if not outcomes:
            return
        first = chunk.start + chunk.next_row
        rows = [o.output["cells"] for o in outcomes if o.output]
        ctx.files.put_scratch(keys.task_owner(job.id), f"{_PARTS}{first:010d}.csv", _csv_text(rows).encode())
        changes: dict[tuple[str, str, str], int] = defaultdict(int)
        for o in outcomes:
            for account_id, category, item, delta in (o.output or {}).get("quantities", []):
                changes[(account_id, category, item)] += delta
        if changes:
            month = month_of(job.started_at or job.created_at)
            ctx.quantities.record(month, job.id, chunk.index, first + len(outcomes), changes)

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        self._write_output(ctx, job)
        return {}

    def settle(self, ctx: JobContext, job: Job) -> None:
        self._write_output(ctx, job)

    def _write_output(self, ctx: JobContext, job: Job) -> None:
        """out.csv from the parts, once; then the parts go (a rerun finds out.csv and only tidies)."""
        files = ctx.files
        if files.get(keys.task_owner(job.id), OUT_CSV) is None:
            header = _csv_text([output_columns(job, action_of(self.actions, job))]).encode()
            files.compose(keys.task_owner(job.id), OUT_CSV, header, _PARTS)
        files.delete_scratch(keys.task_owner(job.id), _PARTS)
