"""Makes moto's DynamoDB Query cost what DynamoDB's does: proportional to the items it can match.

moto 5 answers every Query by sorting every item of the table, so a job's chunk list or a task's
page gets slower with each row any test or import ever wrote (1-3 s per request at 100,000 rows).
This narrows the candidates first (the partition's items, or the items whose index hash key
matches) and lets moto do everything else as before: the same conditions, order, paging and limits.
Only the emulator is touched; the product code and its behaviour on AWS do not change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models.table import Table

_narrowed = threading.local()
_installed = False


def install() -> None:
    """Patch moto's Table once per process (in-process tests and the emulator server alike)."""
    global _installed
    if _installed:
        return
    _installed = True
    every_item: Callable[[Table], list[Any]] = Table.all_items
    query: Callable[..., Any] = Table.query

    def all_items(self: Table) -> list[Any]:
        scope = getattr(_narrowed, "scope", None)
        if scope is not None and scope[0] is self:
            return sorted(scope[1], key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)
        return every_item(self)

    def narrowed_query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        conditions = kwargs.get("hash_key_conditions") or []
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)  # moto passes it by position
        partitions: dict[Any, Any] = self.items
        # Snapshots (list() of a dict is atomic under the GIL): other threads of the server keep writing.
        if index_name:
            candidates = [
                item
                for bucket in list(partitions.values())
                for item in (list(bucket.values()) if self.range_key_attr else [bucket])
                if conditions and all(name in item.attrs and item.attrs[name] == value for name, value in conditions)
            ]
        else:
            bucket = partitions.get(hash_key, {})
            candidates = list(bucket.values()) if self.range_key_attr else [bucket]
        _narrowed.scope = (self, candidates)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _narrowed.scope = None

    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = narrowed_query  # type: ignore[method-assign]
