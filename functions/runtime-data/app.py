"""Runtime data facade (runtime dialect): an app's entities and records under /runtime/api/data.

`GET|POST|DELETE /data/{entity}`, `GET /data/{entity}/history`, `GET|PUT|DELETE /data/{entity}/{id}`
(`DELETE` takes ids separated by commas), `GET /data/{entity}/{id}/history` and
`PUT /data/{entity}/{ids}/{action}`. `PUT /data/{entity}/{segment}` is an aggregate query, an action
over a query or a record's update: the core decides from the entity's metadata. The query language,
permissions, actions and history live in the core (`backroom.app`).
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import RuntimeDialect
from backroom.api.multipart import body_bytes, uploaded_file
from backroom.api.openapi import file_upload_body
from backroom.api.resolver import CurrentCaller, dialect_app
from backroom.api.runtime import (
    ExportSize,
    ExportSortField,
    ExportSortType,
    From,
    PageSize,
    Redirect,
    To,
    job_reference,
    json_body,
    last_values,
    query_params,
    runtime_origin,
)
from backroom.config import require
from backroom.errors import Invalid
from backroom.jobs.models import Job
from backroom.observability import http_handler
from backroom.wiring import core

# Fails at cold start, naming the variables, if the deployment left them out (the job engine, which
# this function's services build, names the jobs queue and the files bucket).
require("bucket_name", "jobs_queue_url")
app = dialect_app(RuntimeDialect())

Entity = Annotated[str, Path(min_length=1, max_length=64, description="The entity's name, e.g. companies")]
ActionName = Annotated[str, Path(min_length=1, max_length=64, description="The action's name, e.g. logSomething")]
RecordId = Annotated[str, Path(min_length=1, max_length=30_000, description="A record id (24 hex digits)")]
FormulaSafe = Annotated[
    str | None,
    Query(
        alias="_formulaSafe",
        description="Export only (`PUT /data/{entity}/export`): `false` writes cells as they are; by default "
        "a text cell starting with =, +, -, @, a tab or a carriage return gets a leading ' "
        "(docs/dialects.md: Safe CSV)",
    ),
]

RunAsync = Annotated[
    str | None,
    Query(
        alias="_async",
        description="`true` runs the work as a job and answers its reference `{jobLink, jobId}`: an action over "
        "records, or an aggregate (an extension of the spec: the job leaves its answer as a JSON file, `fileLink` "
        "and `fileId` in the job's results; docs/dialects.md, Aggregate queries). `false` or absent: at once",
    ),
]
_JOB_REFERENCE = {
    "type": "object",
    "properties": {"jobLink": {"type": "string"}, "jobId": {"type": "string"}},
    "required": ["jobLink", "jobId"],
}


def _params() -> dict[str, str | list[str]]:
    return query_params(app.current_event.raw_event)


def _ip() -> str | None:
    return app.current_event.request_context.http.source_ip


def _async_flag(params: dict[str, str | list[str]]) -> bool | None:
    """`_async` (and `_lowPriority`, accepted: jobs here have one priority) must say true or false; None if absent."""
    flags = last_values(params)
    for name in ("_async", "_lowPriority"):
        if str(flags.get(name, "false")).lower() not in ("true", "false"):
            raise Invalid(f"{name} must be true or false")
    return None if "_async" not in flags else str(flags["_async"]).lower() == "true"


def _async(params: dict[str, str | list[str]]) -> bool:
    return bool(_async_flag(params))


def _job_ref(job_id: str) -> dict[str, str]:
    return job_reference(job_id)


def _answer(result: Any) -> Any:
    """An `_async` run answers its job's reference; anything else is the answer itself."""
    return _job_ref(result.id) if isinstance(result, Job) else result


# Numeric query parameters (`_size`, `from`, `to`) are declared on the routes that read them, for their
# bounds in the document and a 400 past them; the core still reads and checks the raw query string.
@app.get("/runtime/api/data/<entity>")
def list_records(entity: Entity, caller: CurrentCaller, size: PageSize = None) -> dict[str, Any]:
    return core().app.find(caller, entity, _params())


@app.post(
    "/runtime/api/data/<entity>",
    openapi_extensions={
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    },
)
def create_record(entity: Entity, caller: CurrentCaller) -> dict[str, Any]:
    return core().app.create(caller, entity, json_body(app.current_event.raw_event), _ip())


@app.delete("/runtime/api/data/<entity>")
def delete_by_query(entity: Entity, caller: CurrentCaller, size: PageSize = None) -> dict[str, Any]:
    params = _params()
    if _async(params):
        return _job_ref(core().app.delete_async(caller, entity, ids=None, params=params, ip=_ip()).id)
    query = {k: v for k, v in params.items() if k not in ("_async", "_lowPriority")}
    return core().app.delete_query(caller, entity, query, _ip())


@app.post(
    "/runtime/api/data/<entity>/import",
    openapi_extensions=file_upload_body({"type": "object", "properties": {"fileId": {"type": "string"}}}),
)
def import_records(entity: Entity, caller: CurrentCaller) -> dict[str, str]:
    """A CSV file (multipart/form-data, part `file`) into the entity's records, by an IMPORT_RECORDS job.

    A JSON body `{"fileId": ...}` imports a file uploaded before (`POST /files`): the way for a file above
    API Gateway's payload limit."""
    from backroom.app.imports import start_import  # only this route needs it (cold start)

    event = app.current_event
    params = {k: str(v) for k, v in last_values(_params()).items()}
    content_type = event.headers.get("content-type") or ""
    built = core()
    if content_type.lower().startswith("application/json"):
        body = json_body(event.raw_event)
        file_id = body.get("fileId") if isinstance(body, dict) else None
        if not isinstance(file_id, str) or not file_id:
            raise Invalid('A JSON body names an uploaded file: {"fileId": "..."}')
        job = start_import(built.app, built.files, caller, entity, None, None, params, _ip(), file_id=file_id)
        return _job_ref(job.id)
    name, _type, content = uploaded_file(body_bytes(event.raw_event), content_type)
    return _job_ref(start_import(built.app, built.files, caller, entity, content, name, params, _ip()).id)


# Registered before `/<id>`: powertools tries dynamic routes in order, as API Gateway prefers the literal.
@app.get("/runtime/api/data/<entity>/history")
def entity_history(
    entity: Entity, caller: CurrentCaller, size: PageSize = None, since: From = None, until: To = None
) -> dict[str, Any]:
    return core().app_history.table_history(caller, entity, last_values(_params()))


@app.get("/runtime/api/data/<entity>/<record_id>")
def get_record(entity: Entity, record_id: RecordId, caller: CurrentCaller) -> dict[str, Any]:
    return core().app.get(caller, entity, record_id, _params())


@app.put(
    "/runtime/api/data/<entity>/<record_id>",
    openapi_extensions={
        "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}}
    },
    responses={
        200: {
            "description": "The updated record, the action's answer, the aggregate's `{total, items}`, or a job's "
            "reference `{jobLink, jobId}` (an export; an action or an aggregate with `_async=true`)",
            "content": {"application/json": {"schema": {"anyOf": [{"type": "object"}, _JOB_REFERENCE]}}},
        }
    },
)
def update_record(
    entity: Entity,
    record_id: RecordId,
    caller: CurrentCaller,
    size: ExportSize = None,
    formula_safe: FormulaSafe = None,
    background: RunAsync = None,
    sort_field: ExportSortField = None,
    sort_type: ExportSortType = None,
) -> Any:
    """A record's update, an action over a query (`?id=a,b` or filters), an aggregate query (`aggregate`;
    `_async=true` runs it as a job whose answer is a JSON file) or an export (`export`; `_size`, `_formulaSafe`,
    `_sortField`, `_sortType` and `_async` are read with the other options by the core)."""
    params = _params()
    body = json_body(app.current_event.raw_event, optional=True)
    run_async = _async_flag(params)
    origin = runtime_origin(app.current_event.raw_event)  # an export's file link is built from it
    return _answer(core().app.put(caller, entity, record_id, body, params, _ip(), run_async=run_async, origin=origin))


@app.put(
    "/runtime/api/data/<entity>/<record_id>/<action>",
    openapi_extensions={
        "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}}
    },
)
def execute_action(entity: Entity, record_id: RecordId, action: ActionName, caller: CurrentCaller) -> Any:
    """An action over one record (its answer) or over ids separated by commas."""
    ids = [i.strip() for i in record_id.split(",") if i.strip()]
    body = json_body(app.current_event.raw_event, optional=True)
    run_async = _async_flag(_params())
    result = core().app.actions.execute(
        caller, entity, action, ids=ids, query=None, body=body, ip=_ip(), run_async=run_async
    )
    return _answer(result)


@app.delete("/runtime/api/data/<entity>/<record_id>")
def delete_records(entity: Entity, record_id: RecordId, caller: CurrentCaller) -> dict[str, Any]:
    """One id answers the deleted record; ids separated by commas answer `{id: {status, response}}`."""
    params = _params()
    ids = [i.strip() for i in record_id.split(",") if i.strip()]
    if _async(params):  # checked before anything is deleted
        return _job_ref(core().app.delete_async(caller, entity, ids=ids, params={}, ip=_ip()).id)
    if "," not in record_id:
        return core().app.delete_one(caller, entity, record_id, _ip())
    return core().app.delete_many(caller, entity, ids, _ip())


@app.get("/runtime/api/data/<entity>/<record_id>/history")
def record_history(entity: Entity, record_id: RecordId, caller: CurrentCaller, size: PageSize = None) -> dict[str, Any]:
    return core().app_history.history(caller, entity, record_id, last_values(_params()))


@app.get(
    "/runtime/api/data/<entity>/<record_id>/files/<file_id>",
    responses={
        200: {"description": "The file", "content": {"application/force-download": {}}},
        302: {"description": "A file too big for a response: fetch it from the presigned S3 URL in Location"},
        403: {"description": "The token may not read the record or the field that holds the file"},
        406: {
            "description": "A file too big for a response, asked with `_redirect=false`: it is served only as the 302"
        },
        404: {"description": "The entity, the record or the file (among the record's) cannot be found"},
    },
)
def record_file(
    entity: Entity,
    record_id: RecordId,
    file_id: Annotated[str, Path(min_length=1, max_length=64)],
    caller: CurrentCaller,
    redirect: Redirect = None,
) -> Response[Any]:
    """A file the record references, if the caller may read the record and the field that holds it."""
    found = core().app.files.of_record(caller, core().app, entity, record_id, file_id, redirect != "false")
    if found.url:  # too big for a Lambda response: fetch it from S3
        return Response(status_code=302, headers={"Location": found.url}, body="")
    headers = {"Content-Disposition": found.disposition}
    return Response(status_code=200, content_type=found.content_type, headers=headers, body=found.body or b"")


@http_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
