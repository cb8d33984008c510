"""The dialects' bodies as the OpenAPI document shows them: pydantic models, loaded only to build it.

`backroom.api.dialects` writes these bodies; the models describe them (and carry the specs' examples)
without being on the request path, so that a cold start does not pay for them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backroom.api.dialects import RUNTIME_CODES, VERSION

_CODES: list[Any] = sorted({*RUNTIME_CODES.values(), "error"})


# The bodies each dialect answers an error with, as the OpenAPI document shows them.
class RuntimeFieldError(BaseModel):
    field: str
    code: str
    message: str


class RuntimeErrorBody(BaseModel):
    """The runtime dialect's error: `{code, message, errors?}`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "validationErrors",
                    "message": "Malformed request: email String should have at least 1 character",
                    "errors": [
                        {"field": "email", "code": "INVALID", "message": "String should have at least 1 character"}
                    ],
                },
                {"code": "unauthorized", "message": "The token is not valid or has expired"},
            ]
        },
    )

    code: str = Field(json_schema_extra={"enum": _CODES})
    message: str
    errors: list[RuntimeFieldError] = Field(default_factory=list, description="Absent when no field is at fault")


class SpringErrorBody(BaseModel):
    """The gateway dialect's error, as Spring Boot writes it: `{timestamp, status, error, message, details?, path}`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "timestamp": 1617844256781,
                    "status": 404,
                    "error": "Not Found",
                    "message": "Could not find Custom Table with name test_table_name",
                    "path": "/v1/custom-tables/test_table_name",
                },
                {
                    "timestamp": 1617844256715,
                    "status": 422,
                    "error": "Unprocessable Entity",
                    "message": "Unable to execute the extract.",
                    "details": ["The following fields do not belong to test_table_name: field1"],
                    "path": "/v1/custom-tables/test_table_name",
                },
            ]
        },
    )

    timestamp: int = Field(description="Milliseconds since the epoch")
    status: int = Field(ge=400, le=599)
    error: str = Field(description="The status's reason phrase")
    message: str
    details: list[str] = Field(default_factory=list, description="Absent when there is nothing more to say")
    path: str = Field(description="The path as the service sees it, without /gateway/<service>")


class KazooErrorBody(BaseModel):
    """The tasks dialect's error: Kazoo's envelope with `status: "error"` and the status code in `error`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "auth_token": "{AUTH_TOKEN}",
                    "data": ["{CATEGORY}"],
                    "error": "404",
                    "message": "bad identifier",
                    "request_id": "{REQUEST_ID}",
                    "status": "error",
                    "node": "tasks@backroom",
                    "timestamp": "2017-05-01T20:31:35Z",
                    "version": VERSION,
                },
                {
                    "auth_token": "{AUTH_TOKEN}",
                    "data": {"message": "invalid request"},
                    "error": "500",
                    "message": "invalid request",
                    "request_id": "{REQUEST_ID}",
                    "status": "error",
                    "node": "tasks@backroom",
                    "timestamp": "2017-05-01T20:31:35Z",
                    "version": VERSION,
                },
            ]
        },
    )

    auth_token: str = Field(description="The token the request carried (empty without one)")
    data: Any = Field(description="What went wrong: `{message}` or the specifics Kazoo gives")
    error: str = Field(pattern=r"^[45][0-9][0-9]$", description="The status code, as a string")
    message: str
    request_id: str
    status: Literal["error"]
    node: str
    timestamp: str
    version: str


class KazooEnvelope(BaseModel):
    """The tasks dialect's success: Kazoo's envelope around `data`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "auth_token": "{AUTH_TOKEN}",
                    "data": {
                        "_read_only": {
                            "account_id": "{ACCOUNT_ID}",
                            "auth_account_id": "{AUTH_ACCOUNT_ID}",
                            "action": "add",
                            "category": "number_management",
                            "id": "edfb48ea9617fa6832e43ce676c53f",
                            "submit_timestamp": 63632025993,
                            "total_count": 1,
                        }
                    },
                    "request_id": "{REQUEST_ID}",
                    "revision": "{REVISION}",
                    "status": "success",
                    "node": "tasks@backroom",
                    "timestamp": "2017-05-01T20:31:35Z",
                    "version": VERSION,
                }
            ]
        },
    )

    auth_token: str
    data: Any
    request_id: str
    revision: str = Field(description="The MD5 of `data`")
    status: Literal["success"]
    node: str
    timestamp: str
    version: str
    page_size: int | None = Field(default=None, description="Listings: how many tasks `data` holds")
    start_key: str | None = Field(default=None, description="Listings: the `start_key` asked for")
    next_start_key: str | None = Field(default=None, description="Listings: the `start_key` of the next page")
