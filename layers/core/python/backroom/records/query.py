"""Filters, sorting and the query planner: which index answers a query, and with which key ranges.

An index entry's sort key is `<order key of the sort value>\\x01<record id>` (`\\x01<id>` when the
value is empty), so every operator on the sort field is one range of sort keys: equality
`[v\\x01, v\\x02)`, a range, a prefix `[p, p with its last character + 1)`, empty `[\\x01, \\x02)`, not empty
`[\\x02, ...)`. The planner only decides; `reader.RecordReader` runs the plan. It is pure, so the
property test can check it against an in-memory oracle (`matches` + `sort_key`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from backroom.records.schema import NUMERIC, SOURCE_INDEX, Index, Schema
from backroom.records.values import canonical, is_empty, order_key, value_at

# like: starts with (as stored); ilike: starts with, ignoring case (casefold), as the query language's like(/v)
Op = Literal["eq", "between", "gt", "ge", "lt", "le", "like", "ilike", "empty", "notEmpty"]
SEP, NEXT, TOP = "\x01", "\x02", "\U0010ffff"  # text never holds \x01 or \x02 (values.py)
MAX_PARTITIONS = 100  # key ranges (value combinations times sort-key ranges) one plan may query per shard


@dataclass(frozen=True)
class Condition:
    """One filter on a field path; `values` are typed as the field stores them (eq: any of them)."""

    field: str
    op: Op = "eq"
    values: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Sort:
    field: str | None = None  # None: by record id
    descending: bool = False


@dataclass
class Plan:
    index: Index | None  # None: the table's own records, in id order
    combos: list[list[str]] = field(default_factory=lambda: [[]])  # equality values: one partition each
    ranges: list[tuple[str | None, str | None]] = field(default_factory=lambda: [(None, None)])  # [lo, hi)
    by_id: bool = True  # every range holds one sort value, so the streams merge by record id
    residual: list[Condition] = field(default_factory=list)  # checked on each record read
    order: Sort = field(default_factory=Sort)  # the order the results come in
    sort_in_memory: bool = False  # the stream's order is not the one asked for: read all, then sort
    nothing: bool = False  # a filter no value can meet (a number filter of "four"): no read at all


def matches(schema: Schema, data: Mapping[str, Any], conditions: Sequence[Condition]) -> bool:
    """Whether a record's data meets every condition (the oracle of the planner, and its residual check)."""
    return all(_meets(schema, data, c) for c in conditions)


def _meets(schema: Schema, data: Mapping[str, Any], cond: Condition) -> bool:
    if cond.field == SOURCE_INDEX:
        return False
    spec = schema.field(cond.field)
    value = value_at(data, cond.field)
    if cond.op == "empty":
        return is_empty(value)
    if is_empty(value) or spec is None:
        return False
    if cond.op == "notEmpty":
        return True
    if cond.op == "eq":
        return canonical(value) in {canonical(v) for v in cond.values}
    mine = order_key(spec, value)
    bounds = [order_key(spec, v) for v in cond.values]
    if cond.op == "like":
        return isinstance(value, str) and value.startswith(str(cond.values[0]))
    if cond.op == "ilike":
        return isinstance(value, str) and value.casefold().startswith(str(cond.values[0]).casefold())
    checks = {
        "gt": lambda: mine > bounds[0],
        "ge": lambda: mine >= bounds[0],
        "lt": lambda: mine < bounds[0],
        "le": lambda: mine <= bounds[0],
        "between": lambda: bounds[0] <= mine <= bounds[1],
    }
    return checks[cond.op]()


def sort_key(schema: Schema, data: Mapping[str, Any], rid: str, sort: Sort) -> tuple[str, str]:
    """Where a record sorts: its order key (empty first) then its id, as index entries sort."""
    if sort.field is None:
        return ("", rid)
    spec = schema.field(sort.field)
    value = value_at(data, sort.field)
    return ("" if is_empty(value) or spec is None else order_key(spec, value), rid)


def _range(schema: Schema, cond: Condition, folded: bool) -> tuple[list[tuple[str | None, str | None]], bool] | None:
    """The sort-key ranges of a condition on an index's sort field, and whether each is one value.

    A folded index serves `ilike` alone: its keys are the values case-folded, in no order of the values."""
    spec = schema.field(cond.field)
    if spec is None or folded != (cond.op == "ilike"):
        return None
    if folded:
        return [_prefix(str(cond.values[0]).casefold())], False
    keys = [order_key(spec, v) for v in cond.values]
    if cond.op == "eq":
        return [(k + SEP, k + NEXT) for k in sorted(set(keys))], True
    if cond.op == "empty":
        return [(SEP, NEXT)], True
    single = {
        "notEmpty": (NEXT, None),
        "gt": (keys[0] + NEXT, None) if keys else None,
        "ge": (keys[0] + SEP, None) if keys else None,
        "lt": (NEXT, keys[0] + SEP) if keys else None,
        "le": (NEXT, keys[0] + NEXT) if keys else None,
        "between": (keys[0] + SEP, keys[1] + NEXT) if len(keys) == 2 else None,
        "like": _prefix(keys[0]) if keys and spec.type not in (*NUMERIC, "boolean") else None,
    }.get(cond.op)
    return ([single], False) if single else None


def _prefix(prefix: str) -> tuple[str | None, str | None]:
    """The sort keys of values starting with `prefix`: [prefix, the next text of its length)."""
    if not prefix:
        return NEXT, None  # every value starts with "": not empty
    head = prefix.rstrip(TOP)
    if not head:
        return prefix, None
    last = ord(head[-1]) + 1
    last = 0xE000 if 0xD800 <= last <= 0xDFFF else last  # surrogates are no text
    return prefix, head[:-1] + chr(last)


def plan(schema: Schema, conditions: Sequence[Condition], sort: Sort | None = None) -> Plan:
    """The cheapest way to answer: the index serving the most filters (and the sort), else the table."""
    if any(c.op == "eq" and not c.values for c in conditions):
        return Plan(index=None, nothing=True)
    indexes = [i for i in schema.indexes if not i.building]  # a building index lacks older records' entries
    if any(c.field == SOURCE_INDEX for c in conditions):
        indexes = [Index(name=SOURCE_INDEX, equals=[SOURCE_INDEX])]
    best: tuple[tuple[int, int, int], Plan] | None = None
    for index in indexes:
        candidate = _on_index(schema, index, conditions, sort)
        if candidate is None:
            continue
        served = len(conditions) - len(candidate.residual)
        sorted_right = not candidate.sort_in_memory
        if served == 0 and not (sort and sort.field and sorted_right):
            continue
        score = (served, int(sorted_right), -len(candidate.combos))
        if best is None or score > best[0]:
            best = (score, candidate)
    if best is not None:
        return best[1]
    wanted = sort or Sort()
    return Plan(
        index=None,
        residual=list(conditions),
        order=wanted,
        sort_in_memory=wanted.field is not None,
    )


def in_order(schema: Schema, conditions: Sequence[Condition], sort: Sort) -> Plan | None:
    """The plan that reads the sort field's index in its order, checking what it does not serve on the
    way: a page costs its size divided by the share of records that match, not every match."""
    best: tuple[int, Plan] | None = None
    for index in schema.indexes:
        if index.building or index.folded or sort.field is None or index.sort != sort.field:
            continue
        candidate = _on_index(schema, index, conditions, sort)
        if candidate is None or candidate.sort_in_memory:
            continue
        served = len(conditions) - len(candidate.residual)
        if best is None or served > best[0]:
            best = (served, candidate)
    return best[1] if best else None


def _on_index(schema: Schema, index: Index, conditions: Sequence[Condition], sort: Sort | None) -> Plan | None:
    used: list[Condition] = []
    values: list[list[str]] = []
    for name in index.equals:
        cond = next((c for c in conditions if c.field == name and c.op == "eq"), None)
        if cond is None:
            return None
        used.append(cond)
        values.append(sorted({canonical(v) for v in cond.values}))
    combos = [list(c) for c in itertools.product(*values)]
    if len(combos) > MAX_PARTITIONS:
        return None
    # An index without a sort field holds only empty sort values: one range, ordered by record id.
    ranges: list[tuple[str | None, str | None]] = [(SEP, NEXT)] if index.sort is None else [(None, None)]
    by_id = index.sort is None
    for cond in conditions:
        if index.sort and cond.field == index.sort and cond not in used:
            served = _range(schema, cond, index.folded)
            # Each range is a Query per shard and combination: past the cap, the condition is checked on reads.
            if served is not None and len(combos) * len(served[0]) <= MAX_PARTITIONS:
                ranges, by_id = served
                used.append(cond)
                break
    residual = [c for c in conditions if c not in used]
    if sort is None and not (index.folded and not by_id):
        order = Sort() if by_id else Sort(index.sort)
        return Plan(index, combos, ranges, by_id, residual, order)
    if sort is None:  # a folded index's keys are in no order of the values: by the field, in memory
        return Plan(index, combos, ranges, False, residual, Sort(index.sort), sort_in_memory=True)
    streams_in_order = (sort.field is None and by_id) or (sort.field == index.sort and not index.folded)
    return Plan(index, combos, ranges, by_id and sort.field is None, residual, sort, not streams_in_order)
