"""Files: bytes in S3, metadata in DynamoDB. The only module that uses S3 keys (formed in `backroom.keys`).

A file belongs to an owner (`job/<id>`, ...) and has a name the core chose (`in.csv`, `out.csv`);
a name a caller sent is only ever metadata (`filename`), never part of a key or a path.

An app's files (the runtime's `POST /files`, export files) belong to the owner `app/<tenant>` and are
named by their 24-hex id. An upload waits in a pending partition until a record references it:

| item | pk | sk |
| --- | --- | --- |
| file metadata | `FILES#<owner>` | `<name>` (an app file: its id) |
| pending upload | `UPLOADS#<hour, YYYYMMDDHH>#<shard 0-7>` | `<tenant>#<file id>` |
| share link | `SHARE#<shared file id>` | `SHARE` |

The sweep reads the pending partitions of the hours past the 12-hour mark (a Query each, never a
Scan) and deletes each file no record references, conditioned on that, so a record that takes the
file at the same moment either keeps it or is refused.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any, TextIO

from pydantic import BaseModel, Field

from backroom import keys
from backroom.aws import Translated, failures
from backroom.clock import now_ms
from backroom.dynamo import ConditionFailed, Table, Write, in_context
from backroom.errors import ServiceFailure

# S3 multipart parts must be at least 5 MiB, except the last one.
_PART_BYTES = 8 * 1024 * 1024
_MISSING = ("404", "NoSuchKey", "NotFound")  # S3's codes for an object that is not there
HOUR_MS = 3_600_000
_SHARE_KEEP_S = 86_400  # a share link's item outlives its expiry by a day, then DynamoDB's TTL removes it
HOLDERS_MOST = 50  # records an app file notes as holding it (`StoredFile.holders`)


class StoredFile(BaseModel):
    owner: str
    name: str
    key: str
    size: int  # -1: a presigned upload not completed yet
    content_type: str
    created_at: int
    filename: str | None = None  # the name a caller gave: metadata only
    uploaded_by: str | None = None
    referenced: bool = False  # an app file a record references: the sweep keeps it
    pending: str | None = None  # an app file's pending-upload partition, until a record references it
    expected_size: int | None = None  # a presigned upload's declared size, checked when it completes
    # Records a write made reference the app file (`<entity>/<record id>`, at most HOLDERS_MOST): whom a
    # user's share is checked against. A record may have dropped the file since: the check reads it.
    # Only `hold` writes it (a string set, ADDed to): a put of the model leaves it out.
    holders: list[str] = Field(default_factory=list, exclude=True)


class SharedFile(BaseModel):
    share_id: str
    tenant_id: str
    file_id: str
    expires_ms: int


class Swept(BaseModel):
    deleted: list[str]  # `<tenant>/<file id>` of each file removed
    kept: int  # markers of files a record took meanwhile (cleared, file kept)


class FileStore:
    def __init__(self, s3: Any, bucket: str, table: Table) -> None:
        self.s3 = Translated(s3)  # S3's errors leave as ServiceFailure
        self.bucket = bucket
        self.table = table

    # Writing -------------------------------------------------------------
    def put(self, owner: str, name: str, data: bytes, content_type: str = "text/csv") -> StoredFile:
        key = keys.s3_object(owner, name)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return self._record(owner, name, key, len(data), content_type)

    def put_scratch(self, owner: str, name: str, data: bytes) -> None:
        """A working object with no metadata (e.g. a part of an output still being built)."""
        self.s3.put_object(Bucket=self.bucket, Key=keys.s3_object(owner, name), Body=data)

    def put_scratch_once(self, owner: str, name: str, data: bytes) -> bytes:
        """A working object written only if it is not there yet (S3's conditional write); what it holds
        after: `data`, or what a writer before (or at the same time) put there."""
        key = keys.s3_object(owner, name)
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
            return data
        except ServiceFailure as failed:
            if failed.code not in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                raise
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def compose(self, owner: str, name: str, head: bytes, prefix: str, content_type: str = "text/csv") -> StoredFile:
        """Write `head` followed by every scratch object under `prefix`, in key order, as one file.

        Streams with a multipart upload: memory stays at one part whatever the size of the result.
        """
        key = keys.s3_object(owner, name)
        pieces = self._scratch_bodies(owner, prefix)
        return self._record(owner, name, key, self._stream_to(key, head, pieces, content_type), content_type)

    def write_stream(
        self, owner: str, name: str, head: bytes, pieces: Iterable[bytes], content_type: str = "text/csv"
    ) -> StoredFile:
        """`head` then `pieces` as one file, by a multipart upload: memory stays at one part."""
        key = keys.s3_object(owner, name)
        return self._record(owner, name, key, self._stream_to(key, head, pieces, content_type), content_type)

    # A file written a part at a time, each part by whichever worker made it (an export's parts) ------
    def start_parts(self, owner: str, name: str, content_type: str = "text/csv") -> str:
        """A multipart upload for file `name` of `owner`; its id, for `put_part` and `finish_parts`."""
        answer = self.s3.create_multipart_upload(
            Bucket=self.bucket, Key=keys.s3_object(owner, name), ContentType=content_type
        )
        return str(answer["UploadId"])

    def put_part(self, owner: str, name: str, upload_id: str, number: int, data: bytes) -> None:
        """Part `number` (1 to 10,000) of the upload: at least 5 MiB unless it is the file's last. Writing
        a number again replaces that part (a replayed group writes its part again)."""
        self._upload_part(keys.s3_object(owner, name), upload_id, number, data)

    def finish_parts(self, owner: str, name: str, upload_id: str, content_type: str = "text/csv") -> StoredFile:
        """The upload's parts, in number order, made one file (S3 joins them: no byte passes through here).

        Finishing again (a redelivered wrap-up) finds the upload gone and the file there: the same file."""
        key = keys.s3_object(owner, name)
        parts: list[dict[str, Any]] = []
        size = 0
        try:
            pages = self.s3.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=key, UploadId=upload_id)
            with failures():
                for page in pages:
                    for part in page.get("Parts", []):
                        parts.append({"ETag": part["ETag"], "PartNumber": part["PartNumber"]})
                        size += int(part["Size"])
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except ServiceFailure as failed:
            if failed.code != "NoSuchUpload":
                raise
            size = int(self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        return self._record(owner, name, key, size, content_type)

    def abort_parts(self, owner: str, name: str, upload_id: str) -> None:
        """Drop an upload that will not be finished (its parts are deleted); one already gone is no error."""
        try:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=keys.s3_object(owner, name), UploadId=upload_id)
        except ServiceFailure as failed:
            if failed.code != "NoSuchUpload":
                raise

    def copy(self, stored: StoredFile, owner: str, name: str) -> StoredFile:
        """A copy of a file under another owner and name, made by S3 (the bytes never pass through here)."""
        key = keys.s3_object(owner, name)
        self.s3.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": stored.key})
        return self._record(owner, name, key, stored.size, stored.content_type, stored.filename)

    def scratch_names(self, owner: str, prefix: str) -> list[str]:
        """The names of an owner's scratch objects starting with `prefix`, in key order."""
        base = keys.s3_object(owner, "")
        return [key[len(base) :] for key in self._keys(keys.s3_object(owner, prefix))]

    def first_line(self, owner: str, name: str, most: int = 65_536) -> str:
        """The first line of an object (read from its first `most` bytes only)."""
        return self.open_text(owner, name, 0, most).readline()

    def _scratch_bodies(self, owner: str, prefix: str) -> Iterator[bytes]:
        for key in self._keys(keys.s3_object(owner, prefix)):
            yield self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def _stream_to(self, key: str, head: bytes, pieces: Iterable[bytes], content_type: str) -> int:
        buffer = bytearray(head)
        size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            for piece in pieces:
                buffer += piece
                if len(buffer) >= _PART_BYTES:
                    if upload_id is None:
                        upload_id = self.s3.create_multipart_upload(
                            Bucket=self.bucket, Key=key, ContentType=content_type
                        )["UploadId"]
                    parts.append(self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
                    size += len(buffer)
                    buffer.clear()
            size += len(buffer)
            if upload_id is None:
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=bytes(buffer), ContentType=content_type)
                return size
            if buffer:
                parts.append(self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            return size
        except Exception:
            if upload_id is not None:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        etag = self.s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)
        return {"ETag": etag["ETag"], "PartNumber": number}

    def _record(
        self, owner: str, name: str, key: str, size: int, content_type: str, filename: str | None = None
    ) -> StoredFile:
        stored = StoredFile(
            owner=owner,
            name=name,
            key=key,
            size=size,
            content_type=content_type,
            created_at=now_ms(),
            filename=filename,
        )
        self.table.put({"pk": keys.files_of(owner), "sk": name, **stored.model_dump()})
        return stored

    # An app's files ------------------------------------------------------
    def upload(
        self,
        tenant_id: str,
        file_id: str,
        filename: str,
        data: bytes | None,
        content_type: str,
        *,
        uploaded_by: str,
        at: int | None = None,
        expected_size: int | None = None,
    ) -> StoredFile:
        """An app file waiting for a record to reference it; `data=None` waits for a presigned upload of
        `expected_size` bytes (the file exists once `complete` finds them)."""
        owner, at = keys.app_owner(tenant_id), at or now_ms()
        key = keys.s3_object(owner, file_id)
        if data is not None:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        pending = keys.pending(keys.hour(at), secrets.randbelow(keys.PENDING_SHARDS))
        stored = StoredFile(
            owner=owner,
            name=file_id,
            key=key,
            size=-1 if data is None else len(data),
            content_type=content_type,
            created_at=at,
            filename=filename,
            uploaded_by=uploaded_by,
            pending=pending,
            expected_size=None if data is not None else expected_size,
        )
        marker = {
            "pk": pending,
            "sk": keys.pending_sk(tenant_id, file_id),
            "tenant": tenant_id,
            "file": file_id,
            "at": at,
        }
        self.table.transact(
            [
                Write(item={"pk": keys.files_of(owner), "sk": file_id, **stored.model_dump()}),
                Write(item={**marker, "expires_at": at // 1000 + 30 * 86_400}),
            ]
        )
        return stored

    def adopt(
        self, tenant_id: str, file_id: str, stored: StoredFile, filename: str, made_for: str | None = None
    ) -> StoredFile:
        """Make a file the core wrote (an export's CSV) an app file too, kept until its owner removes it;
        `made_for` (the email of who ran the job) is its uploader, so that it may share the file it asked for."""
        update = {"owner": keys.app_owner(tenant_id), "name": file_id, "filename": filename, "referenced": True}
        app_file = stored.model_copy(update={**update, "uploaded_by": made_for or stored.uploaded_by})
        self.table.put({"pk": keys.files_of(app_file.owner), "sk": file_id, **app_file.model_dump()})
        return app_file

    def upload_url(self, stored: StoredFile, expires_s: int = 900) -> str:
        """A presigned PUT for bytes above what a Lambda request can carry, of exactly the declared size
        and written once: S3 checks the signed `Content-Length` and `If-None-Match: *` (a second PUT, after
        the upload is completed, would otherwise swap the bytes a record references)."""
        url: str = self.s3.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": stored.key,
                "ContentType": stored.content_type,
                "ContentLength": stored.expected_size,
                "IfNoneMatch": "*",
            },
            ExpiresIn=expires_s,
        )
        return url

    def arrived(self, stored: StoredFile) -> int | None:
        """The size of a presigned upload's bytes in S3, or None while they have not arrived."""
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=stored.key)
        except ServiceFailure as failed:
            if failed.code in _MISSING:  # not uploaded yet; S3's other failures are not a missing file
                return None
            raise
        return int(head["ContentLength"])

    def complete(self, stored: StoredFile, size: int) -> StoredFile:
        """Make a presigned upload a file of `size` bytes (once: completing it again changes nothing)."""
        with suppress(ConditionFailed):
            self.table.update(
                keys.files_of(stored.owner),
                stored.name,
                "SET #s = :s",
                names={"#s": "size"},
                values={":s": size, ":none": -1},
                condition="#s = :none",
            )
        return stored.model_copy(update={"size": size})

    def app_file(self, tenant_id: str, file_id: str) -> StoredFile | None:
        """An app file whose bytes are there (a presigned upload not completed yet is no file)."""
        stored = self.get(keys.app_owner(tenant_id), file_id)
        return stored if stored is not None and stored.size >= 0 else None

    def upload_of(self, tenant_id: str, file_id: str) -> StoredFile | None:
        """An app file, completed or not (its presigned upload's metadata)."""
        return self.get(keys.app_owner(tenant_id), file_id)

    def reference(self, tenant_id: str, file_id: str) -> bool:
        """Mark an app file referenced, so the sweep keeps it: True if it was not before.

        Raises LookupError when the file is gone (the sweep took it first).
        """
        owner = keys.app_owner(tenant_id)
        try:
            item = self.table.update(
                keys.files_of(owner),
                file_id,
                "SET referenced = :t",
                values={":t": True},
                condition="attribute_exists(pk) AND NOT referenced = :t",
            )
        except ConditionFailed:
            if self.get(owner, file_id) is None:
                raise LookupError(file_id) from None
            return False  # referenced before
        if item.get("pending"):
            self.table.delete(str(item["pending"]), keys.pending_sk(tenant_id, file_id))
        return True

    def release(self, tenant_id: str, file_id: str) -> None:
        """Undo `reference` (the record write it was for failed): the file waits for the sweep again."""
        owner = keys.app_owner(tenant_id)
        stored = self.get(owner, file_id)
        if stored is None or not stored.pending:
            return
        self.table.update(keys.files_of(owner), file_id, "SET referenced = :f", values={":f": False})
        marker = {"pk": stored.pending, "sk": keys.pending_sk(tenant_id, file_id), "tenant": tenant_id, "file": file_id}
        self.table.put({**marker, "at": stored.created_at, "expires_at": stored.created_at // 1000 + 30 * 86_400})

    def hold(self, tenant_id: str, file_id: str, holder: str) -> None:
        """Note that record `holder` (`<entity>/<record id>`) references an app file, once, while the file
        notes fewer than `HOLDERS_MOST`; a file gone, or with its list full, is left as it is."""
        try:
            self.table.update(
                keys.files_of(keys.app_owner(tenant_id)),
                file_id,
                "ADD holders :h",
                values={":h": {holder}, ":n": HOLDERS_MOST},
                condition="attribute_exists(pk) AND (attribute_not_exists(holders) OR size(holders) < :n)",
            )
        except ConditionFailed:
            return

    def remove_app_file(self, tenant_id: str, file_id: str) -> bool:
        """Delete an app file no record references (its metadata first, conditioned on that, then its bytes)."""
        owner = keys.app_owner(tenant_id)
        stored = self.get(owner, file_id)
        if stored is None:
            return True
        try:
            self.table.delete(keys.files_of(owner), file_id, condition="NOT referenced = :t", values={":t": True})
        except ConditionFailed:
            return False
        self.s3.delete_object(Bucket=self.bucket, Key=stored.key)
        return True

    def sweep(self, older_than: int, *, look_back_hours: int = 48) -> Swept:
        """Remove every pending upload created before `older_than` (epoch ms) that no record references.

        Reads the pending partitions of the hour holding `older_than` and `look_back_hours` before it
        (so an outage of the schedule is caught up), each a Query.
        """
        deleted: list[str] = []
        kept = 0
        hour = older_than - older_than % HOUR_MS
        partitions = [
            keys.pending(keys.hour(hour - step * HOUR_MS), shard)
            for step in range(look_back_hours + 1)
            for shard in range(keys.PENDING_SHARDS)
        ]

        def read(pk: str) -> list[dict[str, Any]]:
            return list(self.table.query("pk = :p", {":p": pk}))

        with ThreadPoolExecutor(max_workers=keys.PENDING_SHARDS) as pool:  # mostly empty partitions: read them at once
            found = pool.map(in_context(read), partitions)  # in context: the reads count in the sweep's cost
            markers = [m for listed in found for m in listed if int(m["at"]) < older_than]
        for marker in markers:
            tenant_id, file_id = str(marker["tenant"]), str(marker["file"])
            if self.remove_app_file(tenant_id, file_id):
                deleted.append(f"{tenant_id}/{file_id}")
            else:
                kept += 1
            self.table.delete(str(marker["pk"]), str(marker["sk"]))
        return Swept(deleted=deleted, kept=kept)

    # Share links ---------------------------------------------------------
    def share(self, tenant_id: str, file_id: str, share_id: str, expires_ms: int) -> SharedFile:
        shared = SharedFile(share_id=share_id, tenant_id=tenant_id, file_id=file_id, expires_ms=expires_ms)
        pk, sk = keys.share(share_id)
        self.table.put({"pk": pk, "sk": sk, **shared.model_dump(), "expires_at": expires_ms // 1000 + _SHARE_KEEP_S})
        return shared

    def shared(self, share_id: str) -> SharedFile | None:
        item = self.table.get(*keys.share(share_id))
        return SharedFile.model_validate(item) if item else None

    # Reading -------------------------------------------------------------
    def get(self, owner: str, name: str) -> StoredFile | None:
        item = self.table.get(keys.files_of(owner), name)
        return StoredFile.model_validate(item) if item else None

    def of_owner(self, owner: str) -> list[StoredFile]:
        return [StoredFile.model_validate(i) for i in self.table.query("pk = :p", {":p": keys.files_of(owner)})]

    def read(self, stored: StoredFile) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=stored.key)["Body"].read())

    def open_text(self, owner: str, name: str, start: int = 0, end: int | None = None) -> TextIO:
        """A text stream over bytes [start, end) of a file, read from S3 as it is consumed."""
        span = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=keys.s3_object(owner, name), Range=span)["Body"]
        except ServiceFailure as failed:
            if failed.code == "InvalidRange":  # S3's answer to a range of an empty file: no text
                return io.StringIO("")
            raise
        return io.TextIOWrapper(body, encoding="utf-8", newline="")

    def download_url(
        self, stored: StoredFile, filename: str, expires_s: int = 300, *, disposition: str | None = None
    ) -> str:
        """A short-lived presigned URL, for files above what a Lambda response can carry."""
        url: str = self.s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": stored.key,
                "ResponseContentType": stored.content_type,
                "ResponseContentDisposition": disposition or f'attachment; filename="{filename}"',
            },
            ExpiresIn=expires_s,
        )
        return url

    # Removing ------------------------------------------------------------
    def delete_scratch(self, owner: str, prefix: str) -> None:
        self._delete_keys(list(self._keys(keys.s3_object(owner, prefix))))

    def delete_all(self, owner: str) -> None:
        """Every file and scratch object of an owner, with their metadata."""
        self._delete_keys(list(self._keys(keys.s3_object(owner, ""))))
        self.table.batch_write(deletes=[(keys.files_of(owner), f.name) for f in self.of_owner(owner)])

    def _keys(self, prefix: str) -> Iterator[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        with failures():  # each page is read as the loop asks for it
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"]

    def _delete_keys(self, objects: list[str]) -> None:
        for start in range(0, len(objects), 1000):
            batch = [{"Key": k} for k in objects[start : start + 1000]]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
