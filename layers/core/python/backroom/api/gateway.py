"""The gateway dialect's view of core objects: errands and Spring-style pages."""

from __future__ import annotations

import math
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 1,
                    "name": "Batch 1",
                    "type": "Calc",
                    "state": "Running",
                    "startTime": 1539922402211,
                    "endTime": None,
                }
            ]
        }
    )

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


# `page` (from 0) and `size` (at most 2000) of every paged gateway listing, as query parameters.
PageNumber = Annotated[int, Query(ge=0, le=10_000_000)]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]

PAGING = ("page", "size")
FILTER_PREFIX = "filter."


def extract_filters(event: dict[str, Any]) -> dict[str, list[str]]:
    """The Extract filters of a request, from the raw query string: every value a field is given.

    `page` and `size` page; any other key is a field, and `filter.<field>` names any field, also one
    called `page` or `size`. A key given twice keeps both values (API Gateway would join them with commas).
    """
    filters: dict[str, list[str]] = {}
    for key, value in parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True):
        if key in PAGING:
            continue
        field = key.removeprefix(FILTER_PREFIX) if key.startswith(FILTER_PREFIX) else key
        filters.setdefault(field, []).append(value)
    return filters


PeriodNumber = Annotated[int, Field(ge=1, le=999_999)]
Identifier = Annotated[int, Field(ge=1, le=999_999_999_999)]
Eid = Annotated[str, StringConstraints(min_length=1, max_length=255)]
TypeId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
PeriodRange = Annotated[list[PeriodNumber], Field(max_length=1000)]


class _RunV1(GatewayModel):
    """What a v1 calculation or batch runs for: periods (required) and participant ids (none: all)."""

    period_range: Annotated[list[PeriodNumber], Field(min_length=1, max_length=1000)]
    participant_ids: Annotated[list[Identifier], Field(max_length=10_000)] = []

    def scope(self) -> dict[str, Any]:
        return {"periods": self.period_range, "participant_ids": self.participant_ids}


class _RunV2(GatewayModel):
    """v2: periods (none: the current one) and participant EIDs (none: every active participant)."""

    period_range: PeriodRange = []
    participant_eids: Annotated[list[Eid], Field(max_length=10_000)] = []

    def scope(self) -> dict[str, Any]:
        return {"periods": self.period_range, "eids": self.participant_eids, "v2": True}


class CalculationRequest(_RunV1):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"periodRange": [1, 2, 3], "calculationId": 1, "participantIds": [1, 2, 3]}]}
    )

    calculation_id: Identifier


class CalculationRequestV2(_RunV2):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"periodRange": [1, 2, 3], "calculationId": 1, "participantEids": ["test_user_1", "test_user_2"]}
            ]
        }
    )

    calculation_id: Identifier


class BatchRequest(_RunV1):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"periodRange": [1, 2, 3], "batchId": 1, "participantIds": [1, 2, 3]}]}
    )

    batch_id: Identifier


class BatchRequestV2(_RunV2):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "periodRange": [1, 2, 3],
                    "batchId": 1,
                    "participantEids": ["test_user_1", "test_user_2", "test_user_3"],
                }
            ]
        }
    )

    batch_id: Identifier


class FileImportRequest(GatewayModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"importFileId": 1, "periodRange": [1, 2, 3], "importFileTypeId": "standard-3"}]
        }
    )

    import_file_id: Identifier
    period_range: PeriodRange = []
    import_file_type_id: TypeId


class RecordsImportRequest(GatewayModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "records": [{"field1": "value1"}, {"field1": "value2"}],
                    "periodRange": [1],
                    "importFileTypeId": "standard-1",
                }
            ]
        }
    )

    records: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=10_000)]
    period_range: PeriodRange = []
    import_file_type_id: TypeId


class DeleteRequest(GatewayModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"importFileId": 1}]})

    import_file_id: Identifier


class ImportFileView(GatewayModel):
    id: int
    name: str


def gateway_json(status: int, model: BaseModel) -> Response[Any]:
    return Response(
        status_code=status, content_type="application/json;charset=UTF-8", body=model.model_dump_json(by_alias=True)
    )


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True)
