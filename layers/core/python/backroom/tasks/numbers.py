"""number_management: add, delete and list numbers of an account tree."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from backroom.clock import gregorian_s
from backroom.identity.models import Account
from backroom.identity.repository import IdentityRepository
from backroom.numbers import CATEGORY, NumberMissing, NumberTaken, is_e164
from backroom.tasks.registry import RowFailed, RowResult, Source, TaskAction, TaskRun

_LISTED = ("number", "account_id", "item", "created")


@lru_cache(maxsize=4096)
def _account(identity: IdentityRepository, account_id: str) -> Account | None:
    # Accounts do not move in the tree, so a worker may remember them while it runs a task.
    return identity.get_account(account_id)


def _account_id_like(value: str) -> bool:
    return 0 < len(value) <= 64 and value.isalnum()


class AddNumbers(TaskAction):
    category = "number_management"
    action = "add"
    description = "Bulk-create numbers"
    doc = (
        "Creates numbers from a CSV: each `number` (E.164, e.g. +14155550100) is assigned to `account_id`, "
        "the account the task runs on or one of its descendants.\n"
        "A number belongs to one account: adding a number that an account of the tenant holds already fails "
        "that row.\n"
        "This task returns the input fields and `item`: the kind of number (`did_us`, `tollfree_us`, "
        "`international`).\n"
    )
    mandatory = ("number", "account_id")
    checks = {"number": is_e164, "account_id": _account_id_like}
    columns = ("item",)

    def apply(self, run: TaskRun, row: dict[str, str], row_origin: str) -> RowResult:
        account = _account(run.ctx.identity, row["account_id"])
        if account is None or run.account_id not in account.ancestors:
            raise RowFailed("bad account_id")
        try:
            added = run.ctx.numbers.add(
                row["number"], account, origin=row_origin, created_at=run.job.started_at or run.job.created_at
            )
        except NumberTaken:  # whichever account of the tenant holds it: the text names none
            raise RowFailed("number already exists") from None
        return RowResult(columns={"item": added.item}, quantities=[(account.id, CATEGORY, added.item, 1)])


class DeleteNumbers(TaskAction):
    category = "number_management"
    action = "delete"
    description = "Bulk-delete numbers"
    doc = (
        "Deletes the numbers listed in `number` (E.164) from the account the task runs on or its descendants.\n"
        "A number that is not there fails its row. This task returns the input fields and `account_id`: "
        "the account the number was taken from.\n"
    )
    mandatory = ("number",)
    checks = {"number": is_e164}
    columns = ("account_id",)

    def apply(self, run: TaskRun, row: dict[str, str], row_origin: str) -> RowResult:
        try:
            was = run.ctx.numbers.delete(run.job.tenant_id, row["number"], run.account_id, origin=row_origin)
        except NumberMissing:
            raise RowFailed("number not found") from None
        return RowResult(columns={"account_id": was.account_id}, quantities=[(was.account_id, CATEGORY, was.item, -1)])


class ListNumbers(TaskAction):
    category = "number_management"
    action = "list"
    description = "List all numbers of the account and its descendants"
    doc = (
        "Lists every number of the account the task runs on and of all its descendant accounts.\n"
        "This task returns the following fields:\n"
        "* `number`: the number, in E.164.\n"
        "* `account_id`: the account it belongs to.\n"
        "* `item`: the kind of number (`did_us`, `tollfree_us`, `international`).\n"
        "* `created`: when it was added, in Gregorian seconds.\n"
    )
    columns = _LISTED

    def root(self, run: TaskRun) -> str:
        return run.account_id

    def sources(self, run: TaskRun) -> list[Source]:
        numbers = run.ctx.numbers
        accounts = run.ctx.identity.subtree(self.root(run))
        counted = ((a.id, numbers.count(a.id)) for a in accounts)
        return [Source(cursor={"account_id": account_id}, count=n) for account_id, n in counted if n]

    def produce(self, run: TaskRun, cursor: dict[str, Any], skip: int) -> Iterator[dict[str, str]]:
        for i, number in enumerate(run.ctx.numbers.of_account(cursor["account_id"])):
            if i >= skip:
                yield {
                    "number": number.number,
                    "account_id": number.account_id,
                    "item": number.item,
                    "created": str(gregorian_s(number.created_at)),
                }


class ListAllNumbers(ListNumbers):
    action = "list_all"
    description = "List every number of the tenant (developers only)"
    doc = (
        "Lists every number of every account of the tenant, whatever account the task is created on.\n"
        + (ListNumbers.doc.split("\n", 1)[1])
    )
    system = True

    def root(self, run: TaskRun) -> str:
        return run.job.tenant_id
