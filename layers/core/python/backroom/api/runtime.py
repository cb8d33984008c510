"""The runtime dialect's view of core objects."""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from backroom.api.dialects import body_type, not_json
from backroom.errors import Invalid, UnsupportedMediaType
from backroom.jobs.models import Job
from backroom.params import MILLIS_MOST, OFFSET_MOST

# Job parameters that are the engine's own business, never in the job's `data` (the parameters the caller
# gave): where the job's file is stored, who ran it and from where (`runBy` says who), whether as a
# developer, the count of records it found, the root its request came to (`origin`); an action's or a
# delete's `fields` are what its caller may read of the records in its results.
_PRIVATE_DATA = frozenset({"ip", "owner", "user", "developer", "count", "origin"})
_PRIVATE_BY_TYPE = {"EXECUTE_ACTION": frozenset({"fields"}), "DELETE_RECORDS": frozenset({"fields"})}

# Links, as the spec prints them. The runtime's root is `/runtime` (its API under `/runtime/api`): a
# job's link is relative to it (`/api/status/jobs/<id>`, as every sample shows), a file's link is an
# absolute URL (`https://<host>[/<stage>]/runtime/api/files/<id>`), built from what API Gateway passes
# of the request: its scheme (`X-Forwarded-Proto`), its host (the context's `domainName`, which API
# Gateway sets to the domain it served: a caller's `Host` is only read when there is none) and its stage
# (none for `$default`). A job that leaves a file keeps that root (`origin`) from the
# request that started it: its worker has no request.
RUNTIME_ROOT = "/runtime"
# A job's per-record results, as shown: entries past this many bytes of JSON are left out (the spec: "you
# might not be able to collect the response for each one"), so that the job stays below a Lambda's 6 MB answer.
RESULTS_BYTES = 4_000_000


def job_link(job_id: str) -> str:
    """A job's link, relative to the runtime's root (`/runtime` + it is the job's URL)."""
    return f"/api/status/jobs/{job_id}"


def job_reference(job_id: str) -> dict[str, str]:
    """`{jobLink, jobId}`, the answer of every request that starts a job."""
    return {"jobLink": job_link(job_id), "jobId": job_id}


def runtime_origin(event: dict[str, Any]) -> str:
    """The runtime's root as an absolute URL, from the request as API Gateway passes it."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    context = event.get("requestContext") or {}
    scheme = (headers.get("x-forwarded-proto") or "https").split(",")[0].strip().lower()
    host = context.get("domainName") or headers.get("host") or "localhost"
    stage = context.get("stage") or "$default"
    prefix = "" if stage == "$default" else f"/{stage}"
    return f"{'http' if scheme == 'http' else 'https'}://{host}{prefix}{RUNTIME_ROOT}"


def file_link(origin: str, file_id: str) -> str:
    """A file's absolute link under the runtime's root `origin` (`runtime_origin`)."""
    return f"{origin}/api/files/{file_id}"


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
    def of(cls, job: Job, *, stoppable: bool, origin: str, results: dict[str, Any] | None = None) -> JobView:
        """The job as the spec shows it; `stoppable` is its kind's (a child job is steered by its parent);
        `results` are `JobJournal.results(job)` (per-record entries included), else the job item's own;
        `origin` is the runtime's root of the request reading it, for a job that kept none."""
        progress = job.progress()
        stoppable = stoppable and not job.parent_id
        if results is None:
            results = job.results if job.error is None else {**job.results, "error": job.error}
        results = shown_results(job, results, origin)
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
            low_priority=job.low_priority,
            data=job_data(job),
            results=results,
        )


def shown_results(job: Job, results: dict[str, Any], origin: str) -> dict[str, Any]:
    """A job's results as shown: a file's `fileLink` first (an absolute URL, from the root the job's request
    came to), and per-record entries while they fit `RESULTS_BYTES`."""
    if isinstance(results.get("fileId"), str):
        link = file_link(str(job.params.get("origin") or origin), results["fileId"])
        rest = {k: v for k, v in results.items() if k not in ("fileLink", "fileId")}
        results = {"fileLink": link, "fileId": results["fileId"], **rest}  # the sample's order (a map has none)
    shown: dict[str, Any] = {}
    spent = 0
    for key, value in results.items():
        spent += len(json.dumps(value, default=str)) + len(key) + 6
        if spent > RESULTS_BYTES and key not in job.results and key not in ("fileLink", "error"):
            continue  # an entry past the budget; the job's own results are small and always shown
        shown[key] = value
    return shown


def job_data(job: Job) -> dict[str, Any]:
    """The job's `data`: the parameters it was started with, as the caller gave them."""
    private = _PRIVATE_DATA | _PRIVATE_BY_TYPE.get(job.type or "", frozenset())
    return {k: v for k, v in job.params.items() if k not in private}


class JobPageView(RuntimeModel):
    """`GET /status/jobs`: `total`, the `offset` of the next page (absent on the last), `items`."""

    total: int
    offset: str | None = None
    items: list[JobView]


class JobLogView(RuntimeModel):
    timestamp: int
    level: str
    message: str


class JobLogPageView(RuntimeModel):
    total: int
    offset: str | None = None
    items: list[JobLogView]


# The runtime dialect's numeric query parameters, declared on the routes that read them so that the
# OpenAPI document states their bounds and a value past them (or no number: `1e3`, `²`, 5,000 digits) is
# a 400 before the route runs. The core still reads them from the raw query string and checks them with
# its own, tighter messages (an export's `_size` is the core's to bound at 1,000,000, a page's at 1,000).

PageSize = Annotated[int | None, Query(alias="_size", ge=1, le=1000, description="Items a page: 1 to 1000")]
ExportSize = Annotated[
    int | None, Query(alias="_size", ge=1, le=1_000_000, description="An export's records: 1 to 1000000")
]
ExportSortField = Annotated[
    str | None,
    Query(
        alias="_sortField",
        max_length=255,
        description="An export's order: a field an index lists the matches by (else a 400 naming the index)",
    ),
]
ExportSortType = Annotated[
    str | None, Query(alias="_sortType", max_length=4, description="An export's order: asc or desc (desc)")
]
LineOffset = Annotated[
    int | None, Query(alias="_offset", ge=0, le=OFFSET_MOST, description="Lines to skip (the offset a page gave)")
]
From = Annotated[int | None, Query(alias="from", ge=0, le=MILLIS_MOST, description="From, epoch milliseconds")]
To = Annotated[int | None, Query(alias="to", ge=0, le=MILLIS_MOST, description="To, epoch milliseconds")]


def millis(alias: str) -> Any:
    """A query parameter of epoch milliseconds named `alias` (the job listing's `createFrom`...)."""
    return Query(alias=alias, ge=0, le=MILLIS_MOST, description=f"{alias}, epoch milliseconds")


def query_params(event: dict[str, Any]) -> dict[str, str | list[str]]:
    """The query string as sent: a repeated key is a list (API Gateway joins them with commas otherwise)."""
    params: dict[str, str | list[str]] = {}
    for key, value in parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True):
        held = params.get(key)
        params[key] = value if held is None else [*(held if isinstance(held, list) else [held]), value]
    return params


def last_values(params: dict[str, str | list[str]]) -> dict[str, str]:
    return {k: v[-1] if isinstance(v, list) else v for k, v in params.items()}


def json_body(event: dict[str, Any], *, optional: bool = False) -> Any:
    """The request's JSON body, numbers kept exact (decimals as Decimal); a body that is not JSON is a 400.

    An empty body is a 400, or None when `optional` (an action without parameters may send none); a body
    whose Content-Type is not `application/json` (or that names none) is a 415, as on every JSON route.
    """
    raw = event.get("body")
    if raw is None or raw == "":
        if optional:
            return None
        raise Invalid("The request has no body; it must be a JSON object")
    if body_type(event) != content_types.APPLICATION_JSON:
        raise UnsupportedMediaType(not_json(event))
    try:
        text = base64.b64decode(raw).decode() if event.get("isBase64Encoded") else raw
        return json.loads(text, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise Invalid("The body is not JSON (UTF-8)") from None
    except RecursionError:
        raise Invalid("The body is nested too deeply") from None


# A download route's `_redirect` (docs/dialects.md, Files): `false` is a client that follows no redirect; a
# file above what an answer carries is then a 406 that says so, not a 302 it would show as an empty body.
Redirect = Annotated[
    Literal["true", "false"] | None,
    Query(
        alias="_redirect",
        description="`false`: this client follows no redirect, so a file above 4 MiB (served only as a 302 to a "
        "presigned S3 URL) is a 406 `notAcceptable` instead; `true` or absent: the 302",
    ),
]
