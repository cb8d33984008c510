"""The app's logs: the lines an app writes (its actions' `log` calls), kept by time for `GET /status/logs`.

| item | pk | sk |
| --- | --- | --- |
| log line | `LOGS#<tenant>#<hour, YYYYMMDDHH>#<shard>` | `<ms, 13 digits>#<line id>` |

The hour and a random shard of `SHARDS` spread a busy job's lines over several partition keys; a read
by time queries the hours it covers, each shard, and merges them newest first. Lines expire after
`KEEP_DAYS` (the table's TTL attribute `expires_at`).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from backroom.clock import now_ms
from backroom.dynamo import Table, Write
from backroom.ids import object_id

SHARDS = 8
KEEP_DAYS = 30
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")


@dataclass
class LogLine:
    message: str
    level: str = "INFO"
    user: str = ""
    additional_info: dict[str, Any] = field(default_factory=dict)
    type: str = "APP"
    at: int = field(default_factory=now_ms)


class AppLogs:
    def __init__(self, table: Table) -> None:
        self.table = table

    @staticmethod
    def write_of(tenant_id: str, line: LogLine) -> Write:
        """The item of one line, to write alone or in the transaction of what it reports."""
        hour = dt.datetime.fromtimestamp(line.at / 1000, tz=dt.UTC).strftime("%Y%m%d%H")
        lid = object_id()
        item = {
            "pk": f"LOGS#{tenant_id}#{hour}#{secrets.randbelow(SHARDS)}",
            "sk": f"{line.at:013d}#{lid}",
            "id": lid,
            "timestamp": line.at,
            "level": line.level if line.level in LEVELS else "INFO",
            "type": line.type,
            "message": line.message[:10_000],
            "userEmail": line.user,
            "additionalInfo": line.additional_info,
            "expires_at": line.at // 1000 + KEEP_DAYS * 86_400,
        }
        return Write(item=item)

    def lines(self, tenant_id: str, since: int, until: int) -> list[dict[str, Any]]:
        """The lines written from `since` to `until` (epoch ms, both included), newest first."""
        found: list[dict[str, Any]] = []
        hour = since - since % 3_600_000
        while hour <= until:
            name = dt.datetime.fromtimestamp(hour / 1000, tz=dt.UTC).strftime("%Y%m%d%H")
            for shard in range(SHARDS):
                found += self.table.query(
                    "pk = :p AND sk BETWEEN :a AND :b",
                    {":p": f"LOGS#{tenant_id}#{name}#{shard}", ":a": f"{since:013d}", ":b": f"{until:013d}~"},
                )
            hour += 3_600_000
        return sorted(found, key=lambda i: i["sk"], reverse=True)

    def add(self, tenant_id: str, lines: Sequence[LogLine]) -> None:
        self.table.batch_write(puts=[dict(self.write_of(tenant_id, line).item or {}) for line in lines])
