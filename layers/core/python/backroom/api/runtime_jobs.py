"""The runtime dialect's jobs: which a caller sees and may command, the listing's filters, log queries.

Only runtime jobs (`Job.is_runtime`: no dialect scope) are shown: gateway errands, their batches'
calculations and account tasks are another tenant's business as far as `/status/jobs` goes (404).
A developer sees and commands every job of its tenant, a user only the jobs it ran (another user's
job is a 404 to read, a 403 to command, as the spec's error tables say). Commands apply to root jobs
only; a job in the wrong state, of a kind that cannot stop, or not a root is a `WrongState`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from backroom.clock import now_ms, period_span
from backroom.errors import FieldError, Forbidden, Invalid, NotFound
from backroom.identity.models import Caller
from backroom.jobs.engine import JobEngine, WrongState
from backroom.jobs.models import Job, JobState, LogEntry
from backroom.params import OFFSET_MOST, millis, whole

SIZE_DEFAULT, SIZE_MOST = 20, 1000
LOG_SIZE_DEFAULT, LOG_SIZE_MOST = 200, 1000
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
_DATE_FILTERS = {
    "startFrom": ("started_at", "from"),
    "startTo": ("started_at", "to"),
    "endFrom": ("ended_at", "from"),
    "endTo": ("ended_at", "to"),
    "createFrom": ("created_at", "from"),
    "createTo": ("created_at", "to"),
}
_OFFSET = re.compile(r"^[0-9A-Za-z-]{1,64}$")


def _bad(name: str, message: str) -> Invalid:
    return Invalid(f"Invalid parameter {name}: {message}", errors=[FieldError(field=name, message=message)])


def _listed(params: Mapping[str, str], name: str) -> set[str] | None:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return None
    return {v.strip() for v in raw.split(",") if v.strip()}


def time_range(params: Mapping[str, str], now: int | None = None) -> tuple[int | None, int | None]:
    """The `period`, else `from` / `to`, of a log query (ms since Epoch, both inclusive)."""
    if params.get("period"):
        return period_span(params["period"], now_ms() if now is None else now)
    return millis(params.get("from"), "from"), millis(params.get("to"), "to")


@dataclass
class JobPage:
    total: int
    jobs: list[Job]
    offset: str | None


@dataclass
class LogPage:
    total: int
    entries: list[LogEntry]
    offset: str | None


class RuntimeJobs:
    def __init__(self, engine: JobEngine) -> None:
        self.engine = engine

    # Reading ------------------------------------------------------------------
    def get(self, caller: Caller, job_id: str) -> Job:
        job = self.engine.find(job_id)
        if job is None or job.tenant_id != caller.tenant_id or not job.is_runtime or not self._sees(caller, job):
            raise NotFound(f"Job {job_id} does not exist")
        return job

    @staticmethod
    def _sees(caller: Caller, job: Job) -> bool:
        return caller.is_developer or job.created_by == caller.user_id

    def list(self, caller: Caller, params: Mapping[str, str]) -> JobPage:
        """`GET /status/jobs`: newest first, a Query on the tenant's runtime jobs by creation time.

        The creation range is the key range; the other filters are checked on the thin items read
        (the listing projects a few attributes), then the page's jobs are read whole in one batch.
        """
        size = whole(params.get("_size"), "_size", 1, SIZE_MOST) or SIZE_DEFAULT
        keep = self._filter(caller, params)
        offset = params.get("_offset") or None
        if offset is not None and not _OFFSET.match(offset):
            raise _bad("_offset", "is not an offset this listing gave")
        bounds = {name: millis(params.get(name), name) for name in _DATE_FILTERS}
        thin = self.engine.runtime_jobs(
            caller.tenant_id, created_from=bounds["createFrom"], created_to=bounds["createTo"]
        )
        total, passed, more = 0, offset is None, False
        page: list[str] = []
        for item in thin:
            if not keep(item):
                continue
            total += 1
            if not passed:
                passed = item["id"] == offset
                continue
            if len(page) < size:
                page.append(item["id"])
            else:
                more = True
        if not passed:
            raise _bad("_offset", "names no job of this listing")
        return JobPage(total=total, jobs=self.engine.jobs(page), offset=page[-1] if more and page else None)

    def _filter(self, caller: Caller, params: Mapping[str, str]) -> Callable[[Mapping[str, Any]], bool]:
        types = _listed(params, "type")
        states = _listed(params, "status")
        if states is not None:
            unknown = sorted(s for s in states if s not in JobState.__members__)
            if unknown:
                raise _bad("status", f"unknown status {', '.join(unknown)}")
        errors_wanted: bool | None = None
        if params.get("hasErrors"):
            if params["hasErrors"].lower() not in ("true", "false"):
                raise _bad("hasErrors", "must be true or false")
            errors_wanted = params["hasErrors"].lower() == "true"
        ranges = [(attr, side, millis(params.get(name), name)) for name, (attr, side) in _DATE_FILTERS.items()]
        ranges = [r for r in ranges if r[2] is not None]

        def keep(item: Mapping[str, Any]) -> bool:
            if not caller.is_developer and item.get("created_by") != caller.user_id:
                return False
            if types is not None and (item.get("type") or item.get("kind")) not in types:
                return False
            if states is not None and item.get("state") not in states:
                return False
            if errors_wanted is not None and _has_errors(item) != errors_wanted:
                return False
            for attr, side, bound in ranges:
                value = item.get(attr)
                if value is None or (value < bound if side == "from" else value > bound):
                    return False
            return True

        return keep

    def logs(self, caller: Caller, job_id: str, params: Mapping[str, str]) -> LogPage:
        """`GET /status/jobs/{id}/logs`: oldest first; the time range is a key range of the job's partition."""
        job = self.get(caller, job_id)
        size = whole(params.get("_size"), "_size", 1, LOG_SIZE_MOST) or LOG_SIZE_DEFAULT
        lo, hi = time_range(params)
        levels = _listed(params, "level")
        if levels is not None:
            levels = {level.upper() for level in levels}
            unknown = sorted(level for level in levels if level not in LEVELS)
            if unknown:
                raise _bad("level", f"unknown level {', '.join(unknown)}; use {', '.join(LEVELS)}")
        text = (params.get("message") or "").lower()
        skip = whole(params.get("_offset"), "_offset", 0, OFFSET_MOST) or 0
        matched = _matching(self.engine.journal.logs_between(job.id, lo, hi), lo, hi, levels, text)
        total, entries = 0, []
        for entry in matched:
            if skip <= total < skip + size:
                entries.append(entry)
            total += 1
        following = skip + len(entries)
        return LogPage(total=total, entries=entries, offset=str(following) if following < total else None)

    # Commands -----------------------------------------------------------------
    def command(self, caller: Caller, job_id: str, verb: str) -> Job:
        """`stop`, `forceStop`, `cancel` or `resume` a root job the caller may command."""
        job = self.engine.find(job_id)
        if job is None or job.tenant_id != caller.tenant_id or not job.is_runtime:
            raise NotFound(f"Job {job_id} does not exist")
        if not self._sees(caller, job):
            raise Forbidden(f"You may not {verb} this job: you can only {verb} jobs you ran")
        if job.parent_id:
            raise WrongState(f"Job {job_id} is not a root job; {verb} its root job {job.root_id or job.parent_id}")
        act = {
            "stop": self.engine.stop,
            "forceStop": self.engine.force_stop,
            "cancel": self.engine.cancel,
            "resume": self.engine.resume,
        }[verb]
        return act(job_id, caller.tenant_id)


def _has_errors(item: Mapping[str, Any]) -> bool:
    return bool(item.get("failed")) or item.get("error") is not None


def _matching(
    entries: Iterator[LogEntry], lo: int | None, hi: int | None, levels: set[str] | None, text: str
) -> Iterator[LogEntry]:
    for entry in entries:
        if (lo is not None and entry.timestamp < lo) or (hi is not None and entry.timestamp > hi):
            continue
        if levels is not None and entry.level not in levels:
            continue
        if text and text not in entry.message.lower():
            continue
        yield entry
