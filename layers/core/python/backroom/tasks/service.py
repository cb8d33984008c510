"""Account tasks: create, list, read, start, stop and delete CSV tasks, and hand out their CSVs.

A task is a job of kind `tasks.run` on the job engine, listed per account (gsi2 `TASKS#<account>`,
newest first). Its state reads as Kazoo's status: pending (not started), executing, then success,
failure or partial from its counters; stopped; internal_error when the action itself crashed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from backroom import keys
from backroom.clock import gregorian_s, now_ms
from backroom.errors import BackroomError, Conflict, Forbidden, NotFound
from backroom.files import FileStore, StoredFile
from backroom.identity.models import Caller
from backroom.identity.service import IdentityService
from backroom.ids import new_id
from backroom.jobs.engine import JobEngine
from backroom.jobs.models import Job, JobState, NewJob
from backroom.tasks import inputs
from backroom.tasks.registry import TaskAction, TaskActions
from backroom.tasks.runner import IN_CSV, KIND, OUT_CSV

TASK_ID_LENGTH = 30
# What Kazoo shows of a task just submitted.
_SUBMITTED = (
    "account_id",
    "auth_account_id",
    "action",
    "category",
    "file_name",
    "id",
    "submit_timestamp",
    "total_count",
)
CSV_NAMES = (IN_CSV, OUT_CSV)


class Status:
    PENDING, EXECUTING, SUCCESS, FAILURE = "pending", "executing", "success", "failure"
    PARTIAL, STOPPED, INTERNAL_ERROR = "partial", "stopped", "internal_error"


def unknown(identifier: str) -> NotFound:
    """Kazoo's 404 for a category, action or task that is not there: `data: [id]`."""
    return NotFound("bad identifier", data=[identifier])


def bad_identifier(task_id: str, reason: str | None = None) -> NotFound:
    """Kazoo's 404 for a task that cannot do what was asked: `data: {cause, message, reason?}`."""
    data = {"cause": task_id, "message": "bad identifier"}
    if reason:
        data["reason"] = reason
    return NotFound("bad_identifier", data=data)


class TaskCsv(BaseModel):
    """A CSV to hand out: its bytes, or where to fetch them when they are too big for a response."""

    filename: str
    file: StoredFile
    body: bytes | None = None
    url: str | None = None


# A Lambda response carries at most 6 MB; larger CSVs are handed out by a presigned S3 URL.
INLINE_BYTES = 5 * 1024 * 1024


class TaskService:
    def __init__(self, engine: JobEngine, identity: IdentityService, files: FileStore, actions: TaskActions) -> None:
        self.engine = engine
        self.identity = identity
        self.files = files
        self.actions = actions

    # Creating --------------------------------------------------------------
    def create(
        self,
        caller: Caller,
        account_id: str | None,
        category: str | None,
        action: str | None,
        *,
        body: bytes,
        is_csv: bool,
        file_name: str | None,
    ) -> dict[str, Any]:
        account = self._account(caller, account_id)
        task_action = self._action(category, action)
        if task_action.system and not caller.is_developer:
            raise Forbidden("This task runs on the whole tenant: developers only")
        parsed: inputs.TaskInput | None = None
        if is_csv and body.strip():
            parsed = inputs.from_csv(task_action, body)
        elif body.strip():
            parsed = inputs.from_json(task_action, body)  # None: no records, no input
        else:
            inputs.no_input(task_action)
        task_id = new_id(TASK_ID_LENGTH)
        params: dict[str, Any] = {
            "category": task_action.category,
            "action": task_action.action,
            "auth_account_id": caller.account_id,
            "file_name": file_name or (parsed.file_name if parsed else None),
            "has_input": parsed is not None,
        }
        if parsed is not None:
            # The input is stored before the task exists: a task never points at a missing in.csv.
            self.files.put(keys.task_owner(task_id), IN_CSV, parsed.data)
            params.update(columns=parsed.columns, total=parsed.total, chunks=parsed.chunks)
        created = now_ms()
        job = self.engine.create(
            NewJob(
                kind=KIND,
                tenant_id=caller.tenant_id,
                account_id=account,
                created_by=caller.user_id,
                created_by_name=caller.name,
                label=f"{task_action.category}/{task_action.action}",
                type=task_action.category,
                params=params,
                scope=keys.task_scope(account),
                scope_order=keys.task_order(created, task_id),
            ),
            start=False,
            job_id=task_id,
            created_at=created,
        )
        return {k: v for k, v in self._view(job).items() if k in _SUBMITTED}

    # Reading ---------------------------------------------------------------
    def page(
        self, caller: Caller, account_id: str, size: int, start_key: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        account = self._account(caller, account_id)
        jobs, next_key = self.engine.page_scope(keys.task_scope(account), size, after=start_key)
        return [self._view(job) for job in jobs], next_key

    def get(self, caller: Caller, account_id: str | None, task_id: str) -> dict[str, Any]:
        job = self._task(caller, account_id, task_id, missing=unknown(task_id))
        view = self._view(job)
        view["csvs"] = sorted(f.name for f in self.files.of_owner(keys.task_owner(job.id)) if f.name in CSV_NAMES)
        return view

    def csv(self, caller: Caller, account_id: str | None, task_id: str, name: str) -> TaskCsv:
        job = self._task(caller, account_id, task_id)
        stored = self.files.get(keys.task_owner(job.id), name) if name in CSV_NAMES else None
        if stored is None:
            raise bad_identifier(task_id)
        filename = f"{job.params['category']}_{job.params['action']}_{job.id}_{name.removesuffix('.csv')}.csv"
        if stored.size > INLINE_BYTES:
            return TaskCsv(filename=filename, file=stored, url=self.files.download_url(stored, filename))
        return TaskCsv(filename=filename, file=stored, body=self.files.read(stored))

    # Commands --------------------------------------------------------------
    def start(self, caller: Caller, account_id: str | None, task_id: str) -> dict[str, Any]:
        job = self._task(caller, account_id, task_id)
        try:
            started = self.engine.start(job.id, caller.tenant_id)
        except Conflict:
            raise bad_identifier(task_id, "task already started") from None
        return self._view(started)

    def stop(self, caller: Caller, account_id: str | None, task_id: str) -> dict[str, Any]:
        job = self._task(caller, account_id, task_id)
        if status_of(job) != Status.EXECUTING:
            raise bad_identifier(task_id, "task is not running")
        try:
            stopped = self.engine.stop(job.id, caller.tenant_id)
        except Conflict:
            raise bad_identifier(task_id, "task is not running") from None
        return self._view(stopped)

    def delete(self, caller: Caller, account_id: str | None, task_id: str) -> dict[str, Any]:
        job = self._task(caller, account_id, task_id, missing=unknown(task_id))
        view = self._view(job)
        try:  # the engine deletes only a job no worker can hold: a running task is refused there
            self.engine.delete(job.id, caller.tenant_id)
        except Conflict:
            raise bad_identifier(task_id) from None
        self.files.delete_all(keys.task_owner(job.id))
        return view

    # Helpers ---------------------------------------------------------------
    def _account(self, caller: Caller, account_id: str | None) -> str:
        """The account a request works on: the caller's own or a descendant; None is the system form."""
        if account_id is None:
            if not caller.is_developer:
                raise Forbidden("Tasks without an account are for developers only")
            return caller.account_id
        return self.identity.account_in_reach(caller, account_id).id

    def _action(self, category: str | None, action: str | None) -> TaskAction:
        if not category or not action:  # Kazoo: a request, not an identifier, is wrong
            raise inputs.InputRejected({"message": "invalid request"})
        if not self.actions.has_category(category):
            raise unknown(category)
        found = self.actions.find(category, action)
        if found is None:
            raise unknown(action)
        return found

    def _task(
        self, caller: Caller, account_id: str | None, task_id: str, *, missing: BackroomError | None = None
    ) -> Job:
        account = self._account(caller, account_id)
        job = self.engine.find(task_id) if len(task_id) == TASK_ID_LENGTH else None
        if job is None or job.kind != KIND or job.tenant_id != caller.tenant_id or job.account_id != account:
            raise missing or bad_identifier(task_id)
        return job

    def _view(self, job: Job) -> dict[str, Any]:
        """The task as Kazoo shows it; counters come from the engine's checkpoints while it runs."""
        status = status_of(job)
        view: dict[str, Any] = {
            "account_id": job.account_id,
            "auth_account_id": job.params.get("auth_account_id"),
            "action": job.params.get("action"),
            "category": job.params.get("category"),
            "created": gregorian_s(job.created_at),
            "id": job.id,
            "status": status,
            "submit_timestamp": gregorian_s(job.created_at),
        }
        if job.params.get("file_name"):
            view["file_name"] = job.params["file_name"]
        if job.params.get("has_input"):
            view["total_count"] = job.params["total"]
        if job.queued_at:
            progress = job.progress()
            view.update(
                start_timestamp=gregorian_s(job.queued_at),
                success_count=progress.processed,
                failure_count=progress.failed,
            )
            ended = job.ended_at or job.stopped_at
            if ended and status != Status.EXECUTING:
                view["end_timestamp"] = gregorian_s(ended)
                view.setdefault("total_count", progress.processed + progress.failed)
        return view


def status_of(job: Job) -> str:
    """Kazoo's status, from the job's state and (once it is over) its counters."""
    if job.state is JobState.PENDING:
        return Status.EXECUTING if job.queued_at else Status.PENDING
    if job.state is JobState.RUNNING:
        return Status.EXECUTING
    if job.state in (JobState.STOPPING, JobState.STOPPED, JobState.CANCELED):
        return Status.STOPPED
    if job.state is JobState.FAILED:
        return Status.INTERNAL_ERROR
    ok, bad = job.processed, job.failed
    if bad == 0:
        return Status.SUCCESS
    if ok == 0:
        return Status.FAILURE
    return Status.PARTIAL
