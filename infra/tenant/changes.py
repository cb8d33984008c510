"""What a plan is made of: changes (what is shown) grouped in steps (what apply runs).

`Change` has the fields of `backroom.app.evolution.Change` (contract 2), so the app's changes pass through
as they are. A step runs all its changes at once (the app is installed in one go, a user in one call) and
may hand back a note to print once (a new user's one-time password).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from backroom.records.schema import TableField

Action = Literal["create", "update", "delete", "no change"]
ACTIONS: tuple[Action, ...] = ("create", "update", "delete", "no change")


@dataclass(frozen=True)
class Change:
    resource: str  # "account demo-sub", "user dev@demo.local", "field companies.name", "calculation 1"
    action: Action
    detail: str = ""
    destructive: str | None = None  # why it loses data or locks someone out; None when it is safe

    def as_json(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "action": self.action,
            "detail": self.detail,
            "destructive": self.destructive,
        }


@dataclass
class Step:
    changes: list[Change]
    run: Callable[[], str | None] | None = None  # None: nothing to do

    @property
    def pending(self) -> bool:
        return self.run is not None and any(c.action != "no change" for c in self.changes)


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    @property
    def changes(self) -> list[Change]:
        return [c for s in self.steps for c in s.changes]

    @property
    def destructive(self) -> list[Change]:
        return [c for c in self.changes if c.destructive and c.action != "no change"]

    def counts(self) -> dict[Action, int]:
        counted = Counter(c.action for c in self.changes)
        return {a: counted.get(a, 0) for a in ACTIONS}

    def summary(self) -> str:
        n = self.counts()
        return f"Plan: {n['create']} to create, {n['update']} to update, {n['delete']} to delete."


def change(
    resource: str, old: Any, new: Any, *, created: str = "", updated: str | None = None, destructive: str | None = None
) -> Change:
    """A create (nothing stored: `created` says what), no change (stored as desired) or an update (`updated`
    says what, else the differences), from what is stored and what is desired."""
    if old is None:
        return Change(resource, "create", created)
    if old == new:
        return Change(resource, "no change")
    return Change(resource, "update", updated or differences(old, new), destructive)


def differences(old: Any, new: Any) -> str:
    """`key: old -> new` for each top-level key of two dicts (or the two values) that differ."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return f"{_short(old)} -> {_short(new)}"
    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    return ", ".join(f"{k}: {_short(old.get(k))} -> {_short(new.get(k))}" for k in keys)


def _short(value: Any, most: int = 60) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= most else text[: most - 3] + "..."


def narrowing_of(old: TableField, new: TableField) -> str | None:
    """Why `new` may refuse or lose values `old` held: another type, fewer choices, a shorter text."""
    if old.type != new.type or old.multi != new.multi:
        return f"changes the type of {new.name} ({old.type} -> {new.type})"
    if set(old.choices) - set(new.choices):
        return f"removes choices of {new.name}"
    if new.max_length < old.max_length:
        return f"shortens {new.name}"
    if new.fields and {f.name for f in old.fields} - {f.name for f in new.fields}:
        return f"drops fields of the group {new.name}"
    return None
