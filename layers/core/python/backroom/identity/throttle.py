"""Login throttling: attempts counted per account and per source address, and a cap on the password
hashes one instance computes at once.

A password check is scrypt at 128 MiB and half a CPU second, so every guess costs us far more than
the guesser. Two guards, both before any hash:

- **Counters** (`LoginThrottle`). An attempt is counted *before* its password is checked: one atomic
  ADD per counter (the account's e-mail, the source address) that answers the new count. So a burst
  of parallel guesses cannot all read "under the limit" and all run scrypt: at most `limit` of them
  are checked in a window, however many arrive at once. A good password takes its counts back, so
  what stays counted is failures only: the successful logins of a busy address never add up. An
  attempt over a limit is refused with 429 and the seconds until its window ends. Windows are fixed
  (`window_seconds` from the epoch), a counter per key and window that DynamoDB's TTL removes after;
  at a window's edge a guesser may get twice the limit in a short span, never more than `limit` per
  window.
- **Slots** (`HashSlots`). At most `size` hashes at once in this process; a login waits for a slot at
  most `wait_seconds`, then gets 503 with `Retry-After` instead of queueing without bound.

An account's counter is keyed by the e-mail as typed (normalised), whether or not such a user exists,
so a 429 tells nothing about who has an account. Keys are SHA-256 digests: a password typed into the
e-mail field is never stored. An IPv6 address is counted by its /64, which one host usually holds.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from backroom.clock import now_s
from backroom.errors import Overloaded, TooManyRequests
from backroom.identity.repository import IdentityRepository

ACCOUNT, ADDRESS = "account", "address"


@dataclass(frozen=True)
class LoginLimits:
    """Failed logins allowed per account and per source address in a window (settings; docs/security.md)."""

    per_account: int = 10
    per_address: int = 100
    window_seconds: int = 15 * 60


def account_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def address_key(address: str) -> str:
    """The address, or for IPv6 its /64 network; something unparsable is counted as given."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return hashlib.sha256(address.encode()).hexdigest()
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        text = str(mapped) if mapped else str(ipaddress.IPv6Network((ip, 64), strict=False))
    else:
        text = str(ip)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Attempt:
    """A login attempt's counts, taken before its password is checked."""

    window: int
    expires_s: int  # when its counters may go: a minute after the window (TTL removes them a day or two later)
    counted: list[tuple[str, str]] = field(default_factory=list)  # (scope, key)


class LoginThrottle:
    def __init__(self, repo: IdentityRepository, limits: LoginLimits) -> None:
        self.repo = repo
        self.limits = limits

    def admit(self, email: str, address: str | None) -> Attempt:
        """Count an attempt on `email` from `address`; 429 if it goes over either limit (nothing checked)."""
        now = now_s()
        size = self.limits.window_seconds
        window = now // size
        ends = (window + 1) * size
        attempt = Attempt(window=window, expires_s=ends + 60)
        counters = [(ACCOUNT, account_key(email), self.limits.per_account)]
        if address:
            counters.append((ADDRESS, address_key(address), self.limits.per_address))
        for scope, key, limit in counters:
            count = self.repo.count_attempt(scope, key, window, by=1, expires_s=attempt.expires_s)
            if count > limit:
                self.give_back(attempt)  # the counts taken so far: a refused attempt checked nothing
                raise TooManyRequests(
                    "Too many failed logins for this account" if scope == ACCOUNT else "Too many failed logins",
                    retry_after=ends - now,
                )
            attempt.counted.append((scope, key))
        return attempt

    def give_back(self, attempt: Attempt) -> None:
        """Take the attempt's counts back: its password was good, or it checked none (refused, no slot)."""
        for scope, key in attempt.counted:
            self.repo.count_attempt(scope, key, attempt.window, by=-1, expires_s=attempt.expires_s)
        attempt.counted.clear()


class HashSlots:
    """At most `size` password hashes at once in this process (a semaphore)."""

    def __init__(self, size: int, wait_seconds: float) -> None:
        self.size = size
        self.wait_seconds = wait_seconds
        self._free = threading.BoundedSemaphore(size)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._free.acquire(timeout=self.wait_seconds):
            raise Overloaded("Too many logins at once; try again in a moment", retry_after=1)
        try:
            yield
        finally:
            self._free.release()
