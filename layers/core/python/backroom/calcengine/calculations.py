"""Calculations and batches, as jobs on the engine.

A calculation job has one chunk per period; its rows are the participants in scope. A chunk reads
the period's source records once (a Query on the source table's period index when it declares
one), aggregates the measure per participant in memory that grows with participants, not rows, and
writes one output record per participant and period. That record's rid is the calculation's, the
period's and the participant's, so running the calculation again replaces its earlier results
instead of adding to them.

A batch job has one chunk whose rows are its calculations, one row at a time: a row starts its
calculation as a child job and waits (the chunk comes back after a delay) until the child ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from backroom.calcengine.formulas import ScriptError, evaluate, rounded, tiered
from backroom.calcengine.models import Calculation, Participant
from backroom.calcengine.tables import custom_table
from backroom.clock import now_ms
from backroom.dynamo import ConditionFailed
from backroom.errors import Conflict, NotFound
from backroom.jobs.engine import JobEngine
from backroom.jobs.journal import JobJournal
from backroom.jobs.kinds import JobContext, JobFailure, JobKind, PerJob, RowOutcome, Waiting
from backroom.jobs.models import Chunk, ChunkPlan, Job, JobState, LogEntry, NewJob, Progress
from backroom.records import BadValue, Record, Schema, typed


@dataclass
class Totals:
    """The measure of one participant in one period, aggregated."""

    sum: Decimal = Decimal(0)
    count: int = 0
    minimum: Decimal | None = None
    maximum: Decimal | None = None

    def add(self, value: Decimal) -> None:
        self.sum += value
        self.count += 1
        self.minimum = value if self.minimum is None else min(self.minimum, value)
        self.maximum = value if self.maximum is None else max(self.maximum, value)


@dataclass
class Setup:
    calc: Calculation
    source: Schema
    output: Schema
    participants: list[Participant] = field(default_factory=list)


def _load(ctx: JobContext, job: Job) -> Setup:
    calc = ctx.calc.calculation(job.tenant_id, job.params["calculation"])
    if calc is None:
        raise JobFailure(f"Calculation {job.params['calculation']} no longer exists")
    store = ctx.records
    schemas = []
    for name in (calc.source, calc.output):
        try:
            schemas.append(custom_table(store, job.tenant_id, name))
        except NotFound:
            raise JobFailure(f"{calc.name} failed: Custom Table {name} does not exist") from None
    source, output = schemas
    for name in (calc.participant_field, calc.period_field, calc.measure):
        if source.field(name) is None:
            raise JobFailure(f"{calc.name} failed: {source.name} has no field {name}")
    for written in (calc.participant_field, calc.period_field, calc.result_field, calc.measure_field):
        if written and output.field(written) is None:
            raise JobFailure(f"{calc.name} failed: {output.name} has no field {written}")
    wanted = job.params.get("participants")
    everyone = ctx.calc.participants(job.tenant_id)
    chosen = [p for p in everyone if p.id in set(wanted)] if wanted else [p for p in everyone if p.active]
    return Setup(calc, source, output, sorted(chosen, key=lambda p: p.id))


_setup = PerJob(_load)


def _totals(ctx: JobContext, job: Job, setup: Setup, period: int) -> dict[str, Totals]:
    """The period's measure per participant EID in scope, from one read of the source records."""
    calc, wanted = setup.calc, {p.eid for p in setup.participants}
    totals: dict[str, Totals] = {eid: Totals() for eid in wanted}
    for record in ctx.records.stream(job.tenant_id, setup.source, {calc.period_field: period}):
        eid = str(record.data.get(calc.participant_field, ""))
        value = record.data.get(calc.measure)
        if eid in totals and value is not None and value != "":
            totals[eid].add(Decimal(str(value)))
    return totals


def _result(calc: Calculation, totals: Totals, rank: int) -> Decimal:
    if calc.type == "leader_board":
        return Decimal(rank)
    if calc.type == "script":
        names = {
            "sum": totals.sum,
            "count": Decimal(totals.count),
            "average": totals.sum / totals.count if totals.count else Decimal(0),
            "minimum": totals.minimum or Decimal(0),
            "maximum": totals.maximum or Decimal(0),
            "rate": Decimal(str(calc.rate or 0)),
        }
        return rounded(evaluate(calc.expression or "", names), calc.precision)
    if calc.tiers:
        return rounded(tiered(totals.sum, calc.tiers), calc.precision)
    return rounded(totals.sum * Decimal(str(calc.rate or 0)), calc.precision)


class CalculationKind(JobKind):
    name = "gateway.calc"
    commit_rows = 100

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        setup = _setup(ctx, job)
        if not setup.participants:
            raise JobFailure(f"{setup.calc.name} failed: no participant to calculate for")
        count = len(setup.participants)
        return [
            ChunkPlan(index=i, start=i * count, count=count, cursor={"period": period})
            for i, period in enumerate(job.params["periods"])
        ]

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        setup = _setup(ctx, job)
        period = int(chunk.cursor["period"])
        totals = _totals(ctx, job, setup, period)
        # Leader-board ranks: 1 for the highest measure; equal measures share a rank.
        ranks: dict[str, int] = {}
        order = sorted(totals.items(), key=lambda kv: kv[1].sum, reverse=True)
        for position, (eid, total) in enumerate(order):
            previous = order[position - 1] if position else None
            ranks[eid] = ranks[previous[0]] if previous and previous[1].sum == total.sum else position + 1
        for participant in setup.participants[skip:]:
            yield period, participant, totals[participant.eid], ranks[participant.eid]

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        period, participant, totals, rank = row
        setup = _setup(ctx, job)
        calc = setup.calc
        output = setup.output
        try:
            value = _result(calc, totals, rank)
            data = {
                calc.participant_field: typed(output, calc.participant_field, participant.eid),
                calc.period_field: typed(output, calc.period_field, period),
                calc.result_field: typed(output, calc.result_field, value),
            }
            if calc.measure_field:
                data[calc.measure_field] = typed(output, calc.measure_field, totals.sum)
        except (ScriptError, BadValue) as err:  # BadValue: a result its table cannot hold (1E+126...)
            raise JobFailure(
                f"{calc.name} failed for participant {participant.eid} in period {period}: {err}"
            ) from None
        except ArithmeticError:  # a result too large to round to the calculation's precision
            raise JobFailure(
                f"{calc.name} failed for participant {participant.eid} in period {period}: the result is out of "
                f"range at {calc.precision} decimal places"
            ) from None
        record = Record(
            rid=f"c{calc.id:06d}.{period:06d}.{participant.id:012d}",
            data=data,
            source=f"calculation:{calc.id}",
            periods=[period],
        )
        puts, deletes = ctx.records.replacing(job.tenant_id, output, record)
        return RowOutcome(puts=puts, deletes=deletes)

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        _setup.forget(job.id)
        return {"results": progress.processed}


def child_label(calc_name: str, periods: list[int]) -> str:
    return f"{calc_name}: Period {min(periods)}" if periods else calc_name


LAST_LINE_WAIT_MS = 10_000  # how long a batch waits for an ended child's last log line (its worker may die)


def _relay_logs(journal: JobJournal, batch: Job, child: Job, lines: list[LogEntry]) -> None:
    """An ended child's own log lines into the batch's logs, each prefixed by its calculation's name.

    A replay of the row may relay them twice, as other log lines may repeat.
    """
    name = child.params.get("calculation_name", child.label)
    for entry in lines:
        journal.log(batch.id, f"{name}: {entry.message}", level=entry.level)


class BatchKind(JobKind):
    """A batch's calculations, in order, each a child job of the batch's errand."""

    name = "gateway.batch"
    commit_rows = 1
    stoppable = False

    def __init__(self, engine: JobEngine) -> None:
        self.engine = engine  # a batch starts its calculations as child jobs

    def plan(self, ctx: JobContext, job: Job) -> list[ChunkPlan]:
        count = len(job.params["calculations"])
        return [ChunkPlan(index=0, start=0, count=count)] if count else []

    def rows(self, ctx: JobContext, job: Job, chunk: Chunk, skip: int) -> Iterator[Any]:
        yield from list(enumerate(job.params["calculations"]))[skip:]

    def apply(self, ctx: JobContext, job: Job, row: Any) -> RowOutcome:
        position, calc_id = row
        engine = self.engine
        child_id = f"{job.id}-{position}"
        child = engine.find(child_id)
        if child is None:
            calc = ctx.calc.calculation(job.tenant_id, calc_id)
            if calc is None:
                raise JobFailure(f"Calculation {calc_id} of the batch does not exist")
            spec = NewJob(
                kind=CalculationKind.name,
                tenant_id=job.tenant_id,
                account_id=job.account_id,
                created_by=job.created_by,
                label=child_label(calc.name, job.params["periods"]),
                type="Calc",
                params={
                    **{k: job.params[k] for k in ("periods", "participants")},
                    "calculation": calc_id,
                    "calculation_name": calc.name,
                },
                parent_id=job.id,
                root_id=job.root_id or job.id,
                dialect="gateway",  # a batch's calculation: shown in its errand only
            )
            with suppress(ConditionFailed):  # a replay of this row created it already
                engine.create(spec, job_id=child_id, start=False)
                ctx.journal.log(job.id, f"{spec.label} started")
            child = engine.find(child_id)
            if child is None:
                raise Waiting(1)  # written a moment ago: read it again on the next try
        if child.state is JobState.PENDING and not child.queued_at:
            with suppress(Conflict):  # another delivery of this row started it first
                engine.start(child_id, job.tenant_id)
        if child.state in (JobState.FINISHED, JobState.FAILED, JobState.CANCELED):
            lines = ctx.journal.logs(child.id)
            if (not lines or lines[-1].status != "ended") and now_ms() - (child.ended_at or 0) < LAST_LINE_WAIT_MS:
                raise Waiting(1)  # a job's last line is written just after it ends
            _relay_logs(ctx.journal, job, child, lines)
        if child.state is JobState.FINISHED:
            ctx.journal.log(job.id, f"{child.label}: complete, {child.processed} results")
            return RowOutcome()
        if child.state in (JobState.FAILED, JobState.CANCELED):
            raise JobFailure(f"{child.label} failed: {child.error or child.state.value.lower()}")
        # Ask again soon for a short calculation, less often for a long one.
        raise Waiting(min(30, 2 + (now_ms() - child.created_at) // 10_000))

    def finalize(self, ctx: JobContext, job: Job, progress: Progress) -> dict[str, Any]:
        return {"calculations": progress.processed}
