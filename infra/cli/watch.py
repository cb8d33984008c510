"""Watching a job of any dialect: a live progress bar (rows done / total, rate, ETA, failures), then its outcome.

Each dialect shows a job its own way, so each has a watcher that turns one poll into a `Snapshot`:

- an errand (`GET /gateway/errand/v1/errands/{id}`) has only a state; its logs give the rows it
  planned (`Job started: N rows ...`), its progress after each chunk (`Progress: X of N rows done, F
  failed`) and, once it ends, its counts (the last line);
- a task (`GET /v2/accounts/{account}/tasks/{id}`) has live success and failure counters;
- a runtime job (`GET /runtime/api/status/jobs/{id}`) has records processed of records counted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from infra.cli.client import ApiError, Client, CliError

# Exit statuses of a watch (and of every command that waits).
EXIT_OK, EXIT_FAILED, EXIT_STOPPED = 0, 1, 3


@dataclass
class Snapshot:
    state: str
    done: int | None = None
    total: int | None = None
    failed: int | None = None
    finished: bool = False
    outcome: int = EXIT_OK  # once finished: EXIT_OK, EXIT_FAILED or EXIT_STOPPED
    summary: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


class ErrandWatcher:
    kind = "errand"
    _STARTED = re.compile(r"Job started: (\d+) rows")
    _PROGRESS = re.compile(r"Progress: (\d+) of (\d+) rows done, (\d+) failed")
    _DONE = re.compile(r"(\d+) (?:rows imported|rows processed|results)")
    _FAILED = re.compile(r"(\d+) (?:rows rejected|failed)")

    def __init__(self, client: Client, errand_id: str) -> None:
        self.client, self.id = client, errand_id
        self.total: int | None = None

    def _logs(self, page: int, size: int) -> dict[str, Any]:
        reply = self.client.call(
            "GET",
            f"/gateway/errand/v1/errands/{self.id}/logs",
            dialect="gateway",
            query=[("page", str(page)), ("size", str(size))],
        )
        data: dict[str, Any] = reply.json()
        return data

    def poll(self) -> Snapshot:
        errand: dict[str, Any] = self.client.call(
            "GET", f"/gateway/errand/v1/errands/{self.id}", dialect="gateway"
        ).json()
        state = str(errand.get("state"))
        if self.total is None:
            for line in self._logs(0, 20).get("results", []):
                found = self._STARTED.search(str(line.get("logMessage", "")))
                if found:
                    self.total = int(found.group(1))
        snap = Snapshot(state=state, total=self.total, raw=errand)
        count = int(self._logs(0, 1).get("page", {}).get("totalElements", 0))
        last = self._logs(count - 1, 1).get("results", []) if count else []
        message = str(last[0].get("logMessage", "")) if last else ""
        if state == "Running":
            moving = self._PROGRESS.search(message)  # the engine logs one line per finished chunk
            if moving:
                snap.done, snap.failed = int(moving.group(1)), int(moving.group(3))
                snap.total = self.total = int(moving.group(2))
            return snap
        snap.finished = True
        done, failed = self._DONE.search(message), self._FAILED.search(message)
        snap.failed = int(failed.group(1)) if failed else (0 if state == "Complete" else None)
        snap.done = int(done.group(1)) + (snap.failed or 0) if done else None
        if snap.done is None and state == "Complete":
            snap.done = self.total
        snap.outcome = {"Complete": EXIT_OK, "Failed": EXIT_FAILED}.get(state, EXIT_STOPPED)
        snap.summary = f"errand {self.id} ({errand.get('name')}) {state}" + (f": {message}" if message else "")
        return snap


class TaskWatcher:
    kind = "task"
    _OUTCOMES = {"success": EXIT_OK, "failure": EXIT_FAILED, "partial": EXIT_FAILED, "internal_error": EXIT_FAILED}

    def __init__(self, client: Client, account: str, task_id: str) -> None:
        self.client, self.account, self.id = client, account, task_id

    def poll(self) -> Snapshot:
        answer = self.client.call("GET", f"/v2/accounts/{self.account}/tasks/{self.id}", dialect="tasks").json()
        task: dict[str, Any] = (answer.get("data") or {}).get("_read_only") or answer.get("data") or {}
        status = str(task.get("status"))
        ok, bad = int(task.get("success_count") or 0), int(task.get("failure_count") or 0)
        total = task.get("total_count")
        snap = Snapshot(
            state=status, done=ok + bad, total=int(total) if total is not None else None, failed=bad, raw=answer
        )
        if status in ("pending", "executing"):
            return snap
        snap.finished = True
        snap.outcome = self._OUTCOMES.get(status, EXIT_STOPPED)
        snap.summary = f"task {self.id} {status}: {ok} rows succeeded, {bad} failed"
        if status != "stopped":
            snap.summary += f" (output: backroom tasks output {self.id})"
        return snap


class RuntimeJobWatcher:
    kind = "job"
    _LIVE = ("PENDING", "RUNNING", "STOPPING")

    def __init__(self, client: Client, job_id: str) -> None:
        self.client, self.id = client, job_id

    def poll(self) -> Snapshot:
        job: dict[str, Any] = self.client.call("GET", f"/runtime/api/status/jobs/{self.id}", dialect="runtime").json()
        status = str(job.get("status"))
        snap = Snapshot(
            state=status,
            done=int(job.get("recordsProcessed") or 0),
            total=int(job.get("recordsCount") or 0) or None,
            raw=job,
        )
        if status in self._LIVE:
            return snap
        snap.finished = True
        errors = bool(job.get("hasErrors"))
        if status == "FINISHED":
            snap.outcome = EXIT_FAILED if errors else EXIT_OK
        else:
            snap.outcome = EXIT_FAILED if status == "FAILED" else EXIT_STOPPED
        reason = (job.get("results") or {}).get("error")
        snap.summary = (
            f"job {self.id} ({job.get('label')}) {status}: {snap.done} of {snap.total or 0} records"
            + (", with errors" if errors else "")
            + (f": {reason}" if reason else "")
        )
        return snap


Watcher = ErrandWatcher | TaskWatcher | RuntimeJobWatcher


def find_job(client: Client, job_id: str, account: str | None) -> Watcher:
    """An errand by its number; otherwise a task of the account, else a job of the runtime dialect."""
    if job_id.isdigit():
        watcher: Watcher = ErrandWatcher(client, job_id)
        watcher.poll()
        return watcher
    if account:
        try:
            watcher = TaskWatcher(client, account, job_id)
            watcher.poll()
            return watcher
        except ApiError as err:
            if err.status not in (400, 404):
                raise
    try:
        watcher = RuntimeJobWatcher(client, job_id)
        watcher.poll()
        return watcher
    except ApiError as err:
        if err.status not in (400, 404):
            raise
    where = "errands, tasks of account " + account if account else "errands"
    raise CliError(f"no job {job_id}: not among the {where}, nor the runtime's jobs", status=404)


class _Count(ProgressColumn):
    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{int(task.total)}"
        return Text(f"{int(task.completed)}/{total} rows")


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed and task.completed:
            speed = task.completed / task.elapsed  # too few samples for rich's estimate: the average
        return Text("-- rows/s" if speed is None else f"{speed:,.0f} rows/s")


def watch(
    watcher: Watcher,
    console: Console,
    *,
    interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Snapshot:
    """Poll until the job ends, drawing the bar on `console`; returns the last snapshot."""
    if not console.is_terminal:
        console.width = max(console.width, 120)  # a log file or a test's capture: keep the bar on one line
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        TaskProgressColumn(),
        _Count(),
        _Rate(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[failures]}"),
        console=console,
        transient=False,
    )
    label = f"{watcher.kind} {watcher.id}"
    with progress:
        bar = progress.add_task(label, total=None, failures="")
        last_state, last_print = "", 0.0
        while True:
            snap = watcher.poll()
            if snap.finished and snap.outcome == EXIT_OK:
                snap.total = snap.total if snap.total is not None else (snap.done or 0)
                snap.done = snap.total  # the bar reaches its end on success
            failures = "" if snap.failed is None else f"{snap.failed} failed"
            progress.update(
                bar,
                total=snap.total if snap.total else (1 if snap.finished else None),
                completed=(snap.done or 0) if snap.total else (1 if snap.finished and snap.outcome == EXIT_OK else 0),
                description=f"{label} {snap.state}",
                failures=failures,
            )
            if snap.state == "pending" and last_state != "pending":
                console.print(f"{label} is pending: it runs once started (backroom tasks start {watcher.id})")
            now = time.monotonic()
            if not console.is_terminal and (snap.state != last_state or now - last_print > 10) and not snap.finished:
                shown = f"{snap.done or 0}/{snap.total if snap.total is not None else '?'} rows"
                console.print(f"{label} {snap.state}: {shown}", highlight=False)
                last_print = now
            last_state = snap.state
            if snap.finished:
                return snap
            sleep(interval)
