"""Runtime files facade (runtime dialect): uploaded files and share links under /runtime/api/files.

`POST /files` (multipart/form-data, any type; a JSON body `{fileName, contentType}` asks for a
presigned upload URL instead, for files above what a Lambda request carries), `GET /files/{id}`
(developers only), `PUT /files/{id}/share?ttl=` and the public `GET /files/shared/{id}`. A download
above what a Lambda response carries is a 302 to a presigned S3 URL. The rules live in the core
(`backroom.app.files`).
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
from backroom.api.runtime import json_body
from backroom.app.files import MAX_SHARE_MS, Download
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


@app.post(
    "/runtime/api/files",
    openapi_extensions=file_upload_body(
        {"type": "object", "properties": {"fileName": {"type": "string"}, "contentType": {"type": "string"}}}
    ),
    responses={400: {"description": "Not multipart with a file part, or above the inline limit (ask for a URL)"}},
)
def upload_file(caller: CurrentCaller) -> dict[str, Any]:
    """Upload a file (multipart/form-data); a JSON body `{fileName, contentType}` answers a presigned PUT URL."""
    event = app.current_event
    content_type = event.headers.get("content-type") or ""
    files = core().app.files
    if content_type.lower().startswith("application/json"):
        upload = files.start_upload(caller, json_body(event.raw_event))
        return {
            "fileId": upload.file.name,
            "fileLink": f"/files/{upload.file.name}",
            "uploadUrl": upload.url,
            "uploadMethod": "PUT",
            "uploadHeaders": {"Content-Type": upload.file.content_type},
            "expiresIn": upload.expires_in,
        }
    filename, part_type, data = uploaded_file(body_bytes(event.raw_event), content_type)
    stored = files.upload(caller, filename, part_type, data)
    return {"fileId": stored.name, "fileLink": f"/files/{stored.name}"}


@app.get(SHARED, responses={**FILE, 404: {"description": "The shared file doesn't exist or its link expired"}})
def get_shared_file(share_id: FileId) -> Response[Any]:
    """Download a shared file, without a token, until its link expires."""
    return _file_answer(core().app.files.shared(share_id))


@app.get(
    "/runtime/api/files/<file_id>",
    responses={
        **FILE,
        403: {"description": "Only developers and system users download files by id"},
        404: {"description": "The file doesn't exist"},
    },
)
def get_file(file_id: FileId, caller: CurrentCaller) -> Response[Any]:
    """Download a file (developers and system users only)."""
    return _file_answer(core().app.files.download(caller, file_id))


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
