"""The app's repositories: the only code that knows where an app's entities, users' permissions
and action markers sit (their keys: `backroom.keys`).

| item | pk | sk |
| --- | --- | --- |
| entity (its schema, actions, what the runtime adds) | `APP#<tenant>` | `ENTITY#<name>` |
| the app definition as last applied, and its version | `APP#<tenant>` | `DEFINITION` |
| a user's permissions, merged from its groups | `APP#<tenant>` | `USER#<email, lower case>` |
| a group's definition (for one user's refresh) | `APP#<tenant>` | `GROUP#<name>` |
| an action's marker of a job's row | `ACTRUN#<job>#<shard>` | `<record id or group>` |

An entity's schema is also defined in the records model (`RecordStore.define`), which keeps its records.
Log lines have their own repository, `backroom.app.logstore`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from backroom import keys
from backroom.app.definition import AppDefinition, Entity, EntityPermission, Group
from backroom.app.grants import Grants, UserDirectory
from backroom.app.logstore import AppLogStore
from backroom.dynamo import ConditionFailed, Table
from backroom.errors import Conflict, Invalid, NotFound
from backroom.records import RecordStore
from backroom.rowmarks import RowMarks

DEFINITION_MOST = 350_000  # characters of a stored app definition (one item)


class AppRepository:
    def __init__(self, table: Table, records: RecordStore, users: UserDirectory) -> None:
        self.table = table
        self.records = records
        self.grants = Grants(self, users)  # the users' permissions it keeps, from the app's groups
        self.logs = AppLogStore(table)
        self.action_marks = RowMarks(table, keys.ACTION_ROWS)

    def install(self, tenant_id: str, app: AppDefinition) -> None:
        """Declare every entity and every user's permissions (`Grants.refresh`: a user no longer granted keeps none)."""
        app.labels_hiding_nothing()
        for entity in app.entities:
            self.put_entity(tenant_id, entity)
        self.grants.refresh(tenant_id, app)

    def put_entity(self, tenant_id: str, entity: Entity) -> None:
        """One entity's item and its records schema (an evolution job marking an index ready, say)."""
        self.records.define(tenant_id, entity.schema)
        self.table.put(
            {"pk": keys.app(tenant_id), "sk": keys.app_entity(entity.name), **entity.model_dump(by_alias=True)}
        )

    def remove_entity(self, tenant_id: str, entity: Entity) -> None:
        """An entity no longer in the app: its item and its records schema (its records go by a job)."""
        self.table.delete(keys.app(tenant_id), keys.app_entity(entity.name))
        self.records.writer.undefine(tenant_id, entity.schema)

    def entities(self, tenant_id: str) -> list[Entity]:
        """Every entity of the tenant's app (one Query of its partition's entity items)."""
        items = self.table.query(
            "pk = :p AND begins_with(sk, :e)", {":p": keys.app(tenant_id), ":e": keys.app_entity("")}
        )
        return [Entity.model_validate(i) for i in items]

    def definition(self, tenant_id: str) -> tuple[AppDefinition, int] | None:
        """The app definition as last applied, and its version (None before the first apply)."""
        item = self.table.get(keys.app(tenant_id), keys.APP_DEFINITION)
        if item is None:
            return None
        return AppDefinition.model_validate_json(str(item["definition"])), int(item["version"])

    def store_definition(self, tenant_id: str, app: AppDefinition, version: int, *, after: int) -> None:
        """Store `app` as version `version`, only if the stored one is still version `after` (0: none), so
        two applies racing cannot both win; the definition is one item (DynamoDB's 400 KB: ample for an app)."""
        text = app.model_dump_json(by_alias=True)
        if len(text) > DEFINITION_MOST:
            raise Invalid(f"The app definition is too large to store ({len(text)} bytes; at most {DEFINITION_MOST})")
        try:
            self.table.put(
                {"pk": keys.app(tenant_id), "sk": keys.APP_DEFINITION, "definition": text, "version": version},
                condition="attribute_not_exists(pk) OR version = :v" if after else "attribute_not_exists(pk)",
                values={":v": after} if after else None,
            )
        except ConditionFailed:
            raise Conflict("The app definition was changed meanwhile by another apply; plan again") from None

    def entity(self, tenant_id: str, name: str) -> Entity:
        item = self.table.get(keys.app(tenant_id), keys.app_entity(name)) if 0 < len(name) <= 64 else None
        if item is None:
            raise NotFound(f"Entity {name[:64]} does not exist")
        return Entity.model_validate(item)

    def permissions(self, tenant_id: str, email: str) -> dict[str, EntityPermission]:
        item = self.table.get(keys.app(tenant_id), keys.app_user(email.lower()))
        if item is None:
            return {}
        return {name: EntityPermission.model_validate(grant) for name, grant in item.get("entities", {}).items()}

    # Grants (backroom.app.grants) ------------------------------------------
    def put_grants(self, tenant_id: str, email: str, grants: Mapping[str, EntityPermission]) -> None:
        entities = {name: grant.model_dump() for name, grant in grants.items()}
        self.table.put({"pk": keys.app(tenant_id), "sk": keys.app_user(email), "entities": entities})

    def delete_grants(self, tenant_id: str, emails: Iterable[str]) -> None:
        self.table.batch_write(deletes=[(keys.app(tenant_id), keys.app_user(e)) for e in emails])

    def granted(self, tenant_id: str) -> set[str]:
        """The e-mails that have a permissions item."""
        return {item["sk"].removeprefix(keys.APP_USERS) for item in self._under(tenant_id, keys.APP_USERS, ["sk"])}

    def put_groups(self, tenant_id: str, groups: Sequence[Group]) -> None:
        """Keep exactly `groups`' definitions (a group no longer defined goes)."""
        puts = [{"pk": keys.app(tenant_id), "sk": keys.app_group(g.name), **g.model_dump()} for g in groups]
        kept = {item["sk"] for item in puts}
        gone = [(keys.app(tenant_id), i["sk"]) for i in self._under(tenant_id, keys.APP_GROUPS, ["sk"])]
        self.table.batch_write(puts=puts, deletes=[key for key in gone if key[1] not in kept])

    def groups(self, tenant_id: str) -> list[Group]:
        return [Group.model_validate(item) for item in self._under(tenant_id, keys.APP_GROUPS)]

    def _under(self, tenant_id: str, prefix: str, attributes: list[str] | None = None) -> list[dict[str, Any]]:
        values = {":p": keys.app(tenant_id), ":s": prefix}
        return list(self.table.query("pk = :p AND begins_with(sk, :s)", values, attributes=attributes))
