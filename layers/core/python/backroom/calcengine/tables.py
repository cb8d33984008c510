"""Gateway custom tables: the records model's `gateway` namespace, the only tables the gateway reaches.

Runtime entities live in the same store under other keys (`records.schema.table_key`). To every
gateway path (extracts, imports, imported-data deletes, calculations) an entity's name is a custom
table that does not exist; no runtime route finds a gateway table either, since the runtime reaches
tables only through its app's entities.
"""

from __future__ import annotations

from backroom.records import RecordStore, Schema
from backroom.records.schema import GATEWAY


def custom_table(records: RecordStore, tenant_id: str, name: str) -> Schema:
    """The tenant's custom table `name`; NotFound for a runtime entity's name as for any unknown one."""
    return records.schema(tenant_id, name, namespace=GATEWAY)


def define_custom_table(records: RecordStore, tenant_id: str, schema: Schema) -> Schema:
    """Declare `schema` as a custom table of the tenant, whatever namespace it was written with."""
    return records.define(tenant_id, schema.model_copy(update={"namespace": GATEWAY}))
