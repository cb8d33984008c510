"""`IMPORT_RECORDS`: a CSV file into an entity's records, created or updated, as a job.

Headers are field paths (`name`, `address.state`, `phoneNumbers[0]`, `addresses[1].city`) and, for a
relationship, paths into the related entity (`company.name`, `company.type`): the related record is
matched by the first unique field among its columns, updated, or created, and linked. A row's record
is matched the same way (the first unique field of the entity among the headers): updated when found,
created otherwise.

The file is stored once (`FileStore`) and read by byte ranges (`csvfiles`): the plan scans it for the
chunks' boundaries, each chunk reads only its range, memory stays at one group of rows. Each group is
written through the records model (`RecordStore.write_many`: several records to a transaction, each
with its unique markers, index entries and history entry) with a marker of its row
(`IMPRUN#<job>#<shard>` / row) in the same transaction, conditioned on its absence: a replayed group
fails on the marker and counts as done, so no row is applied twice and none is lost. The chunk's lease
check (`lease_guard`) joins every transaction: a job stopped for good commits nothing more.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backroom.app.definition import Entity, EntityPermission, FieldAccess
from backroom.app.planning import entity_of
from backroom.app.repository import AppRepository
from backroom.clock import now_ms
from backroom.csvfiles import CsvChunker, chunk_rows
from backroom.dynamo import Write
from backroom.errors import BackroomError, FieldError, Forbidden, Invalid, NotFound
from backroom.files import FileStore
from backroom.jobs.kinds import (
    JobContext,
    JobFailure,
    JobKind,
    PerJob,
    RowOutcome,
    lease_guard,
    log_failed_rows,
    register,
)
from backroom.jobs.models import Chunk, ChunkPlan, Job, Progress
from backroom.records import Record, RecordStore, Schema
from backroom.records.schema import TableField
from backroom.records.store import AlreadyApplied, Author, Create, GuardFailed, Update
from backroom.records.values import canonical, is_empty, normalize

logger = logging.getLogger("jobs.imports")

IMPORT_KIND = "runtime.import_records"
FILE_NAME = "in.csv"
CHUNK_ROWS = 1000
MARKER_SHARDS = 16
MARKER_DAYS = 7
MAX_LOGGED_ERRORS = 1000  # rows whose error goes to the job's logs (the counters count them all)
MAX_COLUMNS = 500
MAX_INDEX = 999  # phoneNumbers[999] at most
HEADER_BYTES = 1 << 18  # a header is read from the file's first 256 KiB

# The flags of the spec's table, as Backroom names them (the spec's copy lost the names): name ->
# (default, developers only). README "Import records" says what each does here.
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


def file_owner(tenant_id: str, job_id: str) -> str:
    return f"rtimport/{tenant_id}/{job_id}"


@dataclass(frozen=True)
class Column:
    """A header: the path of a field in its entity, and the relationship it goes through, if any."""

    header: str
    path: tuple[str | int, ...]
    relation: str | None = None

    @property
    def top(self) -> str:
        return str(self.path[0])


@dataclass
class Layout:
    """The file's columns, read against the entity: which are imported and how records are matched."""

    columns: list[Column | None]  # None: a column the caller may not write (left out)
    key: str | None  # the unique field that matches a row's record
    related: dict[str, tuple[str, str]] = field(default_factory=dict)  # relationship -> (entity, unique field)


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


def layout(
    entity: Entity, header: Sequence[str], related: Callable[[str], Schema], grant: EntityPermission | None
) -> Layout:
    """The header read against the entity's schema; a 400 naming every column that is not a field path.

    `grant` is the caller's (None for a developer): columns of fields it may not write are left out.
    """
    schema = entity.schema
    errors: list[FieldError] = []
    columns: list[Column | None] = []
    seen: set[str] = set()
    if not header or any(not h.strip() for h in header):
        raise Invalid("The file's first line must be its header: a field path in every column")
    if len(header) > MAX_COLUMNS:
        raise Invalid(f"At most {MAX_COLUMNS} columns")
    relations: dict[str, Schema] = {}
    for raw in header:
        name = raw.strip()
        if name in seen:
            errors.append(FieldError(name[:80], f"{name[:80]} appears twice in the header", "duplicated"))
            continue
        seen.add(name)
        parts = _segments(name)
        if parts is None:
            errors.append(FieldError(name[:80], f"{name[:80]} is not a field path", "unknown"))
            continue
        top = schema.field(parts[0][0])
        try:
            if top is not None and top.type == "relationship" and len(parts) > 1:
                if parts[0][1] is not None or top.multi:
                    raise ValueError(f"{name}: only a single relationship can be imported through")
                if top.entity not in relations:
                    relations[top.entity or ""] = related(top.entity or "")
                inner = _walk(relations[top.entity or ""].fields, parts[1:], name)
                column = Column(name, inner, relation=top.name)
            else:
                column = Column(name, _walk(schema.fields, parts, name))
        except ValueError as bad:
            errors.append(FieldError(name[:80], str(bad)[:200], "unknown"))
            continue
        top_name = column.relation or column.top
        writable = grant is None or grant.access(top_name) is FieldAccess.WRITE
        columns.append(column if writable else None)
    if errors:
        raise Invalid("The file's header names columns that are not fields of " + entity.name, errors=errors)
    plain = [c for c in columns if c is not None and c.relation is None and len(c.path) == 1]
    key = next((c.top for c in plain if c.top in schema.unique_fields), None)
    found: dict[str, tuple[str, str]] = {}
    for relation in dict.fromkeys(c.relation for c in columns if c is not None and c.relation):
        spec = schema.field(relation)
        target = relations[spec.entity or ""] if spec else None
        assert target is not None
        mine = [c for c in columns if c is not None and c.relation == relation and len(c.path) == 1]
        unique = next((str(c.path[0]) for c in mine if str(c.path[0]) in target.unique_fields), None)
        if unique is None:
            raise Invalid(
                f"{relation}.*: to import into {target.name}, name one of its unique fields "
                f"({', '.join(target.unique_fields) or 'it has none'}) among the columns"
            )
        found[relation] = (target.name, unique)
    if not any(columns):
        raise Invalid("None of the file's columns is a field you may write")
    return Layout(columns=columns, key=key, related=found)


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
    """A row's values for its record, and for each relationship its related record's."""
    own: dict[Any, Any] = {}
    related: dict[str, dict[Any, Any]] = {}
    for column, value in zip(columns, values, strict=True):
        if column is None:
            continue
        target = own if column.relation is None else related.setdefault(column.relation, {})
        _put(target, column.path, value)
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


class ImportRecordsKind(JobKind):
    name = IMPORT_KIND
    commit_rows = 100

    # Planning ---------------------------------------------------------------
    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        files = ctx.files
        try:
            chunker = CsvChunker(files.open_text(job.params["owner"], FILE_NAME), CHUNK_ROWS)
            _layout(ctx, job, chunker.header)
            chunks = chunker.scan()
        except (csv.Error, UnicodeDecodeError) as err:
            raise JobFailure(f"The file is not a UTF-8 CSV file: {str(err)[:200]}") from None
        return [
            ChunkPlan(index=i, start=c.first, count=c.count, cursor={"from": c.start, "to": c.end})
            for i, c in enumerate(chunks)
        ]

    # Rows ---------------------------------------------------------------------
    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        stream = ctx.files.open_text(job.params["owner"], FILE_NAME, chunk.cursor["from"], chunk.cursor["to"])
        for seen, values in chunk_rows(stream, skip):
            yield chunk.start + seen, values

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        index, values = row
        columns = _setup(ctx, job).layout.columns
        if len(values) != len(columns):
            return RowOutcome(
                ok=False, error=f"Row {index + 1}: {len(values)} values for {len(columns)} columns in the header"
            )
        own, related = row_values(columns, values)
        return RowOutcome(output={"row": _Row(index, own, related)})

    # Writing a group -----------------------------------------------------------
    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        setup = _setup(ctx, job)
        pending = [o for o in outcomes if o.ok and o.output]
        if not pending:
            _log_errors(ctx, job, chunk, outcomes)
            return
        guard = _guard(chunk)
        failed: dict[int, str] = {}
        try:
            for relation, (entity, unique) in setup.layout.related.items():
                self._relate(ctx, job, setup, relation, entity, unique, pending, failed, guard)
            self._save(ctx, job, setup, [o for o in pending if id(o) not in failed], failed, guard)
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
        ctx: JobContext,
        job: Job,
        setup: _Setup,
        relation: str,
        entity: str,
        unique: str,
        pending: list[RowOutcome],
        failed: dict[int, str],
        guard: Sequence[Write],
    ) -> None:
        """Match, update or create each row's related record of `relation`, and link the row's values to it."""
        schema = setup.schemas[entity]
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
        for key, (_raw, values, rows) in wanted.items():
            current = found.get(key)
            first: _Row = rows[0].output["row"]  # type: ignore[index]
            if current is None:
                changes.append(Create(values, _import_rid(job, first.index, relation)))
            elif _changes(schema, current, values := _with_ids(schema, current, values)):
                changes.append(Update(current, values))
            else:
                for outcome in rows:
                    outcome.output["row"].values[relation] = current.rid  # type: ignore[index]
                continue
            keys.append(key)
        saved = store.write_many(job.tenant_id, schema, changes, author=setup.author(job), guard=guard)
        for key, change, result in zip(keys, changes, saved, strict=True):
            rows = wanted[key][2]
            if isinstance(result, Invalid) and isinstance(change, Create) and _duplicated(result, unique):
                result = self._adopt(job, setup, schema, unique, wanted[key][0], change.values, guard)
            if isinstance(result, BackroomError):
                for outcome in rows:
                    row = outcome.output["row"]  # type: ignore[index]
                    failed[id(outcome)] = f"Row {row.index + 1}: {relation}: {_message(result)}"
                continue
            for outcome in rows:
                outcome.output["row"].values[relation] = result.rid  # type: ignore[index]

    def _adopt(
        self,
        job: Job,
        setup: _Setup,
        schema: Schema,
        unique: str,
        raw: Any,
        values: Mapping[str, Any],
        guard: Sequence[Write],
    ) -> Record | BackroomError:
        """Another writer created the related record meanwhile: update that one instead."""
        found = setup.records.by_unique(job.tenant_id, schema, unique, [_typed(schema, unique, raw)])
        current = next(iter(found.values()), None)
        if current is None:
            return Invalid(f"{unique} {str(raw)[:60]} is taken")
        if not _changes(schema, current, values):
            return current
        return setup.records.write_many(
            job.tenant_id, schema, [Update(current, values)], author=setup.author(job), guard=guard
        )[0]

    def _save(
        self,
        ctx: JobContext,
        job: Job,
        setup: _Setup,
        pending: list[RowOutcome],
        failed: dict[int, str],
        guard: Sequence[Write],
    ) -> None:
        """Create or update each row's record, with its row's marker, in rounds of distinct keys."""
        schema, key_field = setup.schema, setup.layout.key
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
            self._save_round(job, setup, members, failed, guard)

    def _save_round(
        self, job: Job, setup: _Setup, members: list[RowOutcome], failed: dict[int, str], guard: Sequence[Write]
    ) -> None:
        schema, key_field, store = setup.schema, setup.layout.key, setup.records
        rows: list[_Row] = [o.output["row"] for o in members]  # type: ignore[index]
        found: dict[str, Record] = {}
        if key_field:
            found = store.by_unique(
                job.tenant_id, schema, key_field, [_typed(schema, key_field, r.values.get(key_field)) for r in rows]
            )
        changes: list[Update | Create] = []
        owners: list[RowOutcome] = []
        for outcome, row in zip(members, rows, strict=True):
            values = setup.stamped(row.values)
            key = _key(schema, key_field, row.values.get(key_field)) if key_field else None
            current = found.get(key) if key is not None else None
            marker = _marker(job, row.index)
            if current is None:
                changes.append(Create(values, _import_rid(job, row.index), extra=[marker]))
            elif not setup.may_update:
                failed[id(outcome)] = f"Row {row.index + 1}: you may not update records of {setup.entity.name}"
                continue
            elif _changes(schema, current, own := _with_ids(schema, current, row.values)):
                changes.append(Update(current, setup.stamped(own), extra=[marker]))
            else:
                continue  # the record holds these values already (or a replay after it was written)
            owners.append(outcome)
        saved = store.write_many(job.tenant_id, schema, changes, author=setup.author(job), guard=guard)
        for outcome, change, result in zip(owners, changes, saved, strict=True):
            row = outcome.output["row"]  # type: ignore[index]
            if isinstance(result, AlreadyApplied):
                continue  # this very row was written before (a replayed group)
            if isinstance(result, Invalid) and setup.skip_invalid and result.errors:
                result = self._without_invalid(job, setup, change, result, guard)
            if isinstance(result, BackroomError):
                failed[id(outcome)] = f"Row {row.index + 1}: {_message(result)}"

    def _without_invalid(
        self, job: Job, setup: _Setup, change: Update | Create, error: Invalid, guard: Sequence[Write]
    ) -> Record | BackroomError:
        """`_skipInvalidFields`: the row again without the fields that failed their checks."""
        bad = {e.field.split(".")[0].split("[")[0] for e in error.errors}
        if isinstance(change, Create):
            retry: Update | Create = Create(
                {k: v for k, v in change.values.items() if k not in bad}, change.rid, change.extra
            )
        else:
            retry = Update(change.current, {k: v for k, v in change.changes.items() if k not in bad}, change.extra)
        result = setup.records.write_many(job.tenant_id, setup.schema, [retry], author=setup.author(job), guard=guard)[
            0
        ]
        return None if isinstance(result, AlreadyApplied) else result  # type: ignore[return-value]

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        _setup.forget(job.id)
        return {"rowsImported": progress.processed, "rowsWithErrors": progress.failed}

    def finished_message(self, progress: Progress) -> str:
        return f"Import finished: {progress.processed} rows imported, {progress.failed} rows with errors"


# Helpers -----------------------------------------------------------------------
@dataclass
class _Setup:
    """What a worker reads once per job: the entity, the related schemas, the columns and the caller's rights."""

    entity: Entity
    schemas: dict[str, Schema]
    layout: Layout
    records: RecordStore
    may_update: bool
    skip_invalid: bool
    schema: Schema  # the entity's, without history when `_skipHistory` is set (made once per job)

    def stamped(self, values: Mapping[str, Any]) -> dict[str, Any]:
        stamped = dict(values)
        if self.entity.updated_field:
            stamped[self.entity.updated_field] = now_ms()
        return stamped

    def author(self, job: Job) -> Author:
        return Author(job.params.get("user", ""), job.params.get("ip"), f"jobs.{job.id}")


def _layout(ctx: JobContext, job: Job, header: Sequence[str]) -> Layout:
    entity = entity_of(ctx, job)
    repo = ctx.app.repo
    grant = None if job.params.get("developer") else _grant(repo, job)
    try:
        return layout(entity, header, lambda name: repo.entity(job.tenant_id, name).schema, grant)
    except (Invalid, NotFound) as bad:
        raise JobFailure(f"{bad.message} {'; '.join(e.message for e in getattr(bad, 'errors', []))}".strip()) from None


def _grant(repo: AppRepository, job: Job) -> EntityPermission:
    return repo.permissions(job.tenant_id, job.params.get("user", "")).get(job.params["entity"]) or EntityPermission()


def _load(ctx: JobContext, job: Job) -> _Setup:
    entity = entity_of(ctx, job)
    records, repo = ctx.records, ctx.app.repo
    header = CsvChunker(ctx.files.open_text(job.params["owner"], FILE_NAME, 0, HEADER_BYTES), 1).header
    shape = _layout(ctx, job, header)
    schemas = {name: repo.entity(job.tenant_id, name).schema for name, _ in shape.related.values()}
    developer = bool(job.params.get("developer"))
    flags = job.params.get("flags", {})
    return _Setup(
        entity=entity,
        schemas=schemas,
        layout=shape,
        records=records,
        may_update=developer or _grant(repo, job).update,
        skip_invalid=bool(flags.get("_skipInvalidFields")),
        schema=entity.schema.model_copy(update={"history": False}) if flags.get("_skipHistory") else entity.schema,
    )


_setup = PerJob(_load)


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


def _duplicated(error: Invalid, name: str) -> bool:
    return any(e.code == "duplicated" and e.field == name for e in error.errors)


def _message(error: BackroomError) -> str:
    details = "; ".join(f"{e.field}: {e.message}" for e in getattr(error, "errors", []))
    return (details or error.message)[:500]


def _marker(job: Job, row: int) -> Write:
    item = {
        "pk": f"IMPRUN#{job.id}#{zlib.crc32(str(row).encode()) % MARKER_SHARDS}",
        "sk": f"{row:09d}",
        "expires_at": now_ms() // 1000 + MARKER_DAYS * 86_400,
    }
    return Write(item=item, condition="attribute_not_exists(pk)")


def _guard(chunk: Chunk) -> list[Write]:
    """The chunk's lease check, joined to every transaction of the group: a delivery that lost its chunk
    (taken over, or the job force-stopped) writes nothing more."""
    return [lease_guard(chunk)] if chunk.lease_owner else []


def _log_errors(ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
    log_failed_rows(ctx, job, chunk, outcomes, most=MAX_LOGGED_ERRORS, level="ERROR")


register(ImportRecordsKind())


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
    job), store the file, then start the job. `data` is the app's `AppData`.

    The file is the request's (`content`), or one uploaded before by `POST /files` (`file_id`: the way for
    a file above API Gateway's payload limit, uploaded to a presigned URL), copied by S3.
    """
    from backroom.ids import object_id

    access = data.access(caller, name, "create")
    flags = flags_of(params, developer=caller.is_developer)
    uploaded = None
    if file_id is not None:
        uploaded = files.app_file(caller.tenant_id, file_id) if re.fullmatch(r"[0-9a-f]{24}", file_id) else None
        if uploaded is None:
            raise NotFound(f"File {file_id[:40]} does not exist")
        first = files.first_line(uploaded.owner, uploaded.name, HEADER_BYTES)
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

    def related(entity: str) -> Schema:
        try:
            return data.repo.entity(caller.tenant_id, entity).schema
        except NotFound:
            raise Invalid(f"The related entity {entity} does not exist") from None

    layout(access.entity, header, related, None if caller.is_developer else access.grant)
    job_id = object_id()
    owner = file_owner(caller.tenant_id, job_id)
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
