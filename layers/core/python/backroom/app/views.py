"""Records and history entries as the runtime API shows them: native JSON, or plain text a person reads.

Native: integers and date-times (epoch ms) are JSON numbers; decimals and money are strings, exact as
stored (the spec's `"rating": "2.8"`); dates `YYYY-MM-DD`; relationships `{id, label}`; nested records
carry their `id` and `label`. Plain text renders every value: numbers as written, money with its scale,
booleans `Yes`/`No`, date-times `YYYY-MM-DD HH:MM:SS UTC`, relationships and nested records by label.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from backroom.records.schema import Schema, TableField

VERSION_BASE = 1  # the records model counts versions from 1, the runtime spec from 0


def native_value(spec: TableField, value: Any) -> Any:
    if value is None:
        return None
    if spec.multi and isinstance(value, list):
        return [_native_one(spec, v) for v in value]
    return _native_one(spec, value)


def _native_one(spec: TableField, value: Any) -> Any:
    if spec.type == "group" and isinstance(value, dict):
        inner = {f.name: native_value(f, value.get(f.name)) for f in spec.fields if value.get(f.name) is not None}
        return {**inner, "id": value.get("id"), "label": value.get("label")}
    if spec.type in ("integer", "datetime") and isinstance(value, Decimal):
        return int(value)
    if spec.type in ("decimal", "money") and isinstance(value, Decimal):
        return format(value, "f")
    return value


def text_value(spec: TableField, value: Any) -> Any:
    if value is None:
        return None
    if spec.multi and isinstance(value, list):
        return [_text_one(spec, v) for v in value]
    return _text_one(spec, value)


def _text_one(spec: TableField, value: Any) -> Any:
    if spec.type == "group" and isinstance(value, dict):
        inner = {f.name: text_value(f, value.get(f.name)) for f in spec.fields if value.get(f.name) is not None}
        return {**inner, "id": value.get("id"), "label": value.get("label")}
    if spec.type == "relationship" and isinstance(value, dict):
        return str(value.get("label") or "")
    if spec.type == "file" and isinstance(value, dict):
        return str(value.get("name") or value.get("id") or "")
    if spec.type == "boolean":
        return "Yes" if value else "No"
    if spec.type == "datetime":
        moment = dt.datetime.fromtimestamp(int(value) / 1000, tz=dt.UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    if spec.type == "money" and isinstance(value, Decimal):
        return f"{value:,.{spec.scale}f}"
    if spec.type == "integer" and isinstance(value, Decimal):
        return f"{int(value):,}"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def record_view(
    schema: Schema,
    rid: str,
    version: int,
    label: str,
    data: Mapping[str, Any],
    *,
    fields: Iterable[str],
    plain: bool = False,
) -> dict[str, Any]:
    """A record's JSON: system fields first, then `fields` (top-level names or dotted paths) that hold a value."""
    shown: dict[str, Any] = {"id": rid, "version": version - VERSION_BASE, "label": label}
    render = text_value if plain else native_value
    for path in fields:
        head, _, rest = path.partition(".")
        spec = schema.field(head)
        if spec is None or data.get(head) is None:
            continue
        value = render(spec, data[head])
        if rest and isinstance(value, dict):
            _project(shown, head, value, rest)
        elif not rest:
            shown[head] = value
    return shown


def _project(shown: dict[str, Any], head: str, value: dict[str, Any], rest: str) -> None:
    """`_fields=contactInformation.email`: the group with that field (and its id and label) only."""
    holder = shown.setdefault(head, {"id": value.get("id"), "label": value.get("label")})
    name, _, deeper = rest.partition(".")
    if name not in value:
        return
    if deeper and isinstance(value[name], dict):
        _project(holder, name, value[name], deeper)
    else:
        holder[name] = value[name]


def change_view(spec: TableField | None, name: str, value: Any) -> dict[str, Any]:
    """One changed field of a history entry: its JSON and the text the spec shows (`{type:a}`)."""
    if spec is None:
        return {"json": None, "text": "{}"}
    json_value = native_value(spec, value)
    if json_value is None:
        return {"json": None, "text": "{}"}
    text = text_value(spec, value)
    shown = (
        text
        if isinstance(text, str)
        else ", ".join(
            str(t.get("label", t)) if isinstance(t, dict) else str(t)
            for t in (text if isinstance(text, list) else [text])
        )
    )
    return {"json": json_value, "text": f"{{{name}:{shown}}}"}
