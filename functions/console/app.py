"""The operator's console: a web page served by the stack itself (`GET /console`), no data of its own.

The page is three or four static files vendored beside this handler (static/): HTML, CSS and ES
modules, no build step. It talks to the three dialects' own APIs from the browser, same origin, with
the token a runtime login hands out; this function needs no token, no table and no bucket, and only
ever answers a file named in `FILES` (the path a caller sends is a key of that map, never a path on
disk). A Lambda rather than S3 behind the API: one `sam deploy` ships it, same origin as the API (no
CORS, no second URL), and `make run` serves it through the same local gateway.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

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

# The page runs only its own scripts and styles and talks only to its own origin; nothing may frame it.
SECURITY = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-cache",
}


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
            "headers": {**SECURITY, "content-type": "text/plain; charset=utf-8"},
            "body": "Not Found",
        }
    return {"statusCode": 200, "headers": {**SECURITY, "content-type": FILES[name]}, "body": _read(name)}
