"""multipart/form-data bodies: the file a caller sent (its name is metadata only, never a path or key)."""

from __future__ import annotations

import base64
import binascii
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from backroom.errors import Invalid, UnsupportedMediaType


def body_bytes(event: dict[str, Any]) -> bytes:
    """The request's body as bytes (API Gateway sends binary bodies base64-encoded)."""
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return body.encode("utf-8", errors="surrogateescape")
    try:
        return base64.b64decode(body)
    except (binascii.Error, ValueError):
        raise Invalid("The body is not valid base64") from None


def uploaded_file(body: bytes, content_type: str) -> tuple[str | None, str | None, bytes]:
    """The file of a multipart/form-data body: (file name, its content type, its bytes).

    The part named `file`, else the first part with a file name; a body named another media type is a 415
    (the routes that take a file also take JSON: the body is not what they read), a malformed one a 400.
    """
    if not content_type.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType("Send the file as multipart/form-data, in a part named file, or JSON")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise Invalid("The multipart body could not be read")
    parts = [p for p in message.iter_parts() if p.get_filename() or p.get_param("name", header="content-disposition")]
    chosen = next((p for p in parts if p.get_param("name", header="content-disposition") == "file"), None)
    chosen = chosen or next((p for p in parts if p.get_filename()), None)
    if chosen is None:
        raise Invalid("The multipart body has no file part")
    part_type = chosen.get("content-type")
    return chosen.get_filename(), str(part_type) if part_type else None, bytes(chosen.get_payload(decode=True) or b"")
