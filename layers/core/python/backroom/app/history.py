"""The runtime app's history: a record's history and a table's, as the runtime spec shows them.

Through the same permission gate as every read: `history` on the entity, and only the fields the
caller may read in each entry's old and new values.

As the spec's samples show them: every entry of a deleted record says so (`recordDeleted: true` and
its `deletionDate`, read with the page: `RecordStore.deletions`), `null` both otherwise. A whole record
(a create's new values, a delete's old) shows every field, a group with each of its fields, its `id` and
`label` (an empty group too: `id` null), and leaves out an empty list of groups; a change entry shows
each list of groups its record had empty as `{"json": null, "text": "{}"}` on both sides.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from backroom.app.definition import Entity
from backroom.app.permissions import Access, Gate
from backroom.app.repository import AppRepository
from backroom.app.views import change_view, native_value
from backroom.errors import Invalid
from backroom.identity.models import Caller
from backroom.params import millis, whole
from backroom.records import RecordStore
from backroom.records.schema import TableField
from backroom.records.values import render_label

EVENT_TYPES = {"create": "USER_RECORD_CREATED", "update": "USER_RECORD_CHANGED", "delete": "USER_RECORD_DELETED"}
_ACTIONS = {v: k for k, v in EVENT_TYPES.items()}
SYSTEM_USER = "system"  # the `user` of a change the runtime made (a relabel job's), shown as a SYSTEM event
_ID = re.compile(r"^[0-9a-f]{24}$")


def entity_id(tenant_id: str, name: str) -> str:
    """A stable 24-hex id for an entity (the spec's history entries carry one)."""
    return hashlib.sha256(f"{tenant_id}/{name}".encode()).hexdigest()[:24]


def with_entity(view: dict[str, Any], tenant_id: str, entity: Entity) -> dict[str, Any]:
    """The record's view with the spec's `entity` object `{id, name}` after its system fields, as the
    samples of answers over many records print it: the id history entries carry, the name a person reads
    (the entity's label, `Companies`; its name when it has none)."""
    ref = {"id": entity_id(tenant_id, entity.name), "name": entity.label or entity.name}
    system: dict[str, Any] = {k: view[k] for k in ("id", "version", "label") if k in view}
    return {**system, "entity": ref, **{k: v for k, v in view.items() if k not in system}}


class AppHistory:
    def __init__(self, repo: AppRepository, records: RecordStore) -> None:
        self.repo = repo
        self.records = records

    def history(self, caller: Caller, name: str, rid: str, params: Mapping[str, Any]) -> dict[str, Any]:
        access = self._history_access(caller, name)
        if not _ID.match(rid):
            raise Invalid(f"{rid[:40]} is not a record id")
        size, offset = _paging(params)
        page = self.records.history(caller.tenant_id, access.schema, rid, limit=size, before=offset)
        return self._history_view(caller, access, page.entries, page.total, size)

    def table_history(self, caller: Caller, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        access = self._history_access(caller, name)
        size, offset = _paging(params)
        unknown = sorted(set(params) - {"_size", "_offset", "eventType", "from", "to"})
        if unknown:
            raise Invalid(f"Unknown parameter: {', '.join(unknown)[:100]}")
        actions = None
        if params.get("eventType"):
            kinds = [k.strip() for k in str(params["eventType"]).split(",") if k.strip()]
            wrong = [k for k in kinds if k not in _ACTIONS]
            if wrong:
                raise Invalid(f"eventType must be among {', '.join(EVENT_TYPES.values())}: {wrong[0][:40]} is not")
            actions = {_ACTIONS[k] for k in kinds}
        since, until = millis(params.get("from"), "from"), millis(params.get("to"), "to")
        page = self.records.table_history(
            caller.tenant_id, access.schema, actions=actions, since=since, until=until, limit=size, before=offset
        )
        return self._history_view(caller, access, page.entries, page.total, size)

    def _history_access(self, caller: Caller, name: str) -> Access:
        access = Gate.of(self.repo, caller).access(name, "history")
        if not access.schema.history:
            raise Invalid(f"History is not enabled for {name}")
        return access

    def _history_view(
        self, caller: Caller, access: Access, entries: list[dict[str, Any]], total: int, size: int
    ) -> dict[str, Any]:
        readable = set(access.readable())
        schema = access.schema
        deleted = {str(e["rid"]): int(e["at"]) for e in entries if e["action"] == "delete"}  # on the page already
        rids = [e["rid"] for e in entries]
        gone = self.records.deletions(caller.tenant_id, schema, rids, deleted) if entries else {}
        items = []
        for e in entries:

            def whole(data: Mapping[str, Any]) -> dict[str, Any]:
                shown = {f.name: _whole(f, data.get(f.name)) for f in schema.fields if f.name in readable}
                return {k: v for k, v in shown.items() if v is not _EMPTY}

            def changes(data: Mapping[str, Any]) -> dict[str, Any]:
                return {k: change_view(schema.field(k), k, v) for k, v in data.items() if k in readable}

            old, new = {}, {}
            if e["action"] == "create":
                new = whole(e.get("new") or {})
            elif e["action"] == "delete":
                old = whole(e.get("old") or {})
            else:
                old, new = changes(e.get("old") or {}), changes(e.get("new") or {})
                for name in e.get("empty_groups") or []:  # as the spec's sample shows `addresses`
                    if name in readable and name not in new:
                        old[name] = new[name] = {"json": None, "text": "{}"}
            items.append(
                {
                    "id": e["hid"],
                    "entityId": entity_id(caller.tenant_id, access.entity.name),
                    "entityName": access.entity.name,
                    "entityVersion": int(e.get("entity_version", 1)),  # 1: written before apps had versions
                    "recordId": e["rid"],
                    "recordName": e.get("label", ""),
                    "user": e.get("user", ""),
                    "timestamp": int(e["at"]),
                    "ip": e.get("ip"),
                    "eventType": EVENT_TYPES[e["action"]],
                    "eventCategory": "SYSTEM" if e.get("user") == SYSTEM_USER else "USER",
                    "contextPath": e.get("context", ""),
                    "recordDeleted": True if e["rid"] in gone else None,
                    "deletionDate": gone.get(e["rid"]),
                    "oldRecord": old,
                    "newRecord": new,
                }
            )
        # The spec's sample gives the last entry's id even on a page that holds them all.
        return {"total": total, "offset": items[-1]["id"] if items else None, "items": items}


_EMPTY = object()  # an empty list of groups: left out of a whole record


def _whole(spec: TableField, value: Any) -> Any:
    """A field of a whole record in an entry: a group with every field of its own (null when empty), its
    `id` and `label`, even when it holds nothing; an empty list of groups is `_EMPTY`."""
    if spec.type != "group":
        return native_value(spec, value)
    if spec.multi:
        return [_group(spec, v) for v in value if isinstance(v, dict)] if isinstance(value, list) and value else _EMPTY
    return _group(spec, value if isinstance(value, dict) else None)


def _group(spec: TableField, value: Mapping[str, Any] | None) -> dict[str, Any]:
    held = value or {}
    inner = {f.name: _whole(f, held.get(f.name)) for f in spec.fields}
    label = held.get("label") if value else render_label(spec.label, {}) if spec.label else spec.name
    return {**{k: v for k, v in inner.items() if v is not _EMPTY}, "id": held.get("id"), "label": label}


def _paging(params: Mapping[str, Any]) -> tuple[int, str | None]:
    size = whole(params.get("_size"), "_size", 1, 1000) or 20
    offset = params.get("_offset") or None
    if offset is not None and not _ID.match(str(offset)):
        raise Invalid("_offset must be the id of a history log this API returned")
    return size, offset
