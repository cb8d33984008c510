"""Files: bytes in S3, metadata in DynamoDB. The only module that knows S3 keys.

A file belongs to an owner (`job/<id>`, ...) and has a name the core chose (`in.csv`, `out.csv`);
a name a caller sent is only ever metadata, never part of a key or a path.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from pydantic import BaseModel

from backroom.clock import now_ms
from backroom.dynamo import Table

# S3 multipart parts must be at least 5 MiB, except the last one.
_PART_BYTES = 8 * 1024 * 1024


class StoredFile(BaseModel):
    owner: str
    name: str
    key: str
    size: int
    content_type: str
    created_at: int


def _pk(owner: str) -> str:
    return f"FILES#{owner}"


class FileStore:
    def __init__(self, s3: Any, bucket: str, table: Table) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.table = table

    @staticmethod
    def key(owner: str, name: str) -> str:
        return f"files/{owner}/{name}"

    # Writing -------------------------------------------------------------
    def put(self, owner: str, name: str, data: bytes, content_type: str = "text/csv") -> StoredFile:
        key = self.key(owner, name)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return self._record(owner, name, key, len(data), content_type)

    def put_scratch(self, owner: str, name: str, data: bytes) -> None:
        """A working object with no metadata (e.g. a part of an output still being built)."""
        self.s3.put_object(Bucket=self.bucket, Key=self.key(owner, name), Body=data)

    def compose(self, owner: str, name: str, head: bytes, prefix: str, content_type: str = "text/csv") -> StoredFile:
        """Write `head` followed by every scratch object under `prefix`, in key order, as one file.

        Streams with a multipart upload: memory stays at one part whatever the size of the result.
        """
        key = self.key(owner, name)
        pieces = self._scratch_bodies(owner, prefix)
        return self._record(owner, name, key, self._stream_to(key, head, pieces, content_type), content_type)

    def _scratch_bodies(self, owner: str, prefix: str) -> Iterator[bytes]:
        for key in self._keys(self.key(owner, prefix)):
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

    def _record(self, owner: str, name: str, key: str, size: int, content_type: str) -> StoredFile:
        stored = StoredFile(owner=owner, name=name, key=key, size=size, content_type=content_type, created_at=now_ms())
        self.table.put({"pk": _pk(owner), "sk": name, **stored.model_dump()})
        return stored

    # Reading -------------------------------------------------------------
    def get(self, owner: str, name: str) -> StoredFile | None:
        item = self.table.get(_pk(owner), name)
        return StoredFile.model_validate(item) if item else None

    def of_owner(self, owner: str) -> list[StoredFile]:
        return [StoredFile.model_validate(i) for i in self.table.query("pk = :p", {":p": _pk(owner)})]

    def read(self, stored: StoredFile) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=stored.key)["Body"].read())

    def open_text(self, owner: str, name: str, start: int = 0, end: int | None = None) -> TextIO:
        """A text stream over bytes [start, end) of a file, read from S3 as it is consumed."""
        span = f"bytes={start}-{'' if end is None else end - 1}"
        body = self.s3.get_object(Bucket=self.bucket, Key=self.key(owner, name), Range=span)["Body"]
        return io.TextIOWrapper(body, encoding="utf-8", newline="")

    def download_url(self, stored: StoredFile, filename: str, expires_s: int = 300) -> str:
        """A short-lived presigned URL, for files above what a Lambda response can carry."""
        url: str = self.s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": stored.key,
                "ResponseContentType": stored.content_type,
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=expires_s,
        )
        return url

    # Removing ------------------------------------------------------------
    def delete_scratch(self, owner: str, prefix: str) -> None:
        self._delete_keys(list(self._keys(self.key(owner, prefix))))

    def delete_all(self, owner: str) -> None:
        """Every file and scratch object of an owner, with their metadata."""
        self._delete_keys(list(self._keys(self.key(owner, ""))))
        self.table.batch_write(deletes=[(_pk(owner), f.name) for f in self.of_owner(owner)])

    def _keys(self, prefix: str) -> Iterator[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
