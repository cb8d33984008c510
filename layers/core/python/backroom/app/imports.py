"""`IMPORT_RECORDS`: a CSV file into an entity's records, created or updated, as a job.

Headers are field paths (`name`, `address.state`, `phoneNumbers[0]`, `addresses[1].city`) and, for a
relationship, paths into the related entity (`company.name`, `company.type`): the related record is
matched by the first unique field among its columns, updated, or created, and linked. A row's record
is matched the same way (the first unique field of the entity among the headers): updated when found,
created otherwise.

The file is stored once (`FileStore`) and read by byte ranges (`csvfiles`): the plan scans it for the
chunks' boundaries, each chunk reads only its range, memory stays at one group of rows. Each group is
written through the records model (`RecordStore.write_many`: several records to a transaction, each
with its unique markers, index entries and history entry), each row applied once:
- a row that creates a record gives it an id of its own (`_import_rid`: the job and the row), put only
  where no record is: a replayed group finds the record (by that id, or by its unique value) and counts
  the row as done, with no marker item;
- a row that updates a record carries a marker of its row (`rowmarks`: `IMPRUN#<job>#<shard>` / row) in
  the same transaction, conditioned on its absence: a replay fails on the marker.
So no row is applied twice and none is lost. The transactions add their count moves to one item of the
chunk's (`keys.count_moves`), not to the table's counts; the group adds them to the counts once, before
its checkpoint, and a job that stops, fails or is canceled adds what is left (`settle`): the counts lag
the records by at most a group per running chunk. The chunk's lease check (`lease_guard`) joins every
transaction: a job stopped for good commits nothing more. A create that loses the race for its unique
value (another import created that record meanwhile) updates the winner's record instead, with the row's
marker.

Permissions (`permissions.Gate`), asked in the request and again as each chunk starts (the job's user's
grants read anew; `create` lost on the entity fails the job):
- a column of a field the caller may not write is left out (the spec's `_filterByAccess`), and so is
  every column through a relationship field it may not write (nothing of the related entity is read);
- a column through a relationship (`company.x`) needs `read` on the related entity (403 otherwise, in the
  request), and `read` on `x` there: a hidden field's column is left out, never used even to match;
- the related record is matched by the first unique field among its readable columns; every other
  related column is written, so it is left out unless the caller may `write` that field there;
- a row creates a related record only with `create` on its entity and `write` on the matching field, and
  changes one only with `update` there: otherwise that row fails (a match that changes nothing links).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backroom.app.definition import Entity
from backroom.app.permissions import Access, Gate
from backroom.app.planning import AppJobKind, entity_of
from backroom.clock import now_ms
from backroom.csvfiles import CsvChunker, chunk_rows, plain_cell
from backroom.dynamo import Write
from backroom.errors import BackroomError, FieldError, Forbidden, Invalid, NotFound
from backroom.files import FileStore
from backroom.jobs.kinds import (
    JobContext,
    JobFailure,
    PerJob,
    RowOutcome,
    lease_guard,
    log_failed_rows,
)
from backroom.jobs.models import Chunk, ChunkPlan, Job, Progress
from backroom.keys import IMPORT_ROWS, count_moves, count_moves_of, entries_ahead, entries_ahead_of, import_owner
from backroom.records import Record, RecordStore, Schema
from backroom.records.schema import TableField
from backroom.records.store import AlreadyApplied, Author, Create, GuardFailed, Update, VersionConflict
from backroom.records.values import canonical, is_empty, normalize
from backroom.rowmarks import claim

if TYPE_CHECKING:
    from backroom.app.ports import AppService

logger = logging.getLogger("jobs.imports")

IMPORT_KIND = "runtime.import_records"
FILE_NAME = "in.csv"
CHUNK_ROWS = 1000
MAX_LOGGED_ERRORS = 1000  # rows whose error goes to the job's logs (the counters count them all)
MAX_COLUMNS = 500
MAX_INDEX = 999  # phoneNumbers[999] at most
HEADER_BYTES = 1 << 18  # a header is read from the file's first 256 KiB

# The flags of the spec's table, as Backroom names them (the spec's copy lost the names): name ->
# (default, developers only). docs/dialects.md "Import and export" says what each does here.
FLAGS: dict[str, tuple[bool, bool]] = {
    "_lowPriority": (False, False),
    "_skipCalculatedFields": (False, True),
    "_skipCascadeUpdates": (False, True),
    "_skipHistory": (False, True),
    "_filterByAccess": (True, True),
    "_triggerEvents": (True, True),
    "_cascadeOperations": (True, True),
    "_skipInvalidFields": (False, True),
}

_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,63})(?:\[(\d{1,3})\])?$")


@dataclass(frozen=True)
class Column:
    """A header: the path of a field in its entity, and the relationship it goes through, if any."""

    header: str
    path: tuple[str | int, ...]
    relation: str | None = None

    @property
    def top(self) -> str:
        return str(self.path[0])


@dataclass(frozen=True)
class Relation:
    """What an import may do through one relationship: the caller's permissions on the related entity."""

    entity: str
    unique: str  # the field whose column matches the related record
    may_create: bool  # `create` on the entity and `write` on `unique`
    may_update: bool  # `update` on the entity
    match_only: bool  # `unique` is read-only to the caller: it matches, it is never written


@dataclass
class Layout:
    """The file's columns, read against the entity as the caller may use it: which are imported, how
    records are matched, what the caller may do (`permissions.Access`, when the layout was made)."""

    columns: list[Column | None]  # None: a column the caller may not write (left out)
    key: str | None  # the unique field that matches a row's record
    related: dict[str, Relation] = field(default_factory=dict)  # relationship field -> what is done through it
    may_update: bool = True  # `update` on the entity: a row whose record exists may change it


def flags_of(params: Mapping[str, str], *, developer: bool) -> dict[str, bool]:
    """The import's flags from the query string: true/false only; developers-only ones are 403 for others."""
    chosen: dict[str, bool] = {}
    for name, raw in params.items():
        if name not in FLAGS:
            raise Invalid(f"Unknown parameter {name[:40]}: an import takes {', '.join(FLAGS)}")
        if raw.lower() not in ("true", "false"):
            raise Invalid(f"{name} must be true or false")
        if FLAGS[name][1] and not developer:
            raise Forbidden(f"Only developers may set {name}")
        chosen[name] = raw.lower() == "true"
    return {name: chosen.get(name, default) for name, (default, _) in FLAGS.items()}


def _segments(header: str) -> list[tuple[str, int | None]] | None:
    parts = []
    for part in header.split("."):
        found = _SEGMENT.match(part)
        if not found:
            return None
        parts.append((found.group(1), int(found.group(2)) if found.group(2) is not None else None))
    return parts


def _walk(fields: list[TableField], parts: list[tuple[str, int | None]], header: str) -> tuple[str | int, ...]:
    """The data path of `parts` through `fields` to a plain value; raises ValueError saying what is wrong."""
    path: list[str | int] = []
    specs = fields
    for position, (name, index) in enumerate(parts):
        spec = next((f for f in specs if f.name == name), None)
        if spec is None:
            raise ValueError(f"{header}: {name} is not a field")
        path.append(name)
        if spec.multi and index is None:
            raise ValueError(f"{header}: {name} holds many values: name each one, as {name}[0], {name}[1]")
        if not spec.multi and index is not None:
            raise ValueError(f"{header}: {name} holds one value, not a list")
        if index is not None:
            if index > MAX_INDEX:
                raise ValueError(f"{header}: at most {MAX_INDEX + 1} values")
            path.append(index)
        last = position == len(parts) - 1
        if spec.type == "group":
            if last:
                raise ValueError(f"{header}: {name} is a group: name one of its fields ({name}.{spec.fields[0].name})")
            specs = spec.fields
        elif not last:
            raise ValueError(f"{header}: {name} has no fields inside")
    return tuple(path)


def _follow(access: Access, relation: str) -> Access:
    """The related entity as the caller may read it (403 when it may not); a 400 when it does not exist."""
    try:
        return access.related(relation, "read")
    except NotFound:
        raise ValueError(f"{relation}: the related entity does not exist") from None


def layout(access: Access, header: Sequence[str]) -> Layout:
    """The header read against the entity as the caller may use it (the module's docstring says how).

    A 400 names every column that is not a field path; a 403 when a column goes through a relationship
    to an entity the caller may not read. Columns the caller may not use are left out (None)."""
    schema = access.schema
    _check_header(header)
    errors: list[FieldError] = []
    columns: list[Column | None] = []
    seen: set[str] = set()
    targets: dict[str, Access] = {}  # relationship field -> its entity as the caller may use it
    for raw in header:
        name = raw.strip()
        if name in seen:
            errors.append(FieldError(name[:80], f"{name[:80]} appears twice in the header", "duplicated"))
            continue
        seen.add(name)
        try:
            columns.append(_column(access, name, targets))
        except ValueError as bad:
            errors.append(FieldError(name[:80], str(bad)[:200], "unknown"))
    if errors:
        raise Invalid("The file's header names columns that are not fields of " + schema.name, errors=errors)
    plain = [c for c in columns if c is not None and c.relation is None and len(c.path) == 1]
    key = next((c.top for c in plain if c.top in schema.unique_fields), None)
    found = {relation: _relation(relation, target, columns) for relation, target in targets.items()}
    if not any(columns):
        raise Invalid("None of the file's columns is a field you may write")
    related = {relation: how for relation, how in found.items() if how is not None}
    return Layout(columns=columns, key=key, related=related, may_update=access.grant.update)


def _check_header(header: Sequence[str]) -> None:
    if not header or any(not h.strip() for h in header):
        raise Invalid("The file's first line must be its header: a field path in every column")
    if len(header) > MAX_COLUMNS:
        raise Invalid(f"At most {MAX_COLUMNS} columns")


def _column(access: Access, name: str, targets: dict[str, Access]) -> Column | None:
    """A header's column, or None when the caller may not use it; a ValueError says why it is no field.

    A column through a relationship reads the related entity's access once into `targets`."""
    parts = _segments(name)
    if parts is None:
        raise ValueError(f"{name[:80]} is not a field path")
    top = access.schema.field(parts[0][0])
    if top is None or top.type != "relationship" or len(parts) < 2:
        column = Column(name, _walk(access.schema.fields, parts, name))
        return column if access.may_write(column.top) else None
    if parts[0][1] is not None or top.multi:
        raise ValueError(f"{name}: only a single relationship can be imported through")
    if not access.may_write(top.name):  # the link is not the caller's to write: not followed
        return None
    if top.name not in targets:
        targets[top.name] = _follow(access, top.name)
    target = targets[top.name]
    column = Column(name, _walk(target.schema.fields, parts[1:], name), relation=top.name)
    return column if target.may_read(column.top) else None  # to match by; written only if writable


def _relation(relation: str, target: Access, columns: list[Column | None]) -> Relation | None:
    """What the import does through `relation` (None: every column through it was left out).

    Leaves out of `columns` each related column but the matching one that the caller may not write."""
    mine = [c for c in columns if c is not None and c.relation == relation]
    if not mine:
        return None
    unique = next((c.top for c in mine if len(c.path) == 1 and c.top in target.schema.unique_fields), None)
    if unique is None:
        readable = [u for u in target.schema.unique_fields if target.may_read(u)]
        raise Invalid(
            f"{relation}.*: to import into {target.entity.name}, name one of its unique fields you may read "
            f"({', '.join(readable) or 'none'}) among the columns"
        )
    for i, kept in enumerate(columns):  # the rest is written: only fields the caller may write there
        if kept is not None and kept.relation == relation and kept.top != unique:
            columns[i] = kept if target.may_write(kept.top) else None
    return Relation(
        entity=target.entity.name,
        unique=unique,
        may_create=target.grant.create and target.may_write(unique),
        may_update=target.grant.update,
        match_only=not target.may_write(unique),
    )


# A row into values -------------------------------------------------------------
def _put(target: dict[Any, Any], path: tuple[str | int, ...], value: str) -> None:
    holder = target
    for step in path[:-1]:
        holder = holder.setdefault(step, {})
    holder[path[-1]] = value


def _listed(value: Any, *, in_list: bool = False) -> Any:
    """Build lists from the `{index: value}` the columns made; drop list items whose every cell is empty."""
    if not isinstance(value, dict):
        return value
    if value and all(isinstance(k, int) for k in value):
        items = [_listed(value[k], in_list=True) for k in sorted(value)]
        return [i for i in items if not _blank(i)]
    return {k: _listed(v) for k, v in value.items()}


def _blank(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_blank(v) for v in value.values())
    if isinstance(value, list):
        return all(_blank(v) for v in value)
    return is_empty(value) or (isinstance(value, str) and not value.strip())


def row_values(columns: Sequence[Column | None], values: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A row's values for its record, and for each relationship its related record's.

    A cell an export escaped for spreadsheets (`'=x`, `csvfiles.safe_cell`) is read back as its text."""
    own: dict[Any, Any] = {}
    related: dict[str, dict[Any, Any]] = {}
    for column, value in zip(columns, values, strict=True):
        if column is None:
            continue
        target = own if column.relation is None else related.setdefault(column.relation, {})
        _put(target, column.path, plain_cell(value))
    return _listed(own), {k: _listed(v) for k, v in related.items() if not _blank(v)}


def _import_rid(job: Job, row: int, relation: str = "") -> str:
    """The id a row's new record gets: the job's second, then a digest of (job, row): a replay writes the same."""
    digest = hashlib.sha256(f"{job.id}/{row}/{relation}".encode()).hexdigest()[:16]
    return f"{job.created_at // 1000:08x}{digest}"


@dataclass
class _Row:
    index: int  # 0-based position among the file's rows
    values: dict[str, Any]
    related: dict[str, dict[str, Any]]
    layout: Layout  # as the job's user's permissions stood when the row's chunk started


class ImportRecordsKind(AppJobKind):
    name = IMPORT_KIND
    commit_rows = 100
    settles = True  # count moves a group gathered and did not add (its holder stopped, or died)

    def __init__(self, app: AppService) -> None:
        super().__init__(app)
        self._setup: PerJob[JobContext, _Setup] = PerJob(lambda ctx, job: _load(app, ctx, job))

    # Planning ---------------------------------------------------------------
    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        files = ctx.files
        try:
            chunker = CsvChunker(files.open_text(job.params["owner"], FILE_NAME), CHUNK_ROWS)
            entity = entity_of(self.app, job)
            _layout(self.app, job, {entity.name: entity}, chunker.header)  # a permission lost since: fails now
            chunks = chunker.scan()
        except (csv.Error, UnicodeDecodeError) as err:
            raise JobFailure(f"The file is not a UTF-8 CSV file: {str(err)[:200]}") from None
        return [
            ChunkPlan(index=i, start=c.first, count=c.count, cursor={"from": c.start, "to": c.end})
            for i, c in enumerate(chunks)
        ]

    # Rows ---------------------------------------------------------------------
    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        """The chunk's rows, each with the layout its user's permissions give as the chunk starts."""
        setup = self._setup(ctx, job)
        shape, _ = _layout(self.app, job, setup.entities, setup.header)  # the grants read anew; a 403 fails the job
        stream = ctx.files.open_text(job.params["owner"], FILE_NAME, chunk.cursor["from"], chunk.cursor["to"])
        for seen, values in chunk_rows(stream, skip):
            yield chunk.start + seen, values, shape

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        index, values, shape = row
        columns = shape.columns
        if len(values) != len(columns):
            return RowOutcome(
                ok=False, error=f"Row {index + 1}: {len(values)} values for {len(columns)} columns in the header"
            )
        own, related = row_values(columns, values)
        return RowOutcome(output={"row": _Row(index, own, related, shape)})

    # Writing a group -----------------------------------------------------------
    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        setup = self._setup(ctx, job)
        pending = [o for o in outcomes if o.ok and o.output]
        if not pending:
            _log_errors(ctx, job, chunk, outcomes)
            return
        hold = _hold(job, chunk)
        failed: dict[int, str] = {}
        shape: Layout = pending[0].output["row"].layout  # type: ignore[index]  # one chunk's rows: one layout
        try:
            for relation, how in shape.related.items():
                self._relate(job, setup, relation, how, pending, failed, hold)
            self._save(job, setup, shape, [o for o in pending if id(o) not in failed], failed, hold)
            setup.records.add_moves(hold.counts, hold.guard)  # the group's count moves, added once
        except GuardFailed:  # the lease is gone: nothing more is written, and the checkpoint will not move
            logger.info("job %s chunk %d: lease lost, the group is left to its new holder", job.id, chunk.index)
            return
        for outcome in pending:
            if id(outcome) in failed:
                outcome.ok, outcome.error = False, failed[id(outcome)]
            outcome.output = None  # nothing of the row goes to the engine's own writes
        _log_errors(ctx, job, chunk, outcomes)

    def _relate(
        self,
        job: Job,
        setup: _Setup,
        relation: str,
        how: Relation,
        pending: list[RowOutcome],
        failed: dict[int, str],
        hold: _Hold,
    ) -> None:
        """Match, update or create each row's related record of `relation`, and link the row's values to it."""
        schema, unique = setup.entities[how.entity].schema, how.unique
        store = setup.records
        wanted: dict[str, tuple[Any, dict[str, Any], list[RowOutcome]]] = {}  # key value -> (raw, values, rows)
        for outcome in pending:
            row: _Row = outcome.output["row"]  # type: ignore[index]
            values = row.related.get(relation)
            if values is None:
                continue
            raw = values.get(unique)
            key = _key(schema, unique, raw)
            if key is None:
                failed[id(outcome)] = (
                    f"Row {row.index + 1}: {relation}.{unique} is empty or invalid: it matches the related record"
                )
                continue
            held = wanted.setdefault(key, (raw, {}, []))
            held[1].update(values)  # rows naming one related record: the later cells win
            held[2].append(outcome)
        if not wanted:
            return
        found = store.by_unique(
            job.tenant_id, schema, unique, [_typed(schema, unique, r) for r, _, _ in wanted.values()]
        )
        changes: list[Update | Create] = []
        keys: list[str] = []
        for key, (raw, values, rows) in wanted.items():
            current = found.get(key)
            first: _Row = rows[0].output["row"]  # type: ignore[index]
            change: Update | Create | Record | BackroomError
            if current is None:
                change = (
                    Create(values, _import_rid(job, first.index, relation))
                    if how.may_create
                    else Forbidden(f"no {how.entity} record has {unique} {str(raw)[:60]}, and you may not create one")
                )
            else:
                change = _related_change(schema, how, current, values)
            if isinstance(change, Update | Create):
                changes.append(change)
                keys.append(key)
            else:
                _link(relation, change, rows, failed)
        saved = _write(setup, job, schema, changes, hold)
        for key, change, result in zip(keys, changes, saved, strict=True):
            if isinstance(result, Invalid) and isinstance(change, Create) and _duplicated(result, unique):
                result = self._adopt(job, setup, schema, how, wanted[key][0], change.values, hold)
            _link(relation, result, wanted[key][2], failed)

    def _adopt(
        self,
        job: Job,
        setup: _Setup,
        schema: Schema,
        how: Relation,
        raw: Any,
        values: Mapping[str, Any],
        hold: _Hold,
    ) -> Record | BackroomError:
        """Another writer created the related record meanwhile: update that one instead."""
        found = setup.records.by_unique(job.tenant_id, schema, how.unique, [_typed(schema, how.unique, raw)])
        current = next(iter(found.values()), None)
        if current is None:
            return Invalid(f"{how.unique} {str(raw)[:60]} is taken")
        change = _related_change(schema, how, current, values)
        if not isinstance(change, Update):
            return change
        return _write(setup, job, schema, [change], hold)[0]

    def _save(
        self,
        job: Job,
        setup: _Setup,
        shape: Layout,
        pending: list[RowOutcome],
        failed: dict[int, str],
        hold: _Hold,
    ) -> None:
        """Create or update each row's record (an update with its row's marker; a create's id is the row's
        own), in rounds of distinct keys."""
        schema, key_field = setup.schema, shape.key
        rounds: list[list[RowOutcome]] = []
        placed: dict[str | None, int] = {}
        for outcome in pending:
            row: _Row = outcome.output["row"]  # type: ignore[index]
            key = _key(schema, key_field, row.values.get(key_field)) if key_field else None
            turn = placed.get(key, -1) + 1 if key is not None else 0
            if key is not None:
                placed[key] = turn
            while len(rounds) <= turn:
                rounds.append([])
            rounds[turn].append(outcome)
        for members in rounds:
            self._save_round(job, setup, shape, members, failed, hold)

    def _save_round(
        self,
        job: Job,
        setup: _Setup,
        shape: Layout,
        members: list[RowOutcome],
        failed: dict[int, str],
        hold: _Hold,
    ) -> None:
        schema, key_field, store = setup.schema, shape.key, setup.records
        rows: list[_Row] = [o.output["row"] for o in members]  # type: ignore[index]
        found: dict[str, Record] = {}
        if key_field:
            found = store.by_unique(
                job.tenant_id, schema, key_field, [_typed(schema, key_field, r.values.get(key_field)) for r in rows]
            )
        changes: list[Update | Create] = []
        owners: list[RowOutcome] = []
        for outcome, row in zip(members, rows, strict=True):
            key = _key(schema, key_field, row.values.get(key_field)) if key_field else None
            current = found.get(key) if key is not None else None
            if current is None:  # its id is the row's own: a replay finds the record there (`once`)
                change: Update | Create | Forbidden | None = Create(
                    setup.stamped(row.values), _import_rid(job, row.index), once=True
                )
            elif current.rid == _import_rid(job, row.index):
                continue  # this very row created the record: a replay of a group written before
            else:
                change = _row_update(setup, shape, current, row, job)
            if isinstance(change, Forbidden):
                failed[id(outcome)] = f"Row {row.index + 1}: {change.message}"
                continue
            if change is None:
                continue  # the record holds these values already (or a replay after it was written)
            changes.append(change)
            owners.append(outcome)
        saved = _write(setup, job, schema, changes, hold)
        for outcome, change, written in zip(owners, changes, saved, strict=True):
            row = outcome.output["row"]  # type: ignore[index]
            result: Record | BackroomError | None = written
            if isinstance(change, Create) and key_field and _duplicated(result, key_field):
                # another writer created this unique value's record since the lookup: update it instead
                result = self._adopt_row(job, setup, shape, row, hold)
            elif isinstance(result, Invalid) and setup.skip_invalid and result.errors:
                result = self._without_invalid(job, setup, change, result, hold)
            if isinstance(result, BackroomError) and not isinstance(result, AlreadyApplied):
                failed[id(outcome)] = f"Row {row.index + 1}: {_message(result)}"
            # AlreadyApplied: this very row was written before (a replayed group)

    def _adopt_row(
        self, job: Job, setup: _Setup, shape: Layout, row: _Row, hold: _Hold
    ) -> Record | BackroomError | None:
        """The row's create lost the race for its unique value: another import (or writer) created that
        record after this group looked it up. The row updates the winner's record instead, with its own row
        marker, as it would have had it found the record (a few tries if that record keeps changing)."""
        schema, key_field = setup.schema, shape.key
        assert key_field is not None
        wanted = _typed(schema, key_field, row.values.get(key_field))
        result: Record | BackroomError | None = None
        for _ in range(3):
            current = next(iter(setup.records.by_unique(job.tenant_id, schema, key_field, [wanted]).values()), None)
            if current is None:  # the marker's record is gone meanwhile (deleted): nothing to adopt
                return Invalid(f"{key_field} {str(wanted)[:60]} is taken")
            change = _row_update(setup, shape, current, row, job)
            if not isinstance(change, Update):
                return change  # None: the winner holds these values already; or Forbidden
            result = _write(setup, job, schema, [change], hold)[0]
            if not isinstance(result, VersionConflict):
                return result
        return result

    def _without_invalid(
        self, job: Job, setup: _Setup, change: Update | Create, error: Invalid, hold: _Hold
    ) -> Record | BackroomError:
        """`_skipInvalidFields`: the row again without the fields that failed their checks."""
        bad = {e.field.split(".")[0].split("[")[0] for e in error.errors}
        if isinstance(change, Create):
            retry: Update | Create = Create(
                {k: v for k, v in change.values.items() if k not in bad}, change.rid, change.extra, change.once
            )
        else:
            retry = Update(change.current, {k: v for k, v in change.changes.items() if k not in bad}, change.extra)
        result = _write(setup, job, setup.schema, [retry], hold)[0]
        return None if isinstance(result, AlreadyApplied) else result  # type: ignore[return-value]

    def settle(self, ctx: JobContext, job: Job) -> None:
        """The job holds no chunk any more: add the count moves of groups written and never checkpointed
        (a resumed job replays those rows as done, and gathers nothing for them again), and drop the index
        entries put ahead of a transaction that never committed."""
        ctx.records.add_moves_of(count_moves_of(job.id))
        ctx.records.settle_ahead(entries_ahead_of(job.id))

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        ctx.records.settle_ahead(entries_ahead_of(job.id))  # a delivery that died mid-group left its notes
        self._setup.forget(job.id)
        return {"rowsImported": progress.processed, "rowsWithErrors": progress.failed}

    def finished_message(self, progress: Progress) -> str:
        return f"Import finished: {progress.processed} rows imported, {progress.failed} rows with errors"


# Helpers -----------------------------------------------------------------------
@dataclass
class _Setup:
    """What a worker reads once per job: the entity, the header and the related entities' definitions.
    The caller's permissions are not among them: each chunk asks its gate again (`_layout`)."""

    entity: Entity
    header: list[str]
    entities: dict[str, Entity]  # the job's entity and the related ones its columns go through
    records: RecordStore
    skip_invalid: bool
    schema: Schema  # the entity's, without history when `_skipHistory` is set (made once per job)

    def stamped(self, values: Mapping[str, Any]) -> dict[str, Any]:
        stamped = dict(values)
        if self.entity.updated_field:
            stamped[self.entity.updated_field] = now_ms()
        return stamped

    def author(self, job: Job) -> Author:
        """The rows' author; with `_skipCascadeUpdates`, a label a row changes is not copied on to the
        records that reference it (`RecordWriter.relabeled`)."""
        cascades = not job.params.get("flags", {}).get("_skipCascadeUpdates")
        return Author(job.params.get("user", ""), job.params.get("ip"), f"jobs.{job.id}", cascades=cascades)


def _layout(
    app: AppService, job: Job, entities: Mapping[str, Entity], header: Sequence[str]
) -> tuple[Layout, dict[str, Entity]]:
    """The header as the job's user may import it now (its grants read anew), and the entities read for it.
    A permission it no longer has (`create` on the entity, `read` on a related one) fails the job."""
    gate = Gate.for_job(app.repo, job.tenant_id, job.params, entities)
    try:
        return layout(gate.access(job.params["entity"], "create"), header), gate.entities
    except Forbidden as denied:
        raise JobFailure(f"{denied.message}: the import stopped") from None
    except (Invalid, NotFound) as bad:
        raise JobFailure(f"{bad.message} {'; '.join(e.message for e in getattr(bad, 'errors', []))}".strip()) from None


def _load(app: AppService, ctx: JobContext, job: Job) -> _Setup:
    entity = entity_of(app, job)
    header = CsvChunker(ctx.files.open_text(job.params["owner"], FILE_NAME, 0, HEADER_BYTES), 1).header
    _shape, entities = _layout(app, job, {entity.name: entity}, header)
    flags = job.params.get("flags", {})
    return _Setup(
        entity=entity,
        header=header,
        entities=entities,
        records=ctx.records,
        skip_invalid=bool(flags.get("_skipInvalidFields")),
        schema=entity.schema.model_copy(update={"history": False}) if flags.get("_skipHistory") else entity.schema,
    )


def _related_change(
    schema: Schema, how: Relation, current: Record, values: Mapping[str, Any]
) -> Update | Record | Forbidden:
    """What a row asks of the related record it matched: nothing (the record, to link), an update, or a 403
    (it would change the record without `update` on its entity)."""
    if how.match_only:  # the matching value is the caller's to read, not to write
        values = {k: v for k, v in values.items() if k != how.unique}
    values = _with_ids(schema, current, values)
    if not _changes(schema, current, values):
        return current
    if not how.may_update:
        return Forbidden(f"you may not update records of {how.entity}")
    return Update(current, values)


def _link(relation: str, result: Record | BackroomError, rows: list[RowOutcome], failed: dict[int, str]) -> None:
    """Link each row to its related record, or fail it with the related record's error."""
    for outcome in rows:
        row: _Row = outcome.output["row"]  # type: ignore[index]
        if isinstance(result, BackroomError):
            failed[id(outcome)] = f"Row {row.index + 1}: {relation}: {_message(result)}"
        else:
            row.values[relation] = result.rid


def _row_update(setup: _Setup, shape: Layout, current: Record, row: _Row, job: Job) -> Update | Forbidden | None:
    """A row's update of its record (found by its unique value), with its marker; None when it changes nothing."""
    if not shape.may_update:
        return Forbidden(f"you may not update records of {setup.entity.name}")
    own = _with_ids(setup.schema, current, row.values)
    if not _changes(setup.schema, current, own):
        return None
    return Update(current, setup.stamped(own), extra=[_marker(job, row.index)])


def _typed(schema: Schema, name: str | None, raw: Any) -> Any:
    """A unique cell as the field stores it (None when it is empty or not a valid value)."""
    if name is None or raw is None:
        return None
    checked = normalize(schema, {name: raw}, partial=True)
    return None if checked.errors else checked.data.get(name)


def _key(schema: Schema, name: str | None, raw: Any) -> str | None:
    value = _typed(schema, name, raw)
    return None if is_empty(value) else canonical(value)


def _with_ids(schema: Schema, current: Record, values: Mapping[str, Any]) -> dict[str, Any]:
    """An update's values with each multi-valued group's items keeping the ids of the items they replace
    (`addresses[0]` is the record's first address): an unchanged row stays unchanged."""
    out = dict(values)
    for spec in schema.fields:
        given, held = out.get(spec.name), current.data.get(spec.name)
        if spec.type == "group" and spec.multi and isinstance(given, list) and isinstance(held, list):
            out[spec.name] = [
                {**item, "id": held[i]["id"]} if isinstance(item, dict) and i < len(held) and "id" in held[i] else item
                for i, item in enumerate(given)
            ]
    return out


def _changes(schema: Schema, current: Record, values: Mapping[str, Any]) -> bool:
    """Whether `values` would change the record (an import of the same file twice writes nothing new)."""
    checked = normalize(schema, values, previous=current.data, partial=True)
    if checked.errors:
        return True  # let the write report them
    data = checked.data
    for path, _entity, rid in checked.links:
        holder: Any = data
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] = {"id": rid, "label": _label_at(current.data, path)}
    return data != current.data


def _label_at(data: Mapping[str, Any], path: list[str | int]) -> Any:
    value: Any = data
    for step in path:
        value = value[step] if isinstance(value, dict | list) and _has(value, step) else None  # type: ignore[index]
    return value.get("label") if isinstance(value, dict) else None


def _has(container: Any, step: str | int) -> bool:
    if isinstance(container, dict):
        return step in container
    return isinstance(step, int) and 0 <= step < len(container)


def _duplicated(error: Any, name: str) -> bool:
    """Whether a write failed because another record holds its value of unique field `name`."""
    return isinstance(error, Invalid) and any(e.code == "duplicated" and e.field == name for e in error.errors)


def _message(error: BackroomError) -> str:
    details = "; ".join(f"{e.field}: {e.message}" for e in getattr(error, "errors", []))
    return (details or error.message)[:500]


def _marker(job: Job, row: int) -> Write:
    return claim(IMPORT_ROWS, job.id, str(row))


@dataclass(frozen=True)
class _Hold:
    """What every write of a chunk's group carries: the chunk's lease check, joined to each transaction (a
    delivery that lost its chunk, taken over or force-stopped, writes nothing more), and the item its count
    moves gather at until the group adds them to the counts, once (`RecordStore.add_moves`), and where its
    creates note the index entries they put ahead of their transactions (`RecordStore.settle_ahead`)."""

    guard: list[Write]
    counts: tuple[str, str]
    ahead: tuple[str, str]


def _hold(job: Job, chunk: Chunk) -> _Hold:
    guard = [lease_guard(chunk)] if chunk.lease_owner else []
    return _Hold(guard, count_moves(job.id, chunk.index), entries_ahead(job.id, chunk.index))


def _write(setup: _Setup, job: Job, schema: Schema, changes: Sequence[Update | Create], hold: _Hold) -> list[Any]:
    """A group's creates and updates of `schema`'s records, under its hold (`write_many`)."""
    return setup.records.write_many(
        job.tenant_id,
        schema,
        changes,
        author=setup.author(job),
        guard=hold.guard,
        counts_to=hold.counts,
        ahead=hold.ahead,
    )


def _log_errors(ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
    log_failed_rows(ctx, job, chunk, outcomes, most=MAX_LOGGED_ERRORS, level="ERROR")


# The request ---------------------------------------------------------------------------
def start_import(
    data: Any,
    files: FileStore,
    caller: Any,
    name: str,
    content: bytes | None,
    filename: str | None,
    params: Mapping[str, str],
    ip: str | None,
    *,
    file_id: str | None = None,
) -> Job:
    """`POST /data/{entity}/import`: check the flags and the header now (a 400 or 403 here, not a failed
    job), store the file, then start the job. `data` is the app's data service (`AppData`).

    The file is the request's (`content`), or one uploaded before by `POST /files` (`file_id`: the way for
    a file above API Gateway's payload limit, uploaded to a presigned URL), copied by S3.
    """
    from backroom.ids import object_id

    access: Access = data.gate(caller).access(name, "create")
    flags = flags_of(params, developer=caller.is_developer)
    uploaded = None
    if file_id is not None:
        uploaded = files.app_file(caller.tenant_id, file_id) if re.fullmatch(r"[0-9a-f]{24}", file_id) else None
        if uploaded is None:
            raise NotFound(f"File {file_id[:40]} does not exist")
        if not caller.is_developer and (uploaded.uploaded_by or "").lower() != caller.email.lower():
            # Any other file of the tenant (a hidden field's, another user's export) would become records.
            raise Forbidden("You may import only a file you uploaded")
        try:
            first = files.first_line(uploaded.owner, uploaded.name, HEADER_BYTES)
        except UnicodeDecodeError:
            raise Invalid("The file is not UTF-8 text") from None
        filename = filename or uploaded.filename
    else:
        try:
            first = (content or b"").decode("utf-8")[:HEADER_BYTES]
        except UnicodeDecodeError:
            raise Invalid("The file is not UTF-8 text") from None
    try:
        header = next(csv.reader(io.StringIO(first.removeprefix("\ufeff"), newline="")), [])
    except csv.Error:
        raise Invalid("The file's header is not a CSV line") from None

    layout(access, header)  # every column through the caller's gate: a 400 or 403 now, not a failed job
    job_id = object_id()
    owner = import_owner(caller.tenant_id, job_id)
    if uploaded is not None:  # before the job: a job never points at a missing file
        files.copy(uploaded, owner, FILE_NAME)
    else:
        files.put(owner, FILE_NAME, content or b"", "text/csv")
    job_params = {
        "entity": name,
        "owner": owner,
        "fileName": (filename or "")[:255] or None,
        "flags": flags,
        "user": caller.email,
        "ip": ip,
        "developer": caller.is_developer,
    }
    return data.start_job(
        caller,
        IMPORT_KIND,
        "IMPORT_RECORDS",
        f"Import records into entity {name}",
        job_params,
        job_id=job_id,
        low_priority=flags["_lowPriority"],
    )
