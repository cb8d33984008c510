"""A powertools resolver per function, speaking one dialect for every error it can raise."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.request import Request

from backroom.api.dialects import Dialect, request_token
from backroom.errors import BackroomError, FieldError, Invalid, NotFound, Unauthorized
from backroom.identity.models import Caller
from backroom.services import services

logger = Logger(service="backroom")


def authenticated(request: Request) -> Caller:
    return services().identity.authenticate(request_token(request.resolved_event.raw_event))


CurrentCaller = Annotated[Caller, Depends(authenticated)]


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    errors = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")]
        name = ".".join(loc) or "body"
        errors.append(FieldError(field=name, message=str(e.get("msg", "is not valid")), code="INVALID"))
    return errors


def dialect_app(
    dialect: Dialect,
    *,
    public_routes: frozenset[str] = frozenset(),
    internal_messages: dict[str, str] | None = None,
) -> APIGatewayHttpResolver:
    """A resolver whose validation, domain and unexpected errors all come out in `dialect`'s format.

    `internal_messages` gives a route (its route key) the message its spec prints for a 500.
    """
    said = internal_messages or {}
    app = APIGatewayHttpResolver(enable_validation=True)

    def event() -> dict[str, Any]:
        return app.current_event.raw_event

    if dialect.json_type != content_types.APPLICATION_JSON:

        def json_type(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
            # Routes answer plain JSON; the dialect says how its Content-Type is spelled.
            answer = next_middleware(app)
            if answer.headers.get("Content-Type") == content_types.APPLICATION_JSON:
                answer.headers["Content-Type"] = dialect.json_type
            return answer

        app.use(middlewares=[json_type])

    @app.exception_handler(BackroomError)
    def domain_error(err: BackroomError) -> Response:
        return dialect.error(err.status, err, event())

    @app.exception_handler(RequestValidationError)
    def validation_error(exc: RequestValidationError) -> Response:
        # Validation runs before the route's dependencies: a caller without a valid token learns
        # that first, and nothing about the shape of a request it may not make.
        if event().get("routeKey") not in public_routes:
            try:
                services().identity.authenticate(request_token(event()))
            except Unauthorized as err:
                return dialect.error(401, err, event())
        errors = _field_errors(exc)
        message = "Malformed request: " + "; ".join(f"{e.field} {e.message}" for e in errors)
        return dialect.error(400, Invalid(message, errors=errors), event())

    @app.exception_handler(NotFoundError)
    def no_route(_: NotFoundError) -> Response:
        return dialect.error(404, NotFound("No such resource"), event())

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response:
        logger.exception("unexpected error")
        message = said.get(event().get("routeKey", ""), "Internal error")
        return dialect.error(500, BackroomError(message), event())

    return app
