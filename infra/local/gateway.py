"""A local stand-in for API Gateway's HTTP API: each request becomes the payload-2.0 event of its
template route and is handed to the real handler; unmatched routes get API Gateway's own 404.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from infra.local.lambdas import FunctionPool
from infra.local.template import Route

log = logging.getLogger("local.gateway")

MAX_BODY = 10 * 1024 * 1024  # API Gateway's request payload limit
_TEXT_TYPES = (
    "application/json",
    "text/",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/javascript",
)


def build_event(
    route: Route,
    method: str,
    raw_path: str,
    params: dict[str, str],
    query: str,
    headers: dict[str, str],
    body: bytes,
    source_ip: str,
) -> dict[str, Any]:
    """The API Gateway HTTP API (payload format 2.0) event for one request."""
    content_type = headers.get("content-type", "")
    is_text = not body or any(content_type.startswith(t) for t in _TEXT_TYPES)
    try:
        text = body.decode() if is_text else None
    except UnicodeDecodeError:
        text = None
    headers = forwarded(headers, source_ip)
    query_params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        query_params[key] = f"{query_params[key]},{value}" if key in query_params else value
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": text is None and bool(body),
    }
    if "cookie" in headers:
        event["cookies"] = [c.strip() for c in headers["cookie"].split(";")]
    if query_params:
        event["queryStringParameters"] = query_params
    if params:
        event["pathParameters"] = params
    if body:
        event["body"] = text if text is not None else base64.b64encode(body).decode()
    return event


def forwarded(headers: dict[str, str], source_ip: str) -> dict[str, str]:
    """The headers with those API Gateway adds to every request it passes on: `x-forwarded-for` (the
    caller's address appended), `x-forwarded-proto` and `x-forwarded-port` (here, plain HTTP on the
    Host's port), which the runtime builds its absolute links from."""
    port = headers.get("host", "").rpartition(":")[2]
    held = headers.get("x-forwarded-for")
    return {
        **headers,
        "x-forwarded-for": f"{held}, {source_ip}" if held else source_ip,
        "x-forwarded-proto": "http",
        "x-forwarded-port": port if port.isdigit() else "80",
    }


class Gateway:
    def __init__(self, routes: list[Route], pools: dict[str, FunctionPool], openapi: dict[str, Any]) -> None:
        self.routes = [(r, r.pattern()) for r in routes]
        self.pools = pools
        self.openapi = openapi

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route, pattern in self.routes:
            if route.method not in (method, "ANY"):
                continue
            found = pattern.match(path)
            if found:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        handler = type("Handler", (_Handler,), {"gateway": self})
        server = _Server((host, port), handler)
        server.daemon_threads = True
        return server


class _Handler(BaseHTTPRequestHandler):
    """One request to the gateway (`serve` makes a subclass that names its `gateway`)."""

    protocol_version = "HTTP/1.1"
    gateway: Gateway

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return

    def __getattr__(self, name: str) -> Any:
        # Any method (TRACE, PROPFIND, ...) reaches `_answer`, which finds no route for it:
        # API Gateway's JSON 404, never http.server's HTML 501.
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # A request http.server cannot parse (bad request line, headers too long): JSON, as API Gateway.
        self.close_connection = True
        reason = {400: "Bad Request", 414: "Request-URI Too Long", 431: "Request Header Fields Too Large"}
        body = json.dumps({"message": reason.get(code, "Bad Request")}).encode()
        self._send(code if code in reason else 400, {"content-type": "application/json"}, body)

    def _answer(self) -> None:
        started = time.perf_counter()
        split = urlsplit(self.path)
        if split.path == "/openapi.json" and self.command == "GET":
            self._send(200, {"content-type": "application/json"}, json.dumps(self.gateway.openapi).encode())
            return
        body = self._body()
        if body is None:
            return
        found = self.gateway.match(self.command, split.path)
        if found is None:
            self._send(404, {"content-type": "application/json"}, b'{"message":"Not Found"}')
            status = 404
        else:
            route, params = found
            event = build_event(
                route, self.command, split.path, params, split.query, self._headers(), body, self.client_address[0]
            )
            status = self._invoke(route, event)
        log.info("%s %s %d %.0fms", self.command, self.path, status, (time.perf_counter() - started) * 1000)

    def _body(self) -> bytes | None:
        """The request's body, or None once a 400 (bad length) or 413 (over API Gateway's limit) is sent."""
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._send(400, {"content-type": "application/json"}, b'{"message":"Bad Request"}')
            return None
        if length > MAX_BODY:
            self._send(413, {"content-type": "application/json"}, b'{"message":"Request Entity Too Large"}')
            return None
        return self.rfile.read(length) if length else b""

    def _headers(self) -> dict[str, str]:
        """Lower-case names; a repeated header's values joined by commas, as API Gateway does."""
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            k = key.lower()
            headers[k] = f"{headers[k]},{value}" if k in headers else value
        return headers

    def _invoke(self, route: Route, event: dict[str, Any]) -> int:
        try:
            result = self.gateway.pools[route.function].invoke(event)
        except Exception:
            log.exception("%s crashed", route.function)
            self._send(500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}')
            return 500
        status = int(result.get("statusCode", 200))
        headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
        raw = result.get("body") or ""
        payload = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        self._send(status, headers, payload, cookies=result.get("cookies") or [])
        return status

    def _send(self, status: int, headers: dict[str, str], payload: bytes, cookies: list[str] | None = None) -> None:
        self.send_response(status)
        headers.setdefault("content-type", "application/json")
        for key, value in headers.items():
            if key not in ("content-length", "connection"):
                self.send_header(key, value)
        for cookie in cookies or []:
            self.send_header("set-cookie", cookie)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer


class _Server(ThreadingHTTPServer):
    # http.server's listen queue is 5 deep: 50 callers connecting at once (the load bench) overflowed it
    # and a connection was reset. API Gateway queues far more; so does this one.
    request_queue_size = 128


def merged_openapi(pools: dict[str, FunctionPool]) -> dict[str, Any]:
    """One OpenAPI document for all three dialects, from each function's powertools resolver."""
    from backroom.api.dialects import VERSION
    from backroom.api.openapi import document

    parts = []
    for pool in pools.values():
        app = pool.app()
        if app is not None and hasattr(app, "get_openapi_json_schema"):
            parts.append(json.loads(app.get_openapi_json_schema()))
    return document(parts, version=VERSION)
