"""References that stay true: the `{id, label}` a relationship holds follows its record's label, and
deleting a referenced record does what the relationship's `on_delete` says (docs/config.md).

Links. A relationship field of any entity (top level or inside groups) whose `entity` is the target is
a link to it. A link is served by an index when its path reaches one value (not multi-valued, through
single groups only) and its entity declares a ready index whose `equals` is exactly that path: the
records naming a target are then one key range per shard (thin entries). Whether any does is an
existence read of those ranges (`RecordReader.any_in`: a Query of one key a shard until one answers),
never the index's kept counts: they lag a job's writes (an import adds its count moves once per group,
after a crash only when it is replayed or settled). Without such an index, the only way to find
them is to read the entity whole: a job may (its chunks read each record once), a request may not.
So `on_delete: refuse` needs the index (the definition refuses it otherwise: `definition.Entity`),
and a relabel or clear of a link without one reads its entity whole, and says so in its job's logs.

Renames. A job's writes (an import's rows and related records, an action's saves: `write_many` behind
the chunk's lease guard) tell `relabeling` BEFORE each transaction which records it renames: if a record
may reference one, a RELABEL job is stored unstarted, its id derived from the chunk and a number, and
started once the transaction is done. A worker that dies in between leaves it unstarted; the group's
replay cannot compute the renames again (the records hold their new labels), but its first write looks
the chunk's numbers up and starts what it finds. A job stored for a rename that never committed writes
nothing (it copies the target's label as it is). A single request's update (the update API) tells
`relabeled` after its commit, and the job starts then, under a random id: a crash between that commit
and the start is the one gap left (the label of the references stays stale until the next rename).
An import's author with `_skipCascadeUpdates` does not cascade. A label expression's change is the
app's evolution's (`app.migrations` relinks every record of the linked entities), not this module's.

Deletes. Before a delete, `refusals` looks for a record a refusing link names it from (an existence
read; a 400, or the row's error in a delete job, naming how many by the counts, at least one, and only
to a caller who may read that relationship; a plain 400 while the link's index is still being built);
the links are read once per request or job. After it, `deleted` starts a CLEAR_REFERENCES
job for the clearing links. A delete job passes an id derived from its own chunk and group, so a
replayed group starts the very same job, once.

The job (`runtime.references`, both modes): the plan lists the records that may hold a reference, in
chunks per linked entity (`CHUNK_IDS` ids). Each group is rewritten through `RecordWriter.rewrite_many`
behind the chunk's lease: each record read at apply time, its links to the job's targets given the
target's label as it is *now* (or removed, for a clear), its own label rendered again, its index
entries and markers kept in step, and one history entry (user `system`, context `jobs.<job id>`), in
one transaction conditioned on the version read: a user's write meanwhile is never lost (the record is
read again and the rewrite computed again on it). A record that already holds the right value is not
written, so a replayed group, a second job of two quick renames, or a rename back, writes nothing more:
exactly one history entry per record changed. A record whose own label changed with it (its label
expression names the relationship) is renamed in turn: a follow-on job, at most `MAX_DEPTH` deep
(labels naming each other in a circle would otherwise grow for ever). Whether to start it is decided
from the label expression, not from what the group changed, and it names every record of the group,
its id derived from the group's place: a replayed group (whose records hold their new labels already)
starts the very same job, once.

Cost, per record holding a reference: the plan reads its index entry (a fraction of a read unit), the
group reads the record (one item) and writes the record and its history entry (two items, three
with a change of an index entry); the target's label is read once per group. A link read whole reads
every record of its entity once, and writes only those that name a target.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from backroom.app.definition import Entity, relationships
from backroom.app.history import SYSTEM_USER
from backroom.app.migrations import Link as Value
from backroom.app.migrations import held_keys, map_links
from backroom.app.planning import CHUNK_IDS, chunk_ids
from backroom.app.repository import AppRepository
from backroom.clock import now_ms
from backroom.dynamo import ConditionFailed, Write
from backroom.errors import BackroomError, NotFound, ServiceFailure, Unprocessable
from backroom.ids import object_id
from backroom.jobs.engine import JobEngine, WrongState
from backroom.jobs.kinds import JobContext, JobKind, PerJob, RowOutcome, lease_guard
from backroom.jobs.models import Chunk, ChunkPlan, Job, NewJob, Progress
from backroom.records import Record, RecordStore
from backroom.records.history import RecordHistory
from backroom.records.model import Author, GuardFailed
from backroom.records.query import MAX_PARTITIONS, Condition
from backroom.records.schema import RUNTIME, Index, Schema, TableField
from backroom.records.values import LABEL_PART, render_label
from backroom.records.writer import Rewrite

logger = logging.getLogger("jobs.references")

KIND = "runtime.references"
MAX_DEPTH = 3  # renames passed on through labels that name a relationship
CHECKED_MOST = 12  # targets whose references are looked for before a job starts (a Query a shard each)
GROUPS_KEPT = 256  # chunk deliveries whose relabel jobs a process remembers (`relabeling`)
MAX_NUMBERS = 50  # numbers tried for a chunk's next relabel job (two deliveries racing take one each)
TYPES = {"relabel": "RELABEL", "clear": "CLEAR_REFERENCES"}


class Referenced(Unprocessable):
    """A delete that a relationship refuses while records name the record (the runtime's 400)."""


@dataclass(frozen=True)
class Link:
    """A relationship field of `entity` naming records of the target; `path` when one value of it can
    be indexed, `index` when a ready index has exactly that path as its `equals`."""

    entity: Entity
    spec: TableField
    path: str | None
    index: Index | None

    @property
    def schema(self) -> Schema:
        return self.entity.schema


def links_to(entities: Iterable[Entity], target: str) -> list[Link]:
    """Every relationship of `entities` to `target`, through their groups."""
    found: list[Link] = []
    for entity in entities:
        for spec, path in relationships(entity.schema.fields):
            if spec.entity != target:
                continue
            index = next((i for i in entity.schema.indexes if path and i.equals == [path] and not i.building), None)
            found.append(Link(entity, spec, path, index))
    return found


class References:
    """What renames and deletes do to the records that reference them (the module's docstring)."""

    def __init__(self, repo: AppRepository, records: RecordStore, jobs: JobEngine) -> None:
        self.repo = repo
        self.records = records
        self.jobs = jobs
        self._groups: dict[tuple[str, str, str], _Pending] = {}  # per chunk delivery (`relabeling`)

    def links(self, tenant_id: str, target: str) -> list[Link]:
        return links_to(self.repo.entities(tenant_id), target)

    # Renames ---------------------------------------------------------------------
    def relabeled(self, tenant_id: str, schema: Schema, rids: list[str], author: Author | None) -> Job | None:
        """`RecordWriter.relabeled`: records of `schema` were renamed; a job relabels what references them.

        The rename is committed: a failure to start the job is logged, not raised (a 500 would have the
        caller write again a rename that is done, which starts nothing)."""
        try:
            return self.cascade(tenant_id, schema, rids, depth=0)
        except (BackroomError, ServiceFailure):
            logger.exception("%s %s renamed: the job relabelling their references did not start", schema.name, rids)
            return None

    def cascade(
        self, tenant_id: str, schema: Schema, rids: Sequence[str], *, depth: int, job_id: str | None = None
    ) -> Job | None:
        """A job relabelling what references `rids` of `schema`, when a record may; with `job_id` (derived
        from a job's group), started once however often the group runs."""
        if schema.namespace != RUNTIME or not rids:
            return None
        links = self.links(tenant_id, schema.name)
        if not self._may_hold(tenant_id, links, rids):
            return None
        return self._start(tenant_id, "relabel", schema.name, rids, depth=depth, job_id=job_id)

    def relabeling(self, tenant_id: str, schema: Schema, rids: list[str], guard: Sequence[Write]) -> Callable[[], None]:
        """`RecordWriter.relabeling`: a job's group (behind `guard`, its chunk's lease check) is about to
        rename `rids`. Their relabel job is stored now, unstarted, its id derived from the chunk and a
        number (the chunk's relabel jobs are numbered 0, 1, ...); the answer starts it once the
        transaction is done. The group's first write in a delivery looks its chunk's numbers up (one
        GetItem each, until one is missing) and starts those an earlier delivery left unstarted: its
        worker died between the commit and the start, and the renames cannot be computed again (the
        records hold their new labels). A relabel job for a rename that never committed writes nothing
        (it copies the target's label as it is)."""
        group = _group_of(guard)
        if group is None:
            return _nothing
        pending = self._groups.get(group)
        if pending is None:
            if len(self._groups) >= GROUPS_KEPT:
                self._groups.clear()
            pending = self._groups[group] = self._unstarted(tenant_id, group)
        if rids and self._may_hold(tenant_id, self.links(tenant_id, schema.name), rids):
            pending.waiting.append(self._stored(tenant_id, schema.name, rids, group, pending))
        return lambda: self._start_waiting(tenant_id, pending)

    def _unstarted(self, tenant_id: str, group: tuple[str, str, str]) -> _Pending:
        """The chunk's relabel jobs, by number until one is missing; those not started wait."""
        pending = _Pending()
        while True:
            try:
                job = self.jobs.get(derived_id(KIND, *group[:2], pending.next), tenant_id)
            except NotFound:
                return pending
            if job.queued_at is None:
                pending.waiting.append(job.id)
            pending.next += 1

    def _stored(
        self, tenant_id: str, target: str, rids: Sequence[str], group: tuple[str, str, str], pending: _Pending
    ) -> str:
        """The id of a new relabel job, stored unstarted at the chunk's next free number (a number another
        delivery took meanwhile is passed: that delivery starts its own)."""
        for _ in range(MAX_NUMBERS):
            job_id = derived_id(KIND, *group[:2], pending.next)
            pending.next += 1
            try:
                self.jobs.create(self._spec(tenant_id, "relabel", target, rids, depth=0), job_id=job_id, start=False)
                return job_id
            except ConditionFailed:
                continue
        raise ServiceFailure(f"{target}: no free number for a relabel job of chunk {group[1]}")

    def _start_waiting(self, tenant_id: str, pending: _Pending) -> None:
        while pending.waiting:
            with suppress(WrongState):
                self.jobs.start(pending.waiting[0], tenant_id)
            pending.waiting.pop(0)

    # Deletes ---------------------------------------------------------------------
    def refusals(
        self,
        tenant_id: str,
        entity: Entity,
        rids: Sequence[str],
        *,
        links: list[Link] | None = None,
        may_see: Callable[[Link], bool] | None = None,
    ) -> dict[str, str]:
        """`{id: why}` for the records of `rids` a refusing relationship names; `links` to the entity when
        the caller holds them (read once per request or job).

        Whether one names it is an existence read of its index's key ranges, never the kept counts (they
        lag a job's writes); the count in the message is the counts' (at least one). It names the
        referencing entity only when `may_see` says the caller may read that relationship (None: it may)."""
        links = [
            link
            for link in (self.links(tenant_id, entity.name) if links is None else links)
            if link.spec.on_delete == "refuse"
        ]
        building = [link for link in links if link.index is None]
        if building and rids:
            why = (
                f"Records of {entity.name} cannot be deleted yet: the index on {building[0].entity.name}."
                f"{building[0].path or building[0].spec.name} that finds the records naming them is still being built"
            )
            return dict.fromkeys(rids, why)
        refused: dict[str, str] = {}
        for rid in rids:
            held = [link for link in links if self._holds(tenant_id, link, [rid])]
            if held:
                refused[rid] = self._refusal(tenant_id, entity, rid, held, may_see)
        return refused

    def _refusal(
        self, tenant_id: str, entity: Entity, rid: str, held: list[Link], may_see: Callable[[Link], bool] | None
    ) -> str:
        if may_see is not None and not all(may_see(link) for link in held):
            return f"Record {rid} of {entity.name} cannot be deleted: it is referenced by other records"
        counted = [(link, max(1, self._count(tenant_id, link, [rid]))) for link in held]
        named = ", ".join(f"{n} of {link.entity.name} ({link.path or link.spec.name})" for link, n in counted)
        total = sum(n for _, n in counted)
        return (
            f"Record {rid} of {entity.name} is referenced by {total} record{'s' * (total != 1)}: "
            f"{named}, whose relationship refuses the delete (on_delete: refuse)"
        )

    def check_delete(
        self,
        tenant_id: str,
        entity: Entity,
        rid: str,
        *,
        links: list[Link] | None = None,
        may_see: Callable[[Link], bool] | None = None,
    ) -> None:
        """A 400 when a refusing relationship names the record (or its index is still being built)."""
        refused = self.refusals(tenant_id, entity, [rid], links=links, may_see=may_see)
        if refused:
            raise Referenced(refused[rid])

    def deleted(
        self,
        tenant_id: str,
        name: str,
        rids: Sequence[str],
        *,
        job_id: str | None = None,
        links: list[Link] | None = None,
    ) -> Job | None:
        """Records of `name` were deleted: a job clears the references the clearing relationships hold.

        With `job_id` (a delete job's group), a failure is raised, and the group replayed starts the very
        same job; without it (a request's delete, committed), it is logged, as a rename's is."""
        try:
            links = [
                link
                for link in (self.links(tenant_id, name) if links is None else links)
                if link.spec.on_delete == "clear"
            ]
            if not rids or not self._may_hold(tenant_id, links, rids):
                return None
            return self._start(tenant_id, "clear", name, rids, job_id=job_id)
        except (BackroomError, ServiceFailure):
            if job_id is not None:
                raise
            logger.exception("%s %s deleted: the job clearing their references did not start", name, list(rids))
            return None

    # Helpers ---------------------------------------------------------------------
    def _may_hold(self, tenant_id: str, links: list[Link], rids: Sequence[str]) -> bool:
        """Whether a record may name one of `rids`: its index's key ranges say (an existence read, for at
        most `CHECKED_MOST` ids; more, and the job finds out), else whether the linked entity holds any."""
        for link in links:
            if link.index is None or len(rids) > CHECKED_MOST:
                if self.records.reader.holds_records(tenant_id, link.schema):
                    return True
            elif self._holds(tenant_id, link, rids):
                return True
        return False

    def _holds(self, tenant_id: str, link: Link, rids: Sequence[str]) -> bool:
        """Whether a record names one of `rids` in the link's field: a Query of one key per index range
        (shard and value) until one answers, never the kept counts (they may lag a job's writes)."""
        assert link.path is not None
        return self.records.any_in(tenant_id, link.schema, [Condition(link.path, "eq", tuple(rids))])

    def _count(self, tenant_id: str, link: Link, rids: Sequence[str]) -> int:
        """How many records name one of `rids` in the link's field, by its index's kept counts (for a
        message: they may lag a job's writes)."""
        assert link.path is not None
        return self.records.count(tenant_id, link.schema, [Condition(link.path, "eq", tuple(rids))])

    def _start(
        self, tenant_id: str, mode: str, target: str, rids: Sequence[str], *, depth: int = 0, job_id: str | None = None
    ) -> Job:
        spec = self._spec(tenant_id, mode, target, rids, depth=depth)
        if job_id is None:
            return self.jobs.create(spec, job_id=object_id())
        try:
            job = self.jobs.create(spec, job_id=job_id, start=False)
        except ConditionFailed:  # created before a crash: start it if it was not
            job = self.jobs.get(job_id, tenant_id)
        if job.queued_at is None:
            with suppress(WrongState):
                return self.jobs.start(job_id, tenant_id)
        return job

    @staticmethod
    def _spec(tenant_id: str, mode: str, target: str, rids: Sequence[str], *, depth: int) -> NewJob:
        what = "Relabel" if mode == "relabel" else "Clear"
        return NewJob(
            kind=KIND,
            type=TYPES[mode],
            tenant_id=tenant_id,
            account_id=tenant_id,
            created_by=SYSTEM_USER,
            created_by_name="System",
            label=f"{what} references to {len(rids)} record{'s' * (len(rids) != 1)} of {target}",
            params={"entity": target, "ids": list(dict.fromkeys(rids)), "mode": mode, "depth": depth},
            low_priority=True,
        )


@dataclass
class _Pending:
    """A chunk's relabel jobs as one delivery knows them: the next free number, and those not started."""

    next: int = 0
    waiting: list[str] = field(default_factory=list)


def _group_of(guard: Sequence[Write]) -> tuple[str, str, str] | None:
    """The chunk a job's lease check names (its key) and the delivery that holds it (the lease owner)."""
    check = next((w for w in guard if w.check and w.key is not None), None)
    if check is None or check.key is None:
        return None
    return str(check.key[0]), str(check.key[1]), str((check.values or {}).get(":me", ""))


def _nothing() -> None:
    return None


def derived_id(*parts: Any) -> str:
    """A job id (24 hex digits, as the runtime's) that the same parts always give."""
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:24]


@dataclass
class _Work:
    """What a worker reads once per job: the target's schema (None once it is gone) and its links."""

    target: Schema | None
    links: list[Link]


def _work(refs: References, job: Job) -> _Work:
    tenant, name = job.tenant_id, str(job.params["entity"])
    try:
        target: Schema | None = refs.repo.entity(tenant, name).schema
    except NotFound:
        target = None
    return _Work(target, refs.links(tenant, name))


class ReferencesKind(JobKind):
    """RELABEL and CLEAR_REFERENCES jobs (the module's docstring)."""

    name = KIND
    commit_rows = 48  # two writes a record (it and its history entry), a lease check: one transaction a group

    def __init__(self, refs: References) -> None:
        self.refs = refs
        self.work = PerJob(_work)

    def plan(self, ctx: JobContext, job: Job) -> Iterator[ChunkPlan]:
        """Per linked entity, chunks of the ids of the records that may name a target."""
        links = self.work(self.refs, job).links
        index = start = 0
        for name in dict.fromkeys(link.entity.name for link in links):
            mine = [link for link in links if link.entity.name == name]
            for ids in _batches(self._holders(ctx, job, mine), CHUNK_IDS):
                yield ChunkPlan(index=index, start=start, count=len(ids), cursor={"entity": name, "ids": ids})
                index, start = index + 1, start + len(ids)

    def _holders(self, ctx: JobContext, job: Job, links: list[Link]) -> Iterator[str]:
        """The ids of an entity's records that may name a target: its links' key ranges, or all of them."""
        schema, targets = links[0].schema, list(job.params["ids"])
        whole = [link.path or link.spec.name for link in links if link.index is None]
        if whole:
            ctx.journal.log(
                job.id,
                f"{schema.name}.{', '.join(whole)}: no index has it as its equals; every {schema.name} record is read",
                level="WARNING",
            )
            for shard in range(schema.shards):
                yield from ctx.records.reader.shard_ids(job.tenant_id, schema, shard)
            return
        for link in links:
            assert link.path is not None
            for part in _batches(iter(targets), MAX_PARTITIONS):
                yield from ctx.records.ids(job.tenant_id, schema, [Condition(link.path, "eq", tuple(part))])

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        return iter(chunk_ids(chunk.cursor, skip))

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        return RowOutcome(output={"id": row})  # the group's records are rewritten together, before its checkpoint

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        work = self.work(self.refs, job)
        links = [link for link in work.links if link.entity.name == chunk.cursor["entity"]]
        if not links or not outcomes:
            return  # the entity, or its relationship, is gone since the plan
        schema, target = links[0].schema, str(job.params["entity"])
        relink = Relink(job, schema, target, ctx.records.histories)
        if job.params["mode"] == "relabel":
            if work.target is None:
                return  # the target entity is gone: nothing to copy
            found = ctx.records.get_many(job.tenant_id, work.target, list(job.params["ids"]))
            relink.labels = {r.rid: r.label for r in found}  # as they are now, not as when the job started
        rids = [str((o.output or {})["id"]) for o in outcomes]
        guard = [lease_guard(chunk)] if chunk.lease_owner else []
        try:
            ctx.records.writer.rewrite_many(job.tenant_id, schema, rids, relink.rewrite, guard=guard)
        except GuardFailed:
            logger.info("job %s chunk %d: lease lost, leaving the group", job.id, chunk.index)
            return
        self._pass_on(ctx, job, chunk, links, rids, relink.renamed)

    def _pass_on(
        self, ctx: JobContext, job: Job, chunk: Chunk, links: list[Link], rids: list[str], renamed: list[str]
    ) -> None:
        """When the entity's label names the relationship, its records' labels may have changed with it: a
        follow-on job relabels what references the group's records (all of them, so that a replay, whose
        records hold their new labels already, starts the very same job: its id is the group's)."""
        if not any(_names(link) for link in links):
            return
        depth = int(job.params.get("depth", 0)) + 1
        if depth >= MAX_DEPTH:
            if renamed:
                ctx.journal.log(job.id, f"{len(renamed)} labels of {links[0].schema.name} changed: not passed on")
            return
        job_id = derived_id(job.id, chunk.index, chunk.next_row)
        self.refs.cascade(job.tenant_id, links[0].schema, rids, depth=depth, job_id=job_id)

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        self.work.forget(job.id)
        return {"recordsChecked": progress.processed, "recordsWithErrors": progress.failed}


class Relink:
    """One group's rewrite of each record: its links to the target relabelled (`labels`) or, in a
    clear, removed; then its label, keys and one history entry. `renamed`: the records whose own label
    changed with it."""

    def __init__(self, job: Job, schema: Schema, target: str, histories: RecordHistory) -> None:
        self.tenant = job.tenant_id
        self.schema = schema
        self.target = target
        self.histories = histories
        self.author = Author(SYSTEM_USER, None, f"jobs.{job.id}")
        self.gone: set[str] = set(job.params["ids"]) if job.params["mode"] == "clear" else set()
        self.labels: dict[str, str] = {}
        self.renamed: list[str] = []

    def fix(self, value: Value) -> Value | None:
        rid = value.get("id")
        if rid in self.gone:
            return None
        return {**value, "label": self.labels[rid]} if rid in self.labels else value

    def rewrite(self, current: Record) -> Rewrite | None:
        data = dict(current.data)
        map_links(self.schema.fields, data, self.target, self.fix)
        if data == current.data:
            return None  # right already: a replay, or a later job did it
        record = current.model_copy(update={"data": data, "version": current.version + 1, "updated_at": now_ms()})
        record.label = render_label(self.schema.label, data)
        record.keys, writes = held_keys(self.tenant, self.schema, current, record)
        changed = sorted(k for k in {*current.data, *data} if current.data.get(k) != data.get(k))
        old, new = {k: current.data.get(k) for k in changed}, {k: data.get(k) for k in changed}
        writes += self.histories.entry(self.tenant, self.schema, record, "update", old, new, self.author)
        if record.label != current.label and record.rid not in self.renamed:
            self.renamed.append(record.rid)
        return Rewrite(record=record, writes=writes)


def _names(link: Link) -> bool:
    """Whether the linked entity's label expression names the relationship (its label follows the target's)."""
    top = (link.path or link.spec.name).split(".")[0]
    return any(m.group(1).split(".")[0] == top for m in LABEL_PART.finditer(link.schema.label or ""))


def _batches(source: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in source:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
