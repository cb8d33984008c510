"""STUB of contract 2 (`backroom.app.evolution`, H-evolve), used while `core` has no `evolution`.

LEAD: delete this module once `core().evolution` exists; `infra.tenant.adapters.plan_app` already prefers it.

Compares the stored entities (`APP#<tenant>` / `ENTITY#<name>`) with the desired ones field by field and
the stored per-user permissions (`USER#<email>`) with what the desired groups grant, and installs with
`AppRepository.install` as the demo loader did. Known gaps the real evolution fills: a removed entity is
planned (and refused unless allowed) but left stored; no index backfill, no unique check, no version.
"""

from __future__ import annotations

from typing import Any

from backroom import keys
from backroom.app.definition import AppDefinition, Entity
from backroom.records.schema import TableField
from backroom.wiring import Core

from infra.tenant.changes import Change, Step, change, differences, narrowing_of


def plan(core: Core, tenant: str, desired: AppDefinition) -> Step:
    stored = stored_items(core, tenant, keys.app_entity(""))
    entities = {item["name"]: Entity.model_validate(item) for item in stored}
    changes: list[Change] = []
    for entity in desired.entities:
        changes.extend(_entity_changes(core, tenant, entities.pop(entity.name, None), entity))
    for gone in entities.values():
        records = _records(core, tenant, gone)
        why = f"drops entity {gone.name} with {records:,} records" if records else None
        changes.append(Change(f"entity {gone.name}", "delete", "left stored by the stub (H-evolve removes it)", why))
    changes.extend(_permission_changes(core, tenant, desired))

    def install() -> None:
        core.app.repo.install(tenant, desired)

    return Step(changes, install)


def stored_items(core: Core, tenant: str, prefix: str) -> list[dict[str, Any]]:
    # STUB: the app repository has no listing yet; H-evolve's `AppEvolution.current` replaces this Query.
    return list(core.table.query("pk = :p AND begins_with(sk, :s)", {":p": keys.app(tenant), ":s": prefix}))


def _records(core: Core, tenant: str, entity: Entity) -> int:
    return core.records.count(tenant, entity.schema, [])


def _entity_changes(core: Core, tenant: str, old: Entity | None, new: Entity) -> list[Change]:
    if old is None:
        return [Change(f"entity {new.name}", "create", f"{len(new.schema.fields)} fields")]
    changes: list[Change] = []
    records: int | None = None
    old_fields = {f.name: f for f in old.schema.fields}
    for field in new.schema.fields:
        was = old_fields.pop(field.name, None)
        narrowing = narrowing_of(was, field) if was else None
        if narrowing and records is None:
            records = _records(core, tenant, old)
        why = f"{narrowing} of an entity with {records:,} records" if narrowing and records else None
        changes.append(
            change(f"field {new.name}.{field.name}", _dump(was), _dump(field), created=field.type, destructive=why)
        )
    for gone in old_fields.values():
        records = _records(core, tenant, old) if records is None else records
        why = f"drops field {gone.name} of an entity with {records:,} records" if records else None
        changes.append(Change(f"field {new.name}.{gone.name}", "delete", gone.type, why))
    old_indexes = {i.name: i.model_dump() for i in old.schema.indexes}
    for index in new.schema.indexes:
        changes.append(change(f"index {new.name}.{index.name}", old_indexes.pop(index.name, None), index.model_dump()))
    changes.extend(Change(f"index {new.name}.{name}", "delete") for name in old_indexes)
    old_actions = {a.name: a.model_dump() for a in old.actions}
    for action in new.actions:
        changes.append(
            change(f"action {new.name}.{action.name}", old_actions.pop(action.name, None), action.model_dump())
        )
    changes.extend(Change(f"action {new.name}.{name}", "delete") for name in old_actions)
    rest = {"fields", "indexes", "actions"}
    old_rest, new_rest = _entity_rest(old, rest), _entity_rest(new, rest)
    if old_rest != new_rest:
        changes.append(Change(f"entity {new.name}", "update", differences(old_rest, new_rest)))
    return changes


def _entity_rest(entity: Entity, leave: set[str]) -> dict[str, Any]:
    dumped = entity.model_dump(by_alias=True, exclude={"actions"})
    schema = {k: v for k, v in dumped.pop("schema").items() if k not in leave}
    return {**dumped, **schema}


def _dump(field: TableField | None) -> dict[str, Any] | None:
    return field.model_dump() if field else None


def _permission_changes(core: Core, tenant: str, desired: AppDefinition) -> list[Change]:
    """Each user's merged permissions, stored against desired (the groups and their members at once)."""
    stored = {item["sk"].removeprefix(keys.APP_USERS) for item in stored_items(core, tenant, keys.APP_USERS)}
    changes = []
    for email in sorted(stored | desired.users):
        old = core.app.repo.permissions(tenant, email) if email in stored else None
        new = desired.permissions_of(email)
        old_dump = {n: p.model_dump() for n, p in old.items()} if old is not None else None
        new_dump = {n: p.model_dump() for n, p in new.items()}
        groups = ", ".join(g.name for g in desired.groups if email in {u.lower() for u in g.users}) or "none"
        if email not in desired.users:
            changes.append(Change(f"permissions {email}", "delete", "in no group"))
        else:
            changes.append(
                change(
                    f"permissions {email}", old_dump, new_dump, created=f"groups: {groups}", updated=f"groups: {groups}"
                )
            )
    return changes
