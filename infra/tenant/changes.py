"""What a plan is made of: changes (what is shown, `backroom.app.evolution.Change`, the app's own lines
for every kind of resource) grouped in steps (what apply runs). A step runs all its changes at once (the
app in one evolution, a user in one call) and may hand back a note to print once (a new user's one-time
password, the app's version)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args

from backroom.app.evolution import Change, ChangeAction

ACTIONS: tuple[ChangeAction, ...] = get_args(ChangeAction)

__all__ = ["ACTIONS", "Change", "Plan", "Step", "change", "differences"]


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

    def counts(self) -> dict[ChangeAction, int]:
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
