"""Monthly quantity records: how many of each item (numbers by kind...) an account holds, per month.

Changes are recorded per month, per writer: `QUANTITY#<account>` / `<yyyy-mm>#<category>#<item>#<job>#<chunk>`
holds the net change a job's chunk made in that month and the row it has counted up to. A group of
rows adds its change only if the record has not counted past the group yet, so a replayed group is
never counted twice. Beginning- and end-of-month quantities are the running totals around a month.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import suppress
from datetime import UTC, datetime

from pydantic import BaseModel

from backroom import keys
from backroom.dynamo import ConditionFailed, Table


class MonthQuantity(BaseModel):
    account_id: str
    year: str
    month: str
    category: str
    item: str
    bom: int | None  # None: no record before this month
    eom: int


def month_of(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).strftime("%Y-%m")


class QuantityLedger:
    def __init__(self, table: Table) -> None:
        self.table = table

    def record(self, month: str, job_id: str, chunk: int, upto: int, changes: dict[tuple[str, str, str], int]) -> None:
        """Add a group's net `changes` (account, category, item) -> delta, counted up to row `upto`, to
        the records of the job's chunk (its writer)."""
        writer = keys.quantity_writer(job_id, chunk)
        for (account_id, category, item), delta in changes.items():
            if not delta:
                continue
            with suppress(ConditionFailed):  # failing: this group was counted already
                self.table.update(
                    keys.quantities(account_id),
                    keys.quantity(month, category, item, writer),
                    "SET #u = :upto, #m = :month, #c = :category, #i = :item ADD #d :delta",
                    names={"#u": "upto", "#m": "month", "#c": "category", "#i": "item", "#d": "delta"},
                    values={":upto": upto, ":month": month, ":category": category, ":item": item, ":delta": delta},
                    condition="attribute_not_exists(#u) OR #u < :upto",
                )

    def monthly(self, account_id: str) -> list[MonthQuantity]:
        """Beginning- and end-of-month quantities of every month with a record, oldest first."""
        per_month: dict[tuple[str, str, str], int] = defaultdict(int)
        for record in self.table.query("pk = :p", {":p": keys.quantities(account_id)}):
            per_month[(record["month"], record["category"], record["item"])] += int(record["delta"])
        running: dict[tuple[str, str], int] = {}
        rows = []
        for (month, category, item), delta in sorted(per_month.items()):
            before = running.get((category, item))
            after = (before or 0) + delta
            running[(category, item)] = after
            year, mm = month.split("-")
            rows.append(
                MonthQuantity(
                    account_id=account_id, year=year, month=mm, category=category, item=item, bom=before, eom=after
                )
            )
        return rows
