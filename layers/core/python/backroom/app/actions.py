"""Actions: an app's Python functions run over one record, many records or a query's records.

An action is declared on its entity (`Action`: name, type, function, parameters, precondition,
`run_async`) and is a function of the app's package taking an `ActionCall`:

- type `one`: called once per record with `call.record`, the record's values as the API shows them.
  What the function changes there is saved through the records model (version-conditioned, with its
  history entry, the entity's `updated_field` set). A run that changes nothing leaves the record as it
  is (no new version, no history entry, `updated_field` untouched): only its log lines (and a job's
  marker) are written, while the record is still at the version it ran on. It answers `None` (the
  caller gets the record) or a custom response (any JSON value).
- type `many` / `query`: called once with `call.records` (at most `SYNC_MOST`; an async job calls it
  once per chunk); it answers a custom response, `None` being an empty one (`{}`). Records are not
  saved for it.

`call.log(message)` lines go to the app's logs, written in the same transaction as the record's
update, so a replayed job row can neither double them nor lose them.

Exactly once, in a job: each record's update carries a marker item (`rowmarks`: `ACTRUN#<job>#<shard>`,
sk the record id, conditioned on its absence). A worker that dies after the update and before its checkpoint
replays the row, and the transaction fails on the marker: the row counts as done, nothing is applied
twice. The markers (with each custom response) expire after a week; the job's results (its first
1,000 records' outcomes, or one response per group) are kept beside the job, entry by entry.

Each transaction of a job's saves carries the chunk's `lease_guard`: a delivery that lost its chunk
(taken over, or the job force-stopped) saves nothing more.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backroom.app.definition import Action, Entity
from backroom.app.history import with_entity
from backroom.app.logs import AppLogs, LogLine
from backroom.app.planning import (
    AppJobKind,
    absent_ids,
    bounded_entry,
    chunk_ids,
    entity_of,
    listed_ids,
    no_record,
    planned_ids,
)
from backroom.app.querylang import bind, evaluate, parse
from backroom.app.views import native_value, record_view
from backroom.clock import now_ms
from backroom.dynamo import Write
from backroom.errors import BackroomError, Forbidden, Invalid, NotFound
from backroom.identity.models import Caller
from backroom.jobs.kinds import JobContext, JobFailure, RowOutcome, lease_guard
from backroom.jobs.models import Chunk, ChunkPlan, Job, Progress
from backroom.records import Record, RecordStore, Schema
from backroom.records.query import matches
from backroom.records.store import AlreadyApplied, Author, Update, VersionConflict
from backroom.records.values import normalize
from backroom.rowmarks import RowMarks

if TYPE_CHECKING:
    from backroom.app.permissions import Access
    from backroom.app.ports import AppService

ACTION_KIND = "runtime.execute_action"
SYNC_MOST = 1000  # the spec: more records than this need `_async=true`
MAX_LOG_LINES = 20  # a run's log lines kept (they share the record's transaction of at most 100 items)
RESULTS_MOST = 1000  # the spec: a job's results hold at most this many responses
_ID = re.compile(r"^[0-9a-f]{24}$")


class ActionFailed(BackroomError):
    """The app's action code failed (a 500 that names the action and the error, never a trace)."""


@dataclass
class ActionCall:
    """What an action's function gets, and how it answers back."""

    entity: str
    action: str
    params: dict[str, Any]
    user: str
    record: dict[str, Any] | None = None  # type one: the record's values; changes here are saved
    record_id: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)  # type many / query: id, label and values
    lines: list[LogLine] = field(default_factory=list)

    def log(self, message: str, level: str = "INFO") -> None:
        if len(self.lines) < MAX_LOG_LINES:
            self.lines.append(
                LogLine(
                    message=str(message),
                    level=level.upper(),
                    user=self.user,
                    additional_info={"entity": self.entity, "action": self.action, "recordId": self.record_id},
                )
            )


ActionFunction = Callable[[ActionCall], Any]


def function_of(action: Action) -> ActionFunction:
    """The action's function, from the app's package (a dotted path `package.module.function`)."""
    module, _, name = action.function.rpartition(".")
    if not module or name.startswith("_"):
        raise ActionFailed(f"Action {action.name} names no function")
    try:
        function = getattr(importlib.import_module(module), name, None)
    except ImportError:
        function = None
    if not callable(function):
        raise ActionFailed(f"Action {action.name}: {action.function} is not a function of the app")
    return function


def call_action(action: Action, arguments: ActionCall) -> Any:
    """Run the app's function: its own errors (`Invalid`, ...) pass; a crash is the app's, said plainly."""
    try:
        return function_of(action)(arguments)
    except BackroomError:
        raise
    except Exception as crash:
        raise ActionFailed(f"Action {action.name} failed: {type(crash).__name__}: {str(crash)[:200]}") from crash


def parameters(action: Action, body: Any) -> dict[str, Any]:
    """The body checked against the action's parameters as fields are checked: 400 with one entry each."""
    if body is None or body == "":
        body = {}
    if not isinstance(body, dict):
        raise Invalid(f"The body of action {action.name} must be a JSON object of its parameters")
    schema = Schema(name=action.name, fields=action.parameters)
    checked = normalize(schema, {k: v for k, v in body.items() if k not in ("id", "label", "version")})
    if checked.errors:
        raise Invalid("Validation error", errors=checked.errors)
    return {f.name: native_value(f, checked.data[f.name]) for f in action.parameters if f.name in checked.data}


def action_of(entity: Entity, name: str) -> Action | None:
    return next((a for a in entity.actions if a.name == name), None)


def allowed(caller: Caller, access: Access, action: Action) -> None:
    if not caller.is_developer and action.name not in access.grant.actions:
        raise Forbidden(f"You have no permission to execute {action.name} on {access.entity.name}")


def precondition_met(schema: Schema, action: Action, record: Record) -> bool:
    if not action.precondition:
        return True
    bound = bind(schema, parse(action.precondition))
    if not matches(schema, record.data, bound.conditions):
        return False
    return bound.rest is None or evaluate(schema, bound.rest, {**record.data, "id": record.rid, "label": record.label})


def _unmet(action: Action, record: Record) -> Invalid:
    return Invalid(f"Action {action.name} cannot run on record {record.rid}: its precondition is not met")


def values_of(schema: Schema, record: Record) -> dict[str, Any]:
    shown = record_view(
        schema, record.rid, record.version, record.label, record.data, fields=[f.name for f in schema.fields]
    )
    return {k: v for k, v in shown.items() if k not in ("id", "version", "label")}


@dataclass
class Run:
    """One run of an action over one record: the saved record and the custom response, if any."""

    record: Record
    custom: bool
    response: Any


class ActionRunner:
    """Runs actions; `data` gives the records and the views, `logs` the app's logs."""

    def __init__(self, data: AppService, marks: RowMarks, logs: AppLogs) -> None:
        self.data = data
        self.records: RecordStore = data.records
        self.marks = marks  # a job's markers of its records (`keys.ACTION_ROWS`), with their outcomes
        self.logs = logs

    # Requests ------------------------------------------------------------------
    def execute(
        self,
        caller: Caller,
        name: str,
        action_name: str,
        *,
        ids: Sequence[str] | None,
        query: Mapping[str, Any] | None,
        body: Any,
        ip: str | None,
        run_async: bool | None,
    ) -> Any:
        """Run an action over `ids` (one id: the single-record answer) or the records `query` matches.

        Answers the spec's forms: the updated record or the custom response (one id); `{id: {status,
        response | errorMessage}}` (type one over many); the custom response (type many / query);
        or the `Job` of an `_async` run.
        """
        access = self.data.access(caller, name, "read")
        action = action_of(access.entity, action_name)
        if action is None:
            raise NotFound(f"Action {action_name[:64]} of {name} does not exist")
        allowed(caller, access, action)
        params = parameters(action, body)
        query = dict(query or {})
        if ids is None:  # a bad query is a 400 now, not a failed job
            access.bind(access.parse(query))
        if action.run_async if run_async is None else run_async:
            return self._job(caller, access, action, ids, query, params, ip)
        author = Author(caller.email, ip, f"entities.{name}.actions.{action.name}")
        single = ids is not None and len(ids) == 1
        records = self._records(caller.tenant_id, access, ids, query, single=single)
        if action.type != "one":
            return self.run_many(caller.tenant_id, access.entity, action, params, records, caller.email)
        if single:
            return self._answer(
                caller, access, self.run_one(caller.tenant_id, access.entity, action, params, records[0], author=author)
            )
        runs = self.run_each(caller.tenant_id, access.entity, action, params, records, author=author)
        done = {r.rid: run for r, run in zip(records, runs, strict=True)}
        outcome: dict[str, Any] = {}
        for rid in dict.fromkeys(ids if ids is not None else done):  # one record's failure hides no other's
            run = done.get(rid) or no_record(name, rid)
            if isinstance(run, BackroomError):
                outcome[rid] = {"status": "error", "errorMessage": run.message}
            else:
                outcome[rid] = {"status": "ok", "response": self._answer(caller, access, run, many=True)}
        return outcome

    def _records(
        self, tenant_id: str, access: Access, ids: Sequence[str] | None, query: Mapping[str, Any], *, single: bool
    ) -> list[Record]:
        schema = access.schema
        if ids is not None:
            if len(ids) > SYNC_MOST:
                raise Invalid(f"At most {SYNC_MOST} records at once; use _async=true for more")
            wanted = [i for i in dict.fromkeys(ids) if _ID.match(i)]
            found = self.records.get_many(tenant_id, schema, wanted)
            if single and not found:
                raise NotFound(f"Record {ids[0][:40]} of {access.entity.name} does not exist")
            return found
        rids = self.data.ids_of(tenant_id, access.entity, parse(query), most=SYNC_MOST)
        if len(rids) > SYNC_MOST:
            raise Invalid(f"The query matches more than {SYNC_MOST} records; use _async=true")
        return self.records.get_many(tenant_id, schema, rids)

    def _answer(self, caller: Caller, access: Access, run: Run, *, many: bool = False) -> Any:
        """The custom response, else the record as the caller may see it (`many`: with its `entity`)."""
        if run.custom:
            return run.response
        view = self.data.view(caller, access, run.record)
        return with_entity(view, caller.tenant_id, access.entity) if many else view

    def _job(
        self,
        caller: Caller,
        access: Access,
        action: Action,
        ids: Sequence[str] | None,
        query: Mapping[str, Any],
        params: Mapping[str, Any],
        ip: str | None,
    ) -> Job:
        name = access.entity.name
        job_params = {
            "entity": name,
            "action": action.name,
            "ids": listed_ids(ids),  # as given, once each: one that names no record is an error entry
            "query": query,
            "params": dict(params),
            "user": caller.email,
            "ip": ip,
            "fields": access.readable(),  # what the caller may see of the records in the results
        }
        label = f"Execute action {action.name} from entity {name}"
        return self.data.start_job(caller, ACTION_KIND, "EXECUTE_ACTION", label, job_params)

    # One record --------------------------------------------------------------
    def _prepare(
        self, tenant_id: str, entity: Entity, action: Action, params: Mapping[str, Any], record: Record, user: str
    ) -> tuple[Run, dict[str, Any], list[Write]]:
        """Call the function on `record`: its run, the changes to save and its log lines' writes."""
        schema = entity.schema
        if not precondition_met(schema, action, record):
            raise _unmet(action, record)
        before = values_of(schema, record)
        values = copy.deepcopy(before)
        arguments = ActionCall(entity.name, action.name, dict(params), user, record=values, record_id=record.rid)
        response = call_action(action, arguments)
        changes = {k: values.get(k) for k in {*before, *values} if values.get(k) != before.get(k)}
        if changes and entity.updated_field:
            changes[entity.updated_field] = now_ms()
        lines = [self.logs.write_of(tenant_id, line) for line in arguments.lines]
        return Run(record, response is not None, _jsonable(response)), changes, lines

    def run_one(
        self,
        tenant_id: str,
        entity: Entity,
        action: Action,
        params: Mapping[str, Any],
        record: Record,
        *,
        author: Author,
        marker: Callable[[Run], Write] | None = None,
    ) -> Run:
        """Call the function on `record` and save what it changed, with its log lines (and `marker`)."""
        for _attempt in range(3):
            run, changes, extra = self._prepare(tenant_id, entity, action, params, record, author.user)
            if marker is not None:
                extra.append(marker(run))
            try:
                if not changes:  # nothing to save: its log lines (and marker) only, the version as it is
                    self.records.unchanged(tenant_id, entity.schema, record, extra)
                    return run
                run.record = self.records.update(
                    tenant_id, entity.schema, record.rid, changes, version=record.version, author=author, extra=extra
                )
                return run
            except VersionConflict:  # changed meanwhile: run again on what it is now
                fresh = self.records.get(tenant_id, entity.schema, record.rid)
                if fresh is None:
                    raise NotFound(f"Record {record.rid} of {entity.name} does not exist") from None
                record = fresh
        raise VersionConflict(f"Record {record.rid} kept changing while {action.name} ran on it")

    def run_each(
        self,
        tenant_id: str,
        entity: Entity,
        action: Action,
        params: Mapping[str, Any],
        records: Sequence[Record],
        *,
        author: Author,
        marker: Callable[[Run], Write] | None = None,
        guard: Sequence[Write] = (),
    ) -> list[Run | BackroomError]:
        """`run_one` over many records, their saves several to a transaction; each its run or its error.

        A record changed since it was read runs again on its new version (`run_one`); `AlreadyApplied`
        (its marker exists) is answered as is, for a job to count the record done. `guard` (a job's
        `lease_guard`) joins each transaction: once it fails, `GuardFailed` and nothing more is saved.
        """
        results: list[Run | BackroomError] = []
        pending: list[tuple[int, Run, Update]] = []
        kept: list[tuple[int, Run, list[Write]]] = []  # runs that changed nothing: their writes only
        for record in records:
            try:
                run, changes, extra = self._prepare(tenant_id, entity, action, params, record, author.user)
            except BackroomError as err:
                results.append(err)
                continue
            if marker is not None:
                extra.append(marker(run))
            results.append(run)
            if changes:
                pending.append((len(results) - 1, run, Update(record, changes, extra)))
            else:
                kept.append((len(results) - 1, run, extra))
        saved: list[Record | BackroomError | None] = [
            *self.records.write_many(tenant_id, entity.schema, [u for _, _, u in pending], author=author, guard=guard),
            *self.records.unchanged_many(tenant_id, entity.schema, [(r.record, e) for _, r, e in kept], guard=guard),
        ]
        for (index, run, current), outcome in zip(
            [(i, r, u.current) for i, r, u in pending] + [(i, r, r.record) for i, r, _ in kept], saved, strict=True
        ):
            if isinstance(outcome, Record):
                run.record = outcome
            elif isinstance(outcome, VersionConflict):  # changed meanwhile: run again on what it is now
                try:
                    results[index] = self.run_one(
                        tenant_id, entity, action, params, current, author=author, marker=marker
                    )
                except BackroomError as err:
                    results[index] = err
            elif outcome is not None:
                results[index] = outcome
        return results

    # Many records --------------------------------------------------------------
    def run_many(
        self,
        tenant_id: str,
        entity: Entity,
        action: Action,
        params: Mapping[str, Any],
        records: Sequence[Record],
        user: str,
    ) -> Any:
        """Call the function once over `records`; its log lines are written after it returns."""
        schema = entity.schema
        for record in records:
            if not precondition_met(schema, action, record):
                raise _unmet(action, record)
        listed = [{"id": r.rid, "label": r.label, **values_of(schema, r)} for r in records]
        call = ActionCall(entity.name, action.name, dict(params), user, records=listed)
        response = call_action(action, call)
        self.logs.add(tenant_id, call.lines)
        return {} if response is None else _jsonable(response)

    # Markers of a job ------------------------------------------------------------
    def marker(self, job_id: str, rid: str, run: Run) -> Write:
        """A job's marker of record `rid` with the run's outcome, for the transaction that saves the record."""
        return self.marks.claim(job_id, rid, marked(response=run.response if run.custom else None))


def marked(*, error: str | None = None, response: Any = None) -> dict[str, Any]:
    """A row's outcome as its marker keeps it (`_outcome` reads it back)."""
    if error:
        return {"status": "error", "errorMessage": error}
    return {"status": "ok"} if response is None else {"status": "ok", "response": json.dumps(response)}


def _jsonable(value: Any) -> Any:
    """A function's answer as JSON holds it (a value JSON cannot hold is a 500 of the app, said plainly)."""
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError) as bad:
        raise ActionFailed(f"The action answered something JSON cannot hold: {bad}") from None


class ExecuteActionKind(AppJobKind):
    """`EXECUTE_ACTION`: an action over the records a job planned (`planning`), each exactly once.

    Type one: each row runs the action on its record and saves it with the job's marker in the same
    transaction; a replayed row meets its marker and counts as done. Type many / query: the function is
    called once per chunk (one group of rows), its response kept as that chunk's marker.
    """

    name = ACTION_KIND
    commit_rows = 25

    def __init__(self, runner: ActionRunner) -> None:
        super().__init__(runner.data)
        self.runner = runner

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        return planned_ids(self.app, job)

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        """Type one: the records themselves, read 100 at a time (an id whose record is gone stays an id)."""
        ids = chunk_ids(chunk.cursor, skip)
        absent = absent_ids(chunk.cursor)
        entity, action = self._action(ctx, job)
        if action.type != "one":
            yield from ids
            return
        for start in range(0, len(ids), 100):
            batch = ids[start : start + 100]
            wanted = [rid for rid in batch if rid not in absent]
            found = {r.rid: r for r in ctx.records.get_many(job.tenant_id, entity.schema, wanted)} if wanted else {}
            yield from (found.get(rid, rid) for rid in batch)

    def _action(self, ctx: JobContext, job: Job) -> tuple[Entity, Action]:
        entity = entity_of(self.app, job)
        action = action_of(entity, job.params["action"])
        if action is None:
            raise JobFailure(f"Action {job.params['action']} of {entity.name} does not exist any more")
        return entity, action

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        """Nothing yet: the group's records run together, before its checkpoint (`before_commit`)."""
        rid = row.rid if isinstance(row, Record) else str(row)
        return RowOutcome(output={"id": rid, "record": row if isinstance(row, Record) else None})

    def before_commit(self, ctx: JobContext, job: Job, chunk: Chunk, outcomes: list[RowOutcome]) -> None:
        """Run the group; the job's first 1,000 rows keep their outcome in its results (`put_results`)."""
        entity, action = self._action(ctx, job)
        runner = self.runner
        if not outcomes:
            return
        if action.type != "one":
            self._many(ctx, job, runner, entity, action, chunk, outcomes)
            return
        author = Author(job.params.get("user", ""), job.params.get("ip"), f"jobs.{job.id}")
        found = [(o, (o.output or {}).get("record")) for o in outcomes]
        records = [r for _, r in found if r is not None]
        runs = iter(
            runner.run_each(
                job.tenant_id,
                entity,
                action,
                job.params.get("params") or {},
                records,
                author=author,
                marker=lambda run: runner.marker(job.id, run.record.rid, run),
                guard=[lease_guard(chunk)] if chunk.lease_owner else [],
            )
        )
        first = chunk.start + chunk.next_row
        shown = job.params.get("fields") or []
        results: dict[int, tuple[str, Any]] = {}
        replayed: dict[int, str] = {}
        for i, (outcome, record) in enumerate(found):
            rid = str((outcome.output or {})["id"])
            run: Run | BackroomError = next(runs) if record is not None else no_record(entity.name, rid)
            outcome.output = {"id": rid}
            if isinstance(run, AlreadyApplied):
                # this row was applied before a crash or by a duplicate delivery: it is done
                replayed[first + i] = rid
            elif isinstance(run, BackroomError):
                outcome.ok, outcome.error = False, f"{rid}: {run.message}"
                ctx.journal.log(job.id, outcome.error, level="ERROR")
                runner.marks.put(job.id, rid, marked(error=run.message))
                results[first + i] = (rid, {"status": "error", "errorMessage": run.message})
            elif first + i < RESULTS_MOST:
                results[first + i] = (rid, _ran(job, entity, run, shown))
        wanted = {p: rid for p, rid in replayed.items() if p < RESULTS_MOST}
        if wanted:  # their first run's outcome, as its marker and the record keep it
            current = {r.rid: r for r in ctx.records.get_many(job.tenant_id, entity.schema, list(wanted.values()))}
            for position, rid in wanted.items():
                item = runner.marks.get(job.id, rid) or {"status": "ok"}
                record = current.get(rid)
                results[position] = (rid, _outcome(item, _view(job, entity, record, shown) if record else None))
        ctx.journal.put_results(job.id, results)

    def _many(
        self,
        ctx: JobContext,
        job: Job,
        runner: ActionRunner,
        entity: Entity,
        action: Action,
        chunk: Chunk,
        outcomes: list[RowOutcome],
    ) -> None:
        """Type many / query: one call over the group; its answer is the group's marker."""
        marker = f"chunk-{chunk.index:06d}-{chunk.next_row:06d}"
        group = (chunk.start + chunk.next_row) // self.commit_rows  # groups never straddle chunks
        held = runner.marks.get(job.id, marker)
        if held is not None:  # this group's call was made before a crash
            ctx.journal.put_results(job.id, {group: ("responses", _outcome(held, None))}, section="responses")
            return
        absent = absent_ids(chunk.cursor)  # the function gets the records there are, as a synchronous call
        rids = [rid for rid in (str((o.output or {})["id"]) for o in outcomes) if rid not in absent]
        records = runner.records.get_many(job.tenant_id, entity.schema, rids) if rids else []
        try:
            response = runner.run_many(
                job.tenant_id, entity, action, job.params.get("params") or {}, records, job.params.get("user", "")
            )
            done = marked(response=response)
        except BackroomError as err:
            for outcome in outcomes:
                outcome.ok, outcome.error = False, err.message
            ctx.journal.log(job.id, err.message, level="ERROR")
            done = marked(error=err.message)
        runner.marks.put(job.id, marker, done)
        ctx.journal.put_results(job.id, {group: ("responses", _outcome(done, None))}, section="responses")

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        """Type one: `{id: {status, response | errorMessage}}` for the first 1,000 records; type many:
        `responses`, one per group: both kept beside the job (`JobEngine.results`), not on its item."""
        entity_of.forget(job.id)
        return {}


def _view(job: Job, entity: Entity, record: Record, fields: list[str]) -> dict[str, Any]:
    """The record in a job's results: as its caller may read it, with its `entity`, as a synchronous run."""
    view = record_view(entity.schema, record.rid, record.version, record.label, record.data, fields=fields)
    return with_entity(view, job.tenant_id, entity)


def _ran(job: Job, entity: Entity, run: Run, fields: list[str]) -> dict[str, Any]:
    """A run's entry: its custom response, or the record (past `ENTRY_MOST`, the record's system fields)."""
    slim = record_view(entity.schema, run.record.rid, run.record.version, run.record.label, {}, fields=[])
    shown = run.response if run.custom else _view(job, entity, run.record, fields)
    return bounded_entry(shown, with_entity(slim, job.tenant_id, entity))


def _outcome(item: Mapping[str, Any], record: Any) -> dict[str, Any]:
    if item.get("status") == "error":
        return {"status": "error", "errorMessage": item.get("errorMessage", "")}
    return {"status": "ok", "response": json.loads(item["response"]) if "response" in item else record}
