"""What the runtime app's parts (actions, aggregates, imports, exports, files, job planning) need of
the app's data service, as a Protocol: they are parts of `AppData` and call back into it, and this
keeps the import graph without a circle (`service` imports the parts; the parts import only this).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from backroom.app.definition import Entity
    from backroom.app.permissions import Access, Gate, Need
    from backroom.app.querylang import Query
    from backroom.app.repository import AppRepository
    from backroom.identity.models import Caller
    from backroom.jobs.models import Job
    from backroom.records import Record, RecordStore


class AppService(Protocol):
    @property
    def repo(self) -> AppRepository: ...

    @property
    def records(self) -> RecordStore: ...

    def gate(self, caller: Caller) -> Gate: ...

    def access(self, caller: Caller, name: str, need: Need) -> Access: ...

    def get(self, caller: Caller, name: str, rid: str, params: Mapping[str, Any]) -> dict[str, Any]: ...

    def view(self, caller: Caller, access: Access, record: Record) -> dict[str, Any]: ...

    def ids_of(self, tenant_id: str, entity: Entity, query: Query, *, most: int | None = None) -> list[str]: ...

    def iter_ids(self, tenant_id: str, entity: Entity, query: Query) -> Iterator[str]: ...

    def start_job(
        self,
        caller: Caller,
        kind: str,
        job_type: str,
        label: str,
        params: dict[str, Any],
        *,
        job_id: str = "",
        low_priority: bool = False,
    ) -> Job: ...
