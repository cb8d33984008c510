"""services: per-month quantities of the account tree, from the monthly quantity records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from backroom.tasks.registry import Source, TaskAction, TaskRun

DESCENDANT_QUANTITIES_DOC = (
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


class DescendantQuantities(TaskAction):
    category = "services"
    action = "descendant_quantities"
    description = "List per-month descendant accounts quantities"
    doc = DESCENDANT_QUANTITIES_DOC
    columns = ("account_id", "year", "month", "category", "item", "quantity_bom", "quantity_eom")

    def sources(self, run: TaskRun) -> list[Source]:
        ledger = run.ctx.quantities
        accounts = run.ctx.identity.subtree(run.account_id)
        counted = ((a.id, len(ledger.monthly(a.id))) for a in accounts)
        return [Source(cursor={"account_id": account_id}, count=n) for account_id, n in counted if n]

    def produce(self, run: TaskRun, cursor: dict[str, Any], skip: int) -> Iterator[dict[str, str]]:
        for q in run.ctx.quantities.monthly(cursor["account_id"])[skip:]:
            yield {
                "account_id": q.account_id,
                "year": q.year,
                "month": q.month,
                "category": q.category,
                "item": q.item,
                "quantity_bom": "" if q.bom is None else str(q.bom),
                "quantity_eom": str(q.eom),
            }
