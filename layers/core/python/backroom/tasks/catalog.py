"""The task catalog: what each category/action is, takes and documents (`GET /v2/tasks`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from backroom.errors import BackroomError


class TaskAction(BaseModel):
    category: str
    action: str
    description: str
    doc: str = ""
    expected_content: str | None = "text/csv"
    mandatory: list[str] = Field(default_factory=list)
    optional: list[str] = Field(default_factory=list)
    # Runs against system resources: only a developer may create it, without /accounts/{id}.
    system: bool = False

    def help(self) -> dict[str, object]:
        shown: dict[str, object] = {"description": self.description, "doc": self.doc}
        if self.expected_content:
            shown["expected_content"] = self.expected_content
        if self.mandatory:
            shown["mandatory"] = self.mandatory
        if self.optional:
            shown["optional"] = self.optional
        return shown


_DESCENDANT_QUANTITIES_DOC = (
    "Attempts to create a month-on-month listing of quantities used by descendant accounts.\n"
    "This task returns the following fields:\n"
    "* `account_id`: a sub-account of the creator of this task.\n"
    "* `year`: integral year as 4 characters.\n"
    "* `month`: integral month as 2 characters (left-padded with a zero).\n"
    "* `category`: name of the quantity's category.\n"
    "* `item`: name of the category's item.\n"
    "* `quantity_bom`: integral quantity's value or empty.\n"
    "* `quantity_eom`: integral quantity's value or empty.\n"
    "Note: some beginning-of-month and end-of-month quantities documents may be missing.\n"
    "Note: when both an account's BoM & EoM documents for a given month are missing, "
    "no rows are a created for this month.\n"
    "Note: in all other cases the documents' value is printed verbatim: if unset the empty string is returned.\n"
    "E.g.: an integer quantity (such as 1, 10 or 0 (zero)) represents was the system has. "
    "If no quantity was found, the empty value is used.\n"
)

BUILT_IN = [
    TaskAction(
        category="number_management",
        action="add",
        description="Bulk-create numbers",
        doc="Creates numbers from a CSV: each `number` (E.164) is assigned to `account_id`.\n"
        "A number belongs to one account: adding it again fails that row.\n",
        mandatory=["number", "account_id"],
    ),
    TaskAction(
        category="number_management",
        action="list",
        description="List all numbers of the account and its descendants",
        doc="Lists every number of the account the task is created on and of all its descendant accounts.\n",
        expected_content=None,
    ),
    TaskAction(
        category="services",
        action="descendant_quantities",
        description="List per-month descendant accounts quantities",
        doc=_DESCENDANT_QUANTITIES_DOC,
        expected_content=None,
    ),
]


class TaskCatalog:
    def __init__(self, actions: list[TaskAction]) -> None:
        self.actions = {(a.category, a.action): a for a in actions}

    def help(self, category: str | None = None, action: str | None = None) -> dict[str, object]:
        """The help document of every task, of one category, or of one action of a category."""
        invalid = BackroomError("invalid request", data={"message": "invalid request"})
        if category is None:
            if action is not None:
                raise invalid
            tree: dict[str, dict[str, object]] = {}
            for a in self.actions.values():
                tree.setdefault(a.category, {})[a.action] = a.help()
            return {"tasks": tree}
        found = {a.action: a.help() for a in self.actions.values() if a.category == category}
        if action is not None:
            found = {k: v for k, v in found.items() if k == action}
        if not found:
            raise invalid
        return {"tasks": found}


def catalog() -> TaskCatalog:
    return TaskCatalog(BUILT_IN)
