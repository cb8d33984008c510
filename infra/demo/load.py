"""Loads the demo: its configuration (infra/demo/tenant, applied as `backroom apply` applies a directory),
then its data (infra/demo/data: the app's records and their files, custom table rows, an import file).
Idempotent: a second load writes nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from backroom.app.definition import AppDefinition
from backroom.calcengine.tables import custom_table
from backroom.clock import now_ms
from backroom.records import Record, Schema, typed
from backroom.records.store import Author
from backroom.wiring import Core, core

from infra.tenant.apply import apply
from infra.tenant.config import TenantConfig, load

TENANT_DIR = Path(__file__).parent / "tenant"  # configuration: what `backroom apply` takes
DATA = Path(__file__).parent / "data"  # data: loaded after the configuration
log = logging.getLogger("local.demo")


def demo_config() -> TenantConfig:
    return load(TENANT_DIR)


def demo_app(*, listing_members: bool = False) -> AppDefinition:
    """The demo's app.json, whose groups' members are the users of users.json that name them; with
    `listing_members`, each group also lists them (`Group.users`), for a tenant without those users."""
    config = demo_config()
    app = config.app
    assert app is not None
    if not listing_members:
        return app
    users = config.users or []
    groups = [g.model_copy(update={"users": [u.email for u in users if g.name in u.groups]}) for g in app.groups]
    return app.model_copy(update={"groups": groups})


def demo_table(name: str) -> Schema:
    """A custom table of the demo's gateway.json."""
    gateway = demo_config().gateway
    assert gateway is not None
    return next(t for t in gateway.tables if t.name == name)


def load_gateway_data(core: Core, tenant: str) -> None:
    """The custom tables' rows and the import files (their counter moved past them)."""
    data = json.loads((DATA / "gateway-data.json").read_text())
    for name, rows in data["rows"].items():
        schema = custom_table(core.records, tenant, name)
        for i, row in enumerate(rows, start=1):
            if core.records.get(tenant, schema, f"demo.{i:09d}") is None:
                values = {k: typed(schema, k, v) for k, v in row.items()}
                core.records.put(tenant, schema, Record(rid=f"demo.{i:09d}", data=values, created_at=now_ms()))
    repo = core.calcengine.repo
    for file in data["files"]:
        if repo.import_file(tenant, file["id"]) is None:
            core.calcengine.store_file(tenant, file["name"], (DATA / file["path"]).read_bytes(), file_id=file["id"])
        repo.ensure_counter(tenant, "importfile", file["id"])


def load_app_records(core: Core, tenant: str, app: AppDefinition) -> None:
    """The runtime demo app's records (those missing only) and the files they reference."""
    listed = json.loads((DATA / "app-records.json").read_text())
    files = core.app.files
    for upload in listed.get("uploads", []):  # the files the demo records reference (the spec's samples)
        if files.store.app_file(tenant, upload["id"]) is None:
            data = (DATA / upload["path"]).read_bytes()
            files.store.upload(tenant, upload["id"], upload["name"], data, upload["contentType"], uploaded_by="system")
    for entity in app.entities:  # companies before contacts, which point at them
        for values in listed.get(entity.name, []):
            rid = values["id"]
            if core.records.get(tenant, entity.schema, rid) is None:
                data = {k: v for k, v in values.items() if k != "id"}
                if entity.updated_field:
                    data[entity.updated_field] = now_ms()
                data, file_ids = files.attach(tenant, entity.schema, data)
                files.reference(tenant, file_ids)
                core.records.create(tenant, entity.schema, data, rid=rid, author=Author("system", None, "demo.load"))


def load_demo(built: Core | None = None, *, app_records: bool = True) -> None:
    """`app_records=False` leaves the 215 records out (tests of the other dialects, which never read them)."""
    built = built or core()
    config = demo_config()
    apply(built, config)
    load_gateway_data(built, config.tenant_id)
    if app_records and config.app is not None:
        load_app_records(built, config.tenant_id, config.app)
    log.info(
        "demo loaded: accounts demo and demo-sub, users dev@, user@ and sub@demo.local; custom tables, periods,"
        " participants, calculations, batches and import file 1"
    )
