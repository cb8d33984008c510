"""The runtime app's files: uploads, downloads (by developers, or through a record that references the
file), share links, and the sweep of uploads no record took within 12 hours.

A file's id is made here (24 hex digits, as the spec's); the name a caller sent is metadata, shown
back in `Content-Disposition` and never part of a key or a path. A record write that sets a file
field references the file (`attach` then `reference`); the sweep never removes a referenced file.
Bodies above what a Lambda request or response carries go through presigned S3 URLs: an upload is asked
for (`start_upload`: its declared size bounded), PUT to S3 by the caller, then completed by that caller
(`complete_upload`: the size checked); only then does the file exist. A download above the limit is a
presigned GET, unless the caller said it follows no redirect (then a 406 that says why).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel

from backroom.clock import now_ms
from backroom.errors import FieldError, Forbidden, Invalid, NotAcceptable, NotFound, ServiceFailure
from backroom.files import FileStore, SharedFile, StoredFile, Swept
from backroom.identity.models import Caller
from backroom.ids import object_id
from backroom.params import whole
from backroom.records.schema import Schema, TableField
from backroom.records.values import file_refs, is_empty

if TYPE_CHECKING:
    from backroom.app.ports import AppService

logger = logging.getLogger("app.files")

KEEP_UNREFERENCED_MS = 12 * 3_600_000  # the spec: a file no record references is removed after 12 hours
# A Lambda request or response carries at most 6 MB, and a binary body travels base64-encoded (4/3).
INLINE_BYTES = 4 * 1024 * 1024
UPLOAD_URL_SECONDS = 900
# The largest presigned upload: S3 enforces the declared size on the PUT, and completing checks it again.
MAX_UPLOAD_BYTES = 1024 * 1024 * 1024
DEFAULT_SHARE_MS = 3_600_000  # the spec: a link is valid for an hour
MAX_SHARE_MS = 30 * 86_400_000
_ID = re.compile(r"^[0-9a-f]{24}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+( *;[ -~]*)?$")


class Download(BaseModel):
    """A file to hand out: its bytes, or a presigned URL when they are too big for a response."""

    filename: str
    content_type: str
    disposition: str
    body: bytes | None = None
    url: str | None = None


class Upload(BaseModel):
    """A presigned upload: where to PUT the bytes, and the file they become."""

    file: StoredFile
    url: str
    expires_in: int


def clean_name(name: str | None) -> str:
    """A caller's file name as metadata: no control characters, at most 255 characters."""
    cleaned = _CONTROL.sub("", name or "").strip()[:255]
    return cleaned or "file"


def content_type_of(raw: str | None) -> str:
    text = (raw or "").strip()
    return text if len(text) <= 255 and _CONTENT_TYPE.match(text) else "application/octet-stream"


def disposition(filename: str) -> str:
    """`attachment; filename=file.ext` as the spec shows it; other names quoted, with an RFC 6266 twin.

    Path separators are shown as `_`: a name never names a place on the downloader's disk either.
    """
    shown = filename.replace("/", "_").replace("\\", "_")
    if _TOKEN.match(shown):
        return f"attachment; filename={shown}"
    ascii_name = shown.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(shown, safe='')}"


class AppFiles:
    def __init__(self, store: FileStore) -> None:
        self.store = store

    # Uploading -------------------------------------------------------------
    def upload(self, caller: Caller, filename: str | None, content_type: str | None, data: bytes) -> StoredFile:
        if len(data) > INLINE_BYTES:
            raise Invalid(
                f"The file is larger than {INLINE_BYTES // (1024 * 1024)} MB: ask for an upload URL instead"
                " (POST /files with a JSON body {fileName, contentType})"
            )
        return self.store.upload(
            caller.tenant_id,
            object_id(),
            clean_name(filename),
            data,
            content_type_of(content_type),
            uploaded_by=caller.email,
        )

    def start_upload(self, caller: Caller, body: Any) -> Upload:
        """A file whose bytes the caller PUTs to a presigned URL (for files above the inline limit), then
        completes (`complete_upload`). The key is the file's id, the URL lasts 15 minutes and takes exactly
        `size` bytes, once."""
        if not isinstance(body, dict) or not isinstance(body.get("fileName"), str) or not body["fileName"].strip():
            raise Invalid(
                "A JSON upload request names the file and its size: {fileName, contentType, size}",
                errors=[FieldError("fileName", "fileName is required", "required")],
            )
        size = body.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_UPLOAD_BYTES:
            raise Invalid(
                "A JSON upload request gives the file's size in bytes",
                errors=[FieldError("size", f"size must be a whole number of bytes from 0 to {MAX_UPLOAD_BYTES}")],
            )
        stored = self.store.upload(
            caller.tenant_id,
            object_id(),
            clean_name(body["fileName"]),
            None,
            content_type_of(body.get("contentType") if isinstance(body.get("contentType"), str) else None),
            uploaded_by=caller.email,
            expected_size=size,
        )
        return Upload(file=stored, url=self.store.upload_url(stored, UPLOAD_URL_SECONDS), expires_in=UPLOAD_URL_SECONDS)

    def complete_upload(self, caller: Caller, file_id: str) -> StoredFile:
        """`POST /files/{id}/complete`: the caller's presigned upload becomes a file, if its bytes arrived and
        are the size it declared. Completing it again answers the same file."""
        stored = self.store.upload_of(caller.tenant_id, file_id) if _ID.match(file_id) else None
        if stored is None or (stored.uploaded_by or "").lower() != caller.email.lower():
            raise NotFound(f"No upload {file_id[:40]} of yours is waiting")  # another's upload is not named
        if stored.size >= 0:
            return stored
        size = self.store.arrived(stored)
        if size is None:
            raise Invalid(f"Upload {file_id} has no bytes yet: PUT them to its upload URL, then complete it")
        if size != stored.expected_size:
            self.store.remove_app_file(caller.tenant_id, file_id)  # S3 took one write: the upload is spoilt
            raise Invalid(
                f"Upload {file_id} received {size} bytes, not the {stored.expected_size} it declared:"
                " it is discarded, ask for a new upload URL"
            )
        return self.store.complete(stored, size)

    # Downloading -----------------------------------------------------------
    def _file(self, tenant_id: str, file_id: str, what: str = "File") -> StoredFile:
        stored = self.store.app_file(tenant_id, file_id) if _ID.match(file_id) else None
        if stored is None:
            raise NotFound(f"{what} {file_id[:40]} does not exist")
        return stored

    def _download(self, stored: StoredFile, redirect: bool = True) -> Download:
        filename = stored.filename or stored.name
        shown = disposition(filename)
        answer = Download(filename=filename, content_type="application/force-download", disposition=shown)
        if stored.size > INLINE_BYTES:
            if not redirect:
                raise NotAcceptable(
                    f"File {stored.name} is {stored.size} bytes, above the {INLINE_BYTES} an answer carries: it"
                    " is served only as a 302 to a presigned S3 URL (5 minutes); ask without _redirect=false and"
                    " follow the redirect (curl -L)"
                )
            answer.url = self.store.download_url(stored, filename, disposition=shown)
        else:
            answer.body = self.store.read(stored)
        return answer

    def download(self, caller: Caller, file_id: str, redirect: bool = True) -> Download:
        """`GET /files/{id}`: developers (and system users) only."""
        if not caller.is_developer:
            raise Forbidden("Only developers may download files by id; use the record's file link")
        return self._download(self._file(caller.tenant_id, file_id), redirect)

    def of_record(
        self, caller: Caller, data: AppService, entity: str, rid: str, file_id: str, redirect: bool = True
    ) -> Download:
        """`GET /data/{entity}/{rid}/files/{fileId}`: a file the record references, in a field the caller reads."""
        access = data.access(caller, entity, "read")
        record = data.records.get(caller.tenant_id, access.schema, rid) if _ID.match(rid) else None
        if record is None:
            raise NotFound(f"Record {rid[:40]} of {entity} does not exist")
        holders = {top for top, fid in file_refs(access.schema.fields, record.data) if fid == file_id}
        if not holders:
            raise NotFound(f"Record {rid} of {entity} holds no file {file_id[:40]}")
        if not holders & set(access.readable()):
            raise Forbidden("You have no permission to read the field that holds this file")
        return self._download(self._file(caller.tenant_id, file_id), redirect)

    # Sharing ---------------------------------------------------------------
    def share(self, caller: Caller, file_id: str, ttl: str | None, data: AppService) -> SharedFile:
        """`PUT /files/{id}/share?ttl=`: a public link valid for `ttl` ms (an hour by default).

        The spec restricts only downloads by id: a developer shares any file, a user a file it uploaded or
        one a record it may read holds in a field it reads (`_may_share`); anything else is a 403."""
        lasting = whole(ttl, "ttl", 1, MAX_SHARE_MS) or DEFAULT_SHARE_MS  # milliseconds
        stored = self._file(caller.tenant_id, file_id)
        if not caller.is_developer and not self._may_share(caller, stored, data):
            raise Forbidden("You may share only files you uploaded, or those of records you may read")
        return self.store.share(caller.tenant_id, stored.name, object_id(), now_ms() + lasting)

    def _may_share(self, caller: Caller, stored: StoredFile, data: AppService) -> bool:
        """Whether a user uploaded the file, or reads it in a record that holds it: one of the records
        noted as holding it (`StoredFile.holders`, at most `HOLDERS_MOST`) that still does, in a field
        the caller reads, through the permission gate (one BatchGet per entity)."""
        if (stored.uploaded_by or "").lower() == caller.email.lower():
            return True
        by_entity: dict[str, list[str]] = {}
        for holder in stored.holders:
            entity, _, rid = holder.partition("/")
            by_entity.setdefault(entity, []).append(rid)
        gate = data.gate(caller)
        for entity, rids in sorted(by_entity.items()):
            try:
                access = gate.access(entity, "read")
            except (Forbidden, NotFound):  # an entity it may not read, or one removed since
                continue
            for record in data.records.get_many(caller.tenant_id, access.schema, rids):
                if any(
                    fid == stored.name and access.may_read(top)
                    for top, fid in file_refs(access.schema.fields, record.data)
                ):
                    return True
        return False

    def hold(self, tenant_id: str, file_ids: Sequence[str], entity: str, rid: str) -> None:
        """After a record write that references `file_ids`: note the record as holding each (for `_may_share`)."""
        for fid in file_ids:
            try:
                self.store.hold(tenant_id, fid, f"{entity}/{rid}")
            except ServiceFailure:  # the write is committed: its caller must not send it again for this
                logger.exception("file %s: record %s/%s not noted as its holder", fid, entity, rid)

    def shared(self, share_id: str, redirect: bool = True) -> Download:
        """`GET /files/shared/{id}`, without a token: 404 once the link has expired."""
        link = self.store.shared(share_id) if _ID.match(share_id) else None
        if link is None or link.expires_ms <= now_ms():
            raise NotFound(f"Shared file {share_id[:40]} does not exist")
        return self._download(self._file(link.tenant_id, link.file_id, "Shared file"), redirect)

    # Records that reference files ------------------------------------------
    def attach(
        self,
        tenant_id: str,
        schema: Schema,
        values: Mapping[str, Any],
        *,
        taker: str | None = None,
        held: Callable[[], set[str]] = set,
    ) -> tuple[dict[str, Any], list[str]]:
        """The values with each file field's value as the upload it names (`{id, name, contentType}`), and
        the ids of those files; a file that does not exist is a 400 on its field.

        `taker`, a user's email (None: a developer or the engine), may attach only the files it uploaded
        or those the record already holds in fields it reads (`held`, asked only then): a file id seen
        elsewhere (another record's hidden field, another user's upload) never becomes readable by being
        attached to a record the caller may read."""
        errors: list[FieldError] = []
        ids: list[str] = []
        foreign: list[str] = []

        def one(spec: TableField, raw: Any, path: str) -> Any:
            fid = raw.get("id") if isinstance(raw, dict) else raw
            if not isinstance(fid, str) or not _ID.match(fid):
                return raw  # the records model reports the bad value
            stored = self.store.app_file(tenant_id, fid)
            if stored is None:
                errors.append(FieldError(path, f"{path}: no uploaded file has id {fid}", "notFound"))
                return raw
            ids.append(fid)
            if taker is not None and (stored.uploaded_by or "").lower() != taker.lower():
                foreign.append(fid)
            return {"id": fid, "name": stored.filename or fid, "contentType": stored.content_type}

        def walk(specs: Sequence[TableField], given: Mapping[str, Any], prefix: str) -> dict[str, Any]:
            out = dict(given)
            for spec in specs:
                if spec.name not in given or is_empty(given[spec.name]):
                    continue
                raw, path = given[spec.name], f"{prefix}{spec.name}"
                if spec.type not in ("file", "group"):
                    continue
                items = raw if spec.multi and isinstance(raw, list) else None
                if spec.type == "file":
                    out[spec.name] = (
                        [one(spec, v, f"{path}[{i}]") for i, v in enumerate(items)] if items else one(spec, raw, path)
                    )
                elif items is not None:
                    out[spec.name] = [
                        walk(spec.fields, v, f"{path}[{i}].") if isinstance(v, dict) else v for i, v in enumerate(items)
                    ]
                elif isinstance(raw, dict):
                    out[spec.name] = walk(spec.fields, raw, f"{path}.")
            return out

        attached = walk(schema.fields, values, "")
        if errors:
            raise Invalid("Validation error", errors=errors)
        if foreign and not set(foreign) <= held():
            raise Forbidden("You may attach only files you uploaded, or those the record already holds")
        return attached, list(dict.fromkeys(ids))

    def reference(self, tenant_id: str, file_ids: Sequence[str]) -> list[str]:
        """Mark files referenced before the record write that takes them; answers those newly referenced
        (to `release` if the write fails). A file the sweep took meanwhile is a 400 on the write."""
        newly: list[str] = []
        for fid in file_ids:
            try:
                if self.store.reference(tenant_id, fid):
                    newly.append(fid)
            except LookupError:
                self.release(tenant_id, newly)
                raise Invalid(
                    "Validation error", errors=[FieldError("file", f"no uploaded file has id {fid}", "notFound")]
                ) from None
        return newly

    def release(self, tenant_id: str, file_ids: Sequence[str]) -> None:
        for fid in file_ids:
            self.store.release(tenant_id, fid)

    # The sweep -------------------------------------------------------------
    def sweep(self, now: int | None = None) -> Swept:
        """Remove the uploads no record referenced within 12 hours (run every hour by a schedule)."""
        return self.store.sweep((now or now_ms()) - KEEP_UNREFERENCED_MS)
