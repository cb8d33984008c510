"""Time in the units the dialects speak, behind one seam so tests can reason about it."""

from __future__ import annotations

import re
import time

from backroom.errors import FieldError, Invalid


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def now_s() -> int:
    return int(time.time())


# Seconds from 0001-01-01 (proleptic Gregorian) to the Unix epoch: Kazoo's timestamps count from there.
GREGORIAN_EPOCH_OFFSET = 62_167_219_200


def gregorian_s(unix_ms: int) -> int:
    return unix_ms // 1000 + GREGORIAN_EPOCH_OFFSET


_LAST = re.compile(r"^last([0-9]{0,6})(minute|hour|day|week|month)s?$", re.IGNORECASE)  # N up to 6 digits
_UNIT_MS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000, "week": 7 * 86_400_000, "month": 30 * 86_400_000}


def period_span(period: str, now: int) -> tuple[int, int]:
    """`today`, `yesterday`, or `last<N?><minute|hour|day|week|month>[s]` (`lastHour`, `last7Days`) in ms, UTC."""
    day = 86_400_000
    midnight = now - now % day
    lowered = period.strip().lower()
    if lowered == "today":
        return midnight, now
    if lowered == "yesterday":
        return midnight - day, midnight - 1
    found = _LAST.match(period.strip())
    if found:
        count = int(found.group(1) or 1)
        return now - count * _UNIT_MS[found.group(2).lower()], now
    message = "must be today, yesterday, or lastHour, lastDay, last7Days, lastWeek, lastMonth..."
    raise Invalid(f"Invalid parameter period: {message}", errors=[FieldError(field="period", message=message)])
