"""Records' history: the entry each single-record write adds in its own transaction, and reading them back,
a record's (newest first) or a whole table's (its shards' time-ordered gsi1 partitions merged).

A delete rewrites no entry: whether the records of a page of entries are gone, and when, is read with
the page (`deletions`), one BatchGet of their records and, for a record gone, its newest entry."""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Iterator, Mapping, Sequence
from itertools import dropwhile, islice
from typing import Any

from backroom.clock import now_ms
from backroom.dynamo import Table, Write, key_range
from backroom.records.keys import history_pk, history_sk, record_key, table_history_pk
from backroom.records.model import Author, HistoryPage, Record
from backroom.records.schema import Schema
from backroom.records.values import shard_of

GSI1 = ("gsi1pk", "gsi1sk")  # a table-history entry's ids, by time
ID_MS_MOST = 16**11 - 1  # the last millisecond a history id's 11 hex digits hold


class RecordHistory:
    def __init__(self, table: Table) -> None:
        self.table = table

    def entry(
        self,
        tenant_id: str,
        schema: Schema,
        record: Record,
        action: str,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        author: Author | None,
    ) -> list[Write]:
        """The history entry of a write, in its transaction; one per version (a second is a conflict)."""
        if not schema.history:
            return []
        who, at = author or Author(), now_ms()
        hid = f"{at:011x}{secrets.token_hex(7)[:13]}"  # 24 hex digits that sort by time
        entry = {
            "pk": history_pk(tenant_id, schema, record.rid),
            "sk": history_sk(record.version),
            "gsi1pk": table_history_pk(tenant_id, schema, shard_of(record.rid, schema.shards)),
            "gsi1sk": hid,
            "hid": hid,
            "rid": record.rid,
            "version": record.version,
            "entity_version": schema.version,  # the app version whose definition the write ran under
            "action": action,
            "label": record.label,
            "user": who.user,
            "ip": who.ip,
            "context": who.context,
            "at": at,
            "old": dict(old),
            "new": dict(new),
        }
        if action == "update":  # what an update entry alone cannot say: its record's empty lists of groups
            entry["empty_groups"] = [
                f.name for f in schema.fields if f.type == "group" and f.multi and not record.data.get(f.name)
            ]
        return [Write(item=entry, condition="attribute_not_exists(pk)")]

    def deletions(
        self, tenant_id: str, schema: Schema, rids: Sequence[str], known: Mapping[str, int] | None = None
    ) -> dict[str, int | None]:
        """The records of `rids` that are gone, each with when it was deleted (its delete entry's time; None
        when its newest entry is no delete, as for a record deleted while the entity kept no history).

        One BatchGet of the records (their versions only, 100 a request), then a one-item Query of the
        newest entry of each record gone whose delete is not `known` (`{id: its delete entry's time}`,
        those on the page the caller read): bounded by that page, and mostly none."""
        known = known or {}
        wanted = list(dict.fromkeys(rids))
        keys = {record_key(tenant_id, schema, rid): rid for rid in wanted}
        found = self.table.batch_get(list(keys), attributes=["version"])
        gone: dict[str, int | None] = {}
        for key, rid in keys.items():
            if key in found:
                continue
            if rid in known:
                gone[rid] = known[rid]
                continue
            newest = list(
                self.table.query("pk = :p", {":p": history_pk(tenant_id, schema, rid)}, forward=False, limit=1)
            )
            gone[rid] = int(newest[0]["at"]) if newest and newest[0].get("action") == "delete" else None
        return gone

    def of_record(
        self, tenant_id: str, schema: Schema, rid: str, *, limit: int = 100, before: str | None = None
    ) -> HistoryPage:
        """A record's history entries, newest first, those older than the entry `before` (a history id)."""
        pk = history_pk(tenant_id, schema, rid)
        # A record's history is short: read it once, count it, then find the entry and go on past it.
        everything = list(self.table.query("pk = :p", {":p": pk}, forward=False, consistent=True, exact=True))
        entries: Iterator[dict[str, Any]] = iter(everything)
        if before is not None:
            entries = islice(dropwhile(lambda e: e["hid"] != before, everything), 1, None)
        return HistoryPage(entries=list(islice(entries, limit)), total=len(everything))

    def of_table(
        self,
        tenant_id: str,
        schema: Schema,
        *,
        actions: set[str] | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 20,
        before: str | None = None,
    ) -> HistoryPage:
        """A table's history entries, newest first: its shards' time-ordered partitions merged (gsi1).

        `since` and `until` (epoch ms, inclusive) and `before` (a history id) are key ranges; `actions` is
        checked on the entries read.
        """
        # A history id starts with its time in 11 hex digits (ms, through the year 2527): a bound past
        # that is the end of time, not a longer string that sorts before today.
        lo = f"{min(since, ID_MS_MOST):011x}" if since is not None else None
        top = f"{until + 1:011x}" if until is not None and until < ID_MS_MOST else None  # below that ms's ids
        hi = top if before is None else min(top or before, before)
        pks = [table_history_pk(tenant_id, schema, shard) for shard in range(schema.shards)]
        merged = heapq.merge(*(self._range(pk, lo, hi) for pk in pks), key=lambda e: e["hid"], reverse=True)
        entries = list(islice((e for e in merged if not actions or e["action"] in actions), limit))
        if actions:
            total = sum(1 for pk in pks for e in self._range(pk, lo, top) if e["action"] in actions)
        else:
            total = sum(self.table.count(*key_range(pk, lo, top, names=GSI1), index="gsi1") for pk in pks)
        return HistoryPage(entries=entries, total=total)

    def _range(self, pk: str, lo: str | None, hi: str | None) -> Iterator[dict[str, Any]]:
        key, values = key_range(pk, lo, hi, names=GSI1)
        for entry in self.table.query(key, values, index="gsi1", forward=False, exact=True, page_size=50):
            if hi is None or entry["gsi1sk"] < hi:  # BETWEEN is inclusive of hi; the range is not
                yield entry
