"""Auth facade (runtime dialect): `POST /runtime/api/auth/login`, impersonation included."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import RuntimeDialect
from backroom.api.resolver import dialect_app
from backroom.services import services
from pydantic import BaseModel, Field

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = dialect_app(RuntimeDialect(), public_routes=frozenset({"POST /runtime/api/auth/login"}))


class LoginRequest(BaseModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    emailImpersonatedUser: str | None = Field(default=None, max_length=320)


class LoginResponse(BaseModel):
    app: str
    adminUserEmail: str | None
    ip: str | None
    userEmail: str
    userName: str
    userId: str
    token: str
    accountId: str


@app.post("/runtime/api/auth/login")
def login(body: LoginRequest) -> LoginResponse:
    ip = app.current_event.request_context.http.source_ip
    session = services().identity.login(body.email, body.password, impersonate=body.emailImpersonatedUser, ip=ip)
    caller = session.caller
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
