"""The task registry: what a category/action is, takes, checks, outputs and does with a row.

Adding a task is one module: subclass `TaskAction`, set its class attributes, write `apply` (a task
with input: one CSV row in, result columns out) or `sources` + `produce` (a task without input: the
rows it lists), and list it in `backroom.tasks.catalog.builtin_actions`. The task runner does the
rest: validation at creation, `in.csv` and `out.csv` in S3, chunks on the job engine, counters, stop.

Row effects follow the job engine's rule (see `backroom.jobs.kinds`): idempotent and keyed by the
row's `origin`, so a row replayed after a crash writes exactly what it wrote the first time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from backroom.jobs.kinds import JobContext
from backroom.jobs.models import Job


class RowFailed(Exception):
    """A row the action could not apply; its message goes to the row's `error` column."""


@dataclass
class RowResult:
    """What an action made of a row: its result columns and the quantities it changed."""

    columns: dict[str, str] = field(default_factory=dict)
    # (account_id, category, item, delta): kept in the monthly quantity records (descendant_quantities).
    quantities: list[tuple[str, str, str, int]] = field(default_factory=list)


@dataclass
class Source:
    """A slice of a no-input task's rows: `count` rows read from `cursor` (an account, a shard...)."""

    cursor: dict[str, Any]
    count: int


@dataclass
class TaskRun:
    """What an action may use while its task runs."""

    ctx: JobContext
    job: Job

    @property
    def account_id(self) -> str:
        return self.job.account_id


def origin(job: Job, row: int) -> str:
    """The mark a row's writes carry, so that a replay of the row recognises its own writes."""
    return f"{job.id}#{row}"


class TaskAction:
    category: ClassVar[str]
    action: ClassVar[str]
    description: ClassVar[str]
    doc: ClassVar[str] = ""
    mandatory: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()
    # Checks of input cells: a failing cell fails its row with `bad <field>`.
    checks: ClassVar[dict[str, Callable[[str], bool]]] = {}
    # Result columns, added after the input columns in out.csv (the only columns of a no-input task).
    columns: ClassVar[tuple[str, ...]] = ()
    # Runs against the tenant's resources as a whole: developers only.
    system: ClassVar[bool] = False

    @property
    def takes_input(self) -> bool:
        return bool(self.mandatory or self.optional)

    @property
    def expected_content(self) -> str:
        return "text/csv" if self.takes_input else "none"

    def help(self) -> dict[str, object]:
        shown: dict[str, object] = {"description": self.description, "doc": self.doc}
        if self.takes_input:
            shown["expected_content"] = self.expected_content
        if self.mandatory:
            shown["mandatory"] = list(self.mandatory)
        if self.optional:
            shown["optional"] = list(self.optional)
        return shown

    # A task with input ----------------------------------------------------
    def apply(self, run: TaskRun, row: dict[str, str], row_origin: str) -> RowResult:
        raise NotImplementedError

    # A task without input -------------------------------------------------
    def sources(self, run: TaskRun) -> list[Source]:
        return []

    def produce(self, run: TaskRun, cursor: dict[str, Any], skip: int) -> Iterator[dict[str, str]]:
        return iter(())


class TaskActions:
    """The task actions this deployment offers, by category and action (built by the composition root)."""

    def __init__(self, actions: Iterable[TaskAction]) -> None:
        self._actions = {(a.category, a.action): a for a in actions}

    def all(self) -> list[TaskAction]:
        return list(self._actions.values())

    def find(self, category: str, action: str) -> TaskAction | None:
        return self._actions.get((category, action))

    def has_category(self, category: str) -> bool:
        return any(c == category for c, _ in self._actions)
