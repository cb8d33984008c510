"""Auth facade (runtime dialect): `POST /runtime/api/auth/login`, impersonation included."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import RuntimeDialect
from backroom.api.resolver import dialect_app
from backroom.services import services
from backroom.tracing import Tracer
from pydantic import BaseModel, ConfigDict, Field

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = dialect_app(RuntimeDialect(), public_routes=frozenset({"POST /runtime/api/auth/login"}))


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
        401: {"description": "Invalid credentials"},
        403: {"description": "Only developers may impersonate other users"},
        404: {"description": "The user to impersonate does not exist"},
    },
)
def login(body: LoginRequest) -> LoginResponse:
    ip = app.current_event.request_context.http.source_ip
    session = services().identity.login(body.email, body.password, impersonate=body.emailImpersonatedUser, ip=ip)
    caller = session.caller
    services().app.logs.login(caller, ip)  # the app's log line of the login (`subType: LOGIN`)
    return LoginResponse(
        app=services().settings.app_name,
        adminUserEmail=caller.admin_email,
        ip=session.ip,
        userEmail=caller.email,
        userName=caller.name,
        userId=caller.user_id,
        token=session.token,
        accountId=caller.account_id,
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
