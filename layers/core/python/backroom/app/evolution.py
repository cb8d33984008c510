"""An app that evolves with data in it: the definition stored with its version, what a new one changes
(`plan`), and applying it (`apply`): the definition at once, the records' data work as jobs.

The whole definition is one item (`APP#<tenant>` / `DEFINITION`, with `version`); each entity's item
and records schema are what the runtime reads, and their schema carries the version that defined them
(`Schema.version`, shown as history entries' `entityVersion`). An app installed before versions (entity
items only) is version 1; an apply makes the next version.

What each change does (docs/evolution.md has the table):
- entity, action, group, label (the entity's display name), history: the definition only.
- field added: nothing to do, unless it is required on an entity with records: then its `default` is
  written into every record by a job (without a default the change is destructive: records stay
  without a value, and no update of one passes until it gets one).
- field removed: destructive on an entity with records; a job removes its values (and, through the
  keys reconciliation below, its index entries and unique markers). The definition drops it at once.
- field type changed: destructive on an entity with records, except widenings that keep every stored
  value valid and ordered the same (`WIDENINGS`: integer to decimal or money, choice, e-mail or url to
  text; more choices, a longer text, a larger money scale). A job converts each value to the new type
  and removes those that do not fit. Inside a group, fields are compared one by one with the same
  rules (a label, default or required of one changes no value); one removed or narrowed there is
  refused while the entity holds records (no job reaches values inside groups).
- index added or changed: on an entity with records the index is stored `building` (every write keeps
  its entries, the planner does not use it) and a job writes the entries of the records; it then
  marks it ready. Index removed: the definition drops it at once and a job removes its entries.
- unique added: on an entity with records a job claims each record's marker. On duplicates the job
  fails listing them (at most 100), the stored definition goes back to without the constraint (a new
  version), and a second job releases the markers it claimed. Unique removed: a job releases them.
- the entity's label expression changed: a job renders every record's label again, and, for each
  entity with a relationship to it, a job rewrites the `{id, label}` its records hold.
- entity removed: destructive when it holds records; a job deletes them.

Every job of one entity is one job (`app.evolve`, `backroom.app.migrations`): each record is read,
changed as each of its operations says, and written back with exactly the index entries and unique
markers its schema gives it, in one transaction conditioned on its version. The jobs are the engine's
(stop, resume, crash-safe), listed per tenant on gsi2 `EVOLUTION#<tenant>` (`jobs(tenant)`), not among
the runtime's `/status/jobs`. An apply waits for none of them, and refuses to start while one runs
(except one doing exactly its own work: the same apply run again after it failed half way, since the
definition is stored last). An index left `building` by a job that ended without finishing is a
change of the plan, which the apply builds again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from backroom import keys
from backroom.app.definition import Action, AppDefinition, Entity, Group
from backroom.app.repository import AppRepository
from backroom.errors import Conflict, Invalid
from backroom.jobs.engine import JobEngine
from backroom.jobs.models import Job, NewJob
from backroom.records import RecordStore
from backroom.records.schema import Index, Schema, TableField
from backroom.records.values import BadValue, scalar

KIND = "app.evolve"
JOBS_PAGE = 50  # evolution jobs read a page when looking for live ones
ChangeAction = Literal["create", "update", "delete", "no change"]
# Type changes that keep every stored value valid and its index order: (from, to).
WIDENINGS = frozenset(
    {("integer", "decimal"), ("integer", "money"), ("choice", "text"), ("email", "text"), ("url", "text")}
)


class StoredApp(BaseModel):
    definition: AppDefinition
    version: int


@dataclass
class Change:
    """One line of a plan: what changes on one resource, and why it is destructive (None: it is not)."""

    resource: str  # "entity companies", "field companies.name", "index companies.byName", ...
    action: ChangeAction
    detail: str = ""
    destructive: str | None = None


@dataclass
class Applied:
    changes: list[Change]
    version: int
    job_ids: list[str] = field(default_factory=list)


@dataclass
class Work:
    """The data work of one entity's records: one job of kind `app.evolve`."""

    entity: str
    drop: list[str] = field(default_factory=list)  # fields whose values go
    retype: list[str] = field(default_factory=list)  # fields whose values are converted (or go)
    defaults: list[str] = field(default_factory=list)  # required fields that get their default
    claim: list[str] = field(default_factory=list)  # unique fields whose markers are claimed
    build: list[str] = field(default_factory=list)  # indexes marked ready when the job ends
    relabel: bool = False
    relink: list[str] = field(default_factory=list)  # entities whose labels its relationships copy
    purge: dict[str, Any] | None = None  # the schema of a removed entity whose records go
    keys: bool = False  # index entries or unique markers change: reconcile them

    @property
    def needed(self) -> bool:
        return bool(
            self.drop
            or self.retype
            or self.defaults
            or self.claim
            or self.build
            or self.relabel
            or self.relink
            or self.purge
            or self.keys
        )

    def params(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "drop": self.drop,
            "retype": self.retype,
            "defaults": self.defaults,
            "claim": self.claim,
            "build": self.build,
            "relabel": self.relabel,
            "relink": self.relink,
            "purge": self.purge,
        }


@dataclass
class Diff:
    """The plan's lines and, per entity, the data work they need."""

    changes: list[Change] = field(default_factory=list)
    work: dict[str, Work] = field(default_factory=dict)
    gone: list[Entity] = field(default_factory=list)
    stalled: dict[str, set[str]] = field(default_factory=dict)  # building indexes no live job builds

    def of(self, entity: str) -> Work:
        return self.work.setdefault(entity, Work(entity))

    def line(self, resource: str, action: ChangeAction, detail: str = "", destructive: str | None = None) -> None:
        self.changes.append(Change(resource, action, detail, destructive))


class AppEvolution:
    def __init__(self, repo: AppRepository, records: RecordStore, jobs: JobEngine) -> None:
        self.repo = repo
        self.records = records
        self.jobs = jobs

    # Reading ---------------------------------------------------------------
    def current(self, tenant_id: str) -> StoredApp | None:
        """The app definition as last applied, with its version (None before the first apply)."""
        found = self.repo.definition(tenant_id)
        return StoredApp(definition=found[0], version=found[1]) if found else None

    def _baseline(self, tenant_id: str) -> tuple[StoredApp, int]:
        """What a plan compares with, and the version stored (0: none): the stored definition, or an app
        installed before versions (its entity items, version 1), or nothing (version 0)."""
        stored = self.current(tenant_id)
        if stored is not None:
            return stored, stored.version
        entities = self.repo.entities(tenant_id)
        return StoredApp(definition=AppDefinition(app="", entities=entities), version=1 if entities else 0), 0

    def jobs_of(self, tenant_id: str, most: int = 20) -> list[Job]:
        """The tenant's latest evolution jobs, newest first."""
        return self.jobs.page_scope(keys.evolution_scope(tenant_id), most)[0]

    def _live_jobs(self, tenant_id: str, version: int) -> list[Job]:
        """The evolution jobs not ended yet. Read newest first, page by page, down to the first job of a
        version older than `version` (the one stored): an apply starts only when no job runs, so every job
        of an earlier version had ended before the stored one's apply (withdraw_unique's job is of the
        version it stores). Bounded by the jobs of the latest apply, however many entities it touched."""
        live: list[Job] = []
        after = None
        while True:
            page, after = self.jobs.page_scope(keys.evolution_scope(tenant_id), JOBS_PAGE, after=after)
            live += [j for j in page if not j.state.is_final]
            if after is None or any(int(j.params.get("version") or 0) < version for j in page):
                return live

    def _stalled(self, tenant_id: str, live: list[Job]) -> dict[str, set[str]]:
        """Per entity, its installed indexes still `building` that no live job builds (a job cancelled,
        or failed): never ready unless an apply builds them again."""
        built = {(str(j.params.get("entity")), name) for j in live for name in j.params.get("build") or []}
        stalled: dict[str, set[str]] = {}
        for entity in self.repo.entities(tenant_id):
            for index in entity.schema.indexes:
                if index.building and (entity.name, index.name) not in built:
                    stalled.setdefault(entity.name, set()).add(index.name)
        return stalled

    # Planning --------------------------------------------------------------
    def plan(self, tenant_id: str, desired: AppDefinition) -> list[Change]:
        """Every line of what applying `desired` changes ("no change" lines included), per entity, field,
        index, unique constraint, label, action and group. Reads one key per shard of an entity whose
        change depends on whether it holds records, never a count."""
        base = self._baseline(tenant_id)[0]
        return self._diff(tenant_id, base.definition, desired, self._live_jobs(tenant_id, base.version)).changes

    def _diff(self, tenant_id: str, old: AppDefinition, new: AppDefinition, live: list[Job]) -> Diff:
        diff = Diff(stalled=self._stalled(tenant_id, live))
        before = {e.name: e for e in old.entities}
        after = {e.name: e for e in new.entities}
        holds: dict[str, bool] = {}

        def has_records(entity: Entity) -> bool:
            if entity.name not in holds:
                holds[entity.name] = self.records.reader.holds_records(tenant_id, entity.schema)
            return holds[entity.name]

        for name, entity in after.items():
            if name not in before:
                diff.line(f"entity {name}", "create", f"{len(entity.schema.fields)} fields")
            else:
                _entity(diff, before[name], entity, has_records, after)
        for name, entity in before.items():
            if name in after:
                continue
            if has_records(entity):
                diff.line(
                    f"entity {name}", "delete", "its records are deleted by a job", f"drops {name}, which holds records"
                )
                diff.of(name).purge = entity.schema.model_dump()
            else:
                diff.line(f"entity {name}", "delete")
            diff.gone.append(entity)
        _groups(diff, old.groups, new.groups)
        return diff

    # Applying --------------------------------------------------------------
    def apply(self, tenant_id: str, desired: AppDefinition, *, allow_destructive: bool = False) -> Applied:
        """Make `desired` the tenant's app: refused (Invalid, naming them) when a change is destructive and
        not allowed; nothing written when nothing changes; else entities installed (schemas, permissions),
        removed entities forgotten, the data jobs started, and last the definition stored as the next
        version. Anything refused (a label hiding nothing from the tenant's actual users included) is
        refused before the first write; an apply that fails half way stores nothing, so the next plan
        shows the same changes, and running the same apply again finishes it: installing writes the
        same items, and a live job of exactly the same work (same entity, operations and version) is
        kept rather than started twice; any other live job refuses the apply (409)."""
        base, stored = self._baseline(tenant_id)
        live = self._live_jobs(tenant_id, base.version)
        diff = self._diff(tenant_id, base.definition, desired, live)
        if all(c.action == "no change" for c in diff.changes) and base.version:
            return Applied(diff.changes, base.version)
        destructive = [c for c in diff.changes if c.destructive]
        if destructive and not allow_destructive:
            named = "; ".join(f"{c.resource}: {c.destructive}" for c in destructive)
            raise Invalid(
                f"The plan holds destructive changes (apply with allow_destructive to make them): {named}"[:2000]
            )
        version = base.version + 1
        works = [work for work in diff.work.values() if work.needed]
        kept = _same_work(live, works, version)
        running = [j for j in live if j not in kept.values()]
        if running:
            raise Conflict(
                f"An evolution job of an earlier apply is still {running[0].state.value.lower()}: {running[0].id}"
            )
        desired.labels_hiding_nothing(self.repo.grants.members(tenant_id))
        self.repo.install(tenant_id, _stamped(desired, version, diff.work))
        for entity in diff.gone:
            self.repo.remove_entity(tenant_id, entity)
        job_ids = [(kept.get(w.entity) or self._start(tenant_id, w, version)).id for w in works]
        self.repo.store_definition(tenant_id, desired, version, after=stored)
        return Applied(diff.changes, version, job_ids)

    def _start(self, tenant_id: str, work: Work, version: int) -> Job:
        spec = NewJob(
            kind=KIND,
            tenant_id=tenant_id,
            account_id=tenant_id,
            created_by="evolution",
            label=f"Evolve {work.entity} to version {version}",
            type="EVOLVE",
            params={**work.params(), "version": version},
            scope=keys.evolution_scope(tenant_id),
            dialect="evolution",
        )
        return self.jobs.create(spec)

    # What the jobs call back -------------------------------------------------
    def ready(self, tenant_id: str, entity_name: str, indexes: list[str]) -> None:
        """Indexes whose entries every record now holds: the planner may use them."""
        entity = self.repo.entity(tenant_id, entity_name)
        schema = entity.schema.model_copy(
            update={
                "indexes": [
                    i.model_copy(update={"building": False}) if i.name in indexes else i for i in entity.schema.indexes
                ]
            }
        )
        self.repo.put_entity(tenant_id, entity.model_copy(update={"schema_": schema}))

    def withdraw_unique(self, tenant_id: str, entity_name: str, fields: list[str]) -> Job | None:
        """A unique constraint the records broke: the definition goes back to without it (a new version),
        and a job releases the markers the check claimed. Idempotent: once withdrawn, nothing more."""
        stored = self.current(tenant_id)
        if stored is None:
            return None
        entity = next((e for e in stored.definition.entities if e.name == entity_name), None)
        if entity is None or not any(f.unique for f in entity.schema.fields if f.name in fields):
            return None
        undone = [f.model_copy(update={"unique": False}) if f.name in fields else f for f in entity.schema.fields]
        revised = entity.model_copy(update={"schema_": entity.schema.model_copy(update={"fields": undone})})
        definition = stored.definition.model_copy(
            update={"entities": [revised if e.name == entity_name else e for e in stored.definition.entities]}
        )
        version = stored.version + 1
        self.repo.store_definition(tenant_id, definition, version, after=stored.version)
        installed = self.repo.entity(tenant_id, entity_name)
        fields_now = [
            f.model_copy(update={"unique": False}) if f.name in fields else f for f in installed.schema.fields
        ]
        schema = installed.schema.model_copy(update={"fields": fields_now, "version": version})
        self.repo.put_entity(tenant_id, installed.model_copy(update={"schema_": schema}))
        work = Work(entity_name, keys=True)
        return self._start(tenant_id, work, version)


# The diff of one entity ---------------------------------------------------------------------------
def _entity(diff: Diff, old: Entity, new: Entity, has_records: Any, after: dict[str, Entity]) -> None:
    name = new.name
    changed = [
        what
        for what, a, b in (
            ("label", old.label, new.label),
            ("updated_field", old.updated_field, new.updated_field),
            ("history", old.schema.history, new.schema.history),
        )
        if a != b
    ]
    if old.schema.shards != new.schema.shards:
        if has_records(old):
            raise Invalid(
                f"{name} holds records: its shards cannot change ({old.schema.shards} to {new.schema.shards})"
            )
        changed.append("shards")
    diff.line(f"entity {name}", "update" if changed else "no change", ", ".join(changed))
    _fields(diff, old, new, has_records)
    _indexes(diff, old, new, has_records)
    if (old.schema.label or "") != (new.schema.label or ""):
        detail = f"{old.schema.label or '(none)'} to {new.schema.label or '(none)'}"
        diff.line(f"label {name}", "update", detail)
        if has_records(old):
            diff.of(name).relabel = True
        for other in after.values():
            if _links_to(other.schema.fields, name) and (other.name == name or has_records(other)):
                diff.of(other.name).relink.append(name)
    else:
        diff.line(f"label {name}", "no change")
    _actions(diff, name, old.actions, new.actions)


def _fields(diff: Diff, old: Entity, new: Entity, has_records: Any) -> None:
    name = new.name
    before = {f.name: f for f in old.schema.fields}
    after = {f.name: f for f in new.schema.fields}
    for fname, spec in after.items():
        resource = f"field {name}.{fname}"
        was = before.get(fname)
        if was is None:
            diff.line(resource, "create", spec.type, _required(diff, name, spec, None, has_records, old))
        else:
            _field_change(diff, old, spec, was, has_records)
        _unique(diff, name, spec, was, has_records, old)
    for fname, spec in before.items():
        if fname in after:
            continue
        if has_records(old):
            diff.line(
                f"field {name}.{fname}",
                "delete",
                "its values are removed by a job",
                f"drops field {fname} of {name}, which holds records",
            )
            diff.of(name).drop.append(fname)
            diff.of(name).keys = True
        else:
            diff.line(f"field {name}.{fname}", "delete")
        if spec.unique:
            diff.line(
                f"unique {name}.{fname}", "delete", "its markers are released by a job" if has_records(old) else ""
            )


def _field_change(diff: Diff, old: Entity, spec: TableField, was: TableField, has_records: Any) -> None:
    name, resource = old.name, f"field {old.name}.{spec.name}"
    destructive = None
    details = []
    if _shape(was) != _shape(spec):
        narrowed = narrowing(was, spec)
        details.append(f"{was.type} to {spec.type}" if was.type != spec.type else "its type's settings")
        if narrowed and has_records(old):
            if was.type == spec.type == "group":
                raise Invalid(
                    f"{name}.{spec.name}: changing fields inside a group is not supported yet ({narrowed}); "
                    "add a new group field instead, or change it while the entity holds no records"
                )
            destructive = f"{narrowed} on {name}, which holds records: values that do not fit are removed"
            diff.of(name).retype.append(spec.name)
            diff.of(name).keys = True
    elif was.fields != spec.fields:
        details.append("labels, defaults or required of fields inside it")
    if was.label != spec.label:
        details.append("label")
    required = _required(diff, name, spec, was, has_records, old)
    if spec.required != was.required:
        details.append("required" if spec.required else "not required")
    if spec.default != was.default:
        details.append("default")
    if spec.on_delete != was.on_delete:
        details.append(f"on_delete {spec.on_delete}")
    diff.line(resource, "update" if details else "no change", ", ".join(details), destructive or required)


def narrowing(was: TableField, spec: TableField) -> str | None:
    """Why a field's new shape may not hold every stored value (None: a widening, see `WIDENINGS`)."""
    if was.type != spec.type:
        return (
            None
            if (was.type, spec.type) in WIDENINGS and was.multi == spec.multi
            else f"{was.type} becomes {spec.type}"
        )
    if was.multi != spec.multi:
        return "a list becomes a single value" if was.multi else "a single value becomes a list"
    if set(was.choices) - set(spec.choices):
        return "choices are removed"
    if spec.max_length < was.max_length:
        return "the text gets shorter"
    if spec.scale < was.scale:
        return "the money scale gets smaller"
    if was.entity != spec.entity:
        return "the relationship names another entity"
    return _inner(was, spec)


# A field's settings no stored value depends on.
PLAIN = frozenset({"unique", "required", "default", "label", "on_delete"})


def _shape(spec: TableField) -> dict[str, Any]:
    """What of a field its stored values depend on, fields inside a group included."""
    return {**spec.model_dump(exclude={*PLAIN, "fields"}), "fields": [_shape(f) for f in spec.fields]}


def _inner(was: TableField, spec: TableField) -> str | None:
    """Why a group's new fields may not hold its stored values: one of them removed or narrowed (the
    same rules, inside); a field added, reordered, relabelled, made required or given a default is none."""
    after = {f.name: f for f in spec.fields}
    for inner in was.fields:
        new = after.get(inner.name)
        if new is None:
            return f"{was.name}.{inner.name} is removed from the group"
        narrowed = narrowing(inner, new) if _shape(inner) != _shape(new) else None
        if narrowed:
            return f"{was.name}.{inner.name}: {narrowed}"
    return None


def _required(
    diff: Diff, name: str, spec: TableField, was: TableField | None, has_records: Any, old: Entity
) -> str | None:
    """A field becoming required on an entity with records: its default is written by a job; without
    one, the change is destructive."""
    if not spec.required or (was is not None and was.required) or not has_records(old):
        return None
    if spec.default is None:
        return f"makes {spec.name} required without a default on {name}, which holds records"
    if spec.type in ("group", "relationship", "file") or spec.multi:
        raise Invalid(f"{name}.{spec.name}: only a single plain field takes a default")
    try:
        scalar(spec, spec.default, spec.name)
    except BadValue as bad:
        raise Invalid(f"The default of {name}.{spec.name}: {bad}") from None
    diff.of(name).defaults.append(spec.name)
    diff.of(name).keys = True
    return None


def _unique(diff: Diff, name: str, spec: TableField, was: TableField | None, has_records: Any, old: Entity) -> None:
    resource = f"unique {name}.{spec.name}"
    had = bool(was and was.unique)
    if spec.unique and not had:
        records = was is not None and has_records(old)
        diff.line(resource, "create", "a job claims each record's value; duplicates fail it" if records else "")
        if records:
            diff.of(name).claim.append(spec.name)
    elif had and not spec.unique:
        records = has_records(old)
        diff.line(resource, "delete", "a job releases its markers" if records else "")
        if records:
            diff.of(name).keys = True
    elif spec.unique:
        diff.line(resource, "no change")


def _indexes(diff: Diff, old: Entity, new: Entity, has_records: Any) -> None:
    name = new.name
    before = {i.name: i for i in old.schema.indexes}
    for index in new.schema.indexes:
        was = before.get(index.name)
        resource = f"index {name}.{index.name}"
        if was is not None and was.same_as(index):
            if index.name in diff.stalled.get(name, set()):
                diff.line(resource, "update", "building, its job ended without finishing: apply builds it again")
                diff.of(name).build.append(index.name)
                diff.of(name).keys = True
            else:
                diff.line(resource, "no change")
            continue
        records = has_records(old)
        detail = "built by a job, used once ready" if records else ""
        diff.line(resource, "create" if was is None else "update", f"{_shown(index)}{'; ' if detail else ''}{detail}")
        if records:
            diff.of(name).build.append(index.name)
            diff.of(name).keys = True
    for gone in before:
        if new.schema.index(gone) is None:
            records = has_records(old)
            diff.line(f"index {name}.{gone}", "delete", "its entries are removed by a job" if records else "")
            if records:
                diff.of(name).keys = True


def _shown(index: Index) -> str:
    return ", ".join([*index.equals, *([f"sorted by {index.sort}"] if index.sort else [])])


def _links_to(fields: list[TableField], target: str) -> bool:
    return any((f.type == "relationship" and f.entity == target) or _links_to(f.fields, target) for f in fields)


def _actions(diff: Diff, name: str, old: list[Action], new: list[Action]) -> None:
    _named(diff, f"action {name}.", {a.name: a.model_dump() for a in old}, {a.name: a.model_dump() for a in new})


def _groups(diff: Diff, old: list[Group], new: list[Group]) -> None:
    _named(diff, "group ", {g.name: g.model_dump() for g in old}, {g.name: g.model_dump() for g in new})


def _named(diff: Diff, prefix: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Lines for named parts that hold no data (actions, groups): created, updated, deleted or not."""
    for part, value in new.items():
        if part not in old:
            diff.line(f"{prefix}{part}", "create")
        else:
            diff.line(f"{prefix}{part}", "no change" if old[part] == value else "update")
    for part in old:
        if part not in new:
            diff.line(f"{prefix}{part}", "delete")


def _same_work(live: list[Job], works: list[Work], version: int) -> dict[str, Job]:
    """Per entity, the live job already doing exactly its work at `version` (an apply run again after
    it failed half way): kept, not started twice."""
    wanted = {w.entity: {**w.params(), "version": version} for w in works}
    return {str(j.params.get("entity")): j for j in live if wanted.get(str(j.params.get("entity"))) == j.params}


def _stamped(app: AppDefinition, version: int, work: dict[str, Work]) -> AppDefinition:
    """The app as installed: each schema stamped with the version, the indexes a job builds `building`."""

    def stamp(entity: Entity) -> Entity:
        building = set(work[entity.name].build) if entity.name in work else set()
        indexes = [i.model_copy(update={"building": i.name in building}) for i in entity.schema.indexes]
        schema: Schema = entity.schema.model_copy(update={"version": version, "indexes": indexes})
        return entity.model_copy(update={"schema_": schema})

    return app.model_copy(update={"entities": [stamp(e) for e in app.entities]})
