"""The composition root: every repository, service and kind of job is built here, once per process,
and handed its dependencies by its constructor. Nothing else builds a service, and no module registers
anything by being imported.

Each piece is built, and its modules imported, on first use: a function pays at cold start only for
what its requests use (the auth function: the table and identity; nothing of jobs, app or calcengine).
The job engine's graph: the repository, queue and journal; the kinds' registry (`JobKinds`) and the
`JobContext` of repositories every kind runs with; the lifecycle both sides share; the engine
(commands and reads) and the worker (each SQS message). The runtime app's data needs the engine (to
start its jobs) and its kinds need the app: the registry builds the kinds at its first lookup.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from backroom import aws
from backroom.config import Settings, settings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from backroom.app.evolution import AppEvolution
    from backroom.app.grants import Grants
    from backroom.app.history import AppHistory
    from backroom.app.maintenance import Maintenance
    from backroom.app.repository import AppRepository
    from backroom.app.service import AppData
    from backroom.calcengine.repository import CalcRepository
    from backroom.calcengine.service import CalcEngine
    from backroom.dynamo import Table, Write
    from backroom.errands import Errands
    from backroom.files import FileStore
    from backroom.identity.service import IdentityService
    from backroom.jobs.chunks import ChunkRepository
    from backroom.jobs.engine import JobEngine
    from backroom.jobs.journal import JobJournal
    from backroom.jobs.kinds import JobContext, JobKind, JobKinds
    from backroom.jobs.lifecycle import Lifecycle
    from backroom.jobs.queue import JobQueue
    from backroom.jobs.repository import JobRepository
    from backroom.jobs.worker import JobWorker
    from backroom.records import RecordStore, Schema
    from backroom.records.model import Author
    from backroom.tasks.registry import TaskActions
    from backroom.tasks.service import TaskService


class Core:
    """The core's services on one settings (table, identity, jobs, worker, errands, files,
    tasks, task actions, records, calcengine, app, app history), each built on first access."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def table(self) -> Table:
        from backroom.dynamo import Table

        return Table(aws.client("dynamodb", self.settings), self.settings.table_name)

    @cached_property
    def s3(self) -> Any:
        return aws.client("s3", self.settings)

    @cached_property
    def identity(self) -> IdentityService:
        from backroom.identity.repository import IdentityRepository
        from backroom.identity.service import IdentityService
        from backroom.identity.throttle import LoginLimits

        config = self.settings
        return IdentityService(
            IdentityRepository(self.table),
            token_idle_seconds=config.token_idle_seconds,
            token_lifetime_seconds=config.token_lifetime_seconds,
            limits=LoginLimits(
                per_account=config.login_failures_per_account,
                per_address=config.login_failures_per_address,
                window_seconds=config.login_failure_window_seconds,
            ),
            hashes_at_once=config.password_hashes_at_once,
            hash_wait_seconds=config.password_hash_wait_seconds,
            # Late-bound: the app's grants are built (and imported) only when a user, not a developer, impersonates.
            manages_groups=lambda user: self.grants.manages_groups(user.tenant_id, user.email, user.groups),
        )

    @cached_property
    def files(self) -> FileStore:
        from backroom.files import FileStore

        return FileStore(self.s3, self.settings.needed("bucket_name"), self.table)

    @cached_property
    def records(self) -> RecordStore:
        from backroom.records import RecordStore

        store = RecordStore(self.table)
        store.writer.relabeled = self._relabeled
        store.writer.relabeling = self._relabeling
        return store

    def _relabeled(self, tenant_id: str, schema: Schema, rids: list[str], author: Author | None) -> None:
        """A committed update renamed runtime records: the app relabels what references them (`app.references`;
        the app is built then, so a function that renames nothing never builds it)."""
        if schema.namespace == "runtime":
            self.app.references.relabeled(tenant_id, schema, rids, author)

    def _relabeling(
        self, tenant_id: str, schema: Schema, rids: list[str], author: Author | None, guard: Sequence[Write]
    ) -> Callable[[], None]:
        """A job's group is about to rename runtime records: their relabel job is stored first, started
        after (`app.references.relabeling`)."""
        if schema.namespace == "runtime":
            return self.app.references.relabeling(tenant_id, schema, rids, guard)
        return lambda: None

    @cached_property
    def calc(self) -> CalcRepository:
        from backroom.calcengine.repository import CalcRepository

        return CalcRepository(self.table)

    @cached_property
    def job_repo(self) -> JobRepository:
        from backroom.jobs.repository import JobRepository

        return JobRepository(self.table)

    @cached_property
    def chunks(self) -> ChunkRepository:
        from backroom.jobs.chunks import ChunkRepository

        return ChunkRepository(self.table)

    @cached_property
    def journal(self) -> JobJournal:
        from backroom.jobs.journal import JobJournal

        return JobJournal(self.job_repo)

    @cached_property
    def kinds(self) -> JobKinds:
        """Every kind of job this deployment runs, built at the engine's first lookup of one."""
        from backroom.jobs.kinds import JobKinds

        return JobKinds(self._job_kinds)

    def _job_kinds(self) -> list[JobKind]:
        from backroom.app.actions import ExecuteActionKind
        from backroom.app.aggregate_job import AggregateRecordsKind
        from backroom.app.deletes import DeleteRecordsKind
        from backroom.app.exports import ExportRecordsKind
        from backroom.app.imports import ImportRecordsKind
        from backroom.app.migrations import EvolveKind
        from backroom.app.references import ReferencesKind
        from backroom.calcengine.calculations import BatchKind, CalculationKind
        from backroom.calcengine.imports import DeleteImportedKind, ImportKind
        from backroom.jobs.probe import RowProbe
        from backroom.tasks.runner import TaskJob

        app = self.app
        return [
            ExecuteActionKind(app.actions),
            DeleteRecordsKind(app, app.references),
            ExportRecordsKind(app),
            AggregateRecordsKind(app),
            ImportRecordsKind(app),
            EvolveKind(self.evolution),
            ReferencesKind(app.references),
            CalculationKind(),
            BatchKind(self.jobs),
            ImportKind(),
            DeleteImportedKind(),
            TaskJob(self.task_actions),
            RowProbe(),
        ]

    @cached_property
    def job_context(self) -> JobContext:
        """What every kind may touch while it runs: the repositories of the concepts jobs work on."""
        from backroom.jobs.kinds import JobContext
        from backroom.numbers import NumberRepository
        from backroom.quantities import QuantityLedger

        return JobContext(
            journal=self.journal,
            files=self.files,
            records=self.records,
            calc=self.calc,
            identity=self.identity.repo,
            numbers=NumberRepository(self.table),
            quantities=QuantityLedger(self.table),
        )

    @cached_property
    def job_queue(self) -> JobQueue:
        from backroom.jobs.queue import JobQueue

        return JobQueue(aws.client("sqs", self.settings), self.settings.needed("jobs_queue_url"))

    @cached_property
    def lifecycle(self) -> Lifecycle:
        from backroom.jobs.lifecycle import Lifecycle

        return Lifecycle(self.job_repo, self.chunks, self.job_queue, self.kinds, self.journal, self.job_context)

    @cached_property
    def jobs(self) -> JobEngine:
        """The engine's commands and reads (what services and dialects start and steer jobs with)."""
        from backroom.jobs.engine import JobEngine

        return JobEngine(self.job_repo, self.chunks, self.job_queue, self.journal, self.lifecycle)

    @cached_property
    def worker(self) -> JobWorker:
        """What runs each SQS message of the jobs queue: plans, chunks, wrap-ups."""
        from backroom.jobs.worker import JobWorker

        return JobWorker(
            self.job_repo, self.chunks, self.job_queue, self.kinds, self.journal, self.lifecycle, self.job_context
        )

    @cached_property
    def app(self) -> AppData:
        """The runtime app's data: records under its entities' permissions, its actions, logs and files."""
        from backroom.app.service import AppData

        return AppData(self.app_repo, self.records, self.jobs, self.files)

    @cached_property
    def app_repo(self) -> AppRepository:
        """The runtime app's entities, users' permissions, log lines and action markers."""
        from backroom.app.repository import AppRepository

        return AppRepository(self.table, self.records, self.identity)

    @cached_property
    def grants(self) -> Grants:
        """Users' permissions from the app's groups, rewritten by an install and by a user's change."""
        return self.app_repo.grants

    @cached_property
    def evolution(self) -> AppEvolution:
        """The app's definition, stored and versioned: plan and apply a new one, its data work as jobs."""
        from backroom.app.evolution import AppEvolution

        return AppEvolution(self.app_repo, self.records, self.jobs)

    @cached_property
    def app_history(self) -> AppHistory:
        """The runtime app's record and table history, through the app's permission gate."""
        from backroom.app.history import AppHistory

        return AppHistory(self.app_repo, self.records)

    @cached_property
    def maintenance(self) -> Maintenance:
        """Each tenant's maintenance flag, read by the runtime dialect's gate on every call (cached briefly)."""
        from backroom.app.maintenance import Maintenance, MaintenanceStore

        return Maintenance(MaintenanceStore(self.table))

    @cached_property
    def errands(self) -> Errands:
        from backroom.errands import Errands

        return Errands(self.jobs)

    @cached_property
    def tasks(self) -> TaskService:
        from backroom.tasks.service import TaskService

        return TaskService(self.jobs, self.identity, self.files, self.task_actions)

    @cached_property
    def task_actions(self) -> TaskActions:
        from backroom.tasks.catalog import builtin_actions

        return builtin_actions()

    @cached_property
    def calcengine(self) -> CalcEngine:
        from backroom.calcengine.service import CalcEngine

        return CalcEngine(self.calc, self.records, self.errands, self.files)


def build(config: Settings) -> Core:
    return Core(config)


@lru_cache(maxsize=1)
def core() -> Core:
    """The process's core, built on first use (after moto or the emulator is in place)."""
    return build(settings())
