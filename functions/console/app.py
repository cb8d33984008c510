"""The operator's console: a web page served by the stack itself (`GET /console`), no data of its own.

The page is three or four static files vendored beside this handler (static/): HTML, CSS and ES
modules, no build step. It talks to the three dialects' own APIs from the browser, same origin, with
the token a runtime login hands out, and to the files' storage for the bytes of a big upload (by the
presigned URL the API hands out: its policy names that origin, `storage_origins`); this function needs
no token, no table and no bucket, and only ever answers a file named in `FILES` (the path a caller
sends is a key of that map, never a path on disk). A Lambda rather than S3 behind the API: one `sam
deploy` ships it, same origin as the API (no CORS, no second URL), and `make run` serves it through the
same local gateway.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

STATIC = Path(__file__).resolve().parent / "static"

# The routes of this function, for the checks that compare template.yaml with the code: a page, not an
# API operation, so not in the OpenAPI document; public (the page itself holds no data).
PAGES = frozenset({"GET /console", "GET /console/{proxy+}"})

# Every file the console serves and its type: anything else under /console is a 404.
FILES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}

# The page runs only its own scripts and styles and talks only to its own origin and to the files' storage
# (a file above 4 MiB is PUT there by its presigned URL: `storage_origins`); nothing may frame it.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'{storage}; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# An origin as a policy may name it: scheme, host and port, nothing else (no wildcard, no path, no quote).
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
SECURITY = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-cache",
}


def storage_origins(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """Where the presigned upload URLs point, as configuration alone says (this function touches nothing):
    the S3 endpoint boto3 is told of (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`: the local stack,
    LocalStack), whose URLs are `<endpoint>/<bucket>/<key>`; otherwise the bucket's own origins on AWS, which
    template.yaml gives as `BACKROOM_FILES_ORIGINS` (its regional and global virtual-hosted names: botocore
    signs with the one or the other as its version and the region go). Anything not an origin is left out."""
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        given = [f"{parts.scheme}://{parts.netloc}"]
    else:
        given = env.get("BACKROOM_FILES_ORIGINS", "").split()
    return tuple(dict.fromkeys(o.rstrip("/") for o in given if _ORIGIN.fullmatch(o.rstrip("/"))))


@cache
def policy(origins: tuple[str, ...]) -> str:
    return POLICY.format(storage="".join(f" {origin}" for origin in origins))


def headers(content_type: str) -> dict[str, str]:
    """Every answer's headers: its type, the policy and the other guards."""
    return {"content-security-policy": policy(storage_origins()), **SECURITY, "content-type": content_type}


@cache
def _read(name: str) -> str:
    """A file's text, read once per container (the files ship with the function and never change)."""
    return (STATIC / name).read_text(encoding="utf-8")


def _file_name(event: dict[str, Any]) -> str:
    """The name asked for: `/console` is the page, `/console/<name>` one of its files."""
    if event.get("routeKey") == "GET /console":
        return "index.html"
    return str((event.get("pathParameters") or {}).get("proxy", ""))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name = _file_name(event)
    if name not in FILES or (name == "index.html" and event.get("routeKey") != "GET /console"):
        # index.html only at /console: its relative links (`console/console.js`) resolve from there.
        return {
            "statusCode": 404,
            "headers": headers("text/plain; charset=utf-8"),
            "body": "Not Found",
        }
    return {"statusCode": 200, "headers": headers(FILES[name]), "body": _read(name)}
