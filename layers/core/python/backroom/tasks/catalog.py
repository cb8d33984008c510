"""The task catalog: the built-in task actions, and the help of each category/action (`GET /v2/tasks`)."""

from __future__ import annotations

from backroom.errors import BackroomError
from backroom.tasks.numbers import AddNumbers, DeleteNumbers, ListAllNumbers, ListNumbers
from backroom.tasks.registry import TaskActions
from backroom.tasks.services import DescendantQuantities


def builtin_actions() -> TaskActions:
    """Every task action Backroom ships: a new task is one module and one line here."""
    return TaskActions([AddNumbers(), DeleteNumbers(), ListNumbers(), ListAllNumbers(), DescendantQuantities()])


def task_help(offered: TaskActions, category: str | None = None, action: str | None = None) -> dict[str, object]:
    """The help document of every task, of one category, or of one action of a category."""
    invalid = BackroomError("invalid request", data={"message": "invalid request"})
    actions = offered.all()
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
