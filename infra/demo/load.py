"""Loads the demo data set (infra/demo/data) through the core's own services. Idempotent."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import logging
from contextlib import suppress
from pathlib import Path

from backroom.app.definition import AppDefinition
from backroom.calcengine.models import Batch, Calculation, ImportFileType, Participant, Period
from backroom.calcengine.tables import define_custom_table
from backroom.clock import now_ms
from backroom.errors import Conflict
from backroom.identity.models import Role
from backroom.records import Record, Schema, typed
from backroom.records.store import Author
from backroom.wiring import Core, core

DATA = Path(__file__).parent / "data"
log = logging.getLogger("local.demo")


def load_identity(core: Core) -> None:
    data = json.loads((DATA / "identity.json").read_text())
    for account in data["accounts"]:
        core.identity.create_account(account["id"], account["name"], account["parent_id"])
    for user in data["users"]:
        with suppress(Conflict):  # loaded before: keep it as it is
            core.identity.create_user(
                user["email"],
                user["password"],
                name=user["name"],
                role=Role(user["role"]),
                account_id=user["account_id"],
                user_id=user["id"],
            )


def load_gateway(core: Core) -> None:
    """Custom tables, the declared periods, participants, calculations, batches, import types and files."""
    data = json.loads((DATA / "gateway.json").read_text())
    tenant = data["tenant"]
    repo = core.calcengine.repo
    for table in data["tables"]:
        schema = define_custom_table(core.records, tenant, Schema.model_validate(table))
        for i, row in enumerate(data["rows"].get(schema.name, []), start=1):
            values = {k: typed(schema, k, v) for k, v in row.items()}
            core.records.put(tenant, schema, Record(rid=f"demo.{i:09d}", data=values, created_at=now_ms()))
    this_year = dt.datetime.now(dt.UTC).year
    for declared in data["periods"]:  # each a whole month of this year, or of `years_ago` years before
        year, month = this_year - declared.get("years_ago", 0), declared["month"]
        period = Period(
            number=declared["number"],
            start=dt.date(year, month, 1),
            end=dt.date(year, month, calendar.monthrange(year, month)[1]),
            locked=declared["number"] in data["locked_periods"],
        )
        repo.put_period(tenant, period)
    for participant in data["participants"]:
        repo.put_participant(tenant, Participant.model_validate(participant))
    for calc in data["calculations"]:
        repo.put_calculation(tenant, Calculation.model_validate(calc))
    for batch in data["batches"]:
        repo.put_batch(tenant, Batch.model_validate(batch))
    for file_type in data["file_types"]:
        repo.put_file_type(tenant, ImportFileType.model_validate(file_type))
    for file in data["files"]:
        if repo.import_file(tenant, file["id"]) is None:
            core.calcengine.store_file(tenant, file["name"], (DATA / file["path"]).read_bytes(), file_id=file["id"])
        repo.ensure_counter(tenant, "importfile", file["id"])


def load_app(core: Core, *, records: bool = True) -> None:
    """The runtime demo app: its entities and permissions, then its records (those missing only).

    `records=False` leaves the 215 records out (tests of the other dialects, which never read them).
    """
    tenant = json.loads((DATA / "gateway.json").read_text())["tenant"]
    app = AppDefinition.model_validate_json((DATA / "app.json").read_text())
    core.app.repo.install(tenant, app)
    if not records:
        return
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
    built = built or core()
    load_identity(built)
    load_gateway(built)
    load_app(built, records=app_records)
    log.info(
        "demo data loaded: accounts demo and demo-sub, users dev@, user@ and sub@demo.local;"
        " custom tables, periods, participants, calculations, batches and import file 1"
    )
