"""A job's journal: its log lines and its per-record results, written by the engine and by kinds."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from backroom.clock import now_ms
from backroom.dynamo import Write
from backroom.jobs.models import RESULTS_MOST, Job, LogEntry
from backroom.jobs.repository import JobRepository


class JobJournal:
    def __init__(self, repo: JobRepository) -> None:
        self.repo = repo

    # Log lines -------------------------------------------------------------
    def log(
        self, job_id: str, message: str, *, level: str = "INFO", status: str = "", at_ns: int | None = None
    ) -> None:
        """A line in the job's logs; `at_ns` places it at the moment what it says was read (default now)."""
        at_ms = at_ns // 1_000_000 if at_ns else now_ms()
        self.repo.add_log(job_id, LogEntry(timestamp=at_ms, level=level, message=message, status=status), at_ns=at_ns)

    def logs(self, job_id: str, *, limit: int | None = None) -> list[LogEntry]:
        """A job's log lines, oldest first."""
        return self.repo.logs(job_id, limit=limit)

    def count_logs(self, job_id: str) -> int:
        return self.repo.count_logs(job_id)

    def logs_between(self, job_id: str, lo_ms: int | None, hi_ms: int | None) -> Iterator[LogEntry]:
        """A job's log lines from `lo_ms` to `hi_ms`, oldest first (a key range of its partition)."""
        return self.repo.logs_between(job_id, lo_ms, hi_ms)

    # Per-record results ------------------------------------------------------
    def put_results(self, job_id: str, entries: Mapping[int, tuple[str, Any]], *, section: str = "map") -> None:
        """Per-record results of rows by position: `{position: (key, value)}`; positions from 1,000 on are
        left out, so a job keeps the results of its first 1,000 rows, whichever worker ran them.

        Section "map" makes `results[key] = value`; another section makes `results[section]` a list,
        in position order. Each entry is its own item: no item nears DynamoDB's 400 KB.
        """
        kept = _kept(entries)
        if kept:
            self.repo.put_results(job_id, kept, section=section)

    def result_writes(self, job_id: str, entries: Mapping[int, tuple[str, Any]]) -> dict[str, list[Write]]:
        """`put_results`' map entries as writes, by their key (a record's id), for the transaction that
        commits their rows: an entry is kept exactly when its row's work is."""
        kept = _kept(entries)
        by_key: dict[str, list[Write]] = {}
        for entry, write in zip(kept.values(), self.repo.result_writes(job_id, kept), strict=True):
            by_key.setdefault(str(entry["key"]), []).append(write)
        return by_key

    def results(self, job: Job, most_bytes: int | None = None) -> dict[str, Any]:
        """The job's results: its own (small) `results` and its per-record entries, at most 1,000 (and, with
        `most_bytes`, those the first `most_bytes` of their JSON hold: an answer's share, read no further)."""
        merged: dict[str, Any] = dict(job.results)
        for section, entry in self.repo.results(job.id, most_bytes=most_bytes):
            if section == "map":
                merged[str(entry["key"])] = entry["value"]
            else:
                merged.setdefault(section, []).append(entry["value"])
        if job.error is not None:
            merged["error"] = job.error
        return merged


def _kept(entries: Mapping[int, tuple[str, Any]]) -> dict[str, dict[str, Any]]:
    """The entries of the job's first RESULTS_MOST rows, by their order key (the zero-padded position)."""
    return {
        f"{position:010d}": {"key": key, "value": value}
        for position, (key, value) in entries.items()
        if position < RESULTS_MOST
    }
