"""`EXPORT_RECORDS`: the records a query matches, as a CSV file in S3, by a job.

The plan fixes the records (`planning`: the query's matches when the job starts, in id order, cut to
`_size` after `_offset`). Each chunk reads its records (BatchGetItem), renders them, and writes one
part (a scratch object named by the chunk: a replay writes the same object again). A part starts with
one JSON line saying how many rows it holds and how many values each multi-valued column took in it;
when every chunk is done the parts are streamed into one file by a multipart upload, the columns of a
multi-valued field widened to the most values any record has (`phoneNumbers[0]`, `phoneNumbers[1]`...).
Memory stays at one part whatever the size of the export.

Columns: `_fields` picks fields (dotted paths into groups, related fields such as `company.type`; a bare
relationship exports its label); without it every field the caller may read, related ones aside.
System fields (id, label, version) are left out. Headers are field paths, or labels with `_useLabels`.

Permissions (`permissions.Gate`): a field the caller may not read is left out, as a listing's `_fields`
leaves it out; so is a related field (`company.taxId`) unless the caller may read the relationship, its
entity (`Access.related`) and that field there. The request fixes the fields (the job's `fields`); each
chunk asks the job user's gate again, and a field it may no longer read fails the job before the chunk
reads a record. Cells go through `csvfiles.SafeCsvWriter` (formula escaping; `_formulaSafe=false` off).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import islice
from typing import TYPE_CHECKING, Any

from backroom import keys
from backroom.app.definition import Entity
from backroom.app.permissions import Access, Gate
from backroom.app.planning import CHUNK_IDS, AppJobKind, chunk_ids, entity_of
from backroom.app.querylang import parse
from backroom.csvfiles import SafeCsvWriter
from backroom.errors import Forbidden, Invalid, NotFound
from backroom.jobs.kinds import JobContext, JobFailure, PerJob, RowOutcome
from backroom.jobs.models import Chunk, ChunkPlan, Job, Progress
from backroom.params import whole
from backroom.records import Record, RecordStore, Schema
from backroom.records.schema import TableField

if TYPE_CHECKING:
    from backroom.app.ports import AppService

logger = logging.getLogger("jobs.exports")

EXPORT_KIND = "runtime.export_records"
FILE_NAME = "export.csv"
DONE = "done.json"
MAX_RECORDS = 1_000_000  # the spec: more is a 400
LABEL_SEPARATOR = " > "


def export_file_id(job: Job) -> str:
    """The export's file id (24 hex digits), the same however often the job is finished."""
    return f"{job.created_at // 1000:08x}{hashlib.sha256(f'export/{job.id}'.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Column:
    """One field of the export: where it is in the record (or in the related record), and its spec.

    A multi-valued field (or a field inside a multi-valued group) becomes as many CSV columns as the
    record with the most values needs: `name[i]` or `name[i].inner`.
    """

    path: tuple[str, ...]  # in the record, or in the related record after `relation`
    spec: TableField
    header: str  # the field path, or labels
    source: str = ""  # the `_fields` path it comes from
    relation: str | None = None  # the relationship field the value is read through
    multi: str | None = None  # the multi-valued field this column repeats with (its path)
    inner: tuple[str, ...] = ()  # inside each value of the multi-valued group
    tail: str = ""  # a multi-valued group's column: the inner field's part of the header


def _label(spec: TableField) -> str:
    return spec.label or spec.name


def columns_of(access: Access, fields: Sequence[str] | None, *, labels: bool) -> list[Column]:
    """The export's columns as the caller may read them; a path that is not a field is a 400 naming it.

    A field the caller may not read is left out (as a listing's `_fields` leaves it out), and so is a path
    through a relationship unless the caller may read that field, the related entity and the field there
    (`Access.related`): what the caller may not follow is not looked into, so its schema is not told."""
    schema = access.schema
    chosen = fields if fields else [f.name for f in schema.fields]
    out: list[Column] = []
    for path in chosen:
        parts = path.split(".")
        top = schema.field(parts[0])
        if top is None:
            raise Invalid(f'_fields: "{path[:60]}" is not a field of {schema.name}')
        if not access.may_read(top.name):
            continue
        if top.type == "relationship" and len(parts) > 1:
            target = _target(access, top.name)
            if target is None:
                continue
            spec = target.schema.field(".".join(parts[1:]))
            if spec is None or spec.multi or spec.type in ("group", "relationship"):
                raise Invalid(f'_fields: "{path[:60]}" is not a plain field of {target.schema.name}')
            if not target.may_read(parts[1]):
                continue
            header = LABEL_SEPARATOR.join([_label(top), *_labels(target.schema, parts[1:])]) if labels else path
            out.append(Column(tuple(parts[1:]), spec, header, source=path, relation=top.name))
            continue
        out.extend(replace(c, source=path) for c in _flatten(schema, parts, labels))
    return out


def _target(access: Access, relation: str) -> Access | None:
    """The related entity as the caller may read it; None when it may not (or the entity is gone)."""
    try:
        return access.related(relation, "read")
    except (Forbidden, NotFound):
        return None


def _labels(schema: Schema, parts: Sequence[str]) -> list[str]:
    names, fields = [], schema.fields
    for part in parts:
        spec = next((f for f in fields if f.name == part), None)
        if spec is None:
            break
        names.append(_label(spec))
        fields = spec.fields
    return names


def _flatten(schema: Schema, parts: list[str], labels: bool) -> list[Column]:
    """A path into the record's own fields, groups opened into their fields."""
    spec = schema.field(".".join(parts))
    if spec is None:
        # inside a multi-valued group (`addresses.city`): the group repeats, the column is its field
        head = schema.field(parts[0])
        inner = head.child(parts[1]) if head is not None and head.type == "group" and len(parts) == 2 else None
        if head is None or not head.multi or inner is None or inner.type == "group":
            raise Invalid(f'_fields: "{".".join(parts)[:60]}" is not a field of {schema.name}')
        base, tail = (_label(head), _label(inner)) if labels else (head.name, inner.name)
        return [Column((head.name,), inner, base, multi=head.name, inner=(inner.name,), tail=tail)]
    header = LABEL_SEPARATOR.join(_labels(schema, parts)) if labels else ".".join(parts)
    if spec.type != "group":
        return [Column(tuple(parts), spec, header, multi=".".join(parts) if spec.multi else None)]
    if spec.multi:
        return [
            Column(
                tuple(parts),
                inner,
                header,
                multi=".".join(parts),
                inner=(inner.name,),
                tail=_label(inner) if labels else inner.name,
            )
            for inner in spec.fields
            if inner.type != "group"
        ]
    out: list[Column] = []
    for inner in spec.fields:
        out.extend(_flatten(schema, [*parts, inner.name], labels))
    return out


# Values as text ------------------------------------------------------------------
def cell(spec: TableField, value: Any) -> str:
    """A stored value as the import reads it back."""
    if value is None:
        return ""
    if spec.type == "file":  # the file's id: what an import of the column takes back
        return str(value.get("id") or "") if isinstance(value, dict) else str(value)
    if spec.type == "relationship":
        return str(value.get("label") or value.get("id") or "") if isinstance(value, dict) else str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if spec.type == "datetime" and isinstance(value, Decimal | int):
        moment = dt.datetime.fromtimestamp(int(value) / 1000, tz=dt.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _at(data: Any, path: Sequence[str]) -> Any:
    for name in path:
        data = data.get(name) if isinstance(data, dict) else None
    return data


@dataclass
class _Layout:
    columns: list[Column]
    relations: dict[str, str]  # relationship -> related entity (for the columns read through it)


def render(
    layout: _Layout, records: Sequence[Record], related: Mapping[str, Mapping[str, Record]]
) -> tuple[list[list[str]], dict[str, int]]:
    """Rows of records (each multi-valued column at this part's width) and those widths."""
    widths: dict[str, int] = {}
    for column in layout.columns:
        if column.multi:
            for record in records:
                values = _at(record.data, column.path)
                widths[column.multi] = max(widths.get(column.multi, 0), len(values) if isinstance(values, list) else 0)
    rows = []
    for record in records:
        row: list[str] = []
        for column in layout.columns:
            if column.relation:
                link = record.data.get(column.relation)
                target = related.get(column.relation, {}).get(str(link.get("id"))) if isinstance(link, dict) else None
                row.append(cell(column.spec, _at(target.data, column.path)) if target else "")
            elif column.multi:
                values = _at(record.data, column.path)
                values = values if isinstance(values, list) else []
                for i in range(widths.get(column.multi, 0)):
                    value = values[i] if i < len(values) else None
                    row.append(cell(column.spec, _at(value, column.inner) if column.inner else value))
            else:
                row.append(cell(column.spec, _at(record.data, column.path)))
        rows.append(row)
    return rows, widths


def headers(layout: _Layout, widths: Mapping[str, int], *, labels: bool = False) -> list[str]:
    """The header row: `phoneNumbers[0]`, `addresses[1].city` (or `Addresses[1] > City` with labels)."""
    out: list[str] = []
    separator = LABEL_SEPARATOR if labels else "."
    for column in layout.columns:
        if not column.multi:
            out.append(column.header)
            continue
        for i in range(widths.get(column.multi, 0)):
            out.append(f"{column.header}[{i}]" + (f"{separator}{column.tail}" if column.tail else ""))
    return out


def widen(row: list[str], layout: _Layout, have: Mapping[str, int], want: Mapping[str, int]) -> list[str]:
    """A row rendered at a part's widths, padded to the file's widths (empty cells for missing values)."""
    out: list[str] = []
    position = 0
    for column in layout.columns:
        if not column.multi:
            out.append(row[position])
            position += 1
            continue
        n, m = have.get(column.multi, 0), want.get(column.multi, 0)
        out.extend(row[position : position + n])
        out.extend([""] * (m - n))
        position += n
    return out


# The job -----------------------------------------------------------------------------
class ExportRecordsKind(AppJobKind):
    name = EXPORT_KIND
    commit_rows = CHUNK_IDS  # a chunk is one group: one part

    def __init__(self, app: AppService) -> None:
        super().__init__(app)
        self._setup: PerJob[AppService, _Setup] = PerJob(_load)

    def plan(self, ctx: JobContext, job: Job) -> Iterator[ChunkPlan]:
        """The matches' ids as the store reads them, after `_offset`, at most `_size`, a chunk at a time:
        the plan never holds more than one chunk's ids (the engine writes each chunk as it comes)."""
        self._setup(self.app, job)  # a field gone since the request fails the job now, not at the end
        entity = entity_of(self.app, job)
        offset = int(job.params.get("offset") or 0)
        size = job.params.get("size")
        ids = self.app.iter_ids(job.tenant_id, entity, parse(job.params.get("query") or {}))
        ids = islice(ids, offset, None if size is None else offset + int(size))
        index = start = 0
        part: list[str] = []
        for rid in ids:
            part.append(rid)
            if len(part) == CHUNK_IDS:
                yield ChunkPlan(index=index, start=start, count=len(part), cursor={"ids": part})
                index, start, part = index + 1, start + len(part), []
            if start + len(part) > MAX_RECORDS:
                raise JobFailure(f"The query matches more than {MAX_RECORDS:,} records, the most an export takes")
        if part:
            yield ChunkPlan(index=index, start=start, count=len(part), cursor={"ids": part})

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        return iter(chunk_ids(chunk.cursor, skip))

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        return RowOutcome(output={"id": row})  # the group is read and written together, before its checkpoint

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        """Read the group's records and write them as one part (named by the chunk and its first row).

        The job's user's permissions are read again first: a field it may no longer read fails the job."""
        setup = self._setup(self.app, job)
        _still_readable(self.app, job, setup)
        rids = [str((o.output or {})["id"]) for o in outcomes]
        records = setup.records.get_many(job.tenant_id, setup.entity.schema, rids)
        found = {r.rid for r in records}
        related: dict[str, dict[str, Record]] = {}
        for relation, entity in setup.layout.relations.items():
            links = {r.data[relation]["id"] for r in records if isinstance(r.data.get(relation), dict)}
            schema = setup.schemas[entity]
            related[relation] = {r.rid: r for r in setup.records.get_many(job.tenant_id, schema, sorted(links))}
        rows, widths = render(setup.layout, records, related)
        text = io.StringIO()
        text.write(json.dumps({"rows": len(rows), "widths": widths}) + "\n")
        SafeCsvWriter(text, formula_safe=_formula_safe(job)).writerows(rows)
        ctx.files.put_scratch(
            keys.export_owner(job.tenant_id, job.id), _part(chunk.index, chunk.next_row), text.getvalue().encode()
        )
        for outcome, rid in zip(outcomes, rids, strict=True):
            outcome.output = None
            if rid not in found:  # deleted since the job started: not exported
                outcome.ok, outcome.error = False, f"{rid}: the record was deleted before it was exported"

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        """Stream the parts into one file, multi-valued columns widened to the widest part's."""
        setup = self._setup(self.app, job)
        files, owner = ctx.files, keys.export_owner(job.tenant_id, job.id)
        if files.scratch_names(owner, DONE):  # finished before (a redelivery): the same results
            return dict(json.loads(files.first_line(owner, DONE)))
        names = sorted(files.scratch_names(owner, "part-"))
        heads = [json.loads(files.first_line(owner, name)) for name in names]
        want: dict[str, int] = {}
        for head in heads:
            for name, width in head["widths"].items():
                want[name] = max(want.get(name, 0), width)
        header = io.StringIO()
        SafeCsvWriter(header, formula_safe=_formula_safe(job)).writerow(
            headers(setup.layout, want, labels=bool(job.params.get("labels")))
        )

        def pieces() -> Iterable[bytes]:
            for name, head in zip(names, heads, strict=True):
                body = files.open_text(owner, name)
                body.readline()
                if all(head["widths"].get(k, 0) == v for k, v in want.items()):
                    while block := body.read(1 << 20):
                        yield block.encode()
                    continue
                out = io.StringIO()
                writer = csv.writer(out, lineterminator="\n")  # the parts' cells are escaped already
                for row in csv.reader(body):
                    writer.writerow(widen(row, setup.layout, head["widths"], want))
                    if out.tell() > 1 << 20:
                        yield out.getvalue().encode()
                        out.seek(0)
                        out.truncate()
                yield out.getvalue().encode()

        stored = files.write_stream(owner, FILE_NAME, header.getvalue().encode(), pieces(), "text/csv")
        exported = sum(int(h["rows"]) for h in heads)
        file_id = export_file_id(job)
        files.adopt(job.tenant_id, file_id, stored, f"{setup.entity.name}-export.csv")
        results = {"fileLink": f"/runtime/api/files/{file_id}", "fileId": file_id, "recordsExported": exported}
        files.put_scratch(owner, DONE, json.dumps(results).encode())  # before the parts go: a rerun finds it
        files.delete_scratch(owner, "part-")
        self._setup.forget(job.id)
        return results

    def finished_message(self, progress: Progress) -> str:
        return f"Export finished: {progress.processed} records exported"


def _part(chunk: int, row: int) -> str:
    return f"part-{chunk:06d}-{row:06d}.csv"


@dataclass
class _Setup:
    entity: Entity
    layout: _Layout
    schemas: dict[str, Schema]
    records: RecordStore
    entities: dict[str, Entity]  # the definitions read once for the job (the gate of each chunk reuses them)


def _formula_safe(job: Job) -> bool:
    return job.params.get("formulaSafe", True) is not False


def _access(app: AppService, job: Job, entities: dict[str, Entity]) -> Access:
    """The entity as the job's user may read it now (its grants read anew); a job failure when it may not."""
    gate = Gate.for_job(app.repo, job.tenant_id, job.params, entities)
    try:
        return gate.access(job.params["entity"], "read")
    except Forbidden as denied:
        raise JobFailure(f"{denied.message}: the export stopped") from None


def _readable_now(access: Access, job: Job) -> list[Column]:
    """The job's columns as its user may read them now: a field it may no longer read fails the job."""
    fields = job.params.get("fields")
    try:
        columns = columns_of(access, fields, labels=bool(job.params.get("labels")))
    except Invalid as bad:
        raise JobFailure(bad.message) from None
    lost = [f for f in fields or [] if f not in {c.source for c in columns}]
    if lost:
        raise JobFailure(f"You may no longer read {', '.join(lost)[:200]} of {access.entity.name}: the export stopped")
    return columns


def _still_readable(app: AppService, job: Job, setup: _Setup) -> None:
    _readable_now(_access(app, job, setup.entities), job)


def _load(app: AppService, job: Job) -> _Setup:
    entity = entity_of(app, job)
    access = _access(app, job, {entity.name: entity})
    columns = _readable_now(access, job)
    relations = {
        c.relation: entity.schema.field(c.relation).entity or ""  # type: ignore[union-attr]
        for c in columns
        if c.relation
    }
    assert access.gate is not None
    entities = access.gate.entities  # the related ones too: read while the columns were made
    schemas = {name: entities[name].schema for name in relations.values()}
    return _Setup(entity, _Layout(columns, relations), schemas, app.records, entities)


# The request ---------------------------------------------------------------------------
_OPTIONS = (
    "_size",
    "_offset",
    "_sortField",
    "_sortType",
    "_fields",
    "_useLabels",
    "_lowPriority",
    "_async",
    "_formulaSafe",
)


def start_export(data: Any, caller: Any, name: str, params: Mapping[str, Any], ip: str | None) -> Job:
    """`PUT /data/{entity}/export`: check the query and the fields now (a 400 or 403 here, not a failed job),
    then start the job. `data` is the app's data service (`AppData`)."""
    access: Access = data.gate(caller).access(name, "read")
    options = {k: (v[-1] if isinstance(v, list) else v) for k, v in params.items() if k in _OPTIONS}
    size = whole(options.get("_size"), "_size", 1, MAX_RECORDS)
    offset = whole(options.get("_offset"), "_offset", 0, MAX_RECORDS) or 0
    if "_sortField" in options or "_sortType" in options:
        raise Invalid(
            "An export lists the records in the order they are read (by id, or by the index serving the query): "
            "it takes no _sortField or _sortType"
        )
    defaults = {"_useLabels": "false", "_lowPriority": "false", "_formulaSafe": "true"}
    flags = {k: str(options.get(k, default)).lower() for k, default in defaults.items()}
    for key, value in flags.items():
        if value not in ("true", "false"):
            raise Invalid(f"{key} must be true or false")
    query = {k: v for k, v in params.items() if k not in _OPTIONS}
    access.bind(parse(query))
    fields = [f.strip() for f in str(options.get("_fields", "")).split(",") if f.strip()]
    fields = [f for f in dict.fromkeys(fields) if f not in ("id", "label", "version")]
    columns = columns_of(access, fields or None, labels=flags["_useLabels"] == "true")
    if not columns:
        raise Invalid("None of the fields asked for is one you may read")
    job_params = {
        "entity": name,
        "query": query,
        "fields": list(dict.fromkeys(c.source for c in columns)),  # what the caller may read now: fixed
        "labels": flags["_useLabels"] == "true",
        "formulaSafe": flags["_formulaSafe"] == "true",
        "size": size,
        "offset": offset,
        "user": caller.email,
        "ip": ip,
        "developer": caller.is_developer,
    }
    label = f"Export records from entity {name}"
    low = flags["_lowPriority"] == "true"
    return data.start_job(caller, EXPORT_KIND, "EXPORT_RECORDS", label, job_params, low_priority=low)
