"""The app's log lines by tenant and time: the only code that knows where they sit (keys: `backroom.keys`).

| item | pk | sk |
| --- | --- | --- |
| log line | `LOGS#<tenant>#<hour, YYYYMMDDHH>#<shard>` | `<ms, 13 digits>#<line id>` |
| an hour that has log lines | `LOGHOURS#<tenant>` | `<hour, YYYYMMDDHH>` |

The hour and a random shard of `keys.APP_LOG_SHARDS` spread a busy job's lines over several partition
keys; a read by time lists the hours of its span that have lines (one Query), queries each of their
shards newest first and merges them. A process marks an hour once (the marker is idempotent), so the
marker costs a write per process and hour, not per line. Lines and markers expire after `KEEP_DAYS`
(the table's TTL attribute `expires_at`).
"""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from backroom import keys
from backroom.dynamo import Table, Write

KEEP_DAYS = 30  # how long log lines stay
HOUR_MS = 3_600_000


class AppLogStore:
    """An app's log lines, by tenant and time (the module's docstring says how)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._marked: set[tuple[str, str]] = set()  # (tenant, hour) this process has marked

    def write_of(self, tenant_id: str, line_id: str, at: int, fields: Mapping[str, Any]) -> Write:
        """The item of one line written at `at` (epoch ms), to write alone or in the transaction of what
        it reports; its hour is marked now."""
        hour = keys.hour(at)
        self._mark(tenant_id, hour, at)
        item = {
            "pk": keys.app_log(tenant_id, hour, secrets.randbelow(keys.APP_LOG_SHARDS)),
            "sk": keys.app_log_sk(at, line_id),
            **fields,
            "expires_at": at // 1000 + KEEP_DAYS * 86_400,
        }
        return Write(item=item)

    def _mark(self, tenant_id: str, hour: str, at: int) -> None:
        if (tenant_id, hour) in self._marked:
            return
        end_of_hour = (at - at % HOUR_MS + HOUR_MS) // 1000  # the marker outlives every line of its hour
        self.table.put(
            {"pk": keys.app_log_hours(tenant_id), "sk": hour, "expires_at": end_of_hour + KEEP_DAYS * 86_400}
        )
        self._marked.add((tenant_id, hour))

    def put(self, write: Write) -> None:
        self.table.put(dict(write.item or {}))

    def put_many(self, writes: Sequence[Write]) -> None:
        self.table.batch_write(puts=[dict(w.item or {}) for w in writes])

    def _hours(self, tenant_id: str, since: int, until: int) -> list[str]:
        """The hours of the span that have lines, newest first (one Query on the tenant's hour markers)."""
        found = self.table.query(
            "pk = :p AND sk BETWEEN :a AND :b",
            {":p": keys.app_log_hours(tenant_id), ":a": keys.hour(max(since, 0)), ":b": keys.hour(until)},
            forward=False,
            attributes=["sk"],
        )
        return [str(i["sk"]) for i in found]

    def newest_first(self, tenant_id: str, since: int, until: int) -> Iterator[dict[str, Any]]:
        """Every line written from `since` to `until` (epoch ms, both included), newest first: hour by
        hour, the shards of an hour merged."""
        low, high = keys.app_logs_between(since, until)
        for hour in self._hours(tenant_id, since, until):
            shards = [
                self.table.query(
                    "pk = :p AND sk BETWEEN :a AND :b",
                    {":p": keys.app_log(tenant_id, hour, shard), ":a": low, ":b": high},
                    forward=False,
                    page_size=100,
                )
                for shard in range(keys.APP_LOG_SHARDS)
            ]
            yield from heapq.merge(*shards, key=lambda i: str(i["sk"]), reverse=True)
