"""Errand facade (gateway dialect): `/gateway/errand/...` and the import files they name (`/gateway/import/...`)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import GatewayDialect
from backroom.api.gateway import (
    DEFAULT_PAGE_SIZE,
    BatchRequest,
    BatchRequestV2,
    CalculationRequest,
    CalculationRequestV2,
    DeleteRequest,
    ErrandLogView,
    ErrandView,
    FileImportRequest,
    ImportFileView,
    Page,
    PageInfo,
    PageNumber,
    PageSize,
    RecordsImportRequest,
    gateway_json,
)
from backroom.api.multipart import body_bytes, uploaded_file
from backroom.api.openapi import JSON, raw_body
from backroom.api.resolver import CurrentCaller, dialect_app
from backroom.config import require
from backroom.jobs.models import Job
from backroom.observability import http_handler
from backroom.wiring import core

# Fails at cold start, naming the variables, if the deployment left them out (the job engine, which
# this function's services build, names the jobs queue and the files bucket).
require("bucket_name", "jobs_queue_url")
# What each creation answers when something breaks inside (the Errand spec's 500 messages).
_NOT_CREATED = "Due to an internal issue {} could not be created."
INTERNAL_MESSAGES = {
    "POST /gateway/errand/v1/calculations": _NOT_CREATED.format("a Calculation Errand"),
    "POST /gateway/errand/v2/calculations": _NOT_CREATED.format("a Calculation Errand"),
    "POST /gateway/errand/v1/batches": _NOT_CREATED.format("a Batch Errand"),
    "POST /gateway/errand/v2/batches": _NOT_CREATED.format("a Batch Errand"),
    "POST /gateway/errand/v1/imports/file": _NOT_CREATED.format("an Import Errand"),
    "POST /gateway/errand/v1/imports/records": _NOT_CREATED.format("an Import Errand"),
    "POST /gateway/errand/v1/imported-data-deletes": _NOT_CREATED.format("an Imported Data Delete Errand"),
}
app = dialect_app(GatewayDialect(), internal_messages=INTERNAL_MESSAGES)

ErrandId = Annotated[int, Path(ge=1, le=999_999_999_999)]
# What a creation answers beyond the gateway's common errors (the Errand spec's statuses).
CREATED: dict[int, OpenAPIResponse] = {
    202: {"description": "Accepted: the errand, queued", "content": {JSON: {"model": ErrandView}}},
    409: {"description": "Too many errands are being created at once; try again"},
    422: {
        "description": "It exists but the request breaks a rule (not published or active, periods invalid or locked)"
    },
}


@app.get("/gateway/errand/v1/errands")
def list_errands(caller: CurrentCaller, page: PageNumber = 0, size: PageSize = DEFAULT_PAGE_SIZE) -> Page[ErrandView]:
    jobs, total = core().calcengine.errand_page(caller, page, size)
    return Page[ErrandView](results=[ErrandView.of(j) for j in jobs], page=PageInfo.of(page, size, total))


@app.get("/gateway/errand/v1/errands/<errand_id>")
def get_errand(errand_id: ErrandId, caller: CurrentCaller) -> ErrandView:
    return ErrandView.of(core().calcengine.errand(caller, errand_id))


@app.get("/gateway/errand/v1/errands/<errand_id>/logs")
def errand_logs(
    errand_id: ErrandId, caller: CurrentCaller, page: PageNumber = 0, size: PageSize = DEFAULT_PAGE_SIZE
) -> Page[ErrandLogView]:
    entries, total = core().calcengine.errand_logs(caller, errand_id, page, size)
    return Page[ErrandLogView](results=[ErrandLogView.of(e) for e in entries], page=PageInfo.of(page, size, total))


def _accepted(job: Job) -> Response[Any]:
    return gateway_json(202, ErrandView.of(job))


@app.post("/gateway/errand/v1/calculations", responses=CREATED)
def create_calculation(request: Annotated[CalculationRequest, Body()], caller: CurrentCaller) -> Response[Any]:
    return _accepted(core().calcengine.calculate(caller, request.calculation_id, **request.scope()))


@app.post("/gateway/errand/v2/calculations", responses=CREATED)
def create_calculation_v2(request: Annotated[CalculationRequestV2, Body()], caller: CurrentCaller) -> Response[Any]:
    return _accepted(core().calcengine.calculate(caller, request.calculation_id, **request.scope()))


@app.post("/gateway/errand/v1/batches", responses=CREATED)
def create_batch(request: Annotated[BatchRequest, Body()], caller: CurrentCaller) -> Response[Any]:
    return _accepted(core().calcengine.run_batch(caller, request.batch_id, **request.scope()))


@app.post("/gateway/errand/v2/batches", responses=CREATED)
def create_batch_v2(request: Annotated[BatchRequestV2, Body()], caller: CurrentCaller) -> Response[Any]:
    return _accepted(core().calcengine.run_batch(caller, request.batch_id, **request.scope()))


@app.post("/gateway/errand/v1/imports/file", responses=CREATED)
def import_file(request: Annotated[FileImportRequest, Body()], caller: CurrentCaller) -> Response[Any]:
    gateway = core().calcengine
    return _accepted(
        gateway.import_file(caller, request.import_file_id, request.import_file_type_id, request.period_range)
    )


@app.post("/gateway/errand/v1/imports/records", responses=CREATED)
def import_records(request: Annotated[RecordsImportRequest, Body()], caller: CurrentCaller) -> Response[Any]:
    gateway = core().calcengine
    return _accepted(gateway.import_records(caller, request.records, request.import_file_type_id, request.period_range))


@app.post("/gateway/errand/v1/imported-data-deletes", responses=CREATED)
def delete_imported(request: Annotated[DeleteRequest, Body()], caller: CurrentCaller) -> Response[Any]:
    return _accepted(core().calcengine.delete_imported(caller, request.import_file_id))


@app.post(
    "/gateway/import/v1/files",
    responses={201: {"description": "Created: the Import File", "content": {JSON: {"model": ImportFileView}}}},
    openapi_extensions=raw_body(
        {
            "text/csv": {"type": "string", "maxLength": 10 * 1024 * 1024},
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            },
        },
        examples={"text/csv": {"spec": {"value": "field1,field2\nvalue1.1,value1.2\n"}}},
    ),
)
def upload_import_file(
    caller: CurrentCaller, name: Annotated[str | None, Query(max_length=255)] = None
) -> Response[Any]:
    """Create an Import File from a CSV body (`?name=`) or a multipart/form-data upload; 201 `{id, name}`."""
    event = app.current_event
    body = body_bytes(event.raw_event)
    content_type = event.headers.get("content-type") or ""
    filename = None
    if content_type.lower().startswith("multipart/form-data"):
        filename, _type, body = uploaded_file(body, content_type)
    stored = core().calcengine.upload(caller, name or filename or "import.csv", body)
    return gateway_json(201, ImportFileView(id=stored.id, name=stored.name))


@http_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
