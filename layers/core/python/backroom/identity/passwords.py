"""Password hashing with scrypt, a slow memory-hard KDF from the standard library.

A stored hash carries its own parameters, `scrypt$<N>$<r>$<p>$<salt>$<digest>` (base64), so a hash
made at an older cost still verifies after the cost is raised; `needs_rehash` tells the login to
replace it with one at today's cost. Today's cost is OWASP's minimum for scrypt: N=2^17, r=8, p=1,
which takes 128 MiB and about 0.5 s of one CPU a hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import NamedTuple


class Scrypt(NamedTuple):
    n: int  # CPU/memory cost, a power of 2
    r: int  # block size
    p: int  # parallelism

    @property
    def maxmem(self) -> int:
        """What OpenSSL needs (128·r·(N + p + 2) bytes) and 1 MiB of slack; its default cap is 32 MiB."""
        return 128 * self.r * (self.n + self.p + 2) + 2**20


OWASP_MINIMUM = Scrypt(n=2**17, r=8, p=1)
# The cost new hashes are made at (the unit tests lower it to spare the suite half a second a hash).
CURRENT = OWASP_MINIMUM
# Stored parameters above these are refused unverified: a damaged item must not take the memory.
_MOST = Scrypt(n=2**20, r=16, p=4)
_SALT_BYTES, _DIGEST_BYTES = 16, 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _derive(password: str, salt: bytes, cost: Scrypt, length: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=cost.n, r=cost.r, p=cost.p, maxmem=cost.maxmem, dklen=length)


def hash_password(password: str) -> str:
    """A new hash of `password` at the current cost, with a fresh salt."""
    cost, salt = CURRENT, secrets.token_bytes(_SALT_BYTES)
    digest = _derive(password, salt, cost, _DIGEST_BYTES)
    return f"scrypt${cost.n}${cost.r}${cost.p}${_b64(salt)}${_b64(digest)}"


def parameters(stored: str) -> Scrypt | None:
    """The cost a stored hash was made at, or None when it is not a well-formed scrypt hash."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        cost = Scrypt(int(parts[1]), int(parts[2]), int(parts[3]))
    except ValueError:
        return None
    if not all(0 < value <= most for value, most in zip(cost, _MOST, strict=True)):
        return None
    return cost


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`, at the parameters `stored` carries."""
    cost = parameters(stored)
    if cost is None:
        return False
    _, _, _, _, salt, digest = stored.split("$")
    try:
        expected = base64.b64decode(digest, validate=True)
        if not expected:
            return False
        actual = _derive(password, base64.b64decode(salt, validate=True), cost, len(expected))
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(stored: str) -> bool:
    """Whether a stored hash was made at other parameters than today's (checked after a good login)."""
    return parameters(stored) != CURRENT


def decoy_hash() -> str:
    """A hash at the current cost that no password matches (its digest is random, not derived).

    Verified against when the email is unknown, so a wrong email costs as much time as a wrong
    password. Built without deriving anything: a module import does no scrypt work.
    """
    cost = CURRENT
    return f"scrypt${cost.n}${cost.r}${cost.p}${_b64(secrets.token_bytes(_SALT_BYTES))}${_b64(secrets.token_bytes(32))}"
