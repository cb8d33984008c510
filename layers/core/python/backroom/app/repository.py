"""The app's repositories: the only code that knows where an app's entities, users' permissions
and action markers sit (their keys: `backroom.keys`).

| item | pk | sk |
| --- | --- | --- |
| entity (its schema, actions, what the runtime adds) | `APP#<tenant>` | `ENTITY#<name>` |
| a user's permissions, merged from its groups | `APP#<tenant>` | `USER#<email, lower case>` |
| an action's marker of a job's row | `ACTRUN#<job>#<shard>` | `<record id or group>` |

An entity's schema is also defined in the records model (`RecordStore.define`), which keeps its records.
Log lines have their own repository, `backroom.app.logstore`.
"""

from __future__ import annotations

from backroom import keys
from backroom.app.definition import AppDefinition, Entity, EntityPermission
from backroom.app.logstore import AppLogStore
from backroom.dynamo import Table
from backroom.errors import NotFound
from backroom.records import RecordStore
from backroom.rowmarks import RowMarks


class AppRepository:
    def __init__(self, table: Table, records: RecordStore) -> None:
        self.table = table
        self.records = records
        self.logs = AppLogStore(table)
        self.action_marks = RowMarks(table, keys.ACTION_ROWS)

    def install(self, tenant_id: str, app: AppDefinition) -> None:
        """Declare every entity and every listed user's permissions (a user no longer listed keeps none)."""
        app.labels_hiding_nothing()
        for entity in app.entities:
            self.records.define(tenant_id, entity.schema)
            self.table.put(
                {"pk": keys.app(tenant_id), "sk": keys.app_entity(entity.name), **entity.model_dump(by_alias=True)}
            )
        known = {
            item["sk"]
            for item in self.table.query(
                "pk = :p AND begins_with(sk, :u)", {":p": keys.app(tenant_id), ":u": keys.APP_USERS}, attributes=["sk"]
            )
        }
        for email in app.users:
            grants = {name: grant.model_dump() for name, grant in app.permissions_of(email).items()}
            self.table.put({"pk": keys.app(tenant_id), "sk": keys.app_user(email), "entities": grants})
            known.discard(keys.app_user(email))
        for gone in known:
            self.table.delete(keys.app(tenant_id), gone)

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
