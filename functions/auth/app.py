"""Auth facade: `POST /runtime/api/auth/login` (impersonation and a password's change included), logout
in each dialect, and the runtime's users (`/runtime/api/users`: here, where passwords are hashed).

Logout ends the token a request carries, as each dialect's own clients would ask: the runtime's
`POST /runtime/api/auth/logout` (a sibling of its login), Kazoo's `DELETE /v2/token_auth`, and the
gateway's `POST /gateway/auth/v1/logout` (Spring Security's `POST /logout`, under the gateway's
`/<service>/v1` paths). Each answers in its own dialect, errors included.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseHeader
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import GatewayDialect, RuntimeDialect, TasksDialect
from backroom.api.openapi import JSON, ref
from backroom.api.resolver import CurrentCaller, dialect_app
from backroom.api.runtime import LineOffset, PageSize, last_values, query_params
from backroom.api.runtime_users import (
    CreatedUserView,
    CurrentUserView,
    NewUser,
    PasswordView,
    UserChange,
    UserPageView,
    UserView,
)
from backroom.app.users import AppUsers
from backroom.config import require
from backroom.errors import Unavailable
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
    newPassword: str | None = Field(
        default=None,
        min_length=12,
        max_length=1024,
        description="Replaces the password (required when it is a one-time password); not the same as it",
    )


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
        400: {"description": "newPassword is shorter than 12 characters, or the same as password"},
        401: {"description": "Invalid credentials (also a deactivated user's good password)"},
        403: {
            "description": "Only developers and members of a group with the flag to manage groups may impersonate"
            " (those, users only, not developers); or `passwordChangeRequired`: the password"
            " is a one-time password, to log in again with `newPassword` (no session is opened)"
        },
        404: {"description": "The user to impersonate does not exist"},
        409: {"description": "The user (or its password) changed while logging in; log in again"},
        429: {
            "description": "Too many failed logins for this account or from this address: no password is checked"
            " until `Retry-After` seconds have passed",
            "headers": _RETRY_AFTER,
        },
        503: {
            "description": "The app is in maintenance and the user is not a developer (`serviceUnavailable`, no"
            " session opened); or this instance is checking as many passwords as it may at once: try again after"
            " `Retry-After` seconds",
            "headers": _RETRY_AFTER,
        },
    },
)
def login(body: LoginRequest) -> LoginResponse:
    ip = app.current_event.request_context.http.source_ip
    session = core().identity.login(
        body.email, body.password, impersonate=body.emailImpersonatedUser, ip=ip, new_password=body.newPassword
    )
    caller = session.caller
    try:
        core().maintenance.admit_login(caller)  # in maintenance, only a developer's session stays open
    except Unavailable:
        core().identity.logout(session.token)
        raise
    core().app.logs.login(caller, ip)  # the app's log line of the login (`POST /login`, `subType: LOGIN`)
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
    adminUserEmail: str | None = Field(description="The user who was impersonating (a developer or a group manager)")


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


# Users -----------------------------------------------------------------------
UserId = Annotated[str, Path(min_length=1, max_length=64, description="The user's id (24 hex digits)")]
_DEVELOPERS: dict[int, OpenAPIResponse] = {403: {"description": "The caller is not a developer"}}
_ONE: dict[int, OpenAPIResponse] = {
    **_DEVELOPERS,
    404: {"description": "No such user in the caller's reach (its account and those below it)"},
}

_GROUPS_INVALID = (
    "A field is not valid, or names a group the app does not define,"
    " or one that would show the user, in a label, a field it may not read"
)


def _users() -> AppUsers:
    built = core()
    return AppUsers(built.identity, built.grants, built.app.logs)


def _ip() -> str | None:
    return app.current_event.request_context.http.source_ip


@app.get("/runtime/api/users", responses={**_DEVELOPERS, 400: {"description": "_size or _offset is not valid"}})
def list_users(caller: CurrentCaller, size: PageSize = None, offset: LineOffset = None) -> UserPageView:
    """The users the caller reaches (of its account and those below it), by e-mail (developers only)."""
    page = _users().page(caller, last_values(query_params(app.current_event.raw_event)))
    return UserPageView(total=page.total, offset=page.offset, items=[UserView.of(u) for u in page.users])


@app.post(
    "/runtime/api/users",
    status_code=201,
    response_description="The user, and its one-time password (shown once)",
    responses={
        **_DEVELOPERS,
        400: {"description": _GROUPS_INVALID},
        404: {"description": "The account is not one the caller reaches"},
        409: {"description": "The e-mail is taken (e-mails are unique across tenants; whose it is, is not said)"},
    },
)
def create_user(caller: CurrentCaller, body: NewUser) -> CreatedUserView:
    """A user of the caller's tenant, with a one-time password its first login must replace."""
    user, password = _users().create(
        caller,
        email=body.email,
        name=body.name,
        role=body.role,
        groups=body.groups,
        account_id=body.account,
        ip=_ip(),
    )
    return CreatedUserView(**UserView.of(user).model_dump(), password=password)


# Registered before `/<user_id>`: powertools tries dynamic routes in order, as API Gateway prefers the literal.
@app.get("/runtime/api/users/current")
def current_user(caller: CurrentCaller) -> CurrentUserView:
    """The caller's own user, any role (`impersonatedBy`: the developer impersonating it)."""
    return CurrentUserView.of_caller(_users().current(caller), caller)


@app.get("/runtime/api/users/<user_id>", responses=_ONE)
def get_user(user_id: UserId, caller: CurrentCaller) -> UserView:
    return UserView.of(_users().get(caller, user_id))


@app.put(
    "/runtime/api/users/<user_id>",
    responses={**_ONE, 400: {"description": _GROUPS_INVALID}},
)
def update_user(user_id: UserId, caller: CurrentCaller, body: UserChange) -> UserView:
    """Change a user's name, role or groups; a change of name or role ends its sessions, of groups
    changes its permissions at once."""
    users = _users()
    return UserView.of(users.update(caller, user_id, name=body.name, role=body.role, groups=body.groups, ip=_ip()))


@app.put("/runtime/api/users/<user_id>/deactivate", responses={**_ONE, 400: {"description": "The caller itself"}})
def deactivate_user(user_id: UserId, caller: CurrentCaller) -> UserView:
    """The user keeps its data and cannot log in; its sessions end at once."""
    return UserView.of(_users().deactivate(caller, user_id, _ip()))


@app.put("/runtime/api/users/<user_id>/reactivate", responses=_ONE)
def reactivate_user(user_id: UserId, caller: CurrentCaller) -> UserView:
    return UserView.of(_users().reactivate(caller, user_id, _ip()))


@app.post("/runtime/api/users/<user_id>/resetPassword", responses=_ONE)
def reset_password(user_id: UserId, caller: CurrentCaller) -> PasswordView:
    """A new one-time password (shown once; the next login must replace it); the user's sessions end."""
    return PasswordView(password=_users().reset_password(caller, user_id, _ip()))


@http_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
