"""Maintenance mode of a tenant's app: while it is on, every runtime call answers 503 but a developer's login
and the calls a developer makes to see and end it (the runtime dialect's gate, `backroom.api.resolver`).

The flag is one small item per tenant (`APP#<tenant>` / `MAINTENANCE`). The gate reads it on every call,
so a container keeps what it read for `TTL_SECONDS`: a switch takes effect at once in the container that
made it and within that time everywhere else, for at most one GetItem per tenant, container and
`TTL_SECONDS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backroom import keys
from backroom.clock import now_ms
from backroom.dynamo import Table
from backroom.errors import Forbidden, Invalid, Unavailable
from backroom.identity.models import Caller

TTL_SECONDS = 5.0  # how long a container trusts the flag it read
_MOST_CACHED = 1000  # tenants a container remembers; past it, it forgets them all (they are read again)
MESSAGE = "Service unavailable: the application is under maintenance"


@dataclass(frozen=True)
class MaintenanceState:
    """`on`, and who switched it last and when (epoch ms); never switched: off, by nobody."""

    on: bool
    since: int | None = None
    by: str | None = None

    def view(self) -> dict[str, Any]:
        return {"maintenance": self.on, "since": self.since, "by": self.by}


class MaintenanceStore:
    """The flag's item: the only code that knows where it is."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def get(self, tenant_id: str) -> MaintenanceState:
        item = self.table.get(
            keys.app(tenant_id), keys.APP_MAINTENANCE, consistent=False, attributes=["on", "since", "by"]
        )
        if item is None:
            return MaintenanceState(on=False)
        return MaintenanceState(on=bool(item.get("on")), since=int(item["since"]), by=str(item.get("by") or ""))

    def put(self, tenant_id: str, state: MaintenanceState) -> None:
        self.table.put(
            {
                "pk": keys.app(tenant_id),
                "sk": keys.APP_MAINTENANCE,
                "on": state.on,
                "since": state.since,
                "by": state.by,
            }
        )


class Maintenance:
    def __init__(
        self, store: MaintenanceStore, *, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._seen: dict[str, tuple[float, bool]] = {}  # tenant -> (when read, on)

    def is_on(self, tenant_id: str) -> bool:
        """Whether the tenant's app is in maintenance, as read at most `ttl` seconds ago."""
        now = self.clock()
        seen = self._seen.get(tenant_id)
        if seen is not None and now - seen[0] < self.ttl:
            return seen[1]
        return self._remember(tenant_id, self.store.get(tenant_id).on)

    def _remember(self, tenant_id: str, on: bool) -> bool:
        if len(self._seen) >= _MOST_CACHED:
            self._seen.clear()
        self._seen[tenant_id] = (self.clock(), on)
        return on

    def admit(self, caller: Caller) -> None:
        """The gate of a runtime call (but the login and the switch): a 503 while the app is in maintenance."""
        if self.is_on(caller.tenant_id):
            raise Unavailable(MESSAGE)

    def admit_login(self, caller: Caller) -> None:
        """The gate of a login: in maintenance, only a developer's session opens (the spec's login 503)."""
        if not caller.is_developer:
            self.admit(caller)

    # A developer's switch -------------------------------------------------------
    def state(self, caller: Caller) -> MaintenanceState:
        _developer(caller)
        state = self.store.get(caller.tenant_id)
        self._remember(caller.tenant_id, state.on)
        return state

    def switch(self, caller: Caller, body: Any) -> MaintenanceState:
        """`{"maintenance": true|false}`: put the app in maintenance or take it out (developers only)."""
        _developer(caller)
        on = body.get("maintenance") if isinstance(body, dict) else None
        if not isinstance(on, bool) or set(body) != {"maintenance"}:
            raise Invalid('The body must be {"maintenance": true} or {"maintenance": false}')
        state = MaintenanceState(on=on, since=now_ms(), by=caller.email)
        self.store.put(caller.tenant_id, state)
        self._remember(caller.tenant_id, on)
        return state


def _developer(caller: Caller) -> None:
    if not caller.is_developer:
        raise Forbidden("Only developers may put the app in maintenance or take it out")
