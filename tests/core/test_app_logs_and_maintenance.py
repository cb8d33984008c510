"""A REST call's line in the app's logs (what it changed riding on it, one item a call) and the app's
maintenance flag (cached per container for a short time, switched by developers only)."""

from __future__ import annotations

from typing import Any

import pytest
from backroom.app.logs import MAX_NOTED, LogLine, record_line, validation_line
from backroom.app.maintenance import Maintenance, MaintenanceStore
from backroom.clock import now_ms
from backroom.errors import FieldError, Forbidden, Invalid, ServiceFailure, Unavailable
from backroom.identity.models import Caller, Role
from backroom.wiring import Core

from tests.core.test_users import calls_of

TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
DEV = Caller(user_id="1", email="dev@x.io", name="Dev", role=Role.DEVELOPER, account_id=TENANT, tenant_id=TENANT)
USER = DEV.model_copy(update={"user_id": "2", "email": "user@x.io", "role": Role.USER})


def _written(core: Core, since: int) -> list[dict[str, Any]]:
    return core.app.logs.lines(TENANT, since, now_ms())


# Request lines ---------------------------------------------------------------------------------
def test_a_record_change_rides_on_its_calls_line_and_follows_it_as_the_specs_sample_shows(core: Core) -> None:
    logs, since = core.app.logs, now_ms()
    logs.add(TENANT, [LogLine(message="earlier", at=since)])  # the hour's marker: once a process and hour
    logs.open_request(DEV, "put", "/api/data/companies/abc", "", "10.0.0.1")
    logs.note(TENANT, record_line("update", "companies", "abc", "Acme", user=DEV.email, admin_user=None, ip=None))

    calls = calls_of(core, logs.close_request)

    assert calls == ["BatchWriteItem"]  # the call's lines in one write, nothing read
    lines = {i["message"]: i for i in _written(core, since) if i["message"] != "earlier"}
    request = lines.pop("PUT /api/data/companies/abc")
    (changed,) = lines.values()
    assert (request["message"], request["subType"], request["ip"]) == (
        "PUT /api/data/companies/abc",
        "REST_API_RECORD_UPDATED",
        "10.0.0.1",
    )
    assert request["additionalInfo"] == {"entity": "companies", "records": [{"id": "abc", "label": "Acme"}]}
    assert (changed["message"], changed.get("subType"), changed.get("ip"), changed["userEmail"]) == (
        "Data record of type [companies] with label [Acme] was changed successfully",
        None,
        None,
        DEV.email,
    )
    logs.close_request()  # closed: nothing more is written
    assert len(_written(core, since)) == 3


def test_a_call_that_changes_many_records_lists_at_most_the_first_hundred(core: Core) -> None:
    logs, since = core.app.logs, now_ms()
    logs.open_request(DEV, "DELETE", "/api/data/companies/a,b", "_async=false", None)
    for i in range(MAX_NOTED + 5):
        logs.note(
            TENANT, record_line("delete", "companies", f"r{i}", f"R{i}", user=DEV.email, admin_user=None, ip=None)
        )
    logs.close_request()

    lines = _written(core, since)
    (line,) = [i for i in lines if i.get("subType")]
    assert line["message"] == "DELETE /api/data/companies/a,b?_async=false"
    assert [r["id"] for r in line["additionalInfo"]["records"]] == [f"r{i}" for i in range(MAX_NOTED)]
    assert len(lines) == 1 + MAX_NOTED  # a line for each of the first hundred records, no more


def test_a_refused_write_takes_the_calls_line_and_without_a_call_a_note_is_its_own_line(core: Core) -> None:
    logs, since = core.app.logs, now_ms()
    logs.open_request(USER, "POST", "/api/data/companies", "", None)
    errors = [FieldError("numberOfEmployees", "must be a number", "invalid")]
    logs.note(
        TENANT, validation_line("companies", "X", errors, user=USER.email, admin_user=None, ip=None), replaces=True
    )
    logs.close_request()
    # No call open (a job, the core called directly): the note is a line of its own
    logs.note(TENANT, record_line("create", "companies", "n1", "New", user=DEV.email, admin_user=None, ip=None))

    created, refused = _written(core, since)
    assert created["message"] == "Data record of type [companies] with label [New] was created successfully"
    assert refused["message"] == "Validation exceptions on record [X]. Error: [numberOfEmployees: must be a number]"
    assert refused["userEmail"] == "user@x.io" and refused["additionalInfo"]["errors"][0]["code"] == "INVALID"


def test_a_request_line_dynamodb_refuses_never_fails_the_call_whose_work_is_done(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = core.app.logs
    logs.open_request(DEV, "POST", "/api/data/companies", "", None)

    def throttled(*_: Any) -> None:
        raise ServiceFailure("ProvisionedThroughputExceededException", "throttled")

    monkeypatch.setattr(logs.store, "put_many", throttled)

    logs.close_request()  # no exception: the record the call wrote is committed, a 500 would have it sent again
    monkeypatch.undo()
    logs.close_request()  # and the line is closed: nothing is written later
    assert _written(core, 0) == []


# Maintenance -----------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_flag_is_read_once_per_ttl_and_a_switch_is_seen_at_once_where_it_was_made(core: Core) -> None:
    clock = Clock()
    here = Maintenance(MaintenanceStore(core.table), ttl=5, clock=clock)
    elsewhere = Maintenance(MaintenanceStore(core.table), ttl=5, clock=clock)  # another container
    assert calls_of(core, lambda: here.is_on(TENANT)) == ["GetItem"]
    assert calls_of(core, lambda: [here.is_on(TENANT) for _ in range(10)]) == []  # cached
    assert elsewhere.is_on(TENANT) is False

    state = here.switch(DEV, {"maintenance": True})

    assert state.on and state.by == "dev@x.io" and state.since is not None
    assert here.is_on(TENANT) is True  # at once where it was switched
    assert elsewhere.is_on(TENANT) is False  # elsewhere, within the TTL, as read before
    clock.now += 5
    assert elsewhere.is_on(TENANT) is True
    assert here.state(DEV).view() == {"maintenance": True, "since": state.since, "by": "dev@x.io"}


def test_in_maintenance_only_a_developer_logs_in_and_every_other_call_is_503(core: Core) -> None:
    gate = Maintenance(MaintenanceStore(core.table))
    gate.admit(USER)  # off: everyone passes
    gate.switch(DEV, {"maintenance": True})

    gate.admit_login(DEV)
    for refused in (lambda: gate.admit_login(USER), lambda: gate.admit(USER), lambda: gate.admit(DEV)):
        with pytest.raises(Unavailable, match="under maintenance"):
            refused()
    assert gate.switch(DEV, {"maintenance": False}).on is False
    gate.admit(USER)


def test_only_developers_switch_it_and_only_with_a_boolean(core: Core) -> None:
    gate = Maintenance(MaintenanceStore(core.table))
    with pytest.raises(Forbidden):
        gate.switch(USER, {"maintenance": True})
    with pytest.raises(Forbidden):
        gate.state(USER)
    for body in ({"maintenance": "yes"}, {"maintenance": True, "other": 1}, [True], None):
        with pytest.raises(Invalid):
            gate.switch(DEV, body)
    assert gate.state(DEV).on is False
