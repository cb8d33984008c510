"""Aggregate queries (`PUT /runtime/api/data/{entity}/aggregate`): Slingr's pipelines, MongoDB-like.

The body is a JSON array of stages, each a one-key object `{"<operation>": settings}`, run in order
over the entity's records as the caller may read them. The answer is `{"total": n, "items": [...]}`:
`total` counts every resulting document, `items` holds the first `MAX_ITEMS` (1,000) of them.

Documents start as `{"id", "label", <field>: value}` with the fields the caller may read that hold a
value (never the others): integers and date-times (epoch ms) are numbers, decimals and money exact
decimals (shown as strings, as the runtime API shows them), relationships `{id, label}`, groups
objects with their own `id` and `label`, multi-valued fields lists. They come in the store's order
(by id, or by the field of an index range that serves the leading match): sort when order matters.

Stages
- `match`: `{"path": "value", ...}`, the query language's filters, ANDed (`"greater(2)"`, `"a,b"`,
  `"like(x)"`, `"empty()"`, and `_query`); true, false and numbers stand for their text, null for
  `empty()`. The leading matches (before any other stage) are one query to the store, served by an
  index when one fits. Before any `group` or `count`, a match that names no field a `lookup` added
  is checked against the entity's schema and evaluated as the query language does (typed values, a
  relationship by id or by label, ANY element of a list). Any other match is evaluated generically:
  numbers compare as numbers, text as text (code points), booleans equal `true`/`false`, an object
  equals a record id by its `id` and other text by its `label`; lists meet a filter when any element
  does; unknown names have no value.
- `project`: `"a,b,c.d"` keeps only the listed paths (`id` and `label` too, only when listed); a
  nested path keeps its nesting (`{"c": {"d": ...}}`), through lists element by element.
- `group`: `{"by": "a,b", "<name>": "sum(f)" | "avg(f)" | "min(f)" | "max(f)" | "first(f)" |
  "last(f)" | "count()"}`. One document per distinct combination of the `by` values (`by` left out:
  one group of everything), in the order of each group's first document: the `by` paths with their
  values (nested paths nested; a relationship groups and shows by its label; missing shows null),
  then each result. `sum`: of the numbers (others ignored), 0 when none; `avg`: of the numbers, null
  when none (integers average to a float, decimals to a decimal of 34 digits); `min`/`max`: the
  first least/greatest non-null value in the order below, null when none; `first`/`last`: the value
  in the group's first/last document, null when it has none; `count()`: the group's documents. No
  documents, no groups (as MongoDB). Only the groups are held in memory.
- `sort`: `{"f": "asc", "g": "desc"}`, keys in order, stable. Values order as missing/null <
  numbers < text < objects (by their label, then their fields by name) < lists (element by element)
  < booleans (false < true).
- `skip`: n (0 to `MAX_DOCUMENTS`); `limit`: n (1 to `MAX_DOCUMENTS`).
- `count`: `"name"`, exactly one document `{"name": <number of documents>}` (0 when none).
- `unwind`: `{"fieldPath": "addresses", "includeEmpty": false}`, one document per element of the
  list at that path, the element in its place; a document whose value is missing, null or an empty
  list is dropped, or with `includeEmpty` kept (missing and empty lists as absent, null as null); a
  value that is not a list is kept as it is.
- `lookup`: `{"localFieldPath": "company", "foreignFieldPath": "id", "foreignEntityName":
  "companies", "as": "companyInfo"}` adds `as`: the foreign entity's documents (as the caller may read
  them, in id order) whose value at `foreignFieldPath` equals the local value (any element of a list
  equals). A relationship compares by its id; numbers equal numbers, text equals text (the text "5"
  is not the number 5). Foreign reads are batched and cached per distinct value: `id` by batch
  gets, a path an index serves by one query a value, any other path by one read of the foreign table.

Reads: the store fetches only the fields the stages name until the first `project`, `group` or
`count` (after it nothing else of a record is seen; a pipeline without one fetches every field the
caller may read), a projection on a read of every shard at once when no index serves the leading
match (`Pipeline.fields`, `RecordReader.stream`'s `fields`).

Work budget: a pipeline reads at most `MAX_READ` records (its source and its lookups; a lookup's query
for one value counts `LOOKUP_QUERY`) and works through at most `MAX_DOCUMENTS` documents, counted as
each stage takes them in (see `_Budget`); past either, a 400 names the stage and says what to do
instead: run it with `_async=true`, or select fewer records. So fan-out (lookup, unwind) cannot
multiply a small body into hours of work. `_async=true` (an extension of the spec) runs the same
pipeline as a job (`backroom.app.aggregate_job`) within a larger budget (`ASYNC_MAX_READ`,
`ASYNC_MAX_DOCUMENTS`), a page of records at a time (`Pipeline.page`, `Pipeline.combine`), and
leaves every document of its answer in a JSON file.

Checks: a malformed body, an unknown operation or malformed settings is a 400 naming the stage.
Until the first `group` or `count`, every path a stage names must be a field of the entity (through
groups; a relationship holds only `id` and `label`), `id`, `label` or a name an earlier `lookup`
added (400), and its field one the caller may read (403). After a `group` or `count`, paths name the
new documents' fields, and a name they lack simply has no value.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeAlias

from backroom.app.querylang import AllOf, AnyOf, Expr, Filter, Query, bind, evaluate, like_matcher, parse
from backroom.errors import Forbidden, Invalid, NotFound
from backroom.identity.models import Caller
from backroom.records import Condition, Record, RecordStore, Schema, TableField
from backroom.records.query import matches, plan
from backroom.records.schema import NAME_PATTERN, NUMERIC
from backroom.records.values import EXACT, canonical

if TYPE_CHECKING:
    from backroom.app.permissions import Access, Gate
    from backroom.app.ports import AppService

MAX_ITEMS = 1000  # documents an answer lists; `total` counts them all
MAX_STAGES = 100
MAX_NAMES = 100  # fields, sort keys or accumulators one stage names
MAX_PATH = 10  # names in one field path (documents nest no deeper than the paths that build them)
MAX_FILTERS = 100  # filters in all the pipeline's matches (each is checked on every document that reaches it)
# The work budget (docs/dialects.md "Aggregate queries"), sized so that a request stays well within API Gateway's 29 s:
MAX_READ = 40_000  # records read (the source and every lookup): whole 1 KB records, about 12 s of a 512 MB Lambda
LOOKUP_QUERY = 100  # records a lookup's query for one value counts as: a Query on each shard, then a batch get
MAX_DOCUMENTS = 500_000  # documents the stages take in, weighted (see `_Budget`)
# The budget of an `_async` aggregate (a job, `backroom.app.aggregate_job`): bounded still, the size of a big export.
ASYNC_MAX_READ = 1_000_000
ASYNC_MAX_DOCUMENTS = 20_000_000
PROJECTED_MOST = 100  # fields a read fetches by name (a projection expression); past it, whole items
LOOKUP_BATCH = 100  # documents whose foreign records are read together
AVERAGE = Context(prec=34)  # an average of decimals keeps 34 significant digits, as MongoDB's decimal128
OPERATIONS = ("match", "project", "group", "sort", "skip", "limit", "count", "unwind", "lookup")
ACCUMULATORS = ("sum", "avg", "min", "max", "first", "last", "count")
_NAME = re.compile(NAME_PATTERN)
_CALL = re.compile(r"([A-Za-z]+)\((.*)\)", re.DOTALL)
_ID = re.compile(r"[0-9a-f]{24}")

Document: TypeAlias = dict[str, Any]
Docs: TypeAlias = Iterator[Document]
Step: TypeAlias = Callable[[Docs], Docs]
Tree: TypeAlias = dict[str, "Tree | None"]  # projected paths: None keeps the whole value
Key: TypeAlias = tuple[Any, ...]


class _Missing:
    """A path that leads nowhere (unlike a null value, which is there)."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def aggregate(
    data: AppService, caller: Caller, name: str, body: Any, *, limits: Limits | None = None
) -> dict[str, Any]:
    """Run the pipeline `body` over entity `name`'s records as `caller` may read them: {"total": n, "items": [...]}.

    Raises Invalid (400) for a malformed pipeline or one past `limits` (the synchronous budget unless
    given), Forbidden (403) for what the caller may not read, NotFound for an unknown entity; the whole
    pipeline is checked before a record is read.
    """
    pipeline = Pipeline.of(data.records, caller.tenant_id, data.gate(caller), name, body, limits or sync_limits())
    total = 0
    items: list[Document] = []
    for document in pipeline.answer(pipeline.run()):
        total += 1
        if len(items) < MAX_ITEMS:
            items.append(json_value(document))
    return {"total": total, "items": items}


@dataclass(frozen=True)
class Limits:
    """A run's work budget (see `_Budget`): records read, documents worked through, and what the 400
    past either says to do instead."""

    read: int
    documents: int
    scope: str  # who may do that much: "one request may", "an _async aggregate may"
    advice: str  # put before the advice to select fewer records


def sync_limits() -> Limits:
    """The budget of a request (read when called: a test may lower the module's numbers)."""
    return Limits(MAX_READ, MAX_DOCUMENTS, "one request may", "run it as a job with _async=true, or ")


def async_limits() -> Limits:
    return Limits(ASYNC_MAX_READ, ASYNC_MAX_DOCUMENTS, "an _async aggregate may", "")


def _stages(body: Any) -> list[tuple[int, str, Any]]:
    if not isinstance(body, list) or not body:
        raise Invalid('The body must be a JSON array of stages, as [{"match": {"state": "active"}}, {"count": "n"}]')
    if len(body) > MAX_STAGES:
        raise Invalid(f"A pipeline holds at most {MAX_STAGES} stages")
    stages = []
    for number, stage in enumerate(body, 1):
        if not isinstance(stage, dict) or len(stage) != 1:
            raise Invalid(f'Stage {number} must be an object holding one operation, as {{"count": "n"}}')
        ((op, settings),) = stage.items()
        if op not in OPERATIONS:
            raise Invalid(
                f"Stage {number}: {_clip(op)} is not an operation; the operations are {', '.join(OPERATIONS)}"
            )
        stages.append((number, op, settings))
    return stages


def _clip(text: Any, most: int = 60) -> str:
    text = str(text)
    return text if len(text) <= most else text[:most] + "..."


# The work budget --------------------------------------------------------------------------------
class _Budget:
    """What a pipeline has read and worked through so far; past either cap, a 400 that says what to do instead.

    Documents are counted where a stage takes them in (and where the answer does), so each one a stage
    makes counts once, fan-out included, and so do those a match drops. A document weighs one plus the
    objects and list items inside it (a lookup's matches, an address, a list's values): a stage's work
    grows with what it walks through. A stage that names several filters, fields, keys or accumulators
    counts each document once per name. A job's run starts from what its earlier pages spent.
    """

    def __init__(self, limits: Limits, read: int = 0, documents: int = 0) -> None:
        self.limits = limits
        self.read = read
        self.documents = documents
        self.known: dict[int, int] = {}  # the weights of the documents lookups hold, by id (see `_weight`)

    def reading(self, where: str, records: int) -> None:
        self.read += records
        limits = self.limits
        if self.read > limits.read:
            raise Invalid(
                f"{where}: the aggregate would read more than {limits.read:,} records, the most {limits.scope} read; "
                f"{limits.advice}select fewer records with a leading match an index serves (or look up fewer "
                "distinct values)"
            )

    def taking(self, where: str, width: int, docs: Docs) -> Docs:
        """`docs`, each counted `width` times its weight as the stage at `where` takes it."""
        most = self.limits.documents
        for document in docs:
            room = (most - self.documents) // width
            self.documents += width * _weight(document, room, self.known)
            if self.documents > most:
                raise Invalid(
                    f"{where}: the aggregate would work through more than {most:,} documents, the most "
                    f"{self.limits.scope} (docs/dialects.md, Aggregate queries); {self.limits.advice}select fewer "
                    "records with a leading match, and project, group or limit before a lookup or unwind multiplies "
                    "them"
                )
            yield document


def _weight(document: Any, most: int, known: Mapping[int, int]) -> int:
    """One for the document, plus one for each object and list item inside it; the count stops past `most`.

    `known` holds the weights of the foreign documents lookups keep (alive, never changed) by their id:
    a lookup's match shared by many documents is counted in each of them without being walked again.
    """
    count, pending = 0, [document]
    pop, push = pending.pop, pending.append
    while pending and count <= most:
        value = pop()
        if value.__class__ is dict:
            weight = known.get(id(value))
            if weight is not None:
                count += weight
                continue
            count += 1
            for inner in value.values():
                if inner.__class__ is dict or inner.__class__ is list:
                    push(inner)
        else:
            for inner in value:
                if inner.__class__ is dict or inner.__class__ is list:
                    push(inner)
                else:
                    count += 1
    return count


# A job's pages ----------------------------------------------------------------------------------
@dataclass
class Part:
    """What one page of a job's records gave: where it ended and what the budget had spent by then (its
    first line, `head`), and the groups gathered, the count, or the documents of the stages up to the
    first that needs every document."""

    after: str | None  # the id of the last record read: the next page starts after it
    read: int = 0  # records read by this page and those before it
    spent: int = 0  # documents worked through, likewise
    taken: int = 0  # records this page read
    more: bool = False  # whether records followed (the page stopped at its size)
    groups: Groups | None = None
    count: int | None = None
    documents: list[Document] | None = None

    def head(self) -> dict[str, Any]:
        return {"after": self.after, "read": self.read, "spent": self.spent, "taken": self.taken, "more": self.more}


class _PageFull(Exception):
    """A page read its records: the next one is not taken."""


def _until_full(records: Iterable[Record], part: Part) -> Iterator[Record]:
    try:
        yield from records
    except _PageFull:
        part.more = True


def dumps(value: Any) -> str:
    """JSON that keeps exact decimals (`{"$d": "2.50"}`: no field name starts with $) and floats as floats."""
    return json.dumps(value, default=_tagged, separators=(",", ":"))


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_untagged)


def _tagged(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    raise TypeError(f"{type(value).__name__} is not a document's value")


def _untagged(value: dict[str, Any]) -> Any:
    return Decimal(value["$d"]) if len(value) == 1 and "$d" in value else value


# Planning: the stages checked and turned into steps over a stream of documents -------------------
@dataclass
class _Step:
    where: str
    width: int  # how many names the stage names, for the budget
    run: Step
    group: _Group | None = None  # a group's own keys and accumulators (a job gathers it a page at a time)
    count: str | None = None  # a count's name
    streams: bool = True  # works document by document, holding nothing (match, project, unwind, lookup)


class Pipeline:
    """A checked pipeline over one entity, as a gate (a caller, or a job's user) may read it.

    A request runs it whole (`run`); a job (`backroom.app.aggregate_job`) runs it a page of records at
    a time (`page`), each page's part of the work kept, then the parts combined (`combine`).
    """

    def __init__(self, records: RecordStore, tenant_id: str, gate: Gate, access: Access, budget: _Budget) -> None:
        self.records = records
        self.tenant_id = tenant_id
        self.gate = gate
        self.schema = access.schema
        self.readable = set(access.readable())
        self.entity_shaped = True  # until a group or count makes new documents
        self.aliases: set[str] = set()  # names earlier lookups added
        self.used: set[str] = set()  # the entity's fields the stages name until a project, group or count
        self.narrowed = False  # once a project, group or count: later stages see only what it kept
        self.leading: list[Expr] = []  # the leading matches' filters, for the store
        self.steps: list[_Step] = []
        self.filters = 0  # in all the matches
        self.budget = budget
        self.width = 1  # how many names the stage being added names, for the budget
        self.builders: dict[str, Callable[[str, Any], Step]] = {
            "project": self._project,
            "group": self._group,
            "sort": self._sort,
            "skip": self._skip,
            "limit": self._limit,
            "count": self._count,
            "unwind": self._unwind,
            "lookup": self._lookup,
        }

    @classmethod
    def of(
        cls,
        records: RecordStore,
        tenant_id: str,
        gate: Gate,
        name: str,
        body: Any,
        limits: Limits,
        spent: tuple[int, int] = (0, 0),
    ) -> Pipeline:
        """The pipeline `body` over entity `name`, every stage checked (400, 403, 404 before a record is read).

        `spent`: the records read and documents worked through by a job's earlier pages, counted against `limits`."""
        budget = _Budget(limits, read=spent[0], documents=spent[1])
        pipeline = cls(records, tenant_id, gate, gate.access(name, "read"), budget)
        for number, op, settings in _stages(body):
            pipeline.add(number, op, settings)
        if pipeline.filters > MAX_FILTERS:
            raise Invalid(
                f"A pipeline's matches hold at most {MAX_FILTERS} filters in all (this one {pipeline.filters})"
            )
        return pipeline

    def add(self, number: int, op: str, settings: Any) -> None:
        where = f"Stage {number} ({op})"
        self.width = 1
        if op == "match":
            self._match(where, settings)
            return
        step = self.builders[op](where, settings)
        group = step if isinstance(step, _Group) else None
        blocks = op in ("group", "count", "sort", "skip", "limit")
        count = settings if op == "count" else None
        self.steps.append(_Step(where, self.width, step, group, count=count, streams=not blocks))
        if op in ("project", "group", "count"):
            self.narrowed = True

    def fields(self) -> list[str] | None:
        """The entity's fields the pipeline reads (a projection of the store's read); None: every field.

        Until the first project, group or count, the stages' paths name them; after it, nothing else of
        the records is seen. A pipeline without one hands whole documents over."""
        return sorted(self.used) if self.narrowed else None

    def _projection(self) -> list[str] | None:
        """The fields to fetch: those the stages read, or every one the caller may read; None (whole
        items) past `PROJECTED_MOST` names, which a projection expression could not hold."""
        named = self.fields()
        if named is None:
            named = sorted(self.readable)
        return named if len(named) <= PROJECTED_MOST else None

    def run(self) -> Docs:
        return self._through(self.steps, self._source())

    def answer(self, docs: Docs) -> Docs:
        return self.budget.taking("The answer", 1, docs)

    def _through(self, steps: Iterable[_Step], documents: Docs) -> Docs:
        for step in steps:
            documents = step.run(self.budget.taking(step.where, step.width, documents))
        return documents

    def _source(self) -> Docs:
        """The records the leading matches select, as one store query (an index serves it when one fits)."""
        schema, tenant = self.schema, self.tenant_id
        bound = bind(schema, Query(where=AllOf(tuple(self.leading))))
        where = "The leading match" if self.leading else "The source"
        chosen: Iterable[Record]
        if bound.ids is not None:  # `id=a,b`: read those records, check the rest here
            rids = sorted(set(bound.ids))
            self.budget.reading(where, len(rids))
            found = self.records.get_many(tenant, schema, rids)
            check = _checker(schema, bound.conditions, bound.rest)
            chosen = (r for r in found if check is None or check(r))
        else:
            chosen = _reading(
                self.records, tenant, schema, bound.conditions, bound.rest, self.budget, where, self._projection()
            )
        return self._documents(chosen)

    def _documents(self, records: Iterable[Record]) -> Docs:
        specs = [f for f in self.schema.fields if f.name in self.readable]
        return (_document(specs, r) for r in records)

    # A job's pages ------------------------------------------------------------
    def page(self, after: str | None, most: int | None) -> Part:
        """The work of the next `most` records in id order after the id `after` (every one left when None):
        the leading matches checked on each, then the stages up to the first that needs every document
        (a group gathers its groups, a count counts); what they give is the page's `Part`."""
        schema = self.schema
        bound = bind(schema, Query(where=AllOf(tuple(self.leading))))
        check = _checker(schema, bound.conditions, bound.rest)
        ids = None if bound.ids is None else set(bound.ids)
        where = "The leading match" if self.leading else "The source"
        part = Part(after=after, read=self.budget.read)

        def counted(record: Record) -> bool:
            if most is not None and part.taken == most:
                raise _PageFull
            part.taken += 1
            part.after = record.rid
            self.budget.reading(where, 1)
            return (ids is None or record.rid in ids) and (check is None or check(record))

        fields = self._projection()
        chosen = self.records.stream(self.tenant_id, schema, [], where=counted, fields=fields, after=after)
        head, block, _ = self._split()
        documents = self._through(head, self._documents(_until_full(chosen, part)))
        if block is not None and block.group is not None:
            part.groups = block.group.gather(self.budget.taking(block.where, block.width, documents))
        elif block is not None and block.count is not None:
            part.count = sum(1 for _ in self.budget.taking(block.where, block.width, documents))
        else:
            part.documents = list(documents)
        part.read, part.spent = self.budget.read, self.budget.documents
        return part

    def combine(self, parts: Iterable[Part]) -> Docs:
        """The pipeline's documents from its pages' parts, in order: the groups gathered merged, the counts
        added, or the documents handed on; then the stages after. The budget starts where the last page
        left it (`of`'s `spent`)."""
        head, block, rest = self._split()
        if block is not None and block.group is not None:
            groups: Groups = {}
            for part in parts:
                block.group.merge(groups, part.groups or {})
            return self._through(rest, block.group.results(groups))
        if block is not None and block.count is not None:
            total = sum(part.count or 0 for part in parts)
            return self._through(rest, iter([{block.count: total}]))
        return self._through(self.steps[len(head) :], (d for part in parts for d in part.documents or []))

    def dump(self, part: Part) -> str:
        """A part as text: its head on the first line (read alone by `first_line`), its work on the second."""
        _, block, _ = self._split()
        if part.groups is not None and block is not None and block.group is not None:
            body: dict[str, Any] = {"groups": block.group.dump(part.groups)}
        elif part.count is not None:
            body = {"count": part.count}
        else:
            body = {"documents": part.documents or []}
        return json.dumps(part.head()) + "\n" + dumps(body) + "\n"

    def load(self, text: str) -> Part:
        head, _, rest = text.partition("\n")
        part = Part(**json.loads(head))
        body = loads(rest)
        _, block, _ = self._split()
        if "groups" in body and block is not None and block.group is not None:
            part.groups = block.group.load(body["groups"])
        part.count, part.documents = body.get("count"), body.get("documents")
        return part

    def _split(self) -> tuple[list[_Step], _Step | None, list[_Step]]:
        """The steps before the first that holds documents, that step (None if none does), and the rest."""
        for i, step in enumerate(self.steps):
            if not step.streams:
                return self.steps[:i], step, self.steps[i + 1 :]
        return self.steps, None, []

    # Paths ------------------------------------------------------------------
    def _path(self, where: str, path: Any) -> list[str]:
        """A path's parts; while documents are the entity's, it must lead to a field the caller may read."""
        if not isinstance(path, str) or not path.strip():
            raise Invalid(f"{where}: a field path must be text, as numberOfSkills or company.label")
        path = path.strip()
        parts = path.split(".")
        if not all(parts):
            raise Invalid(f'{where}: "{_clip(path)}" is not a field path')
        if len(parts) > MAX_PATH:
            raise Invalid(f'{where}: "{_clip(path)}" names more than {MAX_PATH} fields, one inside the other')
        if self.entity_shaped and parts[0] not in self.aliases:
            _check_path(where, self.schema, self.readable, path)
            self._uses(parts[0])
        return parts

    def _uses(self, name: str) -> None:
        """Note a field of the entity a stage names (the store's read fetches it), until a stage narrows."""
        if not self.narrowed and name not in ("id", "label"):
            self.used.add(name)

    def _paths(self, where: str, text: Any, example: str) -> list[list[str]]:
        if not isinstance(text, str):
            raise Invalid(f"{where}: name the fields in a text, separated by commas, as {example}")
        names = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
        if not names:
            raise Invalid(f"{where}: name one or more fields, separated by commas, as {example}")
        if len(names) > MAX_NAMES:
            raise Invalid(f"{where}: a stage names at most {MAX_NAMES} fields")
        return [self._path(where, n) for n in names]

    def _may_read(self, where: str, names: Iterable[str]) -> None:
        hidden = sorted(n for n in names if n not in self.readable)
        if hidden:
            raise Forbidden(f"{where}: you may not read {', '.join(hidden)} of {self.schema.name}")

    def _example(self) -> str:
        numeric = (f.name for f in self.schema.fields if f.type in NUMERIC and f.name in self.readable)
        return next(numeric, "amount")

    # Stages -------------------------------------------------------------------
    def _match(self, where: str, settings: Any) -> None:
        query = _filters(where, settings)
        paths = list(_filter_paths(query.where))
        self.filters += len(paths)
        self.width = max(1, len(paths))
        if self.entity_shaped and not any(p.split(".")[0] in self.aliases for p in paths):
            try:
                bound = bind(self.schema, query)
            except Invalid as bad:
                raise Invalid(f"{where}: {bad.message}") from None
            self._may_read(where, bound.paths)
            for path in paths:
                self._uses(path.split(".")[0])
            if not self.steps:  # a leading match: the store's query
                self.leading.extend(query.where.items)
                return
            schema, expr = self.schema, query.where
            self.steps.append(_Step(where, self.width, lambda docs: (d for d in docs if evaluate(schema, expr, d))))
            return
        for path in paths:
            self._path(where, path)
        check = _generic(query.where)
        self.steps.append(_Step(where, self.width, lambda docs: (d for d in docs if check(d))))

    def _project(self, where: str, settings: Any) -> Step:
        tree: Tree = {}
        paths = self._paths(where, settings, '"company,numberOfSkills"')
        for parts in paths:
            _keep(tree, parts)
        self.width = len(paths)
        return lambda docs: (_projected(d, tree) for d in docs)

    def _group(self, where: str, settings: Any) -> Step:
        if not isinstance(settings, dict):
            raise Invalid(
                f'{where}: settings must be an object, as {{"by": "company", "total": "sum(numberOfSkills)"}}'
            )
        by = settings.get("by")
        keys = [] if by is None else self._paths(where, by, '"company"')
        for a, b in itertools.permutations(keys, 2):
            if b[: len(a)] == a:
                raise Invalid(f"{where}: by names {'.'.join(a)} and {'.'.join(b)}, which is inside it")
        if len(settings) > MAX_NAMES:
            raise Invalid(f"{where}: a group computes at most {MAX_NAMES} accumulators")
        outputs: list[tuple[str, str, list[str] | None]] = []
        for name, spec in settings.items():
            if name == "by":
                continue
            if not _NAME.fullmatch(name):
                raise Invalid(
                    f'{where}: "{_clip(name)}" is not a name (letters, digits and _, not starting with a digit)'
                )
            if any(k[0] == name for k in keys):
                raise Invalid(f"{where}: {name} is both grouped by and computed")
            call = _CALL.fullmatch(spec.strip()) if isinstance(spec, str) else None
            if call is None:
                raise Invalid(f'{where}: {name} must be an accumulator, as "sum({self._example()})" or "count()"')
            op, inner = call.group(1), call.group(2).strip()
            if op not in ACCUMULATORS:
                raise Invalid(
                    f"{where}: {_clip(op, 20)}() is not an accumulator; "
                    "use sum(f), avg(f), min(f), max(f), first(f), last(f) or count()"
                )
            if op == "count":
                if inner:
                    raise Invalid(f"{where}: count() takes no field")
                outputs.append((name, op, None))
                continue
            if not inner:
                raise Invalid(f"{where}: {op} needs a field, as {op}({self._example()})")
            if "," in inner:
                raise Invalid(f"{where}: {op} takes one field, as {op}({self._example()})")
            outputs.append((name, op, self._path(where, inner)))
        self.entity_shaped, self.aliases = False, set()
        self.width = max(1, len(keys) + len(outputs))
        return _Group(keys, outputs)

    def _sort(self, where: str, settings: Any) -> Step:
        if not isinstance(settings, dict) or not settings:
            raise Invalid(
                f'{where}: settings must be an object of fields and directions, as {{"numberOfSkills": "desc"}}'
            )
        if len(settings) > MAX_NAMES:
            raise Invalid(f"{where}: a sort names at most {MAX_NAMES} fields")
        keys: list[tuple[list[str], bool]] = []
        for path, direction in settings.items():
            if not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
                raise Invalid(f"{where}: the direction of {_clip(path)} must be asc or desc")
            keys.append((self._path(where, path), direction.lower() == "desc"))
        self.width = len(keys)

        def sort(docs: Docs) -> Docs:
            held = list(docs)
            for parts, descending in reversed(keys):  # stable sorts, the last key first
                held.sort(key=_order_at(parts), reverse=descending)
            return iter(held)

        return sort

    def _skip(self, where: str, settings: Any) -> Step:
        count = _whole(where, settings, 0, MAX_DOCUMENTS)
        return lambda docs: itertools.islice(docs, count, None)

    def _limit(self, where: str, settings: Any) -> Step:
        count = _whole(where, settings, 1, MAX_DOCUMENTS)
        return lambda docs: itertools.islice(docs, count)

    def _count(self, where: str, settings: Any) -> Step:
        if not isinstance(settings, str) or not _NAME.fullmatch(settings):
            raise Invalid(f'{where}: settings must be the name of the count (letters, digits and _), as "total"')
        self.entity_shaped, self.aliases = False, set()

        def count(docs: Docs) -> Docs:
            yield {settings: sum(1 for _ in docs)}

        return count

    def _unwind(self, where: str, settings: Any) -> Step:
        if not isinstance(settings, dict) or set(settings) - {"fieldPath", "includeEmpty"}:
            raise Invalid(
                f'{where}: settings must be an object, as {{"fieldPath": "addresses", "includeEmpty": false}}'
            )
        if not isinstance(settings.get("fieldPath"), str):
            raise Invalid(f'{where}: fieldPath must name a field, as "addresses"')
        keep = settings.get("includeEmpty", False)
        if not isinstance(keep, bool):
            raise Invalid(f"{where}: includeEmpty must be true or false")
        parts = self._path(where, settings["fieldPath"])
        return lambda docs: _unwound(docs, parts, keep)

    def _lookup(self, where: str, settings: Any) -> Step:
        names = ("localFieldPath", "foreignFieldPath", "foreignEntityName", "as")
        example = (
            '{"localFieldPath": "company", "foreignFieldPath": "id", "foreignEntityName": "companies", "as": "info"}'
        )
        if not isinstance(settings, dict) or set(settings) != set(names):
            raise Invalid(f"{where}: settings must be an object of {', '.join(names)}, as {example}")
        for name in names:
            if not isinstance(settings[name], str) or not settings[name].strip():
                raise Invalid(f"{where}: {name} must be text, as in {example}")
        local = self._path(where, settings["localFieldPath"])
        alias = settings["as"].strip()
        if not _NAME.fullmatch(alias):
            raise Invalid(
                f'{where}: as: "{_clip(alias)}" is not a name (letters, digits and _, not starting with a digit)'
            )
        entity = settings["foreignEntityName"].strip()
        try:
            foreign = self.gate.access(entity, "read")
        except NotFound:
            raise Invalid(f"{where}: foreignEntityName: {_clip(entity)} is not an entity") from None
        except Forbidden as refused:
            raise Forbidden(f"{where}: {refused.message}") from None
        path = settings["foreignFieldPath"].strip()
        _check_path(where, foreign.schema, set(foreign.readable()), path)
        self.aliases.add(alias)
        reads = _Reads(self.records, self.tenant_id, self.budget, where)
        return _Lookup(reads, foreign, path, local, alias).run


def _check_path(where: str, schema: Schema, readable: set[str], path: str) -> None:
    """Check that `path` leads to a field of `schema` (or is id or label) whose top-level field is readable."""
    parts = path.split(".")
    if parts in (["id"], ["label"]):
        return
    spec: TableField | None = None
    for i, part in enumerate(parts):
        options = schema.fields
        if spec is not None:
            if spec.type in ("group", "relationship") and part in ("id", "label") and i == len(parts) - 1:
                break  # a group's items and a relationship carry their id and label
            if spec.type != "group":
                hint = " (a relationship holds its id and label; lookup reads the record)"
                raise Invalid(
                    f'{where}: "{_clip(path)}" is not a field of {schema.name}'
                    + (hint if spec.type == "relationship" else "")
                )
            options = spec.fields
        spec = next((f for f in options if f.name == part), None)
        if spec is None:
            raise Invalid(f'{where}: "{_clip(path)}" is not a field of {schema.name}')
    if parts[0] not in readable:
        raise Forbidden(f"{where}: you may not read {parts[0]} of {schema.name}")


def _whole(where: str, settings: Any, least: int, most: int) -> int:
    if isinstance(settings, bool) or not isinstance(settings, int) or not least <= settings <= most:
        raise Invalid(f"{where}: settings must be a whole number from {least} to {most:,}")
    return settings


# Reading records, within the budget ---------------------------------------------------------------
def _checker(schema: Schema, conditions: list[Condition], rest: Expr | None) -> Callable[[Record], bool] | None:
    """What a record read must also meet: conditions the store did not serve, and the rest of the query."""
    if not conditions and rest is None:
        return None

    def check(record: Record) -> bool:
        if not matches(schema, record.data, conditions):
            return False
        return rest is None or evaluate(schema, rest, {**record.data, "id": record.rid, "label": record.label})

    return check


def _reading(
    records: RecordStore,
    tenant_id: str,
    schema: Schema,
    conditions: list[Condition],
    rest: Expr | None,
    budget: _Budget,
    where: str,
    fields: list[str] | None = None,
) -> Iterator[Record]:
    """The records meeting `conditions` and `rest`, every record read counted (those they turn down too).

    The store checks what its index does not serve on the records it reads; here that check runs in
    `where`, so each record read passes through the count. The index is the one the whole query plans.
    A read of every shard (no index serves it) fetches only `fields` (None: whole items), all shards at once.
    """
    unserved = plan(schema, conditions).residual
    served = [c for c in conditions if c not in unserved]
    check = _checker(schema, unserved, rest)
    if check is None:  # every record read is a match
        for record in records.stream(tenant_id, schema, served, fields=fields):
            budget.reading(where, 1)
            yield record
        return

    def counted(record: Record) -> bool:
        budget.reading(where, 1)
        return check(record)

    yield from records.stream(tenant_id, schema, served, where=counted, fields=fields)


class _Reads:
    """A lookup's reads of the foreign entity, counted against the pipeline's budget."""

    def __init__(self, records: RecordStore, tenant_id: str, budget: _Budget, where: str) -> None:
        self.records = records
        self.tenant_id = tenant_id
        self.budget = budget
        self.where = where

    def by_id(self, schema: Schema, rids: list[str]) -> list[Record]:
        self.budget.reading(self.where, len(rids))
        return self.records.get_many(self.tenant_id, schema, rids)

    def query(self, schema: Schema, conditions: list[Condition], rest: Expr | None) -> Iterator[Record]:
        self.budget.reading(self.where, LOOKUP_QUERY)
        return _reading(self.records, self.tenant_id, schema, conditions, rest, self.budget, self.where)

    def everything(self, schema: Schema) -> Iterator[Record]:
        return _reading(self.records, self.tenant_id, schema, [], None, self.budget, self.where)

    def kept(self, document: Document) -> Document:
        """`document`, which the lookup keeps for the whole run (so its id stays its own), with its weight noted."""
        self.budget.known[id(document)] = _weight(document, MAX_DOCUMENTS, {})
        return document


# Documents --------------------------------------------------------------------------------------
def _document(specs: list[TableField], record: Record) -> Document:
    """A record as a pipeline's document: id, label and the fields of `specs` that hold a value."""
    document: Document = {"id": record.rid, "label": record.label}
    for spec in specs:
        value = record.data.get(spec.name)
        if value is not None:
            document[spec.name] = _value(spec, value)
    return document


def _value(spec: TableField, value: Any) -> Any:
    if spec.multi and isinstance(value, list):
        return [_one(spec, v) for v in value]
    return _one(spec, value)


def _one(spec: TableField, value: Any) -> Any:
    if spec.type == "group" and isinstance(value, dict):
        inner = {f.name: _value(f, value[f.name]) for f in spec.fields if value.get(f.name) is not None}
        return {**inner, "id": value.get("id"), "label": value.get("label")}
    if spec.type == "relationship" and isinstance(value, dict):
        return {"id": value.get("id"), "label": value.get("label")}
    if spec.type in ("integer", "datetime") and isinstance(value, Decimal):
        return int(value)
    return value  # decimals and money stay exact Decimals until the answer is written


def json_value(value: Any) -> Any:
    """A document as the answer shows it: decimals and money as exact text."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_value(v) for v in value]
    return value


def _get(value: Any, parts: list[str]) -> Any:
    """The value at a path; through a list, the list of its elements' values (MongoDB's rule)."""
    for i, part in enumerate(parts):
        if isinstance(value, list):
            found = (_get(v, parts[i:]) for v in value if isinstance(v, dict | list))
            return [v for v in found if v is not _MISSING]
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _is_link(value: Any) -> bool:
    """A relationship's value: exactly its id and label."""
    return isinstance(value, dict) and set(value) == {"id", "label"}


def _order(value: Any) -> tuple[Any, ...]:
    """Where a value sorts: missing/null < numbers < text < objects < lists < booleans."""
    if value is _MISSING or value is None:
        return (0,)
    if isinstance(value, bool):
        return (5, value)
    if _is_number(value):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, dict):
        label = value.get("label")
        return (3, label if isinstance(label, str) else "", tuple((k, _order(v)) for k, v in sorted(value.items())))
    if isinstance(value, list):
        return (4, tuple(_order(v) for v in value))
    return (6, str(value))


def _order_at(parts: list[str]) -> Callable[[Document], tuple[Any, ...]]:
    return lambda document: _order(_get(document, parts))


# Stages at work ---------------------------------------------------------------------------------
def _keep(tree: Tree, parts: list[str]) -> None:
    """Add a path to a projection: inside a value kept whole it adds nothing; kept whole, it drops its insides."""
    node = tree
    for part in parts[:-1]:
        below = node.setdefault(part, {})
        if below is None:
            return
        node = below
    node[parts[-1]] = None


def _projected(value: Any, tree: Tree) -> Any:
    if isinstance(value, dict):
        kept: Document = {}
        for name, below in tree.items():
            if name not in value:
                continue
            inner = value[name] if below is None else _projected(value[name], below)
            if inner is not _MISSING:
                kept[name] = inner
        return kept
    if isinstance(value, list):
        return [p for p in (_projected(v, tree) for v in value) if p is not _MISSING]
    return _MISSING  # a plain value has no fields to keep


def _group_key(value: Any) -> Key:
    """Equal for values one group gathers: numbers by value, a relationship by its label."""
    if value is _MISSING or value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("boolean", value)
    if _is_number(value):
        return ("number", canonical(value))
    if isinstance(value, str):
        return ("text", value)
    if _is_link(value):
        return ("text", value["label"] if isinstance(value["label"], str) else "")
    if isinstance(value, dict):
        return ("object", tuple((k, _group_key(v)) for k, v in sorted(value.items())))
    if isinstance(value, list):
        return ("list", tuple(_group_key(v) for v in value))
    return ("other", repr(value))


def _shown(value: Any) -> Any:
    if value is _MISSING:
        return None
    if _is_link(value):
        return value["label"]
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return value


class _Accumulator:
    """One result of one group, built a document at a time."""

    def __init__(self, op: str) -> None:
        self.op = op
        self.documents = 0
        self.numbers = 0
        self.total: int | float | Decimal = 0
        self.value: Any = None
        self.rank: tuple[Any, ...] | None = None

    def add(self, value: Any) -> None:
        self.documents += 1
        if self.op in ("sum", "avg"):
            if _is_number(value):
                self.total = _plus(self.total, value)
                self.numbers += 1
        elif self.op in ("min", "max"):
            if value is _MISSING or value is None:
                return
            rank = _order(value)
            if self.rank is None or (rank < self.rank if self.op == "min" else rank > self.rank):
                self.value, self.rank = value, rank
        elif self.op == "first":
            if self.documents == 1:
                self.value = None if value is _MISSING else value
        elif self.op == "last":
            self.value = None if value is _MISSING else value

    def merge(self, later: _Accumulator) -> None:
        """Take in what `later` gathered from the documents after this one's (a job's next page)."""
        if self.op in ("sum", "avg") and later.numbers:
            self.total = _plus(self.total, later.total)
            self.numbers += later.numbers
        elif self.op in ("min", "max") and later.rank is not None:
            if self.rank is None or (later.rank < self.rank if self.op == "min" else later.rank > self.rank):
                self.value, self.rank = later.value, later.rank
        elif (self.op == "first" and not self.documents) or (self.op == "last" and later.documents):
            self.value = later.value
        self.documents += later.documents

    def state(self) -> list[Any]:
        return [self.documents, self.numbers, self.total, self.value]

    @classmethod
    def of(cls, op: str, state: list[Any]) -> _Accumulator:
        accumulator = cls(op)
        accumulator.documents, accumulator.numbers, accumulator.total, accumulator.value = state
        if op in ("min", "max") and accumulator.value is not None:
            accumulator.rank = _order(accumulator.value)
        return accumulator

    def result(self) -> Any:
        if self.op == "count":
            return self.documents
        if self.op == "sum":
            return self.total
        if self.op == "avg":
            if not self.numbers:
                return None
            if isinstance(self.total, Decimal):
                return AVERAGE.divide(self.total, Decimal(self.numbers))
            return self.total / self.numbers
        return self.value


def _plus(a: int | float | Decimal, b: int | float | Decimal) -> int | float | Decimal:
    """Exact for integers and decimals; a float (an average grouped again) makes the sum a float."""
    if isinstance(a, float) or isinstance(b, float):
        return float(a) + float(b)
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return EXACT.add(Decimal(a), Decimal(b))
    return a + b


Groups: TypeAlias = dict[Key, tuple[list[Any], list[_Accumulator]]]  # by key: the `by` values shown, the results


class _Group:
    """A group stage: gathers groups from documents, merges groups gathered from pages in their order
    (a job's), and gives each group's document."""

    def __init__(self, keys: list[list[str]], outputs: list[tuple[str, str, list[str] | None]]) -> None:
        self.keys = keys
        self.outputs = outputs

    def __call__(self, docs: Docs) -> Docs:
        return self.results(self.gather(docs))

    def gather(self, docs: Docs) -> Groups:
        groups: Groups = {}
        keys, outputs = self.keys, self.outputs
        for document in docs:
            values = [_get(document, k) for k in keys]
            key = tuple(_group_key(v) for v in values)
            group = groups.get(key)
            if group is None:
                group = groups[key] = ([_shown(v) for v in values], [_Accumulator(op) for _, op, _ in outputs])
            for accumulator, (_, _, path) in zip(group[1], outputs, strict=True):
                accumulator.add(_MISSING if path is None else _get(document, path))
        return groups

    @staticmethod
    def merge(groups: Groups, later: Groups) -> None:
        """Add the groups gathered from later documents (the next page) to `groups`, as if gathered at once."""
        for key, (shown, accumulators) in later.items():
            held = groups.get(key)
            if held is None:
                groups[key] = (shown, accumulators)
                continue
            for mine, theirs in zip(held[1], accumulators, strict=True):
                mine.merge(theirs)

    def results(self, groups: Groups) -> Docs:
        for shown, accumulators in groups.values():
            out: Document = {}
            for parts, value in zip(self.keys, shown, strict=True):
                node = out
                for part in parts[:-1]:
                    node = node.setdefault(part, {})
                node[parts[-1]] = value
            for (name, _, _), accumulator in zip(self.outputs, accumulators, strict=True):
                out[name] = accumulator.result()
            yield out

    def dump(self, groups: Groups) -> list[Any]:
        return [[shown, [a.state() for a in accumulators]] for shown, accumulators in groups.values()]

    def load(self, dumped: list[Any]) -> Groups:
        """Groups as `dump` wrote them: a shown value groups as the value it shows (a relationship by its label)."""
        groups: Groups = {}
        for shown, states in dumped:
            accumulators = [_Accumulator.of(op, state) for (_, op, _), state in zip(self.outputs, states, strict=True)]
            groups[tuple(_group_key(v) for v in shown)] = (shown, accumulators)
        return groups


def _unwound(docs: Docs, parts: list[str], keep: bool) -> Docs:
    for document in docs:
        value: Any = document
        for part in parts:
            value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
        if isinstance(value, list) and value:
            for item in value:
                yield _replaced(document, parts, item)
        elif isinstance(value, list):
            if keep:
                yield _replaced(document, parts, _MISSING)
        elif keep or (value is not _MISSING and value is not None):  # a plain value stays as it is
            yield document


def _replaced(document: Document, parts: list[str], value: Any) -> Document:
    """A copy of the document with `value` at the path (removed when missing); the original is shared."""
    out = dict(document)
    head = parts[0]
    if len(parts) > 1:
        out[head] = _replaced(document[head], parts[1:], value)
    elif value is _MISSING:
        out.pop(head, None)
    else:
        out[head] = value
    return out


class _Lookup:
    """The foreign documents matching each document's local value, read in batches and cached per value."""

    def __init__(self, reads: _Reads, foreign: Access, path: str, local: list[str], alias: str) -> None:
        self.reads = reads
        self.schema = foreign.schema
        readable = set(foreign.readable())
        self.specs = [f for f in self.schema.fields if f.name in readable]
        self.path = path
        self.parts = path.split(".")
        self.local = local
        self.alias = alias
        self.found: dict[Key, list[Document]] = {}
        self.table: dict[Key, list[Document]] | None = None  # the whole foreign table by value, when no index serves

    def run(self, docs: Docs) -> Docs:
        while batch := list(itertools.islice(docs, LOOKUP_BATCH)):
            wanted = [_link_keys(_get(d, self.local)) for d in batch]
            self._read({k for keys in wanted for k in keys if k not in self.found})
            for document, keys in zip(batch, wanted, strict=True):
                yield {**document, self.alias: self._joined(keys)}

    def _joined(self, keys: list[Key]) -> list[Document]:
        if len(keys) == 1:
            return list(self.found[keys[0]])
        merged = {d["id"]: d for k in keys for d in self.found[k]}
        return [merged[i] for i in sorted(merged)]

    def _read(self, missing: set[Key]) -> None:
        if not missing:
            return
        if self.path == "id":
            ids = sorted(k[1] for k in missing if k[0] == "text" and _ID.fullmatch(k[1]))
            read = {r.rid: _document(self.specs, r) for r in self.reads.by_id(self.schema, ids)}
            for key in missing:
                self.found[key] = [self.reads.kept(read[key[1]])] if key[0] == "text" and key[1] in read else []
            return
        for key in missing:
            self.found[key] = [self.reads.kept(d) for d in self._matching(key)]

    def _matching(self, key: Key) -> list[Document]:
        try:
            bound = bind(self.schema, parse({self.path: _literal(key)}))
        except Invalid:
            return []  # a value the foreign field cannot hold equals none of its values
        if not bound.conditions or plan(self.schema, bound.conditions).index is None:
            return self._everything().get(key, [])
        read = (_document(self.specs, r) for r in self.reads.query(self.schema, bound.conditions, bound.rest))
        # The query language also takes a text for a number, or a label for a relationship: keep exact equals.
        return sorted((d for d in read if key in _link_keys(_get(d, self.parts))), key=lambda d: str(d["id"]))

    def _everything(self) -> dict[Key, list[Document]]:
        if self.table is None:
            table: dict[Key, list[Document]] = {}
            for record in self.reads.everything(self.schema):
                document = _document(self.specs, record)
                for key in _link_keys(_get(document, self.parts)):
                    table.setdefault(key, []).append(self.reads.kept(document))
            for found in table.values():
                found.sort(key=lambda d: str(d["id"]))
            self.table = table
        return self.table


def _link_keys(value: Any) -> list[Key]:
    """What a lookup compares a value by (each element of a list): a relationship by its id."""
    keys: list[Key] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, list):
            found = _link_keys(item)
        elif isinstance(item, bool):
            found = [("boolean", item)]
        elif _is_number(item):
            found = [("number", canonical(item))]
        elif isinstance(item, str) and item:
            found = [("text", item)]
        elif isinstance(item, dict) and isinstance(item.get("id"), str) and set(item) <= {"id", "label"}:
            found = [("text", item["id"])]
        else:
            found = []
        keys.extend(k for k in found if k not in keys)
    return keys


def _literal(key: Key) -> str:
    """A lookup key as a query-language value (text always quoted: commas and parentheses stay its own)."""
    kind, value = key
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "number":
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


# match ------------------------------------------------------------------------------------------
def _filters(where: str, settings: Any) -> Query:
    if not isinstance(settings, dict) or not settings:
        raise Invalid(f'{where}: settings must be an object of query-language filters, as {{"state": "active"}}')
    params: dict[str, str | list[str]] = {}
    for key, value in settings.items():
        if not key.strip() or (key.startswith("_") and key != "_query"):
            raise Invalid(f'{where}: "{_clip(key)}" is not a field to filter by')
        if isinstance(value, bool):
            params[key] = "true" if value else "false"
        elif isinstance(value, str):
            params[key] = value
        elif isinstance(value, int | float | Decimal):
            params[key] = str(value)
        elif value is None:
            params[key] = ""  # empty()
        else:
            raise Invalid(f"{where}: the filter on {_clip(key)} must be text, a number, true, false or null")
    try:
        return parse(params)
    except Invalid as bad:
        raise Invalid(f"{where}: {bad.message}") from None


def _filter_paths(expr: Expr) -> Iterator[str]:
    if isinstance(expr, Filter):
        yield expr.path
    else:
        for item in expr.items:
            yield from _filter_paths(item)


Check: TypeAlias = Callable[[Mapping[str, Any]], bool]


def _generic(expr: Expr) -> Check:
    """A match over documents of any shape (see the module's docstring)."""
    if isinstance(expr, AllOf):
        every = [_generic(e) for e in expr.items]
        return lambda d: all(c(d) for c in every)
    if isinstance(expr, AnyOf):
        some = [_generic(e) for e in expr.items]
        return lambda d: any(c(d) for c in some)
    parts, op, given = expr.path.split("."), expr.op, expr.values
    if op in ("empty", "notEmpty"):
        wanted = op == "notEmpty"
        return lambda d: bool(_present(d, parts)) is wanted
    if op == "like":
        found = like_matcher(expr.path, given[0])
        return lambda d: any(t is not None and found(t) for t in map(_text, _present(d, parts)))
    if op == "eq":
        return lambda d: any(_equals(v, t) for v in _present(d, parts) for t in given)
    if op == "ne":
        return lambda d: not any(_equals(v, t) for v in _present(d, parts) for t in given)
    tests: dict[str, Callable[[int, int], bool]] = {
        "gt": lambda low, _: low > 0,
        "ge": lambda low, _: low >= 0,
        "lt": lambda low, _: low < 0,
        "le": lambda low, _: low <= 0,
        "between": lambda low, high: low >= 0 and high <= 0,
    }
    test = tests[op]

    def meets(value: Any) -> bool:
        low = _compare(value, given[0])
        high = _compare(value, given[-1])
        return low is not None and high is not None and test(low, high)

    return lambda d: any(meets(v) for v in _present(d, parts))


def _present(document: Mapping[str, Any], parts: list[str]) -> list[Any]:
    """Every value at the path, lists flattened, empty ones left out."""
    values: list[Any] = [document]
    for part in parts:
        found: list[Any] = []
        for holder in values:
            if isinstance(holder, dict) and part in holder:
                value = holder[part]
                found.extend(value if isinstance(value, list) else [value])
        values = found
    return [v for v in values if v is not None and v != "" and v != []]


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    label = value.get("label") if isinstance(value, dict) else None
    return label if isinstance(label, str) else None


def _number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _compare(value: Any, text: str) -> int | None:
    """-1, 0 or 1 as `value` is below, at or above the filter's `text`; None when they do not compare."""
    if _is_number(value):
        number = _number(text)
        if number is None:
            return None
        mine = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        return (mine > number) - (mine < number)
    shown = _text(value)
    if shown is None:
        return None
    return (shown > text) - (shown < text)


def _equals(value: Any, text: str) -> bool:
    if isinstance(value, bool):
        return text.strip().lower() == ("true" if value else "false")
    if _is_number(value):
        return _compare(value, text) == 0
    if isinstance(value, str):
        return value == text
    if isinstance(value, dict):
        return value.get("id") == text if _ID.fullmatch(text) else value.get("label") == text
    return False
