"""Identifiers: random hex strings of the length each dialect shows, and time-ordered record ids."""

from __future__ import annotations

import secrets
import time


def new_id(length: int = 24) -> str:
    return secrets.token_hex(length // 2 + 1)[:length]


def object_id() -> str:
    """A 24-hex id whose first 8 digits are the creation second, as the runtime spec's ids are.

    Sorting by id is then sorting by creation second (the runtime's default order, id descending, puts
    the newest seconds first; ids of one second are in random order, as MongoDB's are across machines).
    """
    return f"{int(time.time()):08x}{secrets.token_hex(8)}"
