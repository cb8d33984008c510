"""Numbers in query parameters, read one way for every route: a caller's mistake is a 400 naming the
parameter, never a 500.

Only ASCII digits count: `str.isdigit()` also takes "²" and "٣", which `int()` refuses (the crash a
hand-written check let through). A parameter given empty is a parameter not given.
"""

from __future__ import annotations

from backroom.errors import FieldError, Invalid

OFFSET_MOST = 999_999_999  # lines or records a page may skip
MILLIS_MOST = 253_402_300_799_999  # epoch milliseconds up to 9999-12-31T23:59:59.999Z, a date-time's last


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
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MILLIS_MOST)) or int(text) > MILLIS_MOST:
        raise _refused(name, "must be a time in milliseconds since the epoch")
    return int(text)
