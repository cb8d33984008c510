"""The demo app's actions, as the runtime spec's samples use them (see `backroom.app.actions.ActionCall`)."""

from __future__ import annotations

from typing import Any

from backroom.app.actions import ActionCall


def log_something(call: ActionCall) -> None:
    """Logs its parameters; the record is saved as it is (its version goes up) and is the answer."""
    param1, param2 = call.params.get("param1"), call.params.get("param2")
    call.log(f"Action logSomething on {call.record_id}: param1={param1}, param2={param2}")


def count_employees(call: ActionCall) -> dict[str, Any]:
    """Many records: the employees of the records it ran on, summed."""
    total = sum(int(r.get("numberOfEmployees") or 0) for r in call.records)
    call.log(f"Counted {total} employees in {len(call.records)} companies")
    return {"numberOfEmployees": total}


def custom_response(call: ActionCall) -> str:
    return "This is a custom response"


def deactivate(call: ActionCall) -> None:
    """Only for an active company (its precondition): marks it inactive, noting why."""
    assert call.record is not None
    call.record["state"] = "inactive"
    if call.params.get("reason"):
        call.record["notes"] = f"Deactivated: {call.params['reason']}"
    call.log(f"Deactivated {call.record_id}", level="WARN")
