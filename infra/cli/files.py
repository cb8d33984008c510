"""`backroom files ...` and `backroom data import`: the runtime's files, over `/runtime/api/files`.

A file up to the API's inline limit goes up in one request (multipart, as the spec's `POST /files`); a
bigger one through the presigned flow: ask `POST /files` for an upload URL with the file's size, PUT the
bytes to S3 (streamed, without the token), then `POST /files/{id}/complete`. A download follows the API's
302 to a presigned S3 URL, again without the token.
"""

from __future__ import annotations

import mimetypes
import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from infra.cli.client import Client
from infra.cli.watch import RuntimeJobWatcher

files = typer.Typer(help="Files of the runtime app: upload (any size), download.", no_args_is_help=True)
data = typer.Typer(help="Records of the runtime app: import a CSV (any size).", no_args_is_help=True)
FILES = "/runtime/api/files"
# The largest file `POST /files` takes in its request (a Lambda's 6 MB request, base64-encoded); above it
# the API answers 400 and asks for the presigned flow.
INLINE_BYTES = 4 * 1024 * 1024

Json = Annotated[bool, typer.Option("--json", help="Print the API's raw answer (JSON).")]
Existing = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The file.")]


def _cli() -> Any:
    from infra.cli import main  # the CLI's context and printing (main imports this module)

    return main


def _client(ctx: typer.Context) -> Client:
    client: Client = _cli()._ctx(ctx).client()
    return client


def _multipart(name: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    quoted = name.replace("\\", "_").replace('"', "_").replace("\r", "").replace("\n", "")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def upload(client: Client, file: Path, content_type: str | None = None) -> dict[str, Any]:
    """Upload a file of any size (inline up to INLINE_BYTES, else presigned); the API's `{fileId, fileLink}`."""
    kind = content_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    size = file.stat().st_size
    if size <= INLINE_BYTES:
        body, form = _multipart(file.name, file.read_bytes(), kind)
        answer: dict[str, Any] = client.call("POST", FILES, dialect="runtime", data=body, content_type=form).json()
        return answer
    asked = client.call(
        "POST", FILES, dialect="runtime", json_body={"fileName": file.name, "contentType": kind, "size": size}
    ).json()
    with file.open("rb") as stream:
        client.put_to(str(asked["uploadUrl"]), stream, {str(k): str(v) for k, v in asked["uploadHeaders"].items()})
    done: dict[str, Any] = client.call(
        "POST", f"{FILES}/{quote(str(asked['fileId']), safe='')}/complete", dialect="runtime"
    ).json()
    return done


@files.command("upload")
def files_upload(
    ctx: typer.Context,
    file: Existing,
    content_type: Annotated[
        str | None, typer.Option(help="Its media type (default: guessed from the name, else octet-stream).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Upload a file (any size up to 1 GiB); prints its id, to set in a record's file field."""
    answer = upload(_client(ctx), file, content_type)
    if as_json:
        _cli()._print_json(answer)
    else:
        shown = f"Uploaded {file.name} ({file.stat().st_size:,} bytes) as file {answer['fileId']}."
        _cli()._out().print(shown, markup=False)


@files.command("download")
def files_download(
    ctx: typer.Context,
    file_id: Annotated[str, typer.Argument(help="The file's id (developers).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")] = None,
) -> None:
    """Download a file by id; a big one comes through the API's redirect to S3 (the token stays here)."""
    body = _client(ctx).call("GET", f"{FILES}/{quote(file_id, safe='')}", dialect="runtime", accept="*/*").body
    _cli()._emit(body, output)


@data.command("import")
def data_import(
    ctx: typer.Context,
    entity: Annotated[str, typer.Argument(help="The entity's name, e.g. companies.")],
    file: Existing,
    wait: Annotated[
        bool, typer.Option("--wait", help="Watch the job until it ends (exit status: its outcome).")
    ] = False,
    as_json: Json = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls while watching.")] = 1.0,
) -> None:
    """Import records from a CSV of any size: uploaded first (presigned above the inline limit), then
    imported by its id (`POST /data/{entity}/import` with `{fileId}`)."""
    client = _client(ctx)
    uploaded = upload(client, file, "text/csv")
    path = f"/runtime/api/data/{quote(entity, safe='')}/import"
    job = client.call("POST", path, dialect="runtime", json_body={"fileId": uploaded["fileId"]}).json()
    if as_json and not wait:
        _cli()._print_json(job)
    elif not as_json:
        _cli()._out().print(f"Import of {file.name} into {entity}: job {job['jobId']}", markup=False)
    if wait:
        _cli()._wait(RuntimeJobWatcher(client, str(job["jobId"])), interval, as_json)
