"""Numbers in query parameters, read one way for every route: a caller's mistake is a 400 naming the
parameter, never a 500.

Only ASCII digits count: `str.isdigit()` also takes "²" and "٣", which `int()` refuses (the crash a
hand-written check let through). A parameter given empty is a parameter not given.
"""

from __future__ import annotations

from backroom.errors import FieldError, Invalid

MILLIS_MOST = 10**15 - 1  # milliseconds since the epoch: beyond the year 33,000


def _refused(name: str, message: str) -> Invalid:
    return Invalid(f"{name} {message}", errors=[FieldError(name, message, "invalid")])


def whole(raw: object, name: str, low: int, high: int) -> int | None:
    """The whole number `raw` says, from `low` to `high`; None when it is absent or empty."""
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)) or not low <= int(text) <= high:
        raise _refused(name, f"must be a whole number from {low} to {high}")
    return int(text)


def millis(raw: object, name: str) -> int | None:
    """A time in milliseconds since the epoch; None when it is absent or empty."""
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MILLIS_MOST)):
        raise _refused(name, "must be a time in milliseconds since the epoch")
    return int(text)
