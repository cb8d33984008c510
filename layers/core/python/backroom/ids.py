"""Random identifiers: hex strings of the length each dialect shows (24 for users, 30 for jobs)."""

from __future__ import annotations

import secrets


def new_id(length: int = 24) -> str:
    return secrets.token_hex(length // 2 + 1)[:length]
