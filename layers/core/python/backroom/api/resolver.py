"""A powertools resolver per function, speaking its dialect (per path prefix) for every error it can raise."""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Route
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.constants import (
    DEFAULT_API_VERSION,
    DEFAULT_OPENAPI_RESPONSE_DESCRIPTION,
    DEFAULT_OPENAPI_TITLE,
    DEFAULT_STATUS_CODE,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.request import Request
from aws_lambda_powertools.shared.types import AnyCallableT

from backroom.api import openapi
from backroom.api.dialects import VERSION, Dialect, body_type, not_json, request_token
from backroom.errors import BackroomError, FieldError, Invalid, NotFound, Unauthorized, UnsupportedMediaType
from backroom.identity.models import Caller
from backroom.observability import logger
from backroom.wiring import core

# The caller an app call's gate (`_app_call`) authenticated, for the route's `CurrentCaller`: one token read a call.
_GATED: ContextVar[Caller | None] = ContextVar("backroom_gated_caller", default=None)


def authenticated(request: Request) -> Caller:
    token = request_token(request.resolved_event.raw_event)
    gated = _GATED.get()
    if gated is not None and gated.token == token:
        return gated
    return core().identity.authenticate(token)


CurrentCaller = Annotated[Caller, Depends(authenticated)]


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    errors = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")]
        name = ".".join(loc) or "body"
        errors.append(FieldError(field=name, message=str(e.get("msg", "is not valid")), code="invalid"))
    return errors


def _malformed_body(message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "body_invalid", "loc": ("body",), "msg": message, "input": {}}])


class _BodyValidation(OpenAPIRequestValidationMiddleware):
    """powertools' request validation, where a body that is not UTF-8 or nested too deeply for the parser
    is the caller's malformed request, not a crash, and a body that is not JSON is a 415."""

    def _parse_json_data(self, app: Any) -> Any:
        try:
            return super()._parse_json_data(app)
        except (UnicodeDecodeError, binascii.Error):
            raise _malformed_body("is not UTF-8 text") from None
        except RecursionError:
            raise _malformed_body("is nested too deeply") from None

    def _get_body(self, app: Any) -> Any:
        # Every body model is JSON: a body named otherwise, or not named at all, is a 415 (powertools reads
        # an unnamed body as JSON and a form as fields); a request without a body fails as a missing one.
        # A dialect that reads bodies sent any way (Kazoo's, whose own samples send JSON with `curl -d`) keeps
        # powertools' reading.
        if not app.dialect_of(app.current_event.path).checks_json_type:
            return super()._get_body(app)
        event = app.current_event.raw_event
        media_type = body_type(event)
        if media_type == content_types.APPLICATION_JSON or not (media_type or event.get("body")):
            return self._parse_json_data(app)
        raise RequestUnsupportedContentType(not_json(event), errors=[])


class DialectResolver(APIGatewayHttpResolver):
    """A resolver whose routes all document the dialect's common errors and security (see backroom.api.openapi).

    A route declares only what is its own: its success answer (from its return annotation, or `responses`
    for 201/202/302...), the statuses peculiar to it, `security=[]` if it takes no token.

    `elsewhere` maps a path prefix to the dialect its routes speak, for a function that serves a route
    or two of another dialect (the auth function's logouts); every other route speaks `dialect`.
    """

    def __init__(
        self, dialect: Dialect, public_routes: frozenset[str], elsewhere: Mapping[str, Dialect] | None = None
    ) -> None:
        super().__init__(enable_validation=True)
        self.dialect = dialect
        self.public_routes = public_routes
        self.elsewhere = dict(elsewhere or {})
        self.route_keys: set[str] = set()  # API Gateway's keys of the routes registered (`GET /a/{b}`)
        self._request_validation_middleware = _BodyValidation()

    def _convert_matches_into_route_keys(self, match: re.Match[str]) -> dict[str, str]:
        # powertools matches the raw path: a parameter sent percent-encoded reaches the route as sent,
        # unless the dialect decodes them (Kazoo's router does; invalid UTF-8 becomes U+FFFD, not a crash).
        keys: dict[str, str] = match.groupdict()
        return {k: unquote(v) for k, v in keys.items()} if self.dialect.decodes_path_params else keys

    def dialect_of(self, path: str) -> Dialect:
        """The dialect a path (a rule, or a request's path) speaks."""
        return next((d for prefix, d in self.elsewhere.items() if path.startswith(prefix)), self.dialect)

    def route(
        self,
        rule: str,
        method: str | list[str] | tuple[str],
        cors: bool | None = None,
        compress: bool = False,
        cache_control: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        responses: dict[int, OpenAPIResponse] | None = None,
        response_description: str = DEFAULT_OPENAPI_RESPONSE_DESCRIPTION,
        tags: list[str] | None = None,
        operation_id: str | None = None,
        include_in_schema: bool = True,
        security: list[dict[str, list[str]]] | None = None,
        openapi_extensions: dict[str, Any] | None = None,
        deprecated: bool = False,
        enable_validation: bool | None = None,
        custom_response_validation_http_code: int | HTTPStatus | None = None,
        status_code: int = DEFAULT_STATUS_CODE,
        middlewares: list[Callable[..., Any]] | None = None,
    ) -> Callable[[AnyCallableT], AnyCallableT]:
        register = super().route
        dialect = self.dialect_of(rule)

        def each_method(func: AnyCallableT) -> AnyCallableT:
            for one in (method,) if isinstance(method, str) else method:
                key = _route_key(one, rule)
                self.route_keys.add(key)
                public = key in self.public_routes
                register(
                    rule,
                    one,
                    cors,
                    compress,
                    cache_control,
                    summary,
                    description or _docstring(func),
                    openapi.operation_responses(
                        dialect,
                        responses,
                        status_code=status_code,
                        description=response_description,
                        public=public,
                        gated=dialect.app_calls and not public and key not in dialect.open_in_maintenance,
                    ),
                    response_description,
                    tags or [dialect.name],
                    operation_id,
                    include_in_schema,
                    security if security is not None or public else openapi.security_of(dialect),
                    openapi_extensions,
                    deprecated,
                    enable_validation,
                    custom_response_validation_http_code,
                    status_code,
                    middlewares,
                )(func)
            return func

        return each_method

    def get_openapi_schema(self, **kw: Any) -> Any:
        """powertools' schema, with the three token headers as security schemes (the routes name them)."""
        for key, ours, theirs in (
            ("title", openapi.TITLE, DEFAULT_OPENAPI_TITLE),
            ("version", VERSION, DEFAULT_API_VERSION),
        ):
            if kw.get(key) in (None, theirs):
                kw[key] = ours
        kw["security_schemes"] = kw.get("security_schemes") or openapi.security_schemes()
        return super().get_openapi_schema(**kw)

    def get_openapi_json_schema(self, **kw: Any) -> str:
        """The schema as JSON, without powertools' 422 `HTTPValidationError`, with the 415 of JSON bodies."""
        doc = json.loads(super().get_openapi_json_schema(**kw))
        json_bodies = {
            (r.openapi_path, r.method.lower())
            for r in self._static_routes + self._dynamic_routes
            if r.include_in_schema and self.dialect_of(r.path).checks_json_type and _takes_json(r)
        }
        return json.dumps(openapi.tidy(doc, json_bodies), indent=2)


def _takes_json(route: Route) -> bool:
    """Whether a route reads a JSON body: a body model, or a JSON body it reads itself (`openapi_extensions`)."""
    media = ((route.openapi_extensions or {}).get("requestBody") or {}).get("content") or {}
    return bool(route.dependant.body_params) or content_types.APPLICATION_JSON in media


def _route_key(method: str, rule: str) -> str:
    """API Gateway's route key of a powertools rule: `POST /a/<b>` -> `POST /a/{b}`."""
    path = re.sub(r"<(\w+)>", r"{\1}", rule)
    return f"{method.upper()} {path}"


def _docstring(func: Callable[..., Any]) -> str | None:
    return (func.__doc__ or "").strip() or None


def dialect_app(
    dialect: Dialect,
    *,
    public_routes: frozenset[str] = frozenset(),
    internal_messages: dict[str, str] | None = None,
    elsewhere: Mapping[str, Dialect] | None = None,
) -> APIGatewayHttpResolver:
    """A resolver whose validation, domain and unexpected errors all come out in `dialect`'s format
    (or, under a prefix of `elsewhere`, in that prefix's dialect's).

    `internal_messages` gives a route (its route key) the message its spec prints for a 500.
    """
    app = DialectResolver(dialect, public_routes, elsewhere)
    if any(d.json_type != content_types.APPLICATION_JSON for d in (dialect, *app.elsewhere.values())):
        app.use(middlewares=[_json_type])
    if any(d.app_calls for d in (dialect, *app.elsewhere.values())):
        app.use(middlewares=[_app_call])
    _domain_errors(app)
    _request_errors(app)
    _unexpected_errors(app, internal_messages or {})
    return app


def _event(app: DialectResolver) -> dict[str, Any]:
    return app.current_event.raw_event


def _speaking(app: DialectResolver) -> Dialect:
    """The dialect of the request being answered."""
    return app.dialect_of(str(_event(app).get("rawPath") or ""))


def _json_type(app: DialectResolver, next_middleware: NextMiddleware) -> Response:
    # Routes answer plain JSON; the dialect says how its Content-Type is spelled.
    answer = next_middleware(app)
    if answer.headers.get("Content-Type") == content_types.APPLICATION_JSON:
        answer.headers["Content-Type"] = _speaking(app).json_type
    return answer


def _app_call(app: DialectResolver, next_middleware: NextMiddleware) -> Response:
    """An app's REST call (a route of the runtime dialect that takes a token): its caller authenticated once
    (a 401 otherwise), a 503 while the app is in maintenance (but what a developer needs to end it), and its
    request line in the app's logs, with what it changed riding on it: one item, written after the route,
    whatever it answered. A public route (the login, a shared link) has no caller: the login gates itself."""
    route = app.context.get("_route")  # the route powertools matched (its rule as registered), or its 404's
    method = str(getattr(route, "method", ""))
    key = _route_key(method, str(getattr(route, "path", "")))
    dialect = _speaking(app)
    if not dialect.app_calls or key not in app.route_keys or key in app.public_routes:
        return next_middleware(app)  # another dialect's, no route (the 404), or public
    event = _event(app)
    built = core()
    caller = built.identity.authenticate(request_token(event))
    if key not in dialect.open_in_maintenance:
        built.maintenance.admit(caller)
    gated = _GATED.set(caller)
    logged = key not in dialect.unlogged
    if logged:
        path = str(event.get("rawPath") or "")
        built.app.logs.open_request(
            caller,
            method,
            path[path.find("/api/") :] if "/api/" in path else path,  # from the runtime's root, as Slingr's
            str(event.get("rawQueryString") or ""),
            app.current_event.request_context.http.source_ip,
        )
    try:
        return next_middleware(app)
    finally:
        _GATED.reset(gated)
        if logged:
            built.app.logs.close_request()


def _domain_errors(app: DialectResolver) -> None:
    @app.exception_handler(BackroomError)
    def domain_error(err: BackroomError) -> Response:
        answer = _speaking(app).error(err.status, err, _event(app))
        retry_after = getattr(err, "retry_after", None)
        if retry_after is not None:  # a 429 or 503 that passes: when to try again
            answer.headers["Retry-After"] = str(retry_after)
        return answer


def _refused(app: DialectResolver) -> Response | None:
    """A 401 where a route needs a token the request lacks: validation runs before the route's dependencies,
    and a caller without a valid token learns that first, nothing about the shape of a request it may not make."""
    event = _event(app)
    if event.get("routeKey") not in app.public_routes:
        try:
            core().identity.authenticate(request_token(event))
        except Unauthorized as err:
            return _speaking(app).error(401, err, event)
    return None


def _request_errors(app: DialectResolver) -> None:
    @app.exception_handler(RequestValidationError)
    def validation_error(exc: RequestValidationError) -> Response:
        if (answer := _refused(app)) is not None:
            return answer
        errors = _field_errors(exc)
        message = "Malformed request: " + "; ".join(f"{e.field} {e.message}" for e in errors)
        return _speaking(app).error(400, Invalid(message, errors=errors), _event(app))

    @app.exception_handler(RequestUnsupportedContentType)
    def unsupported_type(exc: RequestUnsupportedContentType) -> Response:
        if (answer := _refused(app)) is not None:
            return answer
        return _speaking(app).error(415, UnsupportedMediaType(not_json(_event(app))), _event(app))

    @app.exception_handler(NotFoundError)
    def no_route(_: NotFoundError) -> Response:
        return _speaking(app).error(404, NotFound("No such resource"), _event(app))


def _unexpected_errors(app: DialectResolver, said: dict[str, str]) -> None:
    @app.exception_handler(RecursionError)
    def too_deep(_: RecursionError) -> Response:
        # Only a caller's input nests deeply enough to exhaust the stack (a JSON body a route parses
        # itself, a CSV parser's records): their mistake, a 400; the log keeps where it happened.
        logger.warning("recursion limit reached on a request", exc_info=True)
        return _speaking(app).error(400, Invalid("The request is nested too deeply to read"), _event(app))

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response:
        logger.exception("unexpected error")
        message = said.get(_event(app).get("routeKey", ""), "Internal error")
        return _speaking(app).error(500, BackroomError(message), _event(app))
