"""Row markers: how a job kind that writes in its own transactions applies each row exactly once.

A row's writes carry the row's marker (`keys.MarkFamily`: `<family>#<job>#<shard>` / the row),
conditioned on its absence, in the same transaction. A worker that dies after the transaction and
before its checkpoint replays the row, and the replay's transaction fails on the marker: the row
counts as done and nothing is applied twice. A marker may hold the row's outcome (what a later read
of the job's results shows); markers expire after `MARK_DAYS` (the table's TTL `expires_at`).

The runtime imports (`keys.IMPORT_ROWS`) and actions (`keys.ACTION_ROWS`) use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backroom.clock import now_ms
from backroom.dynamo import Table, Write
from backroom.keys import MarkFamily

MARK_DAYS = 7


def _item(family: MarkFamily, job_id: str, name: str, outcome: Mapping[str, Any] | None) -> dict[str, Any]:
    pk, sk = family.key(job_id, name)
    return {"pk": pk, "sk": sk, **(outcome or {}), "expires_at": now_ms() // 1000 + MARK_DAYS * 86_400}


def claim(family: MarkFamily, job_id: str, name: str, outcome: Mapping[str, Any] | None = None) -> Write:
    """The marker of row `name` for the row's own transaction: it fails there if the row was applied."""
    return Write(item=_item(family, job_id, name, outcome), condition="attribute_not_exists(pk)")


class RowMarks:
    """The markers of one family, read and written outside a row's transaction (outcomes, replays)."""

    def __init__(self, table: Table, family: MarkFamily) -> None:
        self.table = table
        self.family = family

    def claim(self, job_id: str, name: str, outcome: Mapping[str, Any] | None = None) -> Write:
        return claim(self.family, job_id, name, outcome)

    def put(self, job_id: str, name: str, outcome: Mapping[str, Any]) -> None:
        """Mark a row done with `outcome`, whether or not it was (a failed row; a group's one call)."""
        self.table.put(_item(self.family, job_id, name, outcome))

    def get(self, job_id: str, name: str) -> dict[str, Any] | None:
        return self.table.get(*self.family.key(job_id, name))
