"""Reading records: by id, by unique value, and queries run as the planner (`query.plan`) decides.

A query reads the key ranges of the index that serves it (thin entries: sort keys only), merged across
the shards in order, then the records by key in batches; what no index serves is checked on the records
read, at most `max_read` of them for a request (then `TooBroad`, a 400, not a timeout). Jobs stream
without that cap.
"""

from __future__ import annotations

import heapq
import itertools
import json
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from itertools import islice
from typing import Any

from backroom.dynamo import Attribute, Table, in_context, key_range
from backroom.errors import Invalid, NotFound
from backroom.records.keys import (
    COUNT_SLOTS,
    count_keys,
    counts_kept,
    index_family,
    index_pk,
    record_key,
    records_family,
    records_pk,
    schemas_pk,
    since_key,
    unique_key,
)
from backroom.records.model import Check, Page, Record, TooBroad
from backroom.records.query import SEP, Condition, Plan, Sort, in_order, matches, plan, sort_key
from backroom.records.schema import NUMERIC, SOURCE_INDEX, Namespace, Schema, TableField, table_key
from backroom.records.values import EXACT, BadValue, canonical, is_empty, typed

# Items a request may read to answer a query no index serves whole (then a 400 that names the index to
# declare, not a timeout): sized for API Gateway's 29 s on DynamoDB (docs/queries.md, "The read budget").
MAX_READ = 100_000
MAX_COUNT_READS = 100  # count items one total may read (one BatchGetItem): 12 combinations of values


class RecordReader:
    def __init__(self, table: Table, *, max_read: int = MAX_READ) -> None:
        self.table = table
        self.max_read = max_read

    def schema(self, tenant_id: str, name: str, *, namespace: Namespace) -> Schema:
        """A table of `namespace` by name; one of the other namespace is not found, as a missing one is."""
        item = self.table.get(schemas_pk(tenant_id), table_key(namespace, name)) if 0 < len(name) <= 255 else None
        found = Schema.model_validate(item) if item is not None else None
        if found is None or found.namespace != namespace:
            raise NotFound(f"Could not find Custom Table with name {name}")
        return found

    # By key --------------------------------------------------------------
    def get(self, tenant_id: str, schema: Schema, rid: str) -> Record | None:
        if not 0 < len(rid) <= 128:
            return None
        item = self.table.get(*record_key(tenant_id, schema, rid), exact=True)
        return _record(schema, item) if item else None

    def get_many(self, tenant_id: str, schema: Schema, rids: Sequence[str]) -> list[Record]:
        """The records of `rids` that exist, in that order (BatchGetItem, 100 a request)."""
        keys = [record_key(tenant_id, schema, rid) for rid in rids]
        found = self.table.batch_get(keys, exact=True)
        return [_record(schema, found[k]) for k in keys if k in found]

    def by_unique(self, tenant_id: str, schema: Schema, name: str, values: Sequence[Any]) -> dict[str, Record]:
        """The records holding each of `values` in unique field `name`, by the value's canonical text."""
        keys = {unique_key(tenant_id, schema, name, v): canonical(v) for v in values if not is_empty(v)}
        markers = self.table.batch_get(list(keys), attributes=["rid"])
        owners = {keys[k]: str(item["rid"]) for k, item in markers.items()}
        found = {r.rid: r for r in self.get_many(tenant_id, schema, list(dict.fromkeys(owners.values())))}
        return {value: found[rid] for value, rid in owners.items() if rid in found}

    # Queries -------------------------------------------------------------
    def conditions(self, schema: Schema, filters: Mapping[str, Any]) -> list[Condition]:
        """Equality filters (`field=value`) as conditions; a value its field cannot hold matches nothing."""
        conditions = []
        for name, raw in filters.items():
            try:
                value = typed(schema, name, raw)
            except BadValue:
                conditions.append(Condition(name, "eq", ()))
                continue
            conditions.append(Condition(name, "empty") if value is None else Condition(name, "eq", (value,)))
        return conditions

    def find(
        self,
        tenant_id: str,
        schema: Schema,
        conditions: Sequence[Condition],
        *,
        sort: Sort | None = None,
        size: int = 20,
        cursor: str | None = None,
        skip: int = 0,
        where: Check | None = None,
        counted: bool = False,
    ) -> Page:
        """One page of the records meeting every condition (and `where`), in the plan's order, after
        `cursor` or past the first `skip` matches, and the next page's cursor; with `counted`, also
        how many match in all."""
        chosen = plan(schema, conditions, sort)
        after = _decode(cursor)
        total: int | None = None
        if counted:
            total = None if where else self.counted(tenant_id, schema, conditions)
            if total is None and (chosen.residual or chosen.sort_in_memory or where):
                return self._read_whole(tenant_id, schema, chosen, after, size, skip, where)
            if total is None:
                total = self.count(tenant_id, schema, conditions)
            ordered = self._cheaper(tenant_id, schema, conditions, chosen, total, skip + size)
            if ordered is not chosen:
                try:  # matches bunched at the order's far end: no more reads than sorting them would take
                    page = self._page(tenant_id, schema, ordered, after, size, skip, where, most=total)
                    return page.model_copy(update={"total": total})
                except TooBroad:
                    pass
        page = self._page(tenant_id, schema, chosen, after, size, skip, where)
        return page if total is None else page.model_copy(update={"total": total})

    def _cheaper(
        self, tenant_id: str, schema: Schema, conditions: Sequence[Condition], chosen: Plan, total: int, want: int
    ) -> Plan:
        """`chosen`, or the sort's index read in order when that reads fewer records for the page: sorting
        in memory reads every match (`total`); reading in order reads about `want` divided by the share
        of the table's records that match."""
        ordered = in_order(schema, conditions, chosen.order) if chosen.sort_in_memory else None
        if ordered is None or not total:
            return chosen
        everything = self.counted(tenant_id, schema, [])
        if everything is None:
            return chosen
        return ordered if want * everything / total < total else chosen

    def _page(
        self,
        tenant_id: str,
        schema: Schema,
        chosen: Plan,
        after: str | None,
        size: int,
        skip: int,
        where: Check | None,
        *,
        most: int | None = None,
    ) -> Page:
        """One page of `chosen`'s matches after the cursor `after`, past the first `skip`; reading at
        most `most` records (or the budget) to check filters."""
        if skip and not (chosen.residual or chosen.sort_in_memory or where):
            # Pass the first `skip` matches by their keys alone; the page starts after the last of them.
            passed = list(islice(self._keys(tenant_id, schema, chosen, after, want=skip + size), skip))
            if len(passed) < skip:
                return Page(records=[], cursor=None, order=chosen.order)
            after, skip = passed[-1][0], 0
        found: list[Record] = []
        last: str | None = None
        for key, record in islice(
            self._matching(tenant_id, schema, chosen, after, want=skip + size + 1, where=where, most=most), skip, None
        ):
            if len(found) == size:
                return Page(records=found, cursor=_encode(last), order=chosen.order)
            found.append(record)
            last = key
        return Page(records=found, cursor=None, order=chosen.order)

    def _read_whole(
        self,
        tenant_id: str,
        schema: Schema,
        chosen: Plan,
        after: str | None,
        size: int,
        skip: int,
        where: Check | None,
    ) -> Page:
        """A page and the total of a query checked record by record: one pass over every match (capped)."""
        descending, total, passed, more = chosen.order.descending, 0, 0, False
        found: list[Record] = []
        last: str | None = None
        for key, record in self._matching(tenant_id, schema, chosen, None, want=1000, where=where):
            total += 1
            if after is not None and not (key < after if descending else key > after):
                continue
            if passed < skip:
                passed += 1
            elif len(found) < size:
                found.append(record)
                last = key
            else:
                more = True
        return Page(records=found, cursor=_encode(last) if more else None, order=chosen.order, total=total)

    def cursor_after(
        self, tenant_id: str, schema: Schema, conditions: Sequence[Condition], sort: Sort | None, rid: str
    ) -> str:
        """The cursor of a page that starts right after record `rid` in this query's order."""
        record = self.get(tenant_id, schema, rid)
        if record is None:
            raise Invalid(f"The offset names no record of {schema.name}: {rid[:40]}")
        key = _merge_key(schema, record, plan(schema, conditions, sort).order)
        return json.dumps(key)

    def count(
        self,
        tenant_id: str,
        schema: Schema,
        conditions: Sequence[Condition],
        *,
        where: Check | None = None,
        most: int | None = None,
    ) -> int:
        """How many records meet every condition: Select=COUNT Queries of the matching key ranges.

        Conditions no index serves, and `where`, are checked on the records read (at most `max_read`).
        With `most`, counting stops once it reaches `most` (the answer is then `most`: at least that many),
        so that a request never counts a whole large table to learn it is past a cap.
        """
        chosen = plan(schema, conditions)
        if chosen.nothing:
            return 0
        kept = None if where else self.counted(tenant_id, schema, conditions)
        if kept is not None:
            return kept
        if chosen.residual or where:
            return sum(1 for _ in itertools.islice(self._matching(tenant_id, schema, chosen, None, where=where), most))
        total = 0
        for pk, lo, hi in self._ranges(tenant_id, schema, chosen):
            if lo is not None and hi is not None and lo >= hi:
                continue
            total += self.table.count(*key_range(pk, lo, hi), most=None if most is None else most - total)
            if most is not None and total >= most:
                return most
        return total

    def counted(self, tenant_id: str, schema: Schema, conditions: Sequence[Condition]) -> int | None:
        """How many records meet `conditions`, from the counts the table keeps (COUNT_SLOTS items a
        count), when it keeps one for them: none (every record), or equalities on exactly the equality
        fields of a ready index (`type=a,b`: two counts). None otherwise."""
        if not counts_kept(schema):
            return None
        every = [records_family(tenant_id, schema)]
        families = self._index_families(tenant_id, schema, conditions) if conditions else every
        if families is None:
            return None
        since = since_key(tenant_id, schema)
        found = self.table.batch_get([since, *(key for family in families for key in count_keys(family))])
        if since not in found:  # declared with records before counts were kept: they would be missing
            return None
        return sum(int(item.get("n", 0)) for key, item in found.items() if key != since)

    @staticmethod
    def _index_families(tenant_id: str, schema: Schema, conditions: Sequence[Condition]) -> list[str] | None:
        """The counts of an index whose equality fields are exactly the conditions' (all `eq`), one per
        combination of their values; None when no index has those fields or they are too many to read."""
        if any(c.op != "eq" for c in conditions) or len({c.field for c in conditions}) != len(conditions):
            return None
        wanted = {c.field: sorted({canonical(v) for v in c.values}) for c in conditions}
        for index in schema.indexes:
            if index.building or set(index.equals) != set(wanted):
                continue
            combos = list(itertools.product(*(wanted[name] for name in index.equals)))
            if len(combos) * COUNT_SLOTS > MAX_COUNT_READS:
                return None
            return [index_family(tenant_id, schema, index, list(combo)) for combo in combos]
        return None

    def select(
        self, tenant_id: str, schema: Schema, filters: Mapping[str, Any], *, start: int = 0, size: int | None = None
    ) -> tuple[list[Record], int]:
        """Records `start` .. `start + size` matching every equality filter and how many match in all."""
        conditions = self.conditions(schema, filters)
        total = self.count(tenant_id, schema, conditions)
        if start >= total or size == 0:
            return [], total
        chosen = plan(schema, conditions)
        stop = total if size is None else start + size
        if chosen.residual:
            return [r for _, r in islice(self._matching(tenant_id, schema, chosen, None), start, stop)], total
        # Skip the first `start` entries by their keys alone, then read only the page's records.
        rids = [rid for _, rid in islice(self._keys(tenant_id, schema, chosen, None, want=stop), start, stop)]
        return self.get_many(tenant_id, schema, rids), total

    def stream(
        self,
        tenant_id: str,
        schema: Schema,
        filters: Mapping[str, Any] | Sequence[Condition],
        *,
        where: Check | None = None,
        fields: Sequence[str] | None = None,
        after: str | None = None,
    ) -> Iterator[Record]:
        """Every record matching `filters` (equalities, or conditions) and `where`, for jobs (no read cap).

        With `fields` (top-level field names), a read no index serves fetches only those fields of each
        record's data (and its id, label and version); with `fields` or `after`, it reads every shard at
        once, in id order past the id `after`. Records read by key (an index serves the filters) come
        whole, and `after` is ignored.
        """
        conditions = self.conditions(schema, filters) if isinstance(filters, Mapping) else filters
        # A job needs no order: a plan that would sort its matches in memory (a folded index's) streams them.
        chosen = replace(plan(schema, conditions), sort_in_memory=False)
        if chosen.index is None and not chosen.nothing and (fields is not None or after is not None):
            for _, record in self._whole_matching(tenant_id, schema, chosen, after, None, 1000, where, fields=fields):
                yield record
            return
        if chosen.index is None and not chosen.nothing:  # no index serves it: the record partitions, items whole
            for record in self._whole(tenant_id, schema):
                if matches(schema, record.data, chosen.residual) and (where is None or where(record)):
                    yield record
            return
        for _, record in self._matching(tenant_id, schema, chosen, None, capped=False, want=1000, where=where):
            yield record

    def _whole(self, tenant_id: str, schema: Schema) -> Iterator[Record]:
        """Every record in id order, read by Query from its shards' partitions (no key read, then BatchGetItem)."""
        shards = [
            self.table.query("pk = :p", {":p": records_pk(tenant_id, schema, s)}, consistent=True, exact=True)
            for s in range(schema.shards)
        ]
        for item in heapq.merge(*shards, key=lambda i: str(i["sk"])):
            yield _record(schema, item)

    def shard_ids(self, tenant_id: str, schema: Schema, shard: int) -> Iterator[str]:
        """The ids of a shard's records, in id order: a Query of its partition's keys (a job plans by them)."""
        pk = records_pk(tenant_id, schema, shard)
        for item in self.table.query("pk = :p", {":p": pk}, attributes=["sk"], consistent=True, page_size=1000):
            yield str(item["sk"])

    def holds_records(self, tenant_id: str, schema: Schema) -> bool:
        """Whether the table holds any record: a Query of one key per shard until one answers (never a count)."""
        return any(
            next(
                iter(self.table.query("pk = :p", {":p": records_pk(tenant_id, schema, s)}, limit=1, attributes=["sk"])),
                None,
            )
            is not None
            for s in range(schema.shards)
        )

    def any_in(self, tenant_id: str, schema: Schema, conditions: Sequence[Condition]) -> bool:
        """Whether a record meets `conditions` an index serves whole: a Query of one key per range of the
        index (a shard and value each) until one answers. Never the kept counts: they may lag a job's
        writes (an import adds its count moves once per group)."""
        chosen = plan(schema, conditions)
        if chosen.nothing:
            return False
        if chosen.index is None or chosen.residual:
            raise ValueError(f"{schema.name}: no index serves these conditions whole")
        for pk, lo, hi in self._ranges(tenant_id, schema, chosen):
            if lo is not None and hi is not None and lo >= hi:
                continue
            key, values = key_range(pk, lo, hi)
            first = next(iter(self.table.query(key, values, limit=1, attributes=["sk"], consistent=True)), None)
            if first is not None and (hi is None or first["sk"] < hi):
                return True
        return False

    def ids(
        self, tenant_id: str, schema: Schema, conditions: Sequence[Condition], *, where: Check | None = None
    ) -> Iterator[str]:
        """The ids of every record matching `conditions` and `where`, for jobs that plan by id (no read cap).

        When an index serves every condition and nothing else is checked, only its thin entries are read.
        """
        chosen = plan(schema, conditions)
        if chosen.residual or where is not None:
            yield from (r.rid for r in self.stream(tenant_id, schema, conditions, where=where))
            return
        keys = (rid for _, rid in self._keys(tenant_id, schema, chosen, None, want=1000))
        index = chosen.index
        if index is None or not any(self._multi(schema, path) for path in index.fields):
            yield from keys
            return
        seen: set[str] = set()  # a multi-valued field has an entry per value: a record may come twice
        for rid in keys:
            if rid not in seen:
                seen.add(rid)
                yield rid

    @staticmethod
    def _multi(schema: Schema, path: str) -> bool:
        head = schema.field(path.split(".")[0])
        inner = schema.field(path)
        return bool((head and head.multi) or (inner and inner.multi))

    def ids_of_source(self, tenant_id: str, schema: Schema, source: str) -> Iterator[str]:
        """The ids of every record written from `source` (its index's thin entries only)."""
        return self.ids(tenant_id, schema, [Condition(SOURCE_INDEX, "eq", (source,))])

    def count_source(self, tenant_id: str, schema: Schema, source: str) -> int:
        return self.count(tenant_id, schema, [Condition(SOURCE_INDEX, "eq", (source,))])

    # Reading in order, each record once (exports) ---------------------------
    def ordered_plan(self, schema: Schema, conditions: Sequence[Condition], sort: Sort | None) -> Plan:
        """The plan a job follows to read every match in one order, each record once, with no sorting in
        memory: the query's plan (with `sort`, the one that streams in that order, or the sort's index read
        in order, the rest checked on each record); TooBroad naming the index to declare when no index
        serves the sort. Without `sort`, the order is the plan's own (by id, or by the index's sort keys)."""
        chosen = plan(schema, conditions, sort)
        if chosen.nothing:
            return chosen
        if sort is None or sort.field is None:
            if sort is not None and chosen.sort_in_memory:  # by id: the records' partitions are in id order
                return Plan(index=None, residual=list(conditions), order=sort)
            chosen = replace(chosen, sort_in_memory=False)  # a folded index's order is its keys' own
            index = chosen.index
            if index is not None and not chosen.by_id and index.sort and self._multi(schema, index.sort):
                # an entry per value of a multi-valued sort field: the same record far apart; read the records
                return Plan(index=None, residual=list(conditions))
            return chosen
        if not chosen.sort_in_memory:
            return chosen
        ordered = in_order(schema, conditions, sort)
        if ordered is None:
            equals = sorted({c.field for c in conditions if c.op == "eq"})
            wanted = json.dumps({"equals": equals, "sort": sort.field})
            raise TooBroad(
                f"No index of {schema.name} lists these records in the order of {sort.field}: declare the index "
                f"{wanted} on {schema.name} in the app definition, or leave _sortField out"
            )
        return ordered

    def read_in_order(
        self, tenant_id: str, schema: Schema, chosen: Plan, after: str | None, *, where: Check | None = None
    ) -> Iterator[tuple[str, Record]]:
        """(key, record) of every match of `chosen` (from `ordered_plan`) in its order, past the key `after`
        (the last one a resumed reader read), each record read once and no cap (a job's read).

        Without an index: a Query of each shard's records partition, all at once (a thread each, a page
        ahead), merged by id, with the filters DynamoDB can check pushed down. With one: its thin entries,
        merged, then the records by key a page at a time (BatchGetItem); an entry per value of a
        multi-valued field gives the same record twice in a row, read once."""
        if chosen.nothing:
            return
        if chosen.index is not None:
            last = None
            for key, record in self._matching(tenant_id, schema, chosen, after, capped=False, want=1000, where=where):
                if key != last:
                    yield key, record
                last = key
            return
        descending = chosen.order.descending
        pushed = pushdown(schema, chosen.residual)
        attributes = ["sk", "rid", "data", "label", "version"]
        streams = [
            _ahead(self._shard(tenant_id, schema, n, after, descending, pushed, 1000, attributes=attributes), 1000)
            for n in range(schema.shards)
        ]
        for item in heapq.merge(*streams, key=lambda i: str(i["sk"]), reverse=descending):
            record = _record(schema, item)
            if matches(schema, record.data, chosen.residual) and (where is None or where(record)):
                yield record.rid, record

    def skip_keys(
        self, tenant_id: str, schema: Schema, chosen: Plan, count: int, *, where: Check | None = None
    ) -> tuple[str | None, int]:
        """The key of the `count`-th match in `chosen`'s order (where a read that leaves the first `count`
        out starts after) and how many were passed (fewer: there are no more). An index that serves every
        filter passes them by its thin entries; otherwise the records are read."""
        if count <= 0 or chosen.nothing:
            return None, 0
        index = chosen.index
        thin = index is not None and not chosen.residual and where is None
        if thin and not any(self._multi(schema, path) for path in index.fields):  # type: ignore[union-attr]
            keys = (key for key, _ in self._keys(tenant_id, schema, chosen, None, want=count))
        else:
            keys = (key for key, _ in self.read_in_order(tenant_id, schema, chosen, None, where=where))
        last: str | None = None
        passed = 0
        for key in islice(keys, count):
            last, passed = key, passed + 1
        return last, passed

    # Running a plan ------------------------------------------------------
    def _ranges(self, tenant_id: str, schema: Schema, chosen: Plan) -> Iterator[tuple[str, str | None, str | None]]:
        """Every (partition, [lo, hi) of its sort keys) the plan reads: one per shard, value and range."""
        index = chosen.index
        if index is None:
            for shard in range(schema.shards):
                yield records_pk(tenant_id, schema, shard), None, None
            return
        for shard in range(schema.shards):
            for combo in chosen.combos:
                pk = index_pk(tenant_id, schema, index, shard, combo)
                for lo, hi in chosen.ranges:
                    yield pk, lo, hi

    def _keys(
        self, tenant_id: str, schema: Schema, chosen: Plan, after: str | None, *, want: int = 100
    ) -> Iterator[tuple[str, str]]:
        """(merge key, record id) of every entry the plan's ranges hold, merged across shards in order.

        Each partition is read lazily, its first page sized to its share of the `want` first entries.
        """
        if chosen.nothing:
            return iter(())
        descending = chosen.order.descending and not chosen.sort_in_memory
        ranges = list(self._ranges(tenant_id, schema, chosen))
        hint = max(10, min(1000, want // len(ranges) + 10))
        plain = chosen.index is None
        streams = [
            self._range(pk, lo, hi, after, descending, hint, by_id=chosen.by_id or plain, plain=plain)
            for pk, lo, hi in ranges
        ]
        return heapq.merge(*streams, reverse=descending)

    def _range(
        self,
        pk: str,
        lo: str | None,
        hi: str | None,
        after: str | None,
        descending: bool,
        hint: int,
        *,
        by_id: bool,
        plain: bool = False,
    ) -> Iterator[tuple[str, str]]:
        """One partition's sort keys in [lo, hi), past the cursor, lazily a page at a time."""
        if after is not None:
            mark = (lo or "") + after if by_id and not plain else after
            if not descending:
                lo = mark + SEP if lo is None or mark >= lo else lo
            else:
                hi = mark if hi is None or mark < hi else hi
        if lo is not None and hi is not None and lo >= hi:
            return
        key, values = key_range(pk, lo, hi)
        for item in self.table.query(
            key, values, forward=not descending, page_size=hint, attributes=["sk"], consistent=True
        ):
            sk: str = item["sk"]
            if hi is not None and sk >= hi:  # BETWEEN's upper bound itself: first when descending, last if not
                if descending:
                    continue
                return
            rid = sk if plain else sk[sk.index(SEP) + 1 :]
            yield (rid if by_id else sk), rid

    def _matching(
        self,
        tenant_id: str,
        schema: Schema,
        chosen: Plan,
        after: str | None,
        *,
        capped: bool = True,
        want: int = 100,
        where: Check | None = None,
        most: int | None = None,
    ) -> Iterator[tuple[str, Record]]:
        """(merge key, record) of every match in the plan's order; records are read by key in batches.

        What no index serves is checked on the records read, at most `max_read` of them when `capped`.
        """
        start = None if chosen.sort_in_memory else after
        budget = self.max_read if most is None else min(most, self.max_read)
        cap = budget if capped and (chosen.residual or chosen.sort_in_memory or where) else None
        if chosen.index is None and not chosen.nothing:
            matched = self._whole_matching(tenant_id, schema, chosen, start, cap, want, where)
        else:
            keys = self._keys(tenant_id, schema, chosen, start, want=want)
            matched = self._checked(tenant_id, schema, chosen, keys, cap, want, where)
        if not chosen.sort_in_memory:
            yield from matched
            return
        order = chosen.order
        ranked = sorted(
            ((_merge_key(schema, r, order), r) for _, r in matched),
            key=lambda kr: kr[0],
            reverse=order.descending,
        )
        for key, record in ranked:
            if after is None or (key < after if order.descending else key > after):
                yield key, record

    def _whole_matching(
        self,
        tenant_id: str,
        schema: Schema,
        chosen: Plan,
        after: str | None,
        cap: int | None,
        want: int,
        where: Check | None,
        *,
        fields: Sequence[str] | None = None,
    ) -> Iterator[tuple[str, Record]]:
        """(id, record) of every record meeting the plan's filters, in id order past `after`: no index
        serves them, so the table's shards are read whole, at once (a thread each, a page ahead), with the filters
        DynamoDB can check pushed down to it (`pushdown`); every filter is checked here too. At most `cap`
        items read (DynamoDB's ScannedCount), then TooBroad. With `fields`, each item brings only those
        fields of its data (a projection, names as placeholders), read at once as a filtered read is."""
        descending = chosen.order.descending and not chosen.sort_in_memory
        budget = _Budget(cap)
        pushed = pushdown(schema, chosen.residual)
        attributes: list[Attribute] | None = None
        if fields is not None:
            attributes = [*_RECORD_ATTRIBUTES, *(("data", f) for f in fields)]
        hint = max(10, min(1000, want // schema.shards + 10))

        def shard(number: int) -> Iterator[dict[str, Any]]:
            return self._shard(
                tenant_id, schema, number, after, descending, pushed, hint, scanned=budget.add, attributes=attributes
            )

        # A page of every record in id order reads each shard lazily; a filtered, sorted or projected read, all at once.
        checked = bool(chosen.residual) or where is not None or chosen.sort_in_memory or fields is not None
        streams = [_ahead(shard(n), depth=hint) if checked else shard(n) for n in range(schema.shards)]
        try:
            for item in heapq.merge(*streams, key=lambda i: str(i["sk"]), reverse=descending):
                record = _record(schema, item if fields is None else {"data": {}, **item})
                if matches(schema, record.data, chosen.residual) and (where is None or where(record)):
                    yield record.rid, record
        except _Spent:
            raise self._too_broad(schema, chosen) from None

    def _shard(
        self,
        tenant_id: str,
        schema: Schema,
        number: int,
        after: str | None,
        descending: bool,
        pushed: tuple[str | None, dict[str, str], dict[str, Any]],
        page_size: int,
        *,
        scanned: Callable[[int], None] | None = None,
        attributes: Sequence[Attribute] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The items of shard `number`'s records partition in id order past `after` (ids below it when
        descending, else from the first text after it: `after` + "\x00"), the `pushdown` filters checked
        by DynamoDB; `scanned` is told of the items read."""
        expression, names, values = pushed
        lo, hi = (None, after) if descending else (None if after is None else after + "\x00", None)
        key, bounds = key_range(records_pk(tenant_id, schema, number), lo, hi)
        return self.table.query(
            key,
            {**bounds, **values},
            names=names or None,
            forward=not descending,
            consistent=True,
            exact=True,
            page_size=page_size,
            filtered=expression,
            scanned=scanned,
            attributes=attributes,
        )

    def _checked(
        self,
        tenant_id: str,
        schema: Schema,
        chosen: Plan,
        keys: Iterator[tuple[str, str]],
        cap: int | None,
        want: int,
        where: Check | None = None,
    ) -> Iterator[tuple[str, Record]]:
        """The records of `keys` that meet the residual filters; the first batch is the page, then batches double.

        A page an index serves whole reads just its records; one checked on residual filters reads on.
        """
        read, batch_size = 0, max(1, min(want, 100))
        while batch := list(islice(keys, batch_size)):
            batch_size = min(batch_size * 2, 100)
            read += len(batch)
            if cap is not None and read > cap:
                raise self._too_broad(schema, chosen)
            found = {r.rid: r for r in self.get_many(tenant_id, schema, [rid for _, rid in batch])}
            for key, rid in batch:
                record = found.get(rid)
                if (
                    record is not None
                    and matches(schema, record.data, chosen.residual)
                    and (where is None or where(record))
                ):
                    yield key, record

    def _too_broad(self, schema: Schema, chosen: Plan) -> TooBroad:
        """The 400 of a read past the budget, naming the index that would serve it: the equality filters'
        fields, then the field of a range or of the order (filters an index cannot serve, `like(v)`
        or `notEquals`, are not in it: some filter an index serves must narrow them)."""
        equals = sorted({c.field for c in chosen.residual if c.op == "eq"})
        folded = next((c.field for c in chosen.residual if c.op == "ilike"), None)  # like(/v): a folded index
        ranged = [c.field for c in chosen.residual if c.op not in ("eq", "ilike") and c.field not in equals]
        sort = folded or chosen.order.field or (ranged[0] if ranged else None)
        wanted: dict[str, Any] | None = None
        if equals or sort:
            wanted = {"equals": equals, **({"sort": sort} if sort else {}), **({"folded": True} if folded else {})}
        advice = (
            f"declare the index {json.dumps(wanted)} on {schema.name} in the app definition"
            if wanted
            else "add a filter on an indexed field"
        )
        return TooBroad(
            f"This query on {schema.name} would read more than {self.max_read:,} items (the read budget):"
            f" no index serves its filters or its order; {advice}"
        )


# What a projected read of a record brings besides its fields: the sort key (the merge's), id, label, version.
_RECORD_ATTRIBUTES = ("sk", "rid", "label", "version")


class _Spent(Exception):
    """A read went past its budget of items."""


class _Budget:
    """Items one request's reads may read (None: no bound), added up from the threads reading its shards."""

    def __init__(self, most: int | None) -> None:
        self.most = most
        self.read = 0
        self._lock = threading.Lock()

    def add(self, items: int) -> None:
        with self._lock:
            self.read += items
            if self.most is not None and self.read > self.most:
                raise _Spent


_END = object()


def _ahead(source: Iterator[Any], depth: int) -> Iterator[Any]:
    """`source`'s items, read by a thread of its own (started now) ahead of the consumer, so that the
    shards of one read are read at the same time, not one after the other. Its failure is raised to
    the consumer; the thread stops when the consumer does (it waits on a full queue a tenth of a
    second at a time)."""
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not offer(item):
                    return
            offer(_END)
        except BaseException as err:
            offer(_Failed(err))

    threading.Thread(target=in_context(produce), daemon=True).start()
    return _taken(box, stop)


def _taken(box: queue.Queue[Any], stop: threading.Event) -> Iterator[Any]:
    try:
        while (item := box.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_TEXTS = frozenset({"text", "email", "url", "choice", "date"})  # stored as strings: DynamoDB compares code points


def pushdown(schema: Schema, conditions: Sequence[Condition]) -> tuple[str | None, dict[str, str], dict[str, Any]]:
    """A FilterExpression for the conditions DynamoDB checks exactly as `matches` does (equality and
    ranges on a field of one text, number, date or boolean value), with its names and values; field
    names only as placeholders. What it leaves out is checked on the records read, as all of it is."""
    parts: list[str] = []
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    for i, cond in enumerate(conditions):
        spec = schema.field(cond.field) if cond.field != SOURCE_INDEX else None
        if spec is None or spec.multi or not cond.values or spec.type not in (*_TEXTS, *NUMERIC, "boolean"):
            continue
        steps = {f"#c{i}_{j}": step for j, step in enumerate(cond.field.split("."))}
        path = ".".join(["#rd", *steps])
        held = [f":c{i}_{k}" for k in range(len(cond.values))]
        if cond.op == "eq" and len(held) <= 100:
            parts.append(f"{path} IN ({', '.join(held)})")
        elif cond.op in _COMPARED and spec.type != "boolean" and len(held) == len(_COMPARED[cond.op]):
            parts.append(
                " AND ".join(f"{path} {sign} {name}" for sign, name in zip(_COMPARED[cond.op], held, strict=True))
            )
        else:
            continue
        names.update({"#rd": "data", **steps})
        values.update(zip(held, cond.values, strict=True))
    return (" AND ".join(parts) or None), names, values


_COMPARED = {"gt": (">",), "ge": (">=",), "lt": ("<",), "le": ("<=",), "between": (">=", "<=")}


def _merge_key(schema: Schema, record: Record, order: Sort) -> str:
    """Where a record sorts in `order`, as a cursor holds it: its id, or `<order key>\x01<id>` as the
    sort field's index keys its entries, so that a cursor holds whether the page is sorted in memory or
    read from that index in order."""
    return record.rid if order.field is None else SEP.join(sort_key(schema, record.data, record.rid, order))


def _record(schema: Schema, item: Mapping[str, Any]) -> Record:
    record = Record.model_validate(item)
    record.data = _restore(schema.fields, record.data)
    return record


def _encode(key: str | None) -> str | None:
    return None if key is None else json.dumps(key)


def _decode(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        value = json.loads(cursor)
    except ValueError:
        raise Invalid("The cursor is not one this API gave") from None
    if not isinstance(value, str):
        raise Invalid("The cursor is not one this API gave")
    return value


def _restore(fields: list[TableField], data: dict[str, Any]) -> dict[str, Any]:
    """Money as stored keeps its scale: DynamoDB gives 60 back for 60.00."""
    for spec in fields:
        value = data.get(spec.name)
        if value is None:
            continue
        if spec.type == "money":
            scale = Decimal(1).scaleb(-spec.scale)
            data[spec.name] = (
                [v.quantize(scale, context=EXACT) for v in value]
                if spec.multi
                else value.quantize(scale, context=EXACT)
            )
        elif spec.type == "group":
            for group in value if spec.multi else [value]:
                if isinstance(group, dict):
                    _restore(spec.fields, group)
    return data
