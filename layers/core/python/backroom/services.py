"""Wires repositories and services from settings, once per process.

Each service is built, and its modules imported, on first use: a function pays at cold start only for
what its requests use (the auth function: the table and identity; nothing of jobs, app or calcengine).
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from backroom import aws
from backroom.config import Settings, settings

if TYPE_CHECKING:
    from backroom.app.service import AppData
    from backroom.calcengine.repository import CalcRepository
    from backroom.calcengine.service import GatewayService
    from backroom.dynamo import Table
    from backroom.errands import Errands
    from backroom.files import FileStore
    from backroom.identity.service import IdentityService
    from backroom.jobs.engine import JobEngine
    from backroom.records import RecordStore
    from backroom.tasks.service import TaskService


class Services:
    """The core's services on one settings (attributes as before: table, identity, jobs, errands, files,
    tasks, records, gateway, app), each built on first access."""

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
        )

    @cached_property
    def files(self) -> FileStore:
        from backroom.files import FileStore

        return FileStore(self.s3, self.settings.bucket_name, self.table)

    @cached_property
    def records(self) -> RecordStore:
        from backroom.records import RecordStore

        return RecordStore(self.table)

    @cached_property
    def calc(self) -> CalcRepository:
        from backroom.calcengine.repository import CalcRepository

        return CalcRepository(self.table)

    @cached_property
    def jobs(self) -> JobEngine:
        """The engine, with the context every kind of job runs in (the app's data among it)."""
        from backroom.app.logs import AppLogs
        from backroom.app.repository import AppLogStore, AppRepository
        from backroom.app.service import AppData
        from backroom.jobs import catalog  # noqa: F401  (registers every kind of job)
        from backroom.jobs.engine import JobEngine
        from backroom.jobs.kinds import JobContext
        from backroom.jobs.queue import JobQueue
        from backroom.jobs.repository import JobRepository
        from backroom.numbers import NumberRepository
        from backroom.quantities import QuantityLedger

        context = JobContext(
            settings=self.settings,
            files=self.files,
            records=self.records,
            app_logs=AppLogs(AppLogStore(self.table)),
            calc=self.calc,
            identity=self.identity.repo,
            numbers=NumberRepository(self.table),
            quantities=QuantityLedger(self.table),
        )
        queue = JobQueue(aws.client("sqs", self.settings), self.settings.jobs_queue_url)
        jobs = JobEngine(JobRepository(self.table), queue, context)
        context.jobs = jobs
        # The app's data needs the engine and the engine's context needs the app: both made here.
        app = AppData(AppRepository(self.table, self.records), self.records, jobs, self.files)
        context.app = app
        self.__dict__["app"] = app
        return jobs

    @cached_property
    def app(self) -> AppData:
        self.jobs  # noqa: B018 - builds the app's data with the engine
        return self.__dict__["app"]

    @cached_property
    def errands(self) -> Errands:
        from backroom.errands import Errands

        return Errands(self.jobs)

    @cached_property
    def tasks(self) -> TaskService:
        from backroom.tasks.service import TaskService

        return TaskService(self.jobs, self.identity, self.files)

    @cached_property
    def gateway(self) -> GatewayService:
        from backroom.calcengine.service import GatewayService

        return GatewayService(self.calc, self.records, self.errands, self.files)


def build(config: Settings) -> Services:
    return Services(config)


@lru_cache(maxsize=1)
def services() -> Services:
    """The process's services, built on first use (after moto or the emulator is in place)."""
    return build(settings())
