"""The runtime dialect's view of core objects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from backroom.jobs.kinds import JobFailure, kind_of
from backroom.jobs.models import Job, Progress


class RuntimeModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class JobRef(RuntimeModel):
    id: str
    label: str | None = None


class RunBy(RuntimeModel):
    id: str
    full_name: str


class JobView(RuntimeModel):
    """`GET /status/jobs/{id}` as the runtime spec shows it."""

    id: str
    label: str
    type: str
    run_by: RunBy
    parent_job: JobRef | None = None
    root_job: JobRef | None = None
    create_date: int
    start_date: int | None = None
    end_date: int | None = None
    status: str
    has_errors: bool
    progress: int
    records_count: int
    records_processed: int
    children_jobs_count: int
    children_jobs_processed: int
    stoppable: bool
    low_priority: bool = False
    data: dict[str, Any] = Field(default_factory=dict)
    results: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, job: Job, progress: Progress) -> JobView:
        try:
            stoppable = kind_of(job.kind).stoppable
        except JobFailure:  # a kind this deployment no longer knows
            stoppable = False
        return cls(
            id=job.id,
            label=job.label,
            type=job.type or job.kind,
            run_by=RunBy(id=job.created_by, full_name=job.created_by_name),
            parent_job=JobRef(id=job.parent_id) if job.parent_id else None,
            root_job=JobRef(id=job.root_id) if job.root_id else None,
            create_date=job.created_at,
            start_date=job.started_at,
            end_date=job.ended_at,
            status=job.state.value,
            has_errors=progress.failed > 0 or job.error is not None,
            progress=100 if job.state.value == "FINISHED" else progress.percent,
            records_count=progress.total,
            records_processed=progress.processed + progress.failed,
            children_jobs_count=job.children_count,
            children_jobs_processed=job.children_done,
            stoppable=stoppable,
            data=job.params,
            results=job.results if job.error is None else {**job.results, "error": job.error},
        )
