"""Runtime files facade (runtime dialect): uploaded files and share links under /runtime/api/files.

`POST /files` (multipart/form-data, any type; a JSON body `{fileName, contentType, size}` asks for a
presigned upload URL instead, for files above what a Lambda request carries, and
`POST /files/{id}/complete` makes the bytes PUT there the file), `GET /files/{id}` (developers only),
`PUT /files/{id}/share?ttl=` and the public `GET /files/shared/{id}`. A download above what a Lambda
response carries is a 302 to a presigned S3 URL (a 406 to `?_redirect=false`). The rules live in the
core (`backroom.app.files`).
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import RuntimeDialect
from backroom.api.multipart import body_bytes, uploaded_file
from backroom.api.openapi import file_upload_body
from backroom.api.resolver import CurrentCaller, dialect_app
from backroom.api.runtime import Redirect, file_link, json_body, runtime_origin
from backroom.app.files import MAX_SHARE_MS, MAX_UPLOAD_BYTES, Download, Upload
from backroom.config import require
from backroom.observability import http_handler
from backroom.wiring import core

# Fails at cold start, naming the variables, if the deployment left them out (the job engine, which
# this function's services build, names the jobs queue and the files bucket).
require("bucket_name", "jobs_queue_url")
SHARED = "/runtime/api/files/shared/<share_id>"
app = dialect_app(RuntimeDialect(), public_routes=frozenset({"GET /runtime/api/files/shared/{share_id}"}))

FileId = Annotated[str, Path(min_length=1, max_length=64, description="A file id (24 hex digits)")]
FILE: dict[int, OpenAPIResponse] = {
    200: {"description": "The file", "content": {"application/force-download": {}}},
    302: {"description": "A file too big for a response: fetch it from the presigned S3 URL in Location"},
    406: {"description": "A file too big for a response, asked with `_redirect=false`: it is served only as the 302"},
}
_UPLOAD_REQUEST = {
    "type": "object",
    "required": ["fileName", "size"],
    "properties": {
        "fileName": {"type": "string", "description": "Metadata only: never part of a key"},
        "contentType": {"type": "string"},
        "size": {"type": "integer", "minimum": 0, "maximum": MAX_UPLOAD_BYTES, "description": "Bytes to PUT, exactly"},
    },
}
_FILE_ANSWER = {
    "type": "object",
    "required": ["fileId", "fileLink"],
    "properties": {"fileId": {"type": "string"}, "fileLink": {"type": "string"}},
}
_UPLOAD_ANSWER = {
    "type": "object",
    "required": ["fileId", "fileLink", "uploadUrl", "uploadMethod", "uploadHeaders", "expiresIn", "completeLink"],
    "properties": {
        "fileId": {"type": "string"},
        "fileLink": {"type": "string"},
        "uploadUrl": {"type": "string", "description": "Presigned S3 URL: PUT the bytes there (no token)"},
        "uploadMethod": {"type": "string", "enum": ["PUT"]},
        "uploadHeaders": {"type": "object", "additionalProperties": {"type": "string"}},
        "expiresIn": {"type": "integer", "description": "Seconds the upload URL lasts"},
        "completeLink": {"type": "string", "description": "POST here once the bytes are up: then the file exists"},
    },
}


def _file_answer(found: Download) -> Response[Any]:
    if found.url:  # too big for a Lambda response: fetch it from S3
        return Response(status_code=302, headers={"Location": found.url}, body="")
    return Response(
        status_code=200,
        content_type=found.content_type,
        headers={"Content-Disposition": found.disposition},
        body=found.body or b"",
    )


def _file_link(file_id: str) -> str:
    """The uploaded file's link: an absolute URL, as an export's `fileLink` (the host and stage of this request)."""
    return file_link(runtime_origin(app.current_event.raw_event), file_id)


@app.post(
    "/runtime/api/files",
    openapi_extensions=file_upload_body(_UPLOAD_REQUEST),
    responses={
        200: {
            "description": "Multipart: the file `{fileId, fileLink}`. JSON: where to PUT its bytes, then complete it",
            "content": {"application/json": {"schema": {"oneOf": [_FILE_ANSWER, _UPLOAD_ANSWER]}}},
        },
        400: {"description": "Not multipart with a file part, above the inline limit (ask for a URL), or a bad size"},
    },
)
def upload_file(caller: CurrentCaller) -> dict[str, Any]:
    """Upload a file (multipart/form-data); a JSON body `{fileName, contentType, size}` answers a presigned PUT URL."""
    event = app.current_event
    content_type = event.headers.get("content-type") or ""
    files = core().app.files
    if content_type.lower().startswith("application/json"):
        return _upload_answer(files.start_upload(caller, json_body(event.raw_event)))
    filename, part_type, data = uploaded_file(body_bytes(event.raw_event), content_type)
    stored = files.upload(caller, filename, part_type, data)
    return {"fileId": stored.name, "fileLink": _file_link(stored.name)}


def _upload_answer(upload: Upload) -> dict[str, Any]:
    """Where the caller PUTs the bytes (with exactly these headers: S3 checks the signed ones), and where it
    completes the upload after."""
    return {
        "fileId": upload.file.name,
        "fileLink": _file_link(upload.file.name),
        "uploadUrl": upload.url,
        "uploadMethod": "PUT",
        "uploadHeaders": {
            "Content-Type": upload.file.content_type,
            "Content-Length": str(upload.file.expected_size),
            "If-None-Match": "*",
        },
        "expiresIn": upload.expires_in,
        "completeLink": f"{_file_link(upload.file.name)}/complete",
    }


@app.post(
    "/runtime/api/files/<file_id>/complete",
    responses={
        200: {
            "description": "The file, as `POST /files` answers it",
            "content": {"application/json": {"schema": _FILE_ANSWER}},
        },
        400: {"description": "No bytes at the upload URL yet, or not the size declared (the upload is discarded)"},
        404: {"description": "No presigned upload of this caller has this id (another's is not named)"},
    },
)
def complete_upload(file_id: FileId, caller: CurrentCaller) -> dict[str, str]:
    """Complete a presigned upload: its bytes, PUT to the upload URL, become the file (once; again: the same)."""
    stored = core().app.files.complete_upload(caller, file_id)
    return {"fileId": stored.name, "fileLink": _file_link(stored.name)}


@app.get(SHARED, responses={**FILE, 404: {"description": "The shared file doesn't exist or its link expired"}})
def get_shared_file(share_id: FileId, redirect: Redirect = None) -> Response[Any]:
    """Download a shared file, without a token, until its link expires."""
    return _file_answer(core().app.files.shared(share_id, redirect != "false"))


@app.get(
    "/runtime/api/files/<file_id>",
    responses={
        **FILE,
        403: {"description": "Only developers and system users download files by id"},
        404: {"description": "The file doesn't exist"},
    },
)
def get_file(file_id: FileId, caller: CurrentCaller, redirect: Redirect = None) -> Response[Any]:
    """Download a file (developers and system users only)."""
    return _file_answer(core().app.files.download(caller, file_id, redirect != "false"))


@app.put(
    "/runtime/api/files/<file_id>/share",
    responses={
        400: {"description": "ttl is not a whole number of milliseconds"},
        403: {
            "description": "A user shares only files it uploaded, or those a record it may read holds in a field"
            " it reads (developers share any file)"
        },
        404: {"description": "The file doesn't exist"},
    },
)
def share_file(
    file_id: FileId,
    caller: CurrentCaller,
    ttl: Annotated[int | None, Query(ge=1, le=MAX_SHARE_MS, description="Milliseconds, up to 30 days")] = None,
) -> dict[str, str]:
    """Share a file through a public link, valid for `ttl` milliseconds (an hour by default)."""
    shared = core().app.files.share(caller, file_id, None if ttl is None else str(ttl), core().app)
    return {"sharedFileId": shared.share_id, "sharedFileLink": f"/files/shared/{shared.share_id}"}


@http_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
