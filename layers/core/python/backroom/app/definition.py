"""An app definition: entities (a records schema plus what the runtime adds), groups and their permissions.

Kept as data files (`app.json` of a tenant's configuration directory, docs/config.md; the demo's is
`infra/demo/tenant/app.json`) and installed through `AppRepository`.
A developer may do everything; a user may do what the groups it belongs to allow, merged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from backroom.app.querylang import bind, parse
from backroom.errors import BackroomError, Invalid
from backroom.records.schema import NAME_PATTERN, RUNTIME, Schema, TableField
from backroom.records.values import LABEL_PART


class FieldAccess(StrEnum):
    NONE = "none"  # left out of answers, may not be queried or written
    READ = "read"  # shown and queried, never written
    WRITE = "write"

    @property
    def rank(self) -> int:
        return ("none", "read", "write").index(self.value)


class EntityPermission(BaseModel):
    read: bool = False
    create: bool = False
    update: bool = False
    delete: bool = False
    history: bool = False
    # Top-level fields whose access differs from the entity's (unlisted: readable, writable if it may write).
    fields: dict[str, FieldAccess] = Field(default_factory=dict)
    actions: list[str] = Field(default_factory=list)

    def merged(self, other: EntityPermission) -> EntityPermission:
        """What a user in both groups may do: the union of both."""
        names = {*self.fields, *other.fields}
        fields = {
            n: max(self.fields.get(n, FieldAccess.WRITE), other.fields.get(n, FieldAccess.WRITE), key=lambda a: a.rank)
            for n in names
        }
        return EntityPermission(
            read=self.read or other.read,
            create=self.create or other.create,
            update=self.update or other.update,
            delete=self.delete or other.delete,
            history=self.history or other.history,
            fields={n: a for n, a in fields.items() if a is not FieldAccess.WRITE},
            actions=sorted({*self.actions, *other.actions}),
        )

    def access(self, field: str) -> FieldAccess:
        return self.fields.get(field, FieldAccess.WRITE)


class Group(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    users: list[str] = Field(default_factory=list)  # emails
    entities: dict[str, EntityPermission] = Field(default_factory=dict)
    manage_groups: bool = Field(
        default=False,
        description="The runtime spec's flag to manage groups: members may impersonate the users they reach,"
        " never a developer",
    )

    def has_member(self, email: str, names: Iterable[str]) -> bool:
        """Whether the user of `email`, naming the groups `names`, belongs to this group."""
        return self.name in set(names) or email.lower() in {u.lower() for u in self.users}


# Segments of `PUT /data/{entity}/{segment}` that are not actions; an action name may not shadow a record id either.
RESERVED_SEGMENTS = frozenset({"aggregate", "import", "export", "history"})
_FUNCTION = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"


class Action(BaseModel):
    """An action of an entity, run by `backroom.app.actions` (a Python function of the app's package).

    `parameters` are fields (checked as a record's are); `precondition` is query-language filters the
    record must meet (`{"state": "active"}`); `run_async` is the default of `_async`.
    """

    name: str = Field(pattern=NAME_PATTERN)
    type: Literal["one", "many", "query"] = "one"
    function: str = Field(pattern=_FUNCTION)
    parameters: list[TableField] = Field(default_factory=list)
    precondition: dict[str, str | list[str]] | None = None
    run_async: bool = False

    @model_validator(mode="after")
    def _routable(self) -> Action:
        if self.name in RESERVED_SEGMENTS or re.fullmatch(r"[0-9a-f]{24}", self.name):
            raise ValueError(f"action {self.name}: the name is taken by a route or looks like a record id")
        if any(f.type == "relationship" for f in self.parameters):
            raise ValueError(f"action {self.name}: a parameter cannot be a relationship")
        return self


class Entity(BaseModel):
    name: str = Field(pattern=NAME_PATTERN)
    label: str | None = None  # a person's name for the entity ("Companies")
    schema_: Schema = Field(alias="schema")
    updated_field: str | None = None  # a date-time field the runtime sets on every write (`lastUpdate`)
    actions: list[Action] = Field(default_factory=list)

    model_config = {"populate_by_name": True}

    @property
    def schema(self) -> Schema:  # type: ignore[override]
        return self.schema_

    @model_validator(mode="after")
    def _consistent(self) -> Entity:
        if self.schema_.name != self.name:
            raise ValueError(f"entity {self.name}: its schema is named {self.schema_.name}")
        if self.schema_.namespace != RUNTIME:  # an app never declares a gateway custom table
            raise ValueError(f"entity {self.name}: its schema is in the {self.schema_.namespace} namespace")
        names = [a.name for a in self.actions]
        if len(names) != len(set(names)):
            raise ValueError(f"entity {self.name}: two actions share a name")
        for action in self.actions:
            if action.precondition:  # it must fit the schema
                try:
                    bind(self.schema_, parse(action.precondition))
                except BackroomError as wrong:
                    raise ValueError(f"action {action.name}: precondition: {wrong.message}") from None
        if self.updated_field:
            spec = self.schema_.field(self.updated_field)
            if spec is None or spec.type != "datetime":
                raise ValueError(f"entity {self.name}: {self.updated_field} is not a date-time field")
        unserved = self._unserved_refusals()
        if unserved:
            raise ValueError(
                f"entity {self.name}: {', '.join(unserved)} refuses deletes (on_delete: refuse), which is checked"
                f" on an index whose equals is that field alone: declare one (a multi-valued one cannot refuse)"
            )
        return self

    def _unserved_refusals(self) -> list[str]:
        """The relationships that refuse deletes (`on_delete: refuse`) without an index whose equals is
        their path alone: a request could not count the records that name a record to delete."""
        indexed = {tuple(i.equals) for i in self.schema_.indexes}
        return [
            path or spec.name
            for spec, path in relationships(self.schema_.fields)
            if spec.on_delete == "refuse" and (path is None or (path,) not in indexed)
        ]


def relationships(
    fields: list[TableField], prefix: str = "", *, single: bool = True
) -> Iterator[tuple[TableField, str | None]]:
    """Each relationship field, through groups, with its dotted path: None when a multi value is on
    the way (no index can hold it)."""
    for spec in fields:
        reach = single and not spec.multi
        path = f"{prefix}{spec.name}" if reach else None
        if spec.type == "relationship":
            yield spec, path
        elif spec.type == "group":
            yield from relationships(spec.fields, f"{path}." if path else "", single=reach)


class AppDefinition(BaseModel):
    app: str
    entities: list[Entity]
    groups: list[Group] = Field(default_factory=list)

    def permissions_of(self, email: str, groups: Iterable[str] = ()) -> dict[str, EntityPermission]:
        """A user's permissions per entity: the union of its groups' (those `groups` names, and those
        that list its e-mail)."""
        return merged_permissions(self.groups, email, groups)

    def labels_hiding_nothing(self, members: Mapping[str, Iterable[str]] | None = None) -> None:
        """Refuse a label expression that names a field one of the entity's readers may not read: a label
        is shown wherever its record is (the record, a relationship's `{id, label}`, history, a group).

        The readers: the groups' listed users, and `members` (e-mail: the groups it names)."""
        readers: dict[str, tuple[str, ...]] = {e.lower(): tuple(g) for e, g in (members or {}).items()}
        for email in self.users:
            readers.setdefault(email, ())
        for entity in self.entities:
            named = {m.group(1).split(".")[0] for m in LABEL_PART.finditer(entity.schema.label or "")}
            for email in sorted(readers):
                grant = self.permissions_of(email, readers[email]).get(entity.name)
                hidden = sorted(n for n in named if grant and grant.read and grant.access(n) is FieldAccess.NONE)
                if hidden:
                    raise Invalid(
                        f"The label of {entity.name} names {', '.join(hidden)}, which {email} reads it without: "
                        "a label may name only fields every reader of its entity reads"
                    )

    @property
    def users(self) -> set[str]:
        return {u.lower() for g in self.groups for u in g.users}


def merged_permissions(groups: Iterable[Group], email: str, names: Iterable[str]) -> dict[str, EntityPermission]:
    """The union of the permissions of the groups a user belongs to: those among `names` (the user's
    own list), and those whose `users` list its e-mail."""
    named = set(names)
    merged: dict[str, EntityPermission] = {}
    for group in groups:
        if not group.has_member(email, named):
            continue
        for name, grant in group.entities.items():
            merged[name] = merged[name].merged(grant) if name in merged else grant
    return merged


def entity_of(item: dict[str, Any]) -> Entity:
    return Entity.model_validate(item)
