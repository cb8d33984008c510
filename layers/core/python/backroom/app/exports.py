"""`EXPORT_RECORDS`: the records a query matches, as a CSV file in S3, by a job.

The plan reads no id: it takes the key ranges the reader's plan would read (`RecordReader.ordered_plan`:
the entity's records partitions, one per shard, or the serving index's ranges) and makes them one chunk,
which reads them in order (every partition at once, merged), after `_offset` matches, at most `_size`
(and MAX_RECORDS), until they run dry: the chunk is open-ended (`JobKind.open_ended`), as the request's
count is only an estimate (kept counts lag an import's moves, records come and go), which the job's
recordsCount shows until the chunk's end sets it to the rows exported.
Each record is read once; the chunk's checkpoint keeps the last key read, so a resumed chunk reads on
from there and a replayed group reads the same range again. `_sortField`/`_sortType` are taken when an
index lists the matches in that order (else a 400 naming the index to declare). A query matching more
than MAX_RECORDS is a 400 at the request (`matches_at_most`, which never counts past that).

Rows go to S3 once: a group of rows is one part of the file's multipart upload (PART_CHARS of text, as
S3 takes parts of 5 MiB and more but the last), written by the chunk, and S3 joins the parts when the
job finalizes; a replay writes the same part number again. The one exception: with a multi-valued
column (`phoneNumbers[0]`, `phoneNumbers[1]`...) the header needs the widest record of the whole file,
so each group goes to a scratch part that says its widths, and finalize streams the parts into the
file, widened (those rows pass through the worker twice). Memory stays at one part.

One chunk, not one per shard: parts from parallel chunks would each end short of 5 MiB, and S3 joins
short parts only by copying them through the worker; the chunk reads its partitions in parallel threads.

Columns: `_fields` picks fields (dotted paths into groups, related fields such as `company.type`; a bare
relationship exports its label); without it every field the caller may read, related ones aside.
System fields (id, label, version) are left out. Headers are field paths, or labels with `_useLabels`.

Permissions (`permissions.Gate`): a field the caller may not read is left out, as a listing's `_fields`
leaves it out; so is a related field (`company.taxId`) unless the caller may read the relationship, its
entity (`Access.related`) and that field there. The request fixes the fields (the job's `fields`); each
chunk asks the job user's gate again, and a field it may no longer read fails the job before the chunk
reads a record; so does a filter or the sort on a field it may no longer read (the order would tell it).
Cells go through `csvfiles.SafeCsvWriter` (formula escaping; `_formulaSafe=false` off).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import islice
from typing import TYPE_CHECKING, Any

from backroom import keys
from backroom.app.definition import Entity
from backroom.app.permissions import Access, Gate
from backroom.app.planning import AppJobKind, entity_of
from backroom.app.querylang import Query, bind, evaluate, parse
from backroom.csvfiles import SafeCsvWriter
from backroom.errors import Forbidden, Invalid, NotFound
from backroom.files import StoredFile
from backroom.jobs.kinds import JobContext, JobFailure, PerJob, RowOutcome
from backroom.jobs.models import Chunk, ChunkPlan, Job, JobState, Progress
from backroom.params import whole
from backroom.records import Record, RecordStore, Schema
from backroom.records.query import Condition, Plan, Sort, matches, plan, sort_key
from backroom.records.schema import TableField
from backroom.records.store import Check

if TYPE_CHECKING:
    from backroom.app.ports import AppService

logger = logging.getLogger("jobs.exports")

EXPORT_KIND = "runtime.export_records"
FILE_NAME = "export.csv"
DONE = "done.json"
MAX_RECORDS = 1_000_000  # the spec: more is a 400
LABEL_SEPARATOR = " > "
PART_CHARS = 6 * 1024 * 1024  # a part's text: S3's parts but the last are at least 5 MiB (UTF-8 bytes >= chars)
GROUP_RECORDS = 2000  # records of a scratch part (an export with multi-valued columns)
PAGE = 500  # records rendered together, their related records read in one batch
UPLOAD = "upload.txt"  # the scratch object holding the file's multipart upload id
_ID = re.compile(r"[0-9a-f]{24}")


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

    @property
    def widened(self) -> bool:
        """Whether a multi-valued column repeats: the header waits for every part's widths."""
        return any(c.multi for c in self.columns)


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
@dataclass
class _Row:
    """A record read, as its chunk carries it to the part it goes in."""

    key: str  # where a read resumed after it starts (`RecordReader.read_in_order`'s key)
    line: str = ""  # the record as a CSV line (an export without multi-valued columns)
    record: Record | None = None  # the record, rendered with its group (multi-valued columns)


class ExportRecordsKind(AppJobKind):
    name = EXPORT_KIND
    commit_rows = MAX_RECORDS  # a group ends when its rows make a part (`group`), not at a number of rows
    settles = True  # a failed or canceled export drops its upload
    open_ended = True  # the chunk reads until its key ranges run dry: the request's count is an estimate

    def __init__(self, app: AppService) -> None:
        super().__init__(app)
        self._setup: PerJob[AppService, _Setup] = PerJob(_load)

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        """One chunk: the plan's key ranges read in its order, after the first `_offset` matches, at most
        `_size` (and MAX_RECORDS: the cursor's `most`). Its `count` is the estimate of the request's count,
        never a bound: the chunk ends when the ranges run dry. No id is read here: the chunk reads each
        record once, and keeps the last key it read in its checkpoint."""
        setup = self._setup(self.app, job)  # a field gone since the request fails the job now, not at the end
        read = setup.read
        offset, size, counted = (job.params.get(k) for k in ("offset", "size", "count"))
        offset = int(offset or 0)
        most = MAX_RECORDS if size is None else min(int(size), MAX_RECORDS)
        estimate = most if counted is None else max(0, min(most, int(counted) - offset))
        cursor: dict[str, Any] = {"part": 1, "most": most}
        if read.ids is not None:
            cursor["ids"] = self._listed(job, setup)[offset : offset + most]
            estimate = len(cursor["ids"])
            if not estimate:
                return []
        else:
            after, passed = setup.records.skip_keys(job.tenant_id, read.schema, read.plan, offset, where=read.where)
            if passed < offset:  # fewer matches than `_offset`: nothing to export
                return []
            cursor["after"] = after
        if not setup.layout.widened:
            _upload_of(ctx, job, start=True)
        return [ChunkPlan(index=0, start=0, count=estimate, cursor=cursor)]

    def _listed(self, job: Job, setup: _Setup) -> list[str]:
        """`id=a,b,...` (at most MAX_VALUES): those records that match, in the export's order."""
        read = setup.read
        ids = [i for i in dict.fromkeys(read.ids or ()) if _ID.fullmatch(i)]
        found = [
            r
            for r in setup.records.get_many(job.tenant_id, read.schema, ids)
            if matches(read.schema, r.data, read.conditions) and (read.where is None or read.where(r))
        ]
        order = read.plan.order
        found.sort(key=lambda r: sort_key(read.schema, r.data, r.rid, order), reverse=order.descending)
        return [r.rid for r in found]

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[_Row]:
        """The chunk's records from its checkpoint's key on (listed ids: after the last one done), until the
        ranges run dry or the chunk has its `most` (`skip` of them done), rendered a page at a time (the
        page's related records read together)."""
        setup = self._setup(self.app, job)
        read, after = setup.read, chunk.cursor.get("after")
        pairs: Iterable[tuple[str, Record]]
        if "ids" in chunk.cursor:
            ids: list[str] = chunk.cursor["ids"]
            rest = ids[ids.index(after) + 1 :] if after in ids else ids
            pairs = ((r.rid, r) for r in setup.records.get_many(job.tenant_id, read.schema, rest))
        else:
            pairs = setup.records.read_in_order(job.tenant_id, read.schema, read.plan, after, where=read.where)
        most = int(chunk.cursor.get("most", chunk.count))  # a chunk planned without it: its count was the bound
        return self._rendered(job, setup, islice(pairs, max(0, most - skip)))

    def _rendered(self, job: Job, setup: _Setup, pairs: Iterable[tuple[str, Record]]) -> Iterator[_Row]:
        pairs = iter(pairs)
        while page := list(islice(pairs, PAGE)):
            if setup.layout.widened:  # rendered with their group, at its widths
                yield from (_Row(key, record=record) for key, record in page)
                continue
            records = [record for _, record in page]
            rows, _ = render(setup.layout, records, _related(job, setup, records))
            text = io.StringIO()
            writer = SafeCsvWriter(text, formula_safe=_formula_safe(job))
            for (key, _), row in zip(page, rows, strict=True):
                writer.writerow(row)
                yield _Row(key, line=text.getvalue())
                text.seek(0)
                text.truncate()

    def group(self, rows: Iterator[Any], size: int) -> list[Any]:
        """Rows until they make a part: PART_CHARS of text (S3's parts but the last are at least 5 MiB),
        or GROUP_RECORDS records when the part is a scratch object (multi-valued columns)."""
        taken: list[Any] = []
        chars = 0
        for row in rows:
            taken.append(row)
            chars += len(row.line) if row.record is None else PART_CHARS // GROUP_RECORDS
            if len(taken) >= size or chars >= PART_CHARS:
                break
        return taken

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        return RowOutcome(output={"row": row})  # the group is written as one part, before its checkpoint

    def checkpoint(self, chunk: Chunk, outcomes: list[RowOutcome]) -> dict[str, Any] | None:
        """The last key read and the next part's number, kept with the checkpoint: a resumed chunk reads on
        from there, a replayed group (its checkpoint not written) reads and writes the same part again."""
        if not outcomes:
            return None
        last: _Row = (outcomes[-1].output or {})["row"]
        return {**chunk.cursor, "after": last.key, "part": int(chunk.cursor.get("part", 1)) + 1}

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        """Write the group as one part: part `n` of the file's multipart upload (the header in part 1),
        or, with multi-valued columns, a scratch part named by the chunk and its first row.

        The job's user's permissions are read again first: a field it may no longer read fails the job."""
        setup = self._setup(self.app, job)
        _still_readable(self.app, job, setup)
        rows: list[_Row] = [(o.output or {})["row"] for o in outcomes]
        for outcome in outcomes:
            outcome.output = None
        if not rows:
            return
        owner = keys.export_owner(job.tenant_id, job.id)
        if not setup.layout.widened:
            number = int(chunk.cursor.get("part", 1))
            head = _header(job, setup, {}) if number == 1 else ""
            body = (head + "".join(r.line for r in rows)).encode()
            ctx.files.put_part(owner, FILE_NAME, _upload_of(ctx, job), number, body)
            return
        records = [r.record for r in rows if r.record is not None]
        lines, widths = render(setup.layout, records, _related(job, setup, records))
        text = io.StringIO()
        text.write(json.dumps({"rows": len(lines), "widths": widths}) + "\n")
        SafeCsvWriter(text, formula_safe=_formula_safe(job)).writerows(lines)
        ctx.files.put_scratch(owner, _part(chunk.index, chunk.next_row), text.getvalue().encode())

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        """S3 joins the parts into the file (with multi-valued columns, the parts are streamed into it,
        widened to the widest part's)."""
        setup = self._setup(self.app, job)
        files, owner = ctx.files, keys.export_owner(job.tenant_id, job.id)
        if files.scratch_names(owner, DONE):  # finished before (a redelivery): the same results
            return dict(json.loads(files.first_line(owner, DONE)))
        if setup.layout.widened:
            stored = _widened(ctx, job, setup)
        else:
            upload = _upload_of(ctx, job)
            if not progress.processed:  # no record: the header alone
                files.put_part(owner, FILE_NAME, upload, 1, _header(job, setup, {}).encode())
            stored = files.finish_parts(owner, FILE_NAME, upload)
        file_id = export_file_id(job)
        files.adopt(job.tenant_id, file_id, stored, f"{setup.entity.name}-export.csv", job.params.get("user"))
        # The dialect shows the file's link beside its id (built from the `origin` the request left)
        results = {"fileId": file_id, "recordsExported": progress.processed}
        files.put_scratch(owner, DONE, json.dumps(results).encode())  # before the parts go: a rerun finds it
        files.delete_scratch(owner, "part-")
        self._setup.forget(job.id)
        return results

    def settle(self, ctx: JobContext, job: Job) -> None:
        """A failed or canceled export's upload is dropped (S3 would keep its parts until the bucket's rule
        aborts it); a stopped one keeps it for its resume."""
        if job.state not in (JobState.FAILED, JobState.CANCELED):
            return
        upload = _upload_of(ctx, job, start=False)
        if upload:
            ctx.files.abort_parts(keys.export_owner(job.tenant_id, job.id), FILE_NAME, upload)

    def finished_message(self, progress: Progress) -> str:
        return f"Export finished: {progress.processed} records exported"


def _upload_of(ctx: JobContext, job: Job, *, start: bool = False) -> str:
    """The export file's multipart upload: started once (at the plan), its id kept in a scratch object
    written only if absent, so that a plan delivered twice at once still gives one upload."""
    files, owner = ctx.files, keys.export_owner(job.tenant_id, job.id)
    if files.scratch_names(owner, UPLOAD):
        return files.first_line(owner, UPLOAD).strip()
    if not start:
        return ""
    mine = files.start_parts(owner, FILE_NAME)
    kept = files.put_scratch_once(owner, UPLOAD, mine.encode()).decode().strip()
    if kept != mine:
        files.abort_parts(owner, FILE_NAME, mine)
    return kept


def _header(job: Job, setup: _Setup, widths: Mapping[str, int]) -> str:
    text = io.StringIO()
    SafeCsvWriter(text, formula_safe=_formula_safe(job)).writerow(
        headers(setup.layout, widths, labels=bool(job.params.get("labels")))
    )
    return text.getvalue()


def _related(job: Job, setup: _Setup, records: Sequence[Record]) -> dict[str, dict[str, Record]]:
    """The records the columns read through relationships point at, by relationship and id (one read a page)."""
    related: dict[str, dict[str, Record]] = {}
    for relation, entity in setup.layout.relations.items():
        links = {r.data[relation]["id"] for r in records if isinstance(r.data.get(relation), dict)}
        schema = setup.schemas[entity]
        related[relation] = {r.rid: r for r in setup.records.get_many(job.tenant_id, schema, sorted(links))}
    return related


def _widened(ctx: JobContext, job: Job, setup: _Setup) -> StoredFile:
    """The scratch parts streamed into one file, multi-valued columns widened to the widest part's: the
    one export whose rows pass through S3 twice (its header is known only when every part is written)."""
    files, owner = ctx.files, keys.export_owner(job.tenant_id, job.id)
    names = sorted(files.scratch_names(owner, "part-"))
    heads = [json.loads(files.first_line(owner, name)) for name in names]
    want: dict[str, int] = {}
    for head in heads:
        for name, width in head["widths"].items():
            want[name] = max(want.get(name, 0), width)

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

    return files.write_stream(owner, FILE_NAME, _header(job, setup, want).encode(), pieces(), "text/csv")


def _part(chunk: int, row: int) -> str:
    return f"part-{chunk:06d}-{row:06d}.csv"


@dataclass
class _Read:
    """What the export reads: the query bound to the schema, and the plan that reads its matches in order."""

    schema: Schema
    conditions: list[Condition]
    where: Check | None  # what no key range serves, checked on each record read
    ids: tuple[str, ...] | None  # `id=a,b,...`: read by key
    plan: Plan


@dataclass
class _Setup:
    entity: Entity
    layout: _Layout
    schemas: dict[str, Schema]
    records: RecordStore
    entities: dict[str, Entity]  # the definitions read once for the job (the gate of each chunk reuses them)
    read: _Read


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


def _queryable_now(access: Access, job: Job) -> None:
    """The job's filters and sort as its user may use them now: a field it may no longer read fails the job
    (the rows' order and which rows are there would still tell that field)."""
    sort = job.params.get("sort")
    try:
        access.bind(access.parse(job.params.get("query") or {}))
        if isinstance(sort, dict):
            access.check_query([str(sort.get("field"))])
    except Forbidden as denied:
        raise JobFailure(f"{denied.message}: the export stopped") from None
    except Invalid as bad:
        raise JobFailure(bad.message) from None


def _still_readable(app: AppService, job: Job, setup: _Setup) -> None:
    access = _access(app, job, setup.entities)
    _readable_now(access, job)
    _queryable_now(access, job)


def _load(app: AppService, job: Job) -> _Setup:
    entity = entity_of(app, job)
    access = _access(app, job, {entity.name: entity})
    columns = _readable_now(access, job)
    _queryable_now(access, job)
    relations = {
        c.relation: entity.schema.field(c.relation).entity or ""  # type: ignore[union-attr]
        for c in columns
        if c.relation
    }
    assert access.gate is not None
    entities = access.gate.entities  # the related ones too: read while the columns were made
    schemas = {name: entities[name].schema for name in relations.values()}
    try:
        read = reading(app.records, entity.schema, parse(job.params.get("query") or {}), _sort_of(job.params))
    except Invalid as gone:  # an index the sort needs was removed since the request
        raise JobFailure(gone.message) from None
    return _Setup(entity, _Layout(columns, relations), schemas, app.records, entities, read)


def _sort_of(params: Mapping[str, Any]) -> Sort | None:
    sort = params.get("sort")
    return Sort(sort.get("field"), bool(sort.get("descending"))) if isinstance(sort, dict) else None


def reading(records: RecordStore, schema: Schema, query: Query, sort: Sort | None) -> _Read:
    """The query bound to the schema and the plan that reads its matches in `sort`'s order (None: the
    plan's own); a sort no index serves is a TooBroad (400) naming the index to declare."""
    bound = bind(schema, query)
    rest = bound.rest
    where: Check | None = None
    if rest is not None:
        where = lambda r: evaluate(schema, rest, {**r.data, "id": r.rid, "label": r.label})  # noqa: E731
    chosen = records.ordered_plan(schema, bound.conditions, sort) if bound.ids is None else plan(schema, [], sort)
    return _Read(schema, bound.conditions, where, bound.ids, chosen)


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


def start_export(
    data: Any, caller: Any, name: str, params: Mapping[str, Any], ip: str | None, origin: str | None = None
) -> Job:
    """`PUT /data/{entity}/export`: check the query and the fields now (a 400 or 403 here, not a failed job),
    then start the job. `data` is the app's data service (`AppData`); `origin` is the dialect's, kept for it
    as the job's data and never read here (the runtime builds the file's link from it)."""
    access: Access = data.gate(caller).access(name, "read")
    options = {k: (v[-1] if isinstance(v, list) else v) for k, v in params.items() if k in _OPTIONS}
    size = whole(options.get("_size"), "_size", 1, MAX_RECORDS)
    offset = whole(options.get("_offset"), "_offset", 0, MAX_RECORDS) or 0
    defaults = {"_useLabels": "false", "_lowPriority": "false", "_formulaSafe": "true"}
    flags = {k: str(options.get(k, default)).lower() for k, default in defaults.items()}
    for key, value in flags.items():
        if value not in ("true", "false"):
            raise Invalid(f"{key} must be true or false")
    query = {k: v for k, v in params.items() if k not in _OPTIONS}
    ordering: dict[str, Any] = {k: options[k] for k in ("_sortField", "_sortType") if k in options}
    bound = access.bind(access.parse({**query, **ordering}))
    sort = bound.sort if ordering else None
    read = reading(data.records, access.schema, parse(query), sort)  # a sort no index serves: a 400 naming it
    count = matches_at_most(data.records, caller.tenant_id, read, size)
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
        "sort": None if sort is None else {"field": sort.field, "descending": sort.descending},
        "count": count,
        "user": caller.email,
        "ip": ip,
        "developer": caller.is_developer,
        **({"origin": origin} if origin else {}),
    }
    label = f"Export records from entity {name}"
    low = flags["_lowPriority"] == "true"
    return data.start_job(caller, EXPORT_KIND, "EXPORT_RECORDS", label, job_params, low_priority=low)


def matches_at_most(records: RecordStore, tenant_id: str, read: _Read, size: int | None) -> int | None:
    """How many records the export should take, as far as the request tells cheaply: a 400 past
    MAX_RECORDS (not a job that fails late), else the job's estimate (its recordsCount while it runs; it
    never bounds what the export reads). The count the table keeps (every record; an index value's);
    else, without `_size`, a Select=COUNT of the key ranges that stops past MAX_RECORDS (thin entries;
    never an unbounded count at a request); with `_size`, nothing more is counted. A query checked record
    by record is bounded by the table's kept count: past the cap, `_size` bounds it; without it, a 400
    that says so. None: not known (the job's estimate is then `_size`)."""
    schema = read.schema
    if read.ids is not None:
        return len(read.ids)
    if read.where is not None or read.plan.residual:  # filters checked on each record: at most the table's
        total = records.counted(tenant_id, schema, [])
        if total is not None and total > MAX_RECORDS and size is None:
            raise Invalid(
                f"This export's filters are checked record by record on {schema.name}, which holds more than "
                f"{MAX_RECORDS:,} records: how many match is not known without reading them. Give _size "
                f"(at most {MAX_RECORDS:,}), or a filter an index serves"
            )
        return total
    total = records.counted(tenant_id, schema, read.conditions)
    if total is None and size is None:
        total = records.count(tenant_id, schema, read.conditions, most=MAX_RECORDS + 1)
        if total > MAX_RECORDS:
            raise Invalid(
                f"The query matches more than the {MAX_RECORDS:,} records an export takes: "
                "narrow it, or export part of it with _size and _offset"
            )
    if total is not None and total > MAX_RECORDS and size is None:
        raise Invalid(
            f"The query matches {total:,} records, more than the {MAX_RECORDS:,} an export takes: "
            "narrow it, or export part of it with _size and _offset"
        )
    return total
