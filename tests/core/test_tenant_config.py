"""A tenant's configuration directory (docs/config.md): its files against their JSON Schemas, and plan and
apply on in-process moto, from an empty stack to the demo and through the changes an operator makes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from backroom import dynamo
from backroom.errors import Invalid, Unauthorized
from backroom.identity.passwords import verify_password
from backroom.wiring import Core
from typer.testing import CliRunner

from infra.cli import tenant as tenant_cli
from infra.cli.main import app as cli
from infra.demo.load import TENANT_DIR, load_demo
from infra.tenant.apply import Refused, apply
from infra.tenant.config import ConfigError, load
from infra.tenant.models import FILES
from infra.tenant.plan import plan
from infra.tenant.schemas import DOCS, rendered, schemas

TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"


@pytest.fixture
def tenant_dir(tmp_path: Path) -> Path:
    """A copy of the demo directory to edit (its `$schema` paths then point nowhere, which nothing reads)."""
    return Path(shutil.copytree(TENANT_DIR, tmp_path / "tenant"))


def edit(directory: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def actions(planned: Any) -> dict[str, str]:
    return {c.resource: c.action for c in planned.changes}


def pending(planned: Any) -> dict[str, str]:
    return {c.resource: c.action for c in planned.changes if c.action != "no change"}


# The files and their schemas ----------------------------------------------------------------------
def test_the_committed_schemas_are_the_models_schemas() -> None:
    for name, schema in schemas().items():
        assert (DOCS / name).read_text() == rendered(schema), f"{name} is stale: run `make schemas`"


def test_every_file_of_the_demo_directory_validates_against_the_schema_it_names() -> None:
    for name in FILES:
        data = json.loads((TENANT_DIR / name).read_text())
        schema_path = (TENANT_DIR / data["$schema"]).resolve()
        assert schema_path == DOCS / name.replace(".json", ".schema.json")
        jsonschema.Draft202012Validator(json.loads(schema_path.read_text())).validate(data)


def test_a_misspelled_key_or_an_unknown_group_is_refused_naming_the_file(tenant_dir: Path) -> None:
    edit(tenant_dir, "users.json", lambda d: d["users"][0].update({"grups": ["Sales"]}))
    with pytest.raises(ConfigError, match=r"users\.json: users\.0\.grups: Extra inputs"):
        load(tenant_dir)
    edit(tenant_dir, "users.json", lambda d: d["users"][0].pop("grups") and None)
    edit(tenant_dir, "users.json", lambda d: d["users"][0].update({"groups": ["Nobody"]}))
    with pytest.raises(ConfigError, match=r"dev@demo\.local: groups \['Nobody'\] are not in app\.json"):
        load(tenant_dir)


# Plan and apply -------------------------------------------------------------------------------------
def test_the_demo_on_an_empty_stack_is_all_creates_then_a_second_apply_writes_nothing(core: Core) -> None:
    config = load(TENANT_DIR)
    first = plan(core, config)
    counts = first.counts()
    assert counts["update"] == counts["delete"] == 0
    assert actions(first)["user dev@demo.local"] == "create"
    assert actions(first)["account 5b8f1d4c0e3a4f7b9d2c6e8a0f1b3d5c"] == "create"
    assert actions(first)["calculation 1"] == actions(first)["period 13"] == "create"
    assert first.summary() == f"Plan: {counts['create']} to create, 0 to update, 0 to delete."

    apply(core, config)
    assert core.identity.login("user@demo.local", "demo-user-password").caller.tenant_id == TENANT
    assert core.app.repo.permissions(TENANT, "user@demo.local")["companies"].read
    assert next(p for p in core.calc.periods(TENANT) if p.number == 13).locked

    again = plan(core, config)
    assert pending(again) == {}
    assert again.summary() == "Plan: 0 to create, 0 to update, 0 to delete."
    with dynamo.measured() as cost:
        assert apply(core, config).notes == []
    assert cost.items_written == 0


def test_moving_a_user_to_another_group_changes_what_it_may_do(core: Core, tenant_dir: Path) -> None:
    load_demo(core, app_records=False)
    edit(tenant_dir, "users.json", lambda d: d["users"][1].update({"groups": ["Readers"]}))
    config = load(tenant_dir)
    (moved,) = [c for c in plan(core, config).changes if c.action != "no change"]
    assert (moved.resource, moved.action) == ("user user@demo.local", "update")
    assert moved.detail == "groups: ['Sales'] -> ['Readers']"

    apply(core, config)
    granted = core.app.repo.permissions(TENANT, "user@demo.local")
    assert set(granted) == {"contacts"}
    assert granted["contacts"].access("email").value == "none"
    assert pending(plan(core, config)) == {}


def test_a_new_field_is_planned_as_a_create_and_applied(core: Core, tenant_dir: Path) -> None:
    load_demo(core, app_records=False)
    website = {"name": "website", "label": "Website", "type": "url"}
    edit(tenant_dir, "app.json", lambda d: d["entities"][0]["schema"]["fields"].append(website))
    config = load(tenant_dir)
    assert pending(plan(core, config)) == {"field companies.website": "create"}

    apply(core, config)
    assert core.app.repo.entity(TENANT, "companies").schema.field("website") is not None
    assert pending(plan(core, config)) == {}


def test_a_user_left_out_is_deactivated_only_when_destructive_changes_are_allowed(core: Core, tenant_dir: Path) -> None:
    load_demo(core, app_records=False)
    edit(tenant_dir, "users.json", lambda d: d["users"].pop(2) and None)
    config = load(tenant_dir)
    planned = plan(core, config)
    gone = next(c for c in planned.changes if c.resource == "user sub@demo.local")
    assert gone.action == "delete"
    assert gone.destructive and "deactivates sub@demo.local" in gone.destructive

    with dynamo.measured() as cost, pytest.raises(Refused, match=r"sub@demo\.local"):
        apply(core, config)
    assert cost.items_written == 0  # refused: nothing at all was written
    assert core.identity.login("sub@demo.local", "demo-sub-password")

    apply(core, config, allow_destructive=True)
    user = core.identity.repo.get_user("sub@demo.local")
    assert user is not None and not user.active  # kept, with its id and its data
    with pytest.raises(Unauthorized):
        core.identity.login("sub@demo.local", "demo-sub-password")


def test_dropping_a_field_that_holds_data_is_refused_unless_allowed(core: Core, tenant_dir: Path) -> None:
    load_demo(core, app_records=False)
    companies = core.app.repo.entity(TENANT, "companies")
    core.records.create(TENANT, companies.schema, {"name": "Acme", "notes": "kept"}, rid="5a0b3c40b45fc9000bc1ffff")

    def drop_notes(app: dict[str, Any]) -> None:
        fields = app["entities"][0]["schema"]["fields"]
        fields[:] = [f for f in fields if f["name"] != "notes"]

    edit(tenant_dir, "app.json", drop_notes)
    config = load(tenant_dir)
    dropped = next(c for c in plan(core, config).changes if c.resource == "field companies.notes")
    assert (dropped.action, dropped.destructive) == ("delete", "drops field notes of companies, which holds records")
    with pytest.raises(Refused, match="drops field notes"):
        apply(core, config)
    assert core.app.repo.entity(TENANT, "companies").schema.field("notes") is not None

    apply(core, config, allow_destructive=True)
    assert core.app.repo.entity(TENANT, "companies").schema.field("notes") is None


def test_a_new_user_without_a_password_file_gets_a_one_time_password_shown_once(core: Core, tenant_dir: Path) -> None:
    load_demo(core, app_records=False)
    new = {"email": "New@Demo.local", "name": "New Person", "groups": ["Sales"]}
    edit(tenant_dir, "users.json", lambda d: d["users"].append(new))
    config = load(tenant_dir)
    assert pending(plan(core, config))["user new@demo.local"] == "create"

    (note,) = apply(core, config).notes
    password = note.split("one-time password ")[1].split(" ")[0]
    user = core.identity.repo.get_user("new@demo.local")
    assert user is not None and user.name == "New Person" and verify_password(password, user.password_hash)
    assert user.password_change_required  # its first login sets its own
    assert core.app.repo.permissions(TENANT, "new@demo.local")["companies"].create
    assert apply(core, config).notes == []  # never again, and the password stays as it is


def test_a_user_put_in_a_group_a_label_would_show_a_hidden_field_is_refused(core: Core, tenant_dir: Path) -> None:
    # Given the demo with user@ in Readers, then companies labelled by their tax id, which Sales may not read
    load_demo(core, app_records=False)
    edit(tenant_dir, "users.json", lambda d: d["users"][1].update({"groups": ["Readers"]}))
    apply(core, load(tenant_dir))
    edit(tenant_dir, "app.json", lambda d: d["entities"][0]["schema"].update({"label": "{name} [{taxId}]"}))
    # When user@ is put back in Sales, then the user's step is refused, naming the field and the user
    edit(tenant_dir, "users.json", lambda d: d["users"][1].update({"groups": ["Sales"]}))
    with pytest.raises(Invalid, match=r"taxId.*user@demo\.local"):
        apply(core, load(tenant_dir))
    user = core.identity.repo.get_user("user@demo.local")
    assert user is not None and user.groups == ["Readers"]
    assert set(core.app.repo.permissions(TENANT, "user@demo.local")) == {"contacts"}


# The CLI ----------------------------------------------------------------------------------------------
def test_backroom_plan_and_apply_from_a_shell(core: Core, tenant_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tenant_cli, "connect", lambda stack, region=None: core)
    runner = CliRunner()
    planned = runner.invoke(cli, ["plan", str(tenant_dir), "--stack", "backroom-local", "--json"])
    assert planned.exit_code == 0, planned.output
    assert json.loads(planned.output)["summary"]["create"] > 0

    applied = runner.invoke(cli, ["apply", str(tenant_dir), "--yes"])
    assert applied.exit_code == 0, applied.output
    assert "Applied. " in applied.output
    again = runner.invoke(cli, ["plan", str(tenant_dir)])
    assert again.exit_code == 0 and "Plan: 0 to create, 0 to update, 0 to delete." in again.output

    edit(tenant_dir, "users.json", lambda d: d["users"].pop(1) and None)
    refused = runner.invoke(cli, ["apply", str(tenant_dir), "--yes"])
    assert refused.exit_code == 2
    assert "deactivates user@demo.local" in refused.output
    edit(tenant_dir, "tenant.json", lambda d: d.update({"id": "not an id"}))
    invalid = runner.invoke(cli, ["plan", str(tenant_dir)])
    assert invalid.exit_code == 2 and "tenant.json: id: String should match pattern" in invalid.output


def test_an_apply_the_core_refuses_is_one_line_and_exit_2_not_a_traceback(
    core: Core, tenant_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_demo(core)  # with its records: a new index on companies is a data job, left running (no worker here)
    monkeypatch.setattr(tenant_cli, "connect", lambda stack, region=None: core)
    runner = CliRunner()
    edit(tenant_dir, "app.json", lambda d: d["entities"][0]["schema"]["indexes"].append(["color", "name"]))
    started = runner.invoke(cli, ["apply", str(tenant_dir), "--yes"])
    assert started.exit_code == 0 and "data jobs" in started.output, started.output

    edit(tenant_dir, "app.json", lambda d: d["entities"][0]["schema"]["indexes"].append(["homepage", "name"]))
    refused = runner.invoke(cli, ["apply", str(tenant_dir), "--yes"])

    assert refused.exit_code == 2, refused.output
    assert "still pending" in refused.output and "Traceback" not in refused.output


def test_groups_listed_twice_plan_no_change_and_a_short_password_file_is_refused(core: Core, tenant_dir: Path) -> None:
    apply(core, load(tenant_dir))
    edit(tenant_dir, "users.json", lambda d: d["users"][1].update({"groups": ["Sales", " Sales"]}))
    assert pending(plan(core, load(tenant_dir))) == {}

    (tenant_dir / "passwords" / "short.txt").write_text("  short  \n")
    new = {"email": "new@demo.local", "name": "New", "passwordFile": "passwords/short.txt"}
    edit(tenant_dir, "users.json", lambda d: d["users"].append(new))
    with pytest.raises(ConfigError, match=r"new@demo\.local: passwordFile: the password in .* shorter than 12"):
        plan(core, load(tenant_dir))
