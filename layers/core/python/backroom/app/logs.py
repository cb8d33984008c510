"""The app's logs: the lines an app writes (logins, each REST call's request line with what it changed,
failed validations, its actions' `log` calls, `POST /status/logs`), kept by time for `GET /status/logs`.

A REST call writes one line at most: the runtime dialect opens its request line (`GET /api/users/current`)
before the route runs and writes it after; what the call did (a record or a user changed, a write refused)
is a `note` that rides on that line (its `subType` and `additionalInfo`, as the spec's samples show them)
instead of a line of its own. Without an open request line (a job, the core called directly) a note is
its own line.

Where they sit (by tenant, hour and shard, with a marker per hour that has lines) is the repository's
(`AppLogStore` in `app/logstore.py`); this module says what a line holds and how a query reads them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from backroom.app.logstore import KEEP_DAYS, AppLogStore
from backroom.clock import now_ms, period_span
from backroom.dynamo import Write
from backroom.errors import BackroomError, FieldError, Forbidden, Invalid, ServiceFailure
from backroom.identity.models import Caller
from backroom.ids import object_id
from backroom.params import OFFSET_MOST, millis, whole

logger = logging.getLogger("app.logs")

LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
DAY_MS = 86_400_000
MAX_COUNTED = 20_000  # lines a query reads to count its total; past it `total` counts those read
MAX_READ = 100_000  # lines a query may read to fill its page (then 400: narrow the span), like a records query
MAX_SIZE = 1000
DEFAULT_SIZE = 20
NOTED_LABEL = 200  # characters of a record's label a request line's `additionalInfo` keeps: a line stays small
MAX_NOTED = 100  # entries a list of a request line's `additionalInfo` keeps (the records a delete of many changed)
_SHOWN = ("id", "type", "subType", "level", "message", "userEmail", "adminUserEmail", "timestamp", "ip")


@dataclass
class LogLine:
    message: str
    level: str = "INFO"
    user: str = ""
    additional_info: dict[str, Any] = field(default_factory=dict)
    type: str = "APP"
    at: int = field(default_factory=now_ms)
    sub_type: str | None = None
    admin_user: str | None = None
    ip: str | None = None


@dataclass
class LogQuery:
    """`GET /status/logs` checked: a span of time (epoch ms, both ends included) and the filters."""

    since: int
    until: int
    user: str | None = None
    levels: frozenset[str] | None = None
    message: str | None = None
    size: int = DEFAULT_SIZE
    offset: int = 0

    def matches(self, item: Mapping[str, Any]) -> bool:
        if self.levels is not None and item.get("level") not in self.levels:
            return False
        if self.user and self.user not in str(item.get("userEmail") or "").lower():
            return False
        return not (self.message and self.message not in str(item.get("message") or "").lower())


def view(item: Mapping[str, Any]) -> dict[str, Any]:
    """A line as the runtime spec shows it (`additionalInfo` only when the line has some)."""
    shown = {k: item.get(k) for k in _SHOWN}
    shown["timestamp"] = int(item.get("timestamp") or 0)
    shown["userEmail"] = shown["userEmail"] or None
    if item.get("additionalInfo"):
        shown["additionalInfo"] = item["additionalInfo"]
    return shown


@dataclass
class _Call:
    """The REST call being answered: its tenant, its request line, and the lines of what it changed."""

    tenant_id: str
    line: LogLine
    changes: list[LogLine] = field(default_factory=list)


# The call being answered: per thread (and task), so one request's line never takes another's notes;
# Lambda answers one request at a time per container anyway.
_OPEN: ContextVar[_Call | None] = ContextVar("backroom_request_line", default=None)


def _ride(call: _Call, note: LogLine, *, replaces: bool) -> None:
    """`note` on the call, as the spec's samples show Slingr's: a change gives the request line its
    subType (and the records in its `additionalInfo`, lists adding up to `MAX_NOTED`) and follows it as
    a line of its own, without subType or ip (the first `MAX_NOTED` of a call); a refused write's line
    (`replaces`) is the call's line instead of its request."""
    if replaces:
        call.line = note
        return
    request = call.line
    request.sub_type = note.sub_type
    for key, value in note.additional_info.items():
        held = request.additional_info.get(key)
        if isinstance(held, list) and isinstance(value, list):
            request.additional_info[key] = (held + value)[:MAX_NOTED]
        else:
            request.additional_info[key] = value
    if len(call.changes) < MAX_NOTED:
        call.changes.append(LogLine(message=note.message, level=note.level, user=note.user, at=note.at))


class AppLogs:
    def __init__(self, store: AppLogStore) -> None:
        self.store = store

    def write_of(self, tenant_id: str, line: LogLine) -> Write:
        """The item of one line, to write alone or in the transaction of what it reports."""
        lid = object_id()
        fields = {
            "id": lid,
            "timestamp": line.at,
            "level": line.level if line.level in LEVELS else "INFO",
            "type": line.type,
            "subType": line.sub_type,
            "message": line.message[:10_000],
            "userEmail": line.user,
            "adminUserEmail": line.admin_user,
            "ip": line.ip,
            "additionalInfo": line.additional_info,
        }
        return self.store.write_of(tenant_id, lid, line.at, fields)

    def add(self, tenant_id: str, lines: Sequence[LogLine]) -> None:
        self.store.put_many([self.write_of(tenant_id, line) for line in lines])

    def login(self, caller: Caller, ip: str | None) -> None:
        self.add(caller.tenant_id, [login_line(caller.email, caller.admin_email, ip)])

    # A REST call's line ----------------------------------------------------
    def open_request(self, caller: Caller, method: str, path: str, query: str, ip: str | None) -> None:
        """Open the line of the call being answered (`close_request` writes it); `path` is the runtime's."""
        _OPEN.set(_Call(caller.tenant_id, request_line(method, path, query, caller=caller, ip=ip)))

    def note(self, tenant_id: str, line: LogLine, *, replaces: bool = False) -> None:
        """What a call did: on its request line when one is open for the tenant (`_ride`), else a line of
        its own."""
        call = _OPEN.get()
        if call is None or call.tenant_id != tenant_id:
            self.add(tenant_id, [line])
            return
        _ride(call, line, replaces=replaces)

    def close_request(self, *, write: bool = True) -> None:
        """Write the open call's lines (its request line and those of its changes, in one batch write, no
        read), unless `write` is False (a call refused before it ran).

        Lines DynamoDB will not take now are reported in the function's own log, never as the call's
        failure: the call's work is done, and an error would have its caller send a committed write again."""
        call = _OPEN.get()
        _OPEN.set(None)
        if call is not None and write:
            try:
                self.add(call.tenant_id, [call.line, *call.changes])
            except (ServiceFailure, BackroomError):
                logger.exception("the lines of a call could not be written to the app's logs")

    def post(self, tenant_id: str, line: LogLine) -> dict[str, Any]:
        """Write one line and answer it as the spec shows it."""
        write = self.write_of(tenant_id, line)
        self.store.put(write)
        return view(write.item or {})

    # Reading -------------------------------------------------------------
    def lines(self, tenant_id: str, since: int, until: int) -> list[dict[str, Any]]:
        """The lines written from `since` to `until` (epoch ms, both included), newest first."""
        return list(self.store.newest_first(tenant_id, since, until))

    def find(self, tenant_id: str, query: LogQuery) -> dict[str, Any]:
        """`{total, offset, items}`: a page of the matching lines, newest first; `offset` is where the next
        page starts (None on the last). Once the page is full, `total` counts what `MAX_COUNTED` lines hold;
        a page the newest `MAX_READ` lines of the span cannot fill is a 400 (narrow the span)."""
        wanted = query.offset + query.size
        page: list[dict[str, Any]] = []
        total = 0
        for read, item in enumerate(self.store.newest_first(tenant_id, query.since, query.until), start=1):
            if query.matches(item):
                total += 1
                if query.offset < total <= wanted:
                    page.append(view(item))
            if total > wanted and read >= MAX_COUNTED:
                break
            if read >= MAX_READ and total < wanted:
                message = f"The query reads more than {MAX_READ} log lines; narrow it with period, or from and to"
                raise Invalid(message, errors=[FieldError("from", message, "tooBroad")])
        return {"total": total, "offset": wanted if total > wanted else None, "items": page}


# The API's requests ------------------------------------------------------------
def read_logs(logs: AppLogs, caller: Caller, params: Mapping[str, str]) -> dict[str, Any]:
    """`GET /status/logs`: developers only."""
    if not caller.is_developer:
        raise Forbidden("Only developers may read the app's logs")
    return logs.find(caller.tenant_id, log_query(params, now_ms()))


def post_log(logs: AppLogs, caller: Caller, body: Any, ip: str | None) -> dict[str, Any]:
    """`POST /status/logs`: developers only; the line is of type EXTERNAL."""
    if not caller.is_developer:
        raise Forbidden("Only developers may write to the app's logs")
    line = posted_line(body, user=caller.email, admin_user=caller.admin_email, ip=ip)
    return logs.post(caller.tenant_id, line)


# Checking a query --------------------------------------------------------------


def log_query(params: Mapping[str, str], now: int) -> LogQuery:
    """`GET /status/logs`'s parameters checked; a `period` wins over `from` and `to`."""
    unknown = sorted(set(params) - {"userEmail", "period", "from", "to", "level", "message", "_size", "_offset"})
    if unknown:
        raise Invalid(f"Unknown parameter: {', '.join(unknown)[:100]}")
    if params.get("period"):
        since, until = period_span(str(params["period"]), now)
    else:
        start = millis(params.get("from"), "from")
        end = millis(params.get("to"), "to")
        since = now - KEEP_DAYS * DAY_MS if start is None else start
        until = now if end is None else end
        if since > until:
            raise Invalid("from must not be after to", errors=[FieldError("from", "from is after to", "invalid")])
    levels = None
    if params.get("level"):
        levels = frozenset(v.strip().upper() for v in str(params["level"]).split(",") if v.strip())
        wrong = sorted(levels - set(LEVELS))
        if wrong:
            message = f"level must be among {', '.join(LEVELS)}: {wrong[0][:20]} is not"
            raise Invalid(message, errors=[FieldError("level", message, "invalid")])
    return LogQuery(
        since=since,
        until=until,
        user=str(params.get("userEmail") or "").strip().lower() or None,
        levels=levels,
        message=str(params.get("message") or "").lower() or None,
        size=whole(params.get("_size"), "_size", 1, MAX_SIZE) or DEFAULT_SIZE,
        offset=whole(params.get("_offset"), "_offset", 0, OFFSET_MOST) or 0,
    )


def posted_line(body: Any, *, user: str, admin_user: str | None, ip: str | None) -> LogLine:
    """`POST /status/logs`'s body checked: `level` and `message` required, `additionalInfo` an object."""
    if not isinstance(body, dict):
        raise Invalid("The body must be a JSON object with level and message")
    errors: list[FieldError] = []
    level, message, info = body.get("level"), body.get("message"), body.get("additionalInfo")
    if not isinstance(level, str) or level.upper() not in LEVELS:
        errors.append(FieldError("level", f"level is required and must be one of {', '.join(LEVELS)}", "invalid"))
    if not isinstance(message, str) or not message.strip():
        errors.append(FieldError("message", "message is required and must be text", "required"))
    if info is not None and not isinstance(info, dict):
        errors.append(FieldError("additionalInfo", "additionalInfo must be an object", "invalid"))
    unknown = sorted(set(body) - {"level", "message", "additionalInfo"})
    errors += [FieldError(n[:60], f"{n[:60]} is not a field of a log", "unknown") for n in unknown]
    if errors:
        raise Invalid("Validation error", errors=errors)
    assert isinstance(level, str) and isinstance(message, str)
    return LogLine(
        message=message,
        level=level.upper(),
        user=user,
        admin_user=admin_user,
        ip=ip,
        type="EXTERNAL",
        additional_info=dict(info or {}),
    )


def login_line(user: str, admin_user: str | None, ip: str | None) -> LogLine:
    """A runtime login, as the spec's sample shows it."""
    return LogLine(message="POST /login", user=user, admin_user=admin_user, sub_type="LOGIN", ip=ip)


def request_line(method: str, path: str, query: str, *, caller: Caller, ip: str | None) -> LogLine:
    """A REST call as the spec's samples log it: `GET /api/users/57fce0c3e4b0ce322b0c06b2?appsVersion=true`,
    the path from the runtime's root (`/api/...`), the query string as sent."""
    message = f"{method.upper()} {path}" + (f"?{query}" if query else "")
    return LogLine(message=message[:2000], user=caller.email, admin_user=caller.admin_email, ip=ip)


def record_line(
    action: str, entity: str, rid: str, label: str, *, user: str, admin_user: str | None, ip: str | None
) -> LogLine:
    """A record created, changed or deleted through the app's API (on a request line: its subType, and
    the record in `additionalInfo.records`)."""
    words = {"create": ("CREATED", "created"), "update": ("UPDATED", "changed"), "delete": ("DELETED", "deleted")}
    sub, verb = words[action]
    return LogLine(
        message=f"Data record of type [{entity}] with label [{label}] was {verb} successfully",
        user=user,
        admin_user=admin_user,
        ip=ip,
        sub_type=f"REST_API_RECORD_{sub}",
        additional_info={"entity": entity, "records": [{"id": rid, "label": label[:NOTED_LABEL]}]},
    )


def validation_line(
    entity: str, label: str, errors: Sequence[FieldError], *, user: str, admin_user: str | None, ip: str | None
) -> LogLine:
    """A write refused for its values, with each field's error (as the spec's sample shows it)."""
    listed = ", ".join(f"{e.field}: {e.message}" for e in errors[:20])
    return LogLine(
        message=f"Validation exceptions on record [{label}]. Error: [{listed}]",
        user=user,
        admin_user=admin_user,
        ip=ip,
        additional_info={
            "entity": entity,
            "recordLabel": label,
            "errors": [{"code": e.shown_code, "field": e.field, "message": e.message} for e in errors[:100]],
        },
    )
