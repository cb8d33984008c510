"""Auth facade: `POST /runtime/api/auth/login` (impersonation included), and logout in each dialect.

Logout ends the token a request carries, as each dialect's own clients would ask: the runtime's
`POST /runtime/api/auth/logout` (a sibling of its login), Kazoo's `DELETE /v2/token_auth`, and the
gateway's `POST /gateway/auth/v1/logout` (Spring Security's `POST /logout`, under the gateway's
`/<service>/v1` paths). Each answers in its own dialect, errors included.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponseHeader
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import GatewayDialect, RuntimeDialect, TasksDialect
from backroom.api.openapi import JSON, ref
from backroom.api.resolver import CurrentCaller, dialect_app
from backroom.config import require
from backroom.observability import http_handler
from backroom.wiring import core
from pydantic import BaseModel, ConfigDict, Field

# Fails at cold start, naming the variable, if the deployment left the table out.
require()
tasks = TasksDialect(node="auth@backroom")
app = dialect_app(
    RuntimeDialect(),
    public_routes=frozenset({"POST /runtime/api/auth/login"}),
    elsewhere={"/v2/": tasks, "/gateway/": GatewayDialect()},
)

_RETRY_AFTER: dict[str, OpenAPIResponseHeader] = {
    "Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}
}


class LoginRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "user@test.com", "password": "abcdefgh"}]})

    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    emailImpersonatedUser: str | None = Field(default=None, max_length=320)


class LoginResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "app": "appname",
                    "adminUserEmail": None,
                    "ip": "::ffff:10.240.0.38",
                    "userEmail": "user@test.com",
                    "userName": "User Test",
                    "userId": "57fce0c3e4b0ce322b0c06b2",
                    "token": "eLJjYSjLUPLlIEe8lfJUOmzsVNvSRpOv",
                    "accountId": "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b",
                }
            ]
        }
    )

    app: str
    adminUserEmail: str | None
    ip: str | None
    userEmail: str
    userName: str
    userId: str
    token: str
    accountId: str


@app.post(
    "/runtime/api/auth/login",
    responses={
        401: {"description": "Invalid credentials (also a deactivated user's good password)"},
        403: {"description": "Only developers may impersonate other users"},
        404: {"description": "The user to impersonate does not exist"},
        409: {"description": "The user changed while logging in; log in again"},
        429: {
            "description": "Too many failed logins for this account or from this address: no password is checked"
            " until `Retry-After` seconds have passed",
            "headers": _RETRY_AFTER,
        },
        503: {
            "description": "This instance is checking as many passwords as it may at once; try again after"
            " `Retry-After` seconds",
            "headers": _RETRY_AFTER,
        },
    },
)
def login(body: LoginRequest) -> LoginResponse:
    ip = app.current_event.request_context.http.source_ip
    session = core().identity.login(body.email, body.password, impersonate=body.emailImpersonatedUser, ip=ip)
    caller = session.caller
    core().app.logs.login(caller, ip)  # the app's log line of the login (`subType: LOGIN`)
    return LoginResponse(
        app=core().settings.app_name,
        adminUserEmail=caller.admin_email,
        ip=session.ip,
        userEmail=caller.email,
        userName=caller.name,
        userId=caller.user_id,
        token=session.token,
        accountId=caller.account_id,
    )


class LogoutResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"userEmail": "user@test.com", "adminUserEmail": None}]})

    userEmail: str = Field(description="Whose session ended")
    adminUserEmail: str | None = Field(description="The developer who was impersonating, if any")


@app.post("/runtime/api/auth/logout")
def logout(caller: CurrentCaller) -> LogoutResponse:
    """End the session of the request's token at once: from then on it is a 401 on every route."""
    core().identity.logout(caller.token)
    return LogoutResponse(userEmail=caller.email, adminUserEmail=caller.admin_email)


@app.delete(
    "/v2/token_auth",
    responses={
        200: {
            "description": "The token is deleted (Kazoo's envelope, `data` empty)",
            "content": {JSON: {"schema": ref("KazooEnvelope")}},
        }
    },
)
def delete_token(caller: CurrentCaller) -> Response[Any]:
    """Kazoo's logout: delete the auth token of the request (`X-Auth-Token`)."""
    core().identity.logout(caller.token)
    return tasks.envelope({}, app.current_event.raw_event)


@app.post("/gateway/auth/v1/logout", responses={204: {"description": "The token is revoked", "content": {}}})
def gateway_logout(caller: CurrentCaller) -> Response[Any]:
    """Revoke the bearer token of the request."""
    core().identity.logout(caller.token)
    return Response(status_code=204, body="")


@http_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
