"""The task catalog: the help of every registered category/action (`GET /v2/tasks`)."""

from __future__ import annotations

from backroom.errors import BackroomError
from backroom.tasks import numbers, registry, services  # noqa: F401  (the built-in tasks register themselves)


def task_help(category: str | None = None, action: str | None = None) -> dict[str, object]:
    """The help document of every task, of one category, or of one action of a category."""
    invalid = BackroomError("invalid request", data={"message": "invalid request"})
    actions = registry.registered()
    if category is None:
        if action is not None:
            raise invalid
        tree: dict[str, dict[str, object]] = {}
        for a in actions:
            tree.setdefault(a.category, {})[a.action] = a.help()
        return {"tasks": tree}
    found = {a.action: a.help() for a in actions if a.category == category and action in (None, a.action)}
    if not found:
        raise invalid
    return {"tasks": found}
