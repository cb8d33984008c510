"""Time in the units the dialects speak, behind one seam so tests can reason about it."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def now_s() -> int:
    return int(time.time())


# Seconds from 0001-01-01 (proleptic Gregorian) to the Unix epoch: Kazoo's timestamps count from there.
GREGORIAN_EPOCH_OFFSET = 62_167_219_200


def gregorian_s(unix_ms: int) -> int:
    return unix_ms // 1000 + GREGORIAN_EPOCH_OFFSET
