"""The gateway dialect's view of core objects: errands and Spring-style pages."""

from __future__ import annotations

import math
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from backroom.jobs.models import Job, JobState, LogEntry

T = TypeVar("T")

MAX_PAGE_SIZE = 2000
DEFAULT_PAGE_SIZE = 20

_ERRAND_STATES = {
    JobState.PENDING: "Running",
    JobState.RUNNING: "Running",
    JobState.STOPPING: "Running",
    JobState.FINISHED: "Complete",
    JobState.FAILED: "Failed",
    JobState.STOPPED: "Terminated",
    JobState.CANCELED: "Terminated",
}


class GatewayModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class PageInfo(GatewayModel):
    total_pages: int
    total_elements: int
    has_next: bool

    @classmethod
    def of(cls, page: int, size: int, total: int) -> PageInfo:
        return cls(
            total_pages=math.ceil(total / size) if size else 0, total_elements=total, has_next=(page + 1) * size < total
        )


class Page(GatewayModel, Generic[T]):
    results: list[T]
    page: PageInfo


class ErrandView(GatewayModel):
    id: int
    name: str
    type: str
    state: str
    start_time: int | None
    end_time: int | None

    @classmethod
    def of(cls, job: Job) -> ErrandView:
        return cls(
            id=job.seq or 0,
            name=job.label,
            type=job.type,
            state=_ERRAND_STATES[job.state],
            start_time=job.started_at or job.queued_at or job.created_at,
            end_time=job.ended_at,
        )


class ErrandLogView(GatewayModel):
    log_message: str
    status: str
    create_time: int

    @classmethod
    def of(cls, entry: LogEntry) -> ErrandLogView:
        return cls(log_message=entry.message, status=entry.status, create_time=entry.timestamp)


def errand_scope(tenant_id: str) -> str:
    return f"ERRANDS#{tenant_id}"


def errand_order(seq: int) -> str:
    return f"{seq:012d}"


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True)
