"""Runtime status facade (runtime dialect): jobs as the runtime API shows them, the app's logs and its
maintenance switch."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import RuntimeDialect
from backroom.api.resolver import CurrentCaller, dialect_app
from backroom.api.runtime import (
    RESULTS_BYTES,
    From,
    JobLogPageView,
    JobLogView,
    JobPageView,
    JobView,
    LineOffset,
    PageSize,
    To,
    json_body,
    last_values,
    millis,
    query_params,
    runtime_origin,
)
from backroom.api.runtime_jobs import RuntimeJobs
from backroom.app.logs import post_log, read_logs
from backroom.config import require
from backroom.jobs.engine import WrongState
from backroom.jobs.models import Job
from backroom.observability import http_handler
from backroom.wiring import core
from pydantic import BaseModel, ConfigDict

# Fails at cold start, naming the variables, if the deployment left them out (the job engine, which
# this function's services build, names the jobs queue and the files bucket).
require("bucket_name", "jobs_queue_url")
app = dialect_app(RuntimeDialect())


JobId = Annotated[str, Path(min_length=1, max_length=64)]


@app.exception_handler(WrongState)
def wrong_state(err: WrongState) -> Response:
    # The runtime spec answers a command the job's state (or kind, or place) refuses with a 400.
    return RuntimeDialect().error(400, err, app.current_event.raw_event)


def _params() -> dict[str, str]:
    return last_values(query_params(app.current_event.raw_event))


def _view(job: Job, *, entries: bool = True) -> JobView:
    """The job as the spec shows it; `entries`: with its per-record results (up to 1,000 items read), which
    a listing leaves out (a page of jobs would read a thousand items a job)."""
    engine = core().jobs
    results = engine.journal.results(job, most_bytes=RESULTS_BYTES) if entries else None
    origin = runtime_origin(app.current_event.raw_event)
    return JobView.of(job, stoppable=engine.stoppable(job), origin=origin, results=results)


@app.get("/runtime/api/status/jobs", responses={400: {"description": "A filter or paging parameter is not valid"}})
def list_jobs(  # the numbers are declared for the document and checked first; the core reads the query string
    caller: CurrentCaller,
    size: PageSize = None,
    start_from: Annotated[int | None, millis("startFrom")] = None,
    start_to: Annotated[int | None, millis("startTo")] = None,
    end_from: Annotated[int | None, millis("endFrom")] = None,
    end_to: Annotated[int | None, millis("endTo")] = None,
    create_from: Annotated[int | None, millis("createFrom")] = None,
    create_to: Annotated[int | None, millis("createTo")] = None,
) -> JobPageView:
    page = RuntimeJobs(core().jobs).list(caller, _params())
    return JobPageView(total=page.total, offset=page.offset, items=[_view(job, entries=False) for job in page.jobs])


@app.get("/runtime/api/status/jobs/<job_id>", responses={404: {"description": "The job doesn't exist"}})
def get_job(job_id: JobId, caller: CurrentCaller) -> JobView:
    return _view(RuntimeJobs(core().jobs).get(caller, job_id))


@app.get(
    "/runtime/api/status/jobs/<job_id>/logs",
    responses={400: {"description": "A parameter is not valid"}, 404: {"description": "The job is not found"}},
)
def get_job_logs(
    job_id: JobId,
    caller: CurrentCaller,
    size: PageSize = None,
    offset: LineOffset = None,
    since: From = None,
    until: To = None,
) -> JobLogPageView:
    page = RuntimeJobs(core().jobs).logs(caller, job_id, _params())
    items = [JobLogView(timestamp=e.timestamp, level=e.level, message=e.message) for e in page.entries]
    return JobLogPageView(total=page.total, offset=page.offset, items=items)


@app.put(
    "/runtime/api/status/jobs/<job_id>/<verb>",
    responses={
        400: {"description": "The job cannot do it: its type, its status, or it is not a root job"},
        403: {"description": "Not a developer, and not a job the caller ran"},
        404: {"description": "The job is not found"},
    },
)
def command_job(
    job_id: JobId, verb: Annotated[str, Path(pattern="^(stop|forceStop|cancel|resume)$")], caller: CurrentCaller
) -> JobView:
    return _view(RuntimeJobs(core().jobs).command(caller, job_id, verb))


# App logs -------------------------------------------------------------------
@app.get(
    "/runtime/api/status/logs",
    responses={400: {"description": "A parameter is not valid"}, 403: {"description": "The caller is not a developer"}},
)
def get_logs(
    caller: CurrentCaller, size: PageSize = None, offset: LineOffset = None, since: From = None, until: To = None
) -> dict[str, Any]:
    return read_logs(core().app.logs, caller, last_values(query_params(app.current_event.raw_event)))


@app.post(
    "/runtime/api/status/logs",
    openapi_extensions={
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    },
    responses={
        400: {"description": "Validation errors, per field"},
        403: {"description": "The caller is not a developer"},
    },
)
def create_log(caller: CurrentCaller) -> dict[str, Any]:
    ip = app.current_event.request_context.http.source_ip
    return post_log(core().app.logs, caller, json_body(app.current_event.raw_event), ip)


# Maintenance ----------------------------------------------------------------
class MaintenanceView(BaseModel):
    """The app's maintenance: on or off, who switched it last and when (epoch ms; null if never)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"maintenance": True, "since": 1485866429630, "by": "dev@demo.local"}]}
    )

    maintenance: bool
    since: int | None
    by: str | None


_MAINTENANCE_ERRORS: dict[int, OpenAPIResponse] = {403: {"description": "The caller is not a developer"}}


@app.get("/runtime/api/status/maintenance", responses=_MAINTENANCE_ERRORS)
def get_maintenance(caller: CurrentCaller) -> MaintenanceView:
    """Whether the app is in maintenance (developers only; open while it is, as is its switch)."""
    return MaintenanceView(**core().maintenance.state(caller).view())


@app.put(
    "/runtime/api/status/maintenance",
    openapi_extensions={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"maintenance": {"type": "boolean"}},
                        "required": ["maintenance"],
                        "additionalProperties": False,
                    },
                    "example": {"maintenance": True},
                }
            },
        }
    },
    responses={**_MAINTENANCE_ERRORS, 400: {"description": 'The body is not {"maintenance": true|false}'}},
)
def put_maintenance(caller: CurrentCaller) -> MaintenanceView:
    """Put the app in maintenance (`true`: every other call of a token answers 503, and only developers log
    in) or take it out (`false`). An extension: the runtime spec names the 503 but no way to switch it."""
    state = core().maintenance.switch(caller, json_body(app.current_event.raw_event))
    return MaintenanceView(**state.view())


@http_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
