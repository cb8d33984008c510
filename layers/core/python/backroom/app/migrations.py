"""`app.evolve`: the data work of an app's change on one entity's records, as a job (`app.evolution`).

Planning reads each shard's record keys (a Query of its partition, never a Scan) and cuts them into
chunks of ids; records created later are written under the new schema already. Each group of rows is
read and rewritten through `RecordWriter.rewrite_many`: each record's values changed as the job's
operations say (values dropped, converted, defaulted, relationship labels copied again, its label
rendered again), then its index entries and unique markers made exactly those its schema gives it
(building indexes included; entries of removed indexes and markers of fields no longer unique go),
in one transaction conditioned on its version, behind the chunk's lease. The version moves only
when the values change (so a user's stale write of them is refused, 409); no history entry is written.
A replayed group finds its records rewritten and writes nothing: stop, resume and a crash lose nothing.

A record whose value another record holds already (a unique claim) is rewritten without that marker
and counted failed, its duplicate logged (at most 100 a chunk); at the end the job fails listing the
first 100, and the constraint is withdrawn (`AppEvolution.withdraw_unique`). Otherwise the job's
building indexes are marked ready.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING, Any

from backroom import keys
from backroom.app.planning import CHUNK_IDS, chunk_ids
from backroom.dynamo import Write
from backroom.errors import NotFound
from backroom.jobs.kinds import JobContext, JobFailure, JobKind, PerJob, RowOutcome, lease_guard, log_failed_rows
from backroom.jobs.models import Chunk, ChunkPlan, Job, Progress
from backroom.records.keys import index_entries, unique_markers
from backroom.records.model import Author, GuardFailed, Record
from backroom.records.schema import Schema, TableField
from backroom.records.values import BadValue, is_empty, render_label, scalar
from backroom.records.writer import Rewrite

if TYPE_CHECKING:
    from backroom.app.evolution import AppEvolution

logger = logging.getLogger("jobs.evolve")
DUPLICATES_MOST = 100  # duplicates listed: in each chunk's log lines, and in the job's failure


def _schema(evolution: AppEvolution, job: Job) -> Schema:
    purge = job.params.get("purge")
    if purge:
        return Schema.model_validate(purge)
    try:
        return evolution.repo.entity(job.tenant_id, job.params["entity"]).schema
    except NotFound as gone:
        raise JobFailure(str(gone)) from None


schema_of = PerJob(_schema)


class EvolveKind(JobKind):
    name = "app.evolve"
    commit_rows = 50

    def __init__(self, evolution: AppEvolution) -> None:
        self.evolution = evolution

    def plan(self, ctx: JobContext, job: Job) -> Iterator[ChunkPlan]:
        """Chunks of at most `CHUNK_IDS` ids, shard by shard (each shard's keys read in id order)."""
        schema = schema_of(self.evolution, job)
        index = start = 0
        for shard in range(schema.shards):
            ids: list[str] = []
            for rid in ctx.records.reader.shard_ids(job.tenant_id, schema, shard):
                ids.append(rid)
                if len(ids) == CHUNK_IDS:
                    yield ChunkPlan(index=index, start=start, count=len(ids), cursor={"ids": ids})
                    index, start, ids = index + 1, start + len(ids), []
            if ids:
                yield ChunkPlan(index=index, start=start, count=len(ids), cursor={"ids": ids})
                index, start = index + 1, start + len(ids)

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        return iter(chunk_ids(chunk.cursor, skip))

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        return RowOutcome(output={"id": row})  # the group's records are rewritten together, before its checkpoint

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        schema = schema_of(self.evolution, job)
        rids = [str((o.output or {})["id"]) for o in outcomes]
        guard = [lease_guard(chunk)] if chunk.lease_owner else []
        try:
            if job.params.get("purge"):
                author = Author("evolution", None, f"jobs.{job.id}")
                ctx.records.delete_many(job.tenant_id, schema, rids, author=author, guard=guard)
                return
            change = Changes(job, schema, self._linked(ctx, job, schema, rids))
            refused = ctx.records.writer.rewrite_many(job.tenant_id, schema, rids, change.rewrite, guard=guard)
            taken = {rid: key for rid, key in refused.items() if key is not None}
            if taken:  # duplicates: rewrite those records without the markers others hold
                change.skip = set(taken.values())
                ctx.records.writer.rewrite_many(job.tenant_id, schema, list(taken), change.rewrite, guard=guard)
        except GuardFailed:
            logger.info("job %s chunk %d: lease lost, leaving the group", job.id, chunk.index)
            return
        for outcome, rid in zip(outcomes, rids, strict=True):
            if rid in taken:
                outcome.ok = False
                outcome.error = self._duplicate(ctx, job, schema, rid, taken[rid])
        log_failed_rows(ctx, job, chunk, outcomes, most=DUPLICATES_MOST, level="WARNING")

    def _linked(self, ctx: JobContext, job: Job, schema: Schema, rids: list[str]) -> dict[str, dict[str, str]]:
        """For each entity whose labels the records' relationships copy: the labels of those they name,
        rendered from the related records' values with that entity's label expression as it is now."""
        targets = list(job.params.get("relink") or [])
        if not targets:
            return {}
        records = ctx.records.get_many(job.tenant_id, schema, rids)
        labels: dict[str, dict[str, str]] = {}
        for target in targets:
            try:
                other = schema if target == schema.name else self.evolution.repo.entity(job.tenant_id, target).schema
            except NotFound:
                continue
            named = {rid for r in records for rid in related_ids(schema.fields, r.data, target)}
            found = ctx.records.get_many(job.tenant_id, other, sorted(named))
            labels[target] = {r.rid: render_label(other.label, r.data) for r in found}
        return labels

    def _duplicate(self, ctx: JobContext, job: Job, schema: Schema, rid: str, key: tuple[str, str]) -> str:
        name = key[0].split("#")[-2]
        record = ctx.records.get(job.tenant_id, schema, rid)
        value = record.data.get(name) if record else None
        holder = ctx.records.by_unique(job.tenant_id, schema, name, [value]) if value is not None else {}
        others = ", ".join(r.rid for r in holder.values())
        return f"Duplicate {schema.name}.{name} = {str(value)[:100]!r}: record {rid} and {others or 'another'}"

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        """Indexes built: ready. Duplicates: the constraint withdrawn, the job failed with the first 100.
        Idempotent: marking ready twice writes the same items, and a constraint is withdrawn once."""
        schema_of.forget(job.id)
        tenant, entity = job.tenant_id, str(job.params["entity"])
        if job.params.get("purge"):
            return {"recordsDeleted": progress.processed}
        if job.params.get("build"):  # built whatever a unique claim of the same job finds
            self.evolution.ready(tenant, entity, list(job.params["build"]))
        if progress.failed and job.params.get("claim"):
            self.evolution.withdraw_unique(tenant, entity, list(job.params["claim"]))
            listed = [line.message for line in ctx.journal.logs(job.id) if line.message.startswith("Duplicate ")]
            shown = "; ".join(listed[:DUPLICATES_MOST])
            raise JobFailure(
                f"{progress.failed} records of {entity} hold a value another record holds: the unique constraint"
                f" on {', '.join(job.params['claim'])} is not enforced (the definition goes back to without it)."
                f" {shown}"
            )
        return {"recordsRewritten": progress.processed, "version": job.params.get("version")}


class Changes:
    """What a job does to each record: its operations, then the entries and markers its schema gives it."""

    def __init__(self, job: Job, schema: Schema, labels: dict[str, dict[str, str]]) -> None:
        self.tenant = job.tenant_id
        self.schema = schema
        self.params = job.params
        self.labels = labels
        self.skip: set[tuple[str, str]] = set()  # markers other records hold: left alone

    def rewrite(self, current: Record) -> Rewrite | None:
        data = {k: v for k, v in current.data.items() if k not in set(self.params.get("drop") or [])}
        for name in self.params.get("retype") or []:
            spec = self.schema.field(name)
            if spec is not None and name in data:
                _retype(spec, data)
        for name in self.params.get("defaults") or []:
            spec = self.schema.field(name)
            if spec is not None and is_empty(data.get(name)) and spec.default is not None:
                data[name] = scalar(spec, spec.default, name)
        for target, labels in self.labels.items():
            _relink(self.schema.fields, data, target, labels)
        record = current.model_copy(update={"data": data})
        record.label = render_label(self.schema.label, data)
        record.keys, writes = held_keys(self.tenant, self.schema, current, record, self.skip)
        if data != current.data:
            record.version = current.version + 1
        elif record.label == current.label and set(record.keys) == set(current.keys):
            return None
        return Rewrite(record=record, writes=writes)


def held_keys(
    tenant_id: str, schema: Schema, current: Record, record: Record, skip: Collection[tuple[str, str]] = ()
) -> tuple[list[tuple[str, str]], list[Write]]:
    """The keys `record` holds under its schema (but the markers in `skip`, which others hold), and the
    writes that get it there from `current`: entries and markers taken, those it no longer holds left."""
    held = set(current.keys)
    entries = index_entries(tenant_id, schema, record)
    markers = [k for k in unique_markers(tenant_id, schema, record.data) if k not in skip]
    wanted = [*entries, *markers]
    writes = [Write(item={"pk": pk, "sk": sk, "rid": record.rid}) for pk, sk in entries if (pk, sk) not in held]
    writes += [
        Write(
            item={"pk": pk, "sk": sk, "rid": record.rid, "field": _marker_field(pk)},
            condition="attribute_not_exists(pk) OR rid = :r",
            values={":r": record.rid},
        )
        for pk, sk in markers
        if (pk, sk) not in held
    ]
    gone = [k for k in current.keys if k not in set(wanted)]
    writes += [
        Write(key=k, condition="attribute_not_exists(pk) OR rid = :r", values={":r": record.rid})
        if k[1] == keys.UNIQUE
        else Write(key=k)
        for k in gone
    ]
    return wanted, writes


def _marker_field(pk: str) -> str:
    return pk.split("#")[-2]


def _retype(spec: TableField, data: dict[str, Any]) -> None:
    """A value converted to its field's new type, or removed when it does not fit."""
    value = data[spec.name]
    if spec.type in ("group", "relationship", "file"):
        data.pop(spec.name)
        return
    try:
        if spec.multi:
            data[spec.name] = [scalar(spec, v, spec.name) for v in (value if isinstance(value, list) else [value])]
        elif isinstance(value, list):
            data.pop(spec.name)
        else:
            data[spec.name] = scalar(spec, value, spec.name)
    except BadValue:
        data.pop(spec.name)


def related_ids(fields: list[TableField], data: dict[str, Any], target: str) -> Iterator[str]:
    """The ids of the `target` records a record's relationships name, through its groups."""
    for spec in fields:
        value = data.get(spec.name)
        for one in value if isinstance(value, list) else [value]:
            if not isinstance(one, dict):
                continue
            if spec.type == "relationship" and spec.entity == target and isinstance(one.get("id"), str):
                yield one["id"]
            elif spec.type == "group":
                yield from related_ids(spec.fields, one, target)


def _relink(fields: list[TableField], data: dict[str, Any], target: str, labels: dict[str, str]) -> None:
    """Each relationship to `target` takes its record's label as it is now (a copy: the data is new)."""
    map_links(fields, data, target, lambda v: {**v, "label": labels[v["id"]]} if v.get("id") in labels else v)


Link = dict[str, Any]  # a relationship's value, `{id, label}`


def map_links(fields: list[TableField], data: dict[str, Any], target: str, fix: Callable[[Link], Link | None]) -> None:
    """Each relationship value to `target` in `data` (through groups) replaced by `fix(value)`, or removed
    when it answers None (a field left with none is removed); the groups are copies (the data is new)."""
    for spec in fields:
        value = data.get(spec.name)
        if spec.type == "relationship" and spec.entity == target and value is not None:
            fixed = _fixed(value, fix)
            if is_empty(fixed):
                data.pop(spec.name)
            else:
                data[spec.name] = fixed
        elif spec.type == "group" and value:
            groups = [dict(g) for g in (value if isinstance(value, list) else [value]) if isinstance(g, dict)]
            for group in groups:
                map_links(spec.fields, group, target, fix)
            data[spec.name] = groups if isinstance(value, list) else groups[0]


def _fixed(value: Any, fix: Callable[[Link], Link | None]) -> Any:
    if isinstance(value, list):
        return [f for f in (_fixed(v, fix) for v in value) if f is not None]
    return fix(value) if isinstance(value, dict) else value
