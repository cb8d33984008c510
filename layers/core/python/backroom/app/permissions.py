"""The one permission gate: what a caller may do with an entity of the runtime app, and with each field.

Every path that reads or writes a runtime field asks here: CRUD, queries and sorts, history, aggregates,
imports, exports, actions, files, and relationships followed in either direction (`Access.related`).
A developer may do everything; a user what the groups it belongs to allow, merged (`AppDefinition`).

- An entity: `read`, `create`, `update`, `delete`, `history` (and its actions by name).
- A top-level field: `none` (never shown, queried, sorted, exported or written), `read` (shown and
  queried, never written) or `write` (unlisted fields: write).
- A relationship followed to its target (an import's `company.name` column, an export's
  `_fields=company.taxId`, `_relationshipsToFetch`, an aggregate's `lookup`) is a use of the target
  entity, asked of the same gate: reading through it needs `read` on the target and the field;
  writing through it needs `create`/`update` on the target and `write` on each field written.
- A relationship's own value (`{id, label}`) is part of the field that holds it: the label is shown
  to whoever may read that field.

An import or export job runs as the user who started it: each chunk asks a gate made for that user
(`Gate.for_job`), its grants re-read, so a permission taken away stops the job's next chunk. Action and
delete jobs are checked when they start (an action's results show the fields readable then).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from backroom.app.definition import Entity, EntityPermission, FieldAccess
from backroom.app.querylang import AllOf, AnyOf, Bound, Expr, Filter, Query, bind, parse
from backroom.errors import Forbidden

if TYPE_CHECKING:
    from backroom.app.repository import AppRepository
    from backroom.identity.models import Caller
    from backroom.records import Schema

Need = Literal["read", "create", "update", "delete", "history"]
EVERYTHING = EntityPermission(read=True, create=True, update=True, delete=True, history=True)
_RECORD_KEYS = frozenset({"id", "label", "version"})  # not fields: never a permission's matter


@dataclass
class Gate:
    """One caller's permissions over one tenant's app: entities and grants read once, then kept."""

    repo: AppRepository
    tenant_id: str
    email: str
    developer: bool
    _grants: dict[str, EntityPermission] | None = field(default=None, repr=False)
    _entities: dict[str, Entity] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, repo: AppRepository, caller: Caller) -> Gate:
        return cls(repo, caller.tenant_id, caller.email, caller.is_developer)

    @classmethod
    def for_job(
        cls, repo: AppRepository, tenant_id: str, params: Mapping[str, Any], entities: Mapping[str, Entity]
    ) -> Gate:
        """The gate of the user a runtime job runs as (its `user` and `developer` parameters), as a chunk
        runs: the user's grants are read anew; `entities` are the definitions the job read once."""
        user, developer = str(params.get("user", "")), bool(params.get("developer"))
        return cls(repo, tenant_id, user, developer, _entities=dict(entities))

    @property
    def entities(self) -> dict[str, Entity]:
        """The definitions this gate has read so far (a job keeps them for the gates of its next chunks)."""
        return dict(self._entities)

    def entity(self, name: str) -> Entity:
        """The entity `name` (404 when the tenant's app has none of that name)."""
        if name not in self._entities:
            self._entities[name] = self.repo.entity(self.tenant_id, name)
        return self._entities[name]

    def grant(self, name: str) -> EntityPermission:
        if self.developer:
            return EVERYTHING
        if self._grants is None:
            self._grants = self.repo.permissions(self.tenant_id, self.email)
        return self._grants.get(name) or EntityPermission()

    def access(self, name: str, need: Need) -> Access:
        """The entity `name` as this caller may use it; 403 when it may not `need` it."""
        entity = self.entity(name)
        grant = self.grant(name)
        if not getattr(grant, need):
            raise Forbidden(f"You have no permission to {need} records of {name}")
        return Access(entity, grant, self)


@dataclass
class Access:
    """An entity as one caller may use it."""

    entity: Entity
    grant: EntityPermission
    gate: Gate | None = None  # None: an access made for the engine itself (every field, no relationship)

    @property
    def schema(self) -> Schema:
        return self.entity.schema

    def may_read(self, name: str) -> bool:
        """May the caller read the top-level field `name` (or the field a path starts with)?"""
        return self.grant.access(name.split(".")[0]) is not FieldAccess.NONE

    def may_write(self, name: str) -> bool:
        return self.grant.access(name.split(".")[0]) is FieldAccess.WRITE

    def readable(self) -> list[str]:
        return [f.name for f in self.schema.fields if self.may_read(f.name)]

    def hidden(self, paths: Iterable[str]) -> list[str]:
        """The paths among `paths` whose top-level field the caller may not read."""
        return sorted({p for p in paths if p not in _RECORD_KEYS and not self.may_read(p)})

    def check_query(self, paths: Iterable[str]) -> None:
        """A filter or sort on a field the caller may not read is a 403 (before its value is looked at)."""
        hidden = self.hidden(paths)
        if hidden:
            raise Forbidden(f"You may not query {self.entity.name} by {', '.join(hidden)[:200]}")

    def parse(self, params: Mapping[str, Any]) -> Query:
        """A request's query parameters parsed, after a 403 for any that names a hidden field: a filter's
        syntax errors would otherwise say what the field holds."""
        self.check_query([k for k in params if not k.startswith("_")] + [str(params.get("_sortField", "id"))])
        return parse(params)

    def bind(self, query: Query) -> Bound:
        """`query` checked against the entity as this caller may use it: a filter or sort on a hidden field
        is a 403 before its value is looked at (a malformed value would otherwise answer a 400 naming the
        field's type)."""
        self.check_query([*_filter_paths(query.where), query.sort_field])
        bound = bind(self.schema, query)
        self.check_query(bound.paths)
        return bound

    def check_write(self, values: Mapping[str, Any] | Iterable[str]) -> None:
        """Writing a field the caller may not write is a 403, whatever the value (checked before it is)."""
        locked = sorted(n for n in values if n not in _RECORD_KEYS and not self.may_write(n))
        if locked:
            raise Forbidden(f"You may not write {', '.join(locked)[:200]} of {self.entity.name}")

    def related(self, name: str, need: Need) -> Access:
        """The target of relationship field `name`, as the same caller may use it (403 when it may not).

        Following a relationship reads the field that holds it, so that field must be readable too."""
        spec = self.schema.field(name)
        if spec is None or spec.type != "relationship" or not spec.entity:
            raise ValueError(f"{name} is not a relationship of {self.entity.name}")
        if not self.may_read(name):
            raise Forbidden(f"You may not read {name} of {self.entity.name}")
        if self.gate is None:
            raise Forbidden(f"{name} of {self.entity.name} cannot be followed here")
        return self.gate.access(spec.entity, need)


def _filter_paths(expr: Expr) -> Iterable[str]:
    if isinstance(expr, Filter):
        yield expr.path
    elif isinstance(expr, AllOf | AnyOf):
        for item in expr.items:
            yield from _filter_paths(item)
