"""Wires repositories and services from settings, once per process."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from backroom import aws
from backroom.app.repository import AppRepository
from backroom.app.service import AppData
from backroom.calcengine.repository import CalcRepository
from backroom.calcengine.service import GatewayService
from backroom.config import Settings, settings
from backroom.dynamo import Table
from backroom.errands import Errands
from backroom.files import FileStore
from backroom.identity.repository import IdentityRepository
from backroom.identity.service import IdentityService
from backroom.jobs import catalog  # noqa: F401  (registers every kind of job)
from backroom.jobs.engine import JobEngine
from backroom.jobs.kinds import JobContext
from backroom.jobs.queue import JobQueue
from backroom.jobs.repository import JobRepository
from backroom.records import RecordStore
from backroom.tasks.service import TaskService


@dataclass
class Services:
    settings: Settings
    table: Table
    identity: IdentityService
    jobs: JobEngine
    errands: Errands
    files: FileStore
    tasks: TaskService
    records: RecordStore
    gateway: GatewayService
    app: AppData


def build(config: Settings) -> Services:
    table = Table(aws.client("dynamodb", config), config.table_name)
    context = JobContext(settings=config, table=table, s3=aws.client("s3", config))
    queue = JobQueue(aws.client("sqs", config), config.jobs_queue_url)
    jobs = JobEngine(JobRepository(table), queue, context)
    context.engine = jobs
    identity = IdentityService(IdentityRepository(table), token_idle_seconds=config.token_idle_seconds)
    files = FileStore(context.s3, config.bucket_name, table)
    errands = Errands(jobs)
    records = RecordStore(table)
    return Services(
        settings=config,
        table=table,
        identity=identity,
        jobs=jobs,
        errands=errands,
        files=files,
        tasks=TaskService(jobs, identity, files),
        records=records,
        gateway=GatewayService(CalcRepository(table), records, errands, files),
        app=AppData(AppRepository(table, records), records, jobs),
    )


@lru_cache(maxsize=1)
def services() -> Services:
    """The process's services, built on first use (after moto or the emulator is in place)."""
    return build(settings())
