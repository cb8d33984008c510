"""Domain exceptions raised by the core; each dialect maps them to its own status and body."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass
class FieldError:
    """One field at fault. `code` is the core's name for the fault, in camelCase (`required`, `notFound`)."""

    field: str
    message: str
    code: str = "invalid"

    @property
    def shown_code(self) -> str:
        """The code as callers see it, in the one style the runtime spec prints (`INVALID`): upper snake
        case (`notFound` -> `NOT_FOUND`), in the error body and the logs alike."""
        return _WORD_START.sub("_", self.code).upper()


class BackroomError(Exception):
    """Base of every error a caller can cause or see."""

    status = 500
    # The dialect's code for this very error, where it names one (the runtime's `code`; else the status's).
    code: str | None = None

    def __init__(self, message: str, *, details: list[str] | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.data = data


class Invalid(BackroomError):
    """The request is malformed or a field fails its check (400)."""

    status = 400

    def __init__(self, message: str, *, errors: list[FieldError] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.errors = errors or []


class Unauthorized(BackroomError):
    status = 401


class Forbidden(BackroomError):
    status = 403


class PasswordChangeRequired(Forbidden):
    """A good one-time password given without a new one: the login must set it (403, no session)."""

    code = "passwordChangeRequired"


class NotFound(BackroomError):
    status = 404


class NotAcceptable(BackroomError):
    """The answer cannot take the form the caller asked for (406): a file served only by a redirect, to a
    caller that said it follows none."""

    status = 406
    code = "notAcceptable"


class Conflict(BackroomError):
    """A version or state precondition failed (409)."""

    status = 409


class UnsupportedMediaType(BackroomError):
    """A body whose Content-Type is not the one the route reads (415): JSON sent as text/plain, or unnamed."""

    status = 415


class Unprocessable(BackroomError):
    """The thing exists but the request breaks a rule (422)."""

    status = 422


class Unavailable(BackroomError):
    status = 503


class TooManyRequests(BackroomError):
    """Too many attempts (429); the next may come in `retry_after` seconds (the `Retry-After` header)."""

    status = 429

    def __init__(self, message: str, *, retry_after: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = max(1, retry_after)


class Overloaded(Unavailable):
    """This instance has no room for the work now (503); `retry_after` seconds is a fair wait."""

    def __init__(self, message: str, *, retry_after: int = 1, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = max(1, retry_after)


class ServiceFailure(Exception):
    """A request that DynamoDB, S3 or SQS failed or refused for a reason the caller did not cause
    (throttling, an outage, a permission): the service's 500, and a job's message that comes back.

    Repositories raise it in place of the client's own error, so nothing above them knows the SDK;
    `code` is the service's error code (`TransactionConflictException`, `ServiceUnavailable`...).
    """

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
