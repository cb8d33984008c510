"""Tasks facade (Kazoo dialect): `/v2/tasks` and `/v2/accounts/{account_id}/tasks...`.

Each account route has a system twin without `/accounts/{account_id}` (developers only), which works
on the caller's own account. The help (`GET /v2/tasks`) is public, as in Kazoo; a method a path does not
allow answers 405 in Kazoo's envelope.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseContentModel,
    OpenAPIResponseContentSchema,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import TasksDialect
from backroom.api.openapi import JSON, raw_body, ref
from backroom.api.resolver import CurrentCaller, dialect_app
from backroom.config import require
from backroom.errors import BackroomError, NotFound
from backroom.identity.models import Caller
from backroom.observability import http_handler
from backroom.tasks.catalog import task_help
from backroom.tasks.runner import IN_CSV, OUT_CSV
from backroom.wiring import core

# Fails at cold start, naming the variables, if the deployment left them out (the job engine, which
# this function's services build, names the jobs queue and the files bucket).
require("bucket_name", "jobs_queue_url")
dialect = TasksDialect(node="tasks@backroom")
app = dialect_app(dialect, public_routes=frozenset({"GET /v2/tasks"}))

AccountId = Annotated[str, Path(min_length=1, max_length=64)]
TaskId = Annotated[str, Path(min_length=1, max_length=64)]
ACCOUNT_TASKS = "/v2/accounts/<account_id>/tasks"
ACCOUNT_TASK = "/v2/accounts/<account_id>/tasks/<task_id>"

# What the routes answer beyond the dialect's common errors, for the OpenAPI document.
Content = dict[str, OpenAPIResponseContentSchema | OpenAPIResponseContentModel]
_ENVELOPE: Content = {JSON: {"schema": ref("KazooEnvelope")}}
_CSV: Content = {"text/csv": {"schema": {"type": "string"}}}
_FROM_S3: OpenAPIResponse = {
    "description": "Found: the CSV is too big for a Lambda answer; `Location` is a presigned S3 URL",
    "headers": {"Location": {"schema": {"type": "string"}}},
}
_BUSY: OpenAPIResponse = {"description": "The task's state forbids this, or too many tasks are being created at once"}
LISTED: dict[int, OpenAPIResponse] = {200: {"description": "The account's tasks, a page of them", "content": _ENVELOPE}}
ONE: dict[int, OpenAPIResponse] = {
    200: {"description": "The task, under `_read_only`", "content": _ENVELOPE},
    409: _BUSY,
}
AS_CSV_OR_JSON: dict[int, OpenAPIResponse] = {
    200: {"description": "The task (JSON), or one of its CSVs (`Accept: text/csv`)", "content": {**_ENVELOPE, **_CSV}},
    302: _FROM_S3,
}
A_CSV: dict[int, OpenAPIResponse] = {200: {"description": "The CSV", "content": _CSV}, 302: _FROM_S3}
TASK_INPUT = raw_body(
    {
        "text/csv": {"type": "string"},
        JSON: {
            "type": "object",
            "properties": {
                "data": {
                    "type": "object",
                    "properties": {
                        "records": {"type": "array", "items": {"type": "object"}},
                        "file_name": {"type": "string", "maxLength": 255},
                    },
                }
            },
        },
    },
    required=False,
    examples={
        "text/csv": {"spec": {"value": "number,account_id\n+14157215234,009afc511c97b2ae693c6cc4920988e8\n"}},
        JSON: {"spec": {"value": {"data": {"records": [{"number": "+14157215234"}], "file_name": "numbers.csv"}}}},
    },
)
# A method a path does not allow: 405 whatever the token.
NOT_ALLOWED: dict[str, Any] = {
    "status_code": 405,
    "security": [],
    "response_description": "The method is not allowed on this path (`Allow` lists those that are)",
}


def _reply(data: Any, **extra: Any) -> Response[Any]:
    return dialect.envelope(data, app.current_event.raw_event, **extra)


def _read_only(data: dict[str, Any]) -> Response[Any]:
    return _reply({"_read_only": data})


@app.get("/v2/tasks", responses={200: {"description": "The categories and actions", "content": _ENVELOPE}})
def task_help_route(
    category: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=128)] = None,
) -> Response[Any]:
    return _reply(task_help(core().task_actions, category, action))


# Listing and creating ------------------------------------------------------
@app.get(ACCOUNT_TASKS, responses=LISTED)
def list_tasks(
    caller: CurrentCaller,
    account_id: AccountId,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 50,
    start_key: Annotated[str | None, Query(max_length=128)] = None,
) -> Response[Any]:
    tasks, next_key = core().tasks.page(caller, account_id, page_size, start_key)
    extra: dict[str, Any] = {"page_size": len(tasks)}
    if start_key:
        extra["start_key"] = start_key
    if next_key:
        extra["next_start_key"] = next_key
    return _reply(tasks, **extra)


def _create(
    caller: Caller, account_id: str | None, category: str | None, action: str | None, file_name: str | None
) -> Response[Any]:
    event = app.current_event
    # The raw bytes: a CSV that is not UTF-8 is the caller's mistake (a bad CSV), not a decoding crash.
    body = base64.b64decode(event.body) if event.is_base64_encoded and event.body else (event.body or "").encode()
    content_type = (event.headers.get("content-type") or "").lower()
    created = core().tasks.create(
        caller,
        account_id,
        category,
        action,
        body=body,
        is_csv=content_type.startswith("text/csv"),
        file_name=file_name,
    )
    return _read_only(created)


Category = Annotated[str | None, Query(max_length=128)]
FileName = Annotated[str | None, Query(max_length=255)]


@app.put(ACCOUNT_TASKS, responses=ONE, openapi_extensions=TASK_INPUT)
def create_task(
    caller: CurrentCaller,
    account_id: AccountId,
    category: Category = None,
    action: Category = None,
    file_name: FileName = None,
) -> Response[Any]:
    return _create(caller, account_id, category, action, file_name)


@app.put("/v2/tasks", responses=ONE, openapi_extensions=TASK_INPUT)
def create_system_task(
    caller: CurrentCaller, category: Category = None, action: Category = None, file_name: FileName = None
) -> Response[Any]:
    return _create(caller, None, category, action, file_name)


# One task ------------------------------------------------------------------
def _get(caller: Caller, account_id: str | None, task_id: str, csv_name: str | None) -> Response[Any]:
    # Kazoo negotiates: `Accept: text/csv` gets a CSV (out.csv, else in.csv, unless `csv_name` says),
    # a JSON `Accept` gets the task; with neither, `csv_name` alone asks for the CSV.
    accept = (app.current_event.headers.get("accept") or "").lower()
    wants_csv = "text/csv" in accept or (csv_name is not None and "json" not in accept)
    if not wants_csv:
        return _read_only(core().tasks.get(caller, account_id, task_id))
    if csv_name is None:
        task = core().tasks.get(caller, account_id, task_id)
        csv_name = OUT_CSV if OUT_CSV in task["csvs"] else IN_CSV
    return _csv(caller, account_id, task_id, csv_name)


def _csv(caller: Caller, account_id: str | None, task_id: str, name: str) -> Response[Any]:
    found = core().tasks.csv(caller, account_id, task_id, name)
    if found.url:  # too big for a Lambda response: fetch it from S3
        return Response(status_code=302, headers={"Location": found.url}, body="")
    return Response(
        status_code=200,
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
        body=(found.body or b"").decode(),
    )


CsvName = Annotated[str | None, Query(max_length=32)]


@app.get(ACCOUNT_TASK, responses=AS_CSV_OR_JSON)
def get_task(caller: CurrentCaller, account_id: AccountId, task_id: TaskId, csv_name: CsvName = None) -> Response[Any]:
    return _get(caller, account_id, task_id, csv_name)


@app.get("/v2/tasks/<task_id>", responses=AS_CSV_OR_JSON)
def get_system_task(caller: CurrentCaller, task_id: TaskId, csv_name: CsvName = None) -> Response[Any]:
    return _get(caller, None, task_id, csv_name)


@app.patch(ACCOUNT_TASK, responses=ONE)
def start_task(caller: CurrentCaller, account_id: AccountId, task_id: TaskId) -> Response[Any]:
    return _read_only(core().tasks.start(caller, account_id, task_id))


@app.patch("/v2/tasks/<task_id>", responses=ONE)
def start_system_task(caller: CurrentCaller, task_id: TaskId) -> Response[Any]:
    return _read_only(core().tasks.start(caller, None, task_id))


@app.patch(ACCOUNT_TASK + "/stop", responses=ONE)
def stop_task(caller: CurrentCaller, account_id: AccountId, task_id: TaskId) -> Response[Any]:
    return _read_only(core().tasks.stop(caller, account_id, task_id))


@app.patch("/v2/tasks/<task_id>/stop", responses=ONE)
def stop_system_task(caller: CurrentCaller, task_id: TaskId) -> Response[Any]:
    return _read_only(core().tasks.stop(caller, None, task_id))


@app.delete(ACCOUNT_TASK, responses=ONE)
def delete_task(caller: CurrentCaller, account_id: AccountId, task_id: TaskId) -> Response[Any]:
    return _read_only(core().tasks.delete(caller, account_id, task_id))


@app.delete("/v2/tasks/<task_id>", responses=ONE)
def delete_system_task(caller: CurrentCaller, task_id: TaskId) -> Response[Any]:
    return _read_only(core().tasks.delete(caller, None, task_id))


@app.get(ACCOUNT_TASK + "/input", responses=A_CSV)
def task_input(caller: CurrentCaller, account_id: AccountId, task_id: TaskId) -> Response[Any]:
    return _csv(caller, account_id, task_id, IN_CSV)


@app.get(ACCOUNT_TASK + "/output", responses=A_CSV)
def task_output(caller: CurrentCaller, account_id: AccountId, task_id: TaskId) -> Response[Any]:
    return _csv(caller, account_id, task_id, OUT_CSV)


@app.get("/v2/tasks/<task_id>/input", responses=A_CSV)
def system_task_input(caller: CurrentCaller, task_id: TaskId) -> Response[Any]:
    return _csv(caller, None, task_id, IN_CSV)


@app.get("/v2/tasks/<task_id>/output", responses=A_CSV)
def system_task_output(caller: CurrentCaller, task_id: TaskId) -> Response[Any]:
    return _csv(caller, None, task_id, OUT_CSV)


# Methods a path does not allow ---------------------------------------------
# The methods each Tasks path takes; any other (POST, TRACE, QUERY, ...) answers 405 with `Allow`. The
# routes below document the usual ones; `template.yaml` sends every other method here too (`ANY`), which
# powertools finds no route for: `other_method` answers those.
ALLOWED = {
    "/v2/tasks": "GET, PUT",
    ACCOUNT_TASKS: "GET, PUT",
    ACCOUNT_TASK: "GET, PATCH, DELETE",
    "/v2/tasks/<task_id>": "GET, PATCH, DELETE",
    ACCOUNT_TASK + "/stop": "PATCH",
    "/v2/tasks/<task_id>/stop": "PATCH",
    ACCOUNT_TASK + "/input": "GET",
    ACCOUNT_TASK + "/output": "GET",
    "/v2/tasks/<task_id>/input": "GET",
    "/v2/tasks/<task_id>/output": "GET",
}
_ALLOWED_AT = [(app._compile_regex(rule), allowed) for rule, allowed in ALLOWED.items()]


def _not_allowed() -> Response[Any]:
    # Kazoo checks the method before the token: the answer says nothing about the resource.
    event = app.current_event.raw_event
    path = str(event.get("rawPath") or "")
    allowed = next((methods for rule, methods in _ALLOWED_AT if rule.match(path)), None)
    if allowed is None:
        return dialect.error(404, NotFound("No such resource"), event)
    answer = dialect.error(405, BackroomError("method not allowed"), event)
    answer.headers["Allow"] = allowed
    return answer


@app.not_found
def other_method(_: NotFoundError) -> Response[Any]:
    return _not_allowed()


@app.route("/v2/tasks", method=["POST", "PATCH", "DELETE"], **NOT_ALLOWED)
def tasks_not_allowed() -> Response[Any]:
    return _not_allowed()


@app.route(ACCOUNT_TASKS, method=["POST", "PATCH", "DELETE"], **NOT_ALLOWED)
def account_tasks_not_allowed(account_id: AccountId) -> Response[Any]:
    return _not_allowed()


@app.route(ACCOUNT_TASK, method=["POST", "PUT"], **NOT_ALLOWED)
def task_not_allowed(account_id: AccountId, task_id: TaskId) -> Response[Any]:
    return _not_allowed()


@app.route("/v2/tasks/<task_id>", method=["POST", "PUT"], **NOT_ALLOWED)
def system_task_not_allowed(task_id: TaskId) -> Response[Any]:
    return _not_allowed()


@app.route(ACCOUNT_TASK + "/stop", method=["GET", "POST", "PUT", "DELETE"], **NOT_ALLOWED)
def task_stop_not_allowed(account_id: AccountId, task_id: TaskId) -> Response[Any]:
    return _not_allowed()


@app.route("/v2/tasks/<task_id>/stop", method=["GET", "POST", "PUT", "DELETE"], **NOT_ALLOWED)
def system_task_stop_not_allowed(task_id: TaskId) -> Response[Any]:
    return _not_allowed()


@app.route(ACCOUNT_TASK + "/input", method=["POST", "PUT", "PATCH", "DELETE"], **NOT_ALLOWED)
@app.route(ACCOUNT_TASK + "/output", method=["POST", "PUT", "PATCH", "DELETE"], **NOT_ALLOWED)
def task_csv_not_allowed(account_id: AccountId, task_id: TaskId) -> Response[Any]:
    return _not_allowed()


@app.route("/v2/tasks/<task_id>/input", method=["POST", "PUT", "PATCH", "DELETE"], **NOT_ALLOWED)
@app.route("/v2/tasks/<task_id>/output", method=["POST", "PUT", "PATCH", "DELETE"], **NOT_ALLOWED)
def system_task_csv_not_allowed(task_id: TaskId) -> Response[Any]:
    return _not_allowed()


@http_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
