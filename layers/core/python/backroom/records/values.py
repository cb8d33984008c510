"""Values of typed fields: checking and converting a caller's values, their order-preserving encoding, labels.

A record's data is stored as the types say: numbers (integer, decimal, money, date-time as epoch
milliseconds) are exact `Decimal`s, dates are `YYYY-MM-DD`, relationships are `{id, label}`, files
`{id, name, contentType}` (the app's files service fills name and type from the upload), groups are
maps and multi-valued fields are lists. `normalize` checks every field and returns every
error at once, each with its field path, a code and a message.
"""

from __future__ import annotations

import datetime as dt
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

from backroom.dynamo import NUMBER_DIGITS, check_storable, number_problem, storable_number
from backroom.errors import FieldError
from backroom.ids import new_id
from backroom.records.schema import NUMERIC, Schema, TableField

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_ID = re.compile(r"^[0-9a-f]{24}$")
LABEL_PART = re.compile(r"\{([A-Za-z0-9_.]+)\}")
# Control characters other than tab and line breaks have no place in text (\x01 and \x02 delimit index keys).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}
MAX_DIGITS = NUMBER_DIGITS  # DynamoDB keeps 38 significant digits of a number, exactly
MAX_ITEMS = 1000  # values of one multi-valued field
EXACT = Context(prec=MAX_DIGITS + 12)  # Decimal's default context keeps 28 digits: never round a stored value
# A date-time is epoch milliseconds within what a calendar shows: 0001-01-01 to 9999-12-31 (UTC).
FIRST_MILLIS, LAST_MILLIS = -62_135_596_800_000, 253_402_300_799_999


class BadValue(ValueError):
    """A value that does not fit its field's type."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Normalized:
    data: dict[str, Any]
    errors: list[FieldError] = field(default_factory=list)
    # Relationship values to resolve against their tables: (path in data, entity, id).
    links: list[tuple[list[str | int], str, str]] = field(default_factory=list)


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


# Converting one value --------------------------------------------------------
def _number(raw: Any, name: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal | str):
        raise BadValue(f"{name} is not a number")
    try:
        number = Decimal(str(raw).strip())
    except InvalidOperation:
        raise BadValue(f"{name} is not a number: {str(raw)[:40]}") from None
    if not number.is_finite():
        raise BadValue(f"{name} is not a number: {str(raw)[:40]}")
    stored = storable_number(number)  # DynamoDB's range, counted exactly (no context rounds the digits)
    if stored is None:
        raise BadValue(f"{name} {number_problem(number)}")
    return stored  # zero without sign or exponent; more than 38 digits only as trailing zeros dropped


def check_numbers(value: Any, name: str) -> None:
    """Raise Invalid naming the first number in a caller's JSON `value` (any depth) that no table can hold:
    for what is kept as it came, untyped, until a job types it (a gateway records import's rows)."""
    check_storable(value, name)


def _whole(number: Decimal) -> Decimal:
    """An integral number written out (5.00 and 5E+0 as 5) when it has at most 38 digits; a larger one
    (1E+50: trailing zeros past 38 digits) only loses its fractional zeros, as no context could hold it."""
    if number.adjusted() < MAX_DIGITS:
        return number.quantize(Decimal(1), context=EXACT)
    return number.to_integral_value()


def scalar(spec: TableField, raw: Any, name: str) -> Any:
    """One value of a non-group field, as it is stored; raises BadValue."""
    kind = spec.type
    if kind in ("text", "email", "url", "choice"):
        return _text(spec, raw, name)
    if kind == "boolean":
        return _boolean(raw, name)
    if kind == "date":
        return _date(raw, name)
    if kind == "datetime":
        return _millis(raw, name)
    number = _number(raw, name)
    if kind == "integer":
        return _integer(number, name)
    if kind == "money":
        return _money(spec, number, name)
    return number


def _text(spec: TableField, raw: Any, name: str) -> str:
    """A text-like value (text, email, url, choice): numbers are taken as their text, control characters never."""
    if not isinstance(raw, str | int | Decimal) or isinstance(raw, bool):
        raise BadValue(f"{name} is not text")
    text = str(raw)
    if len(text) > spec.max_length:
        raise BadValue(f"{name} is longer than {spec.max_length} characters", "tooLong")
    if _CONTROL.search(text):
        raise BadValue(f"{name} holds control characters")
    if spec.type == "email" and not _EMAIL.match(text):
        raise BadValue(f"{name} is not an email address: {text[:60]}")
    if spec.type == "url":
        parts = urlparse(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadValue(f"{name} is not an http(s) URL: {text[:60]}")
    if spec.type == "choice" and text not in spec.choices:
        raise BadValue(f"{name} must be one of {', '.join(spec.choices)}", "notAllowed")
    return text


def _boolean(raw: Any, name: str) -> bool:
    """A boolean, or a CSV cell's or a query parameter's word for one (`yes`, `0`, ...)."""
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower() if isinstance(raw, str | int) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise BadValue(f"{name} is not true or false")


def _date(raw: Any, name: str) -> str:
    """A date as `YYYY-MM-DD`, from a text that starts with one (a date-time's text gives its date)."""
    if isinstance(raw, str):
        try:
            return dt.date.fromisoformat(raw.strip()[:10]).isoformat()
        except ValueError:
            pass
    raise BadValue(f"{name} is not a date (YYYY-MM-DD)")


def _integer(number: Decimal, name: str) -> Decimal:
    if number != number.to_integral_value():
        raise BadValue(f"{name} is not an integer")
    return _whole(number)


def _money(spec: TableField, number: Decimal, name: str) -> Decimal:
    """An amount at the field's scale: shown and stored with it, so never rounded silently."""
    if number.adjusted() + 1 + spec.scale > MAX_DIGITS:  # shown and stored with its scale: 38 digits in all
        raise BadValue(f"{name} is out of range (money: at most {MAX_DIGITS} digits, {spec.scale} after the point)")
    cents = number.quantize(Decimal(1).scaleb(-spec.scale), context=EXACT)
    if cents != number:
        raise BadValue(f"{name} has more than {spec.scale} decimal places")  # money is never rounded silently
    return cents


def _millis(raw: Any, name: str) -> Decimal:
    """A date-time as epoch milliseconds: a number of them, or an ISO 8601 text with its offset."""
    if isinstance(raw, str) and not re.fullmatch(r"\s*-?\d+\s*", raw):
        try:
            moment = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadValue(f"{name} is not a date-time (epoch milliseconds or ISO 8601)") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return Decimal(int(moment.timestamp() * 1000))
    number = _number(raw, name)
    if number != number.to_integral_value():
        raise BadValue(f"{name} is not a date-time (epoch milliseconds or ISO 8601)")
    if not FIRST_MILLIS <= number <= LAST_MILLIS:
        raise BadValue(f"{name} is out of range (epoch milliseconds from {FIRST_MILLIS} to {LAST_MILLIS})")
    return _whole(number)


# Checking a record -----------------------------------------------------------
def normalize(
    schema: Schema,
    values: Mapping[str, Any],
    *,
    previous: Mapping[str, Any] | None = None,
    partial: bool = False,
) -> Normalized:
    """The record's data after `values` (a whole record, or with `partial` the changes to `previous`)."""
    out = Normalized(data=dict(previous or {}) if partial else {})
    _fields(schema.fields, values, out.data, out, [], previous if partial else None, check_required=True)
    return out


def _fields(
    specs: list[TableField],
    values: Mapping[str, Any],
    target: dict[str, Any],
    out: Normalized,
    path: list[str | int],
    previous: Mapping[str, Any] | None,
    *,
    check_required: bool,
) -> None:
    known = {f.name: f for f in specs}
    for name in values:
        if name not in known and name not in ("id", "label", "version"):
            out.errors.append(FieldError(_path(path, name), f"{_path(path, name)} is not a field", "unknown"))
    for spec in specs:
        if spec.name in values:
            where = [*path, spec.name]
            old = previous.get(spec.name) if previous else None
            value = _field(spec, values[spec.name], out, where, old)
            if is_empty(value):
                target.pop(spec.name, None)
            else:
                target[spec.name] = value
        if check_required and spec.required and is_empty(target.get(spec.name)):
            out.errors.append(FieldError(_path(path, spec.name), f"{_path(path, spec.name)} is required", "required"))


def _field(spec: TableField, raw: Any, out: Normalized, where: list[str | int], old: Any) -> Any:
    name = field_path(where)
    if is_empty(raw):
        return None
    if spec.multi:
        raw = raw if isinstance(raw, list) else [raw]
        if len(raw) > MAX_ITEMS:
            out.errors.append(FieldError(name, f"{name} takes a list of at most {MAX_ITEMS} values", "invalid"))
            return None
        olds = {o.get("id"): o for o in old or [] if isinstance(o, dict)} if spec.type == "group" else {}
        items = [
            _one(spec, v, out, [*where, i], olds.get(v.get("id")) if isinstance(v, dict) else None)
            for i, v in enumerate(raw)
        ]
        return [v for v in items if not is_empty(v)]
    return _one(spec, raw, out, where, old)


def _one(spec: TableField, raw: Any, out: Normalized, where: list[str | int], old: Any) -> Any:
    name = field_path(where)
    if spec.type == "group":
        if not isinstance(raw, dict):
            out.errors.append(FieldError(name, f"{name} is not an object", "invalid"))
            return None
        before = old if isinstance(old, dict) else None
        group: dict[str, Any] = dict(before) if before else {}
        inner = {k: v for k, v in raw.items() if k not in ("id", "label")}
        _fields(spec.fields, inner, group, out, where, before, check_required=True)
        given = raw.get("id")
        group["id"] = given if isinstance(given, str) and _ID.match(given) else (before or {}).get("id") or new_id()
        group["label"] = render_label(spec.label, group) if spec.label else spec.name
        return group
    if spec.type == "file":
        fid = raw.get("id") if isinstance(raw, dict) else raw
        if not isinstance(fid, str) or not _ID.match(fid):
            out.errors.append(FieldError(name, f"{name} is not the id of an uploaded file", "invalid"))
            return None
        value = {"id": fid}
        for key in ("name", "contentType"):
            given = raw.get(key) if isinstance(raw, dict) else None
            if isinstance(given, str):
                value[key] = _CONTROL.sub("", given)[:255]
        return value
    if spec.type == "relationship":
        rid = raw.get("id") if isinstance(raw, dict) else raw
        if not isinstance(rid, str) or not rid or len(rid) > 64:
            out.errors.append(FieldError(name, f"{name} is not the id of a {spec.entity} record", "invalid"))
            return None
        out.links.append((list(where), spec.entity or "", rid))
        return {"id": rid, "label": ""}
    try:
        return scalar(spec, raw, name)
    except BadValue as bad:
        out.errors.append(FieldError(name, str(bad), bad.code))
        return None


def field_path(path: list[str | int]) -> str:
    """A field's path as errors name it: `addresses[1].state`."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _path(path: list[str | int], name: str) -> str:
    return field_path([*path, name])


def typed(schema: Schema, path: str, raw: Any) -> Any:
    """One caller's value (a CSV cell, a query parameter) as the field at `path` stores it; raises BadValue."""
    spec = schema.field(path)
    if spec is None:
        raise BadValue(f"{path} is not a field", "unknown")
    if is_empty(raw) or (isinstance(raw, str) and not raw.strip() and spec.type != "text"):
        return None
    if spec.type == "relationship":
        return str(raw)
    if spec.type == "file":  # referencing a file is the records API's (it marks the file referenced)
        raise BadValue(f"{path} holds a file: set it through the records API, it cannot be queried or imported")
    if spec.type == "group":
        raise BadValue(f"{path} is a group of fields")
    return scalar(spec, raw, path)


# Reading values --------------------------------------------------------------
def value_at(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path; a relationship answers its id."""
    value: Any = data
    for name in path.split("."):
        value = value.get(name) if isinstance(value, dict) else None
    if isinstance(value, dict) and "id" in value and set(value) <= {"id", "label"}:
        return value["id"]
    return value


def file_refs(fields: list[TableField], data: Mapping[str, Any], top: str | None = None) -> list[tuple[str, str]]:
    """Every file a record's data references, as (its top-level field, file id), through groups."""
    found: list[tuple[str, str]] = []
    for spec in fields:
        value = data.get(spec.name)
        for one in value if isinstance(value, list) else [value]:
            if not isinstance(one, dict):
                continue
            if spec.type == "file" and isinstance(one.get("id"), str):
                found.append((top or spec.name, one["id"]))
            elif spec.type == "group":
                found += file_refs(spec.fields, one, top or spec.name)
    return found


def render_label(expression: str | None, data: Mapping[str, Any]) -> str:
    """A label expression such as `{lastName}, {firstName}` filled from the data (missing values are blank)."""
    if not expression:
        return ""

    def part(match: re.Match[str]) -> str:
        value: Any = data
        for name in match.group(1).split("."):
            value = value.get(name) if isinstance(value, dict) else None
        if isinstance(value, dict):
            value = value.get("label", "")
        return "" if value is None else str(value)

    return LABEL_PART.sub(part, expression)[:1000]


def canonical(value: Any) -> str:
    """One text per value, equal for equal values (1, 1.0 and 1.00 are one number)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal | int | float):
        number = Decimal(str(value)).normalize(EXACT)
        return format(number, "f") if number != 0 else "0"
    return "" if value is None else str(value)


# Order-preserving encoding ---------------------------------------------------
def order_key(spec: TableField, value: Any) -> str:
    """A text whose byte order is the values' order: numbers as numbers, dates and text as text.

    Never empty, and never below \\x02 (the empty value sorts first, as the bare separator \\x01).
    """
    if spec.type in NUMERIC:
        return encode_number(Decimal(str(value)))
    if spec.type == "boolean":
        return "1" if value else "0"
    return str(value)


def encode_number(number: Decimal) -> str:
    """Sign class, then the decimal exponent, then the digits; negatives complemented so that order flips."""
    if number == 0:
        return "1"
    sign, digits, exponent = number.normalize(EXACT).as_tuple()
    text = "".join(map(str, digits))
    magnitude = int(exponent) + len(text) + 500  # 0 < magnitude < 1000 within DynamoDB's number range
    if not sign:
        return f"2{magnitude:03d}{text}"
    flipped = "".join(str(9 - int(d)) for d in text)
    return f"0{999 - magnitude:03d}{flipped}~"  # `~` ends it: -0.12 after -0.123


def shard_of(rid: str, shards: int) -> int:
    return zlib.crc32(rid.encode()) % shards
