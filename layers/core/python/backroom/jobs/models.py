"""The job engine's domain models: jobs, their chunks (checkpoints) and their logs."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

RESULTS_MOST = 1000  # the runtime spec: a job's results hold at most this many per-record entries


class JobState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def is_final(self) -> bool:
        return self in (JobState.FINISHED, JobState.FAILED, JobState.CANCELED)


class ChunkStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"


class NewJob(BaseModel):
    """What a dialect asks the engine to run."""

    kind: str
    tenant_id: str
    account_id: str
    created_by: str
    created_by_name: str = ""
    label: str
    type: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    parent_id: str | None = None
    root_id: str | None = None
    # A dialect's own listing of its jobs (gsi2): e.g. ("TASKS#<account>", "<created>#<id>").
    scope: str | None = None
    scope_order: str | None = None
    seq: int | None = None
    # The dialect that shows the job: "runtime" jobs (no scope) are those of `GET /status/jobs`;
    # a gateway batch's calculations say "gateway", errands and tasks have their scope.
    dialect: str = "runtime"
    low_priority: bool = False

    @property
    def is_runtime(self) -> bool:
        return self.dialect == "runtime" and self.scope is None


class Job(NewJob):
    id: str
    state: JobState = JobState.PENDING
    created_at: int
    queued_at: int | None = None
    started_at: int | None = None
    ended_at: int | None = None
    stopped_at: int | None = None
    total_rows: int = 0
    chunk_count: int = 0
    processed: int = 0
    failed: int = 0
    children_count: int = 0
    children_done: int = 0
    # Counters the checkpoints move in the same transaction as each chunk's (see `repository`).
    chunks_done: int = 0
    active_chunks: int = 0  # chunks a delivery holds the lease of
    results: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    last_error: str | None = None  # why the last delivery of one of its messages crashed

    def progress(self) -> Progress:
        """Exact counters, as the job read with its counters item holds them (no chunk is read)."""
        return Progress(total=self.total_rows, processed=self.processed, failed=self.failed)


class Progress(BaseModel):
    total: int
    processed: int
    failed: int

    @property
    def percent(self) -> int:
        if self.total <= 0:
            return 0
        return min(100, (self.processed + self.failed) * 100 // self.total)


class ChunkPlan(BaseModel):
    """A slice of a job's rows: `count` rows from row `start`; `cursor` is the kind's own hint (byte offset...)."""

    index: int
    start: int
    count: int
    cursor: dict[str, Any] = Field(default_factory=dict)


class Chunk(ChunkPlan):
    job_id: str
    next_row: int = 0  # rows of this chunk already committed
    processed: int = 0
    failed: int = 0
    status: ChunkStatus = ChunkStatus.QUEUED
    # The lease of the delivery working on the chunk: only its holder may move the checkpoint.
    lease_owner: str | None = None
    lease_expires: int | None = None

    @property
    def done(self) -> bool:
        return self.status is ChunkStatus.DONE


class LogEntry(BaseModel):
    timestamp: int
    level: str = "INFO"
    message: str
    status: str = ""
