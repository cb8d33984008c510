"""The job engine's data access: a job, its chunks and its logs share one partition key. This module
keeps jobs, their counters, listings, per-record results and logs; `jobs/chunks.py` the chunks and
their leases and checkpoints.

| item | pk | sk | notes |
| --- | --- | --- | --- |
| job | `JOB#<id>` | `JOB` | gsi1 `JOBS#<tenant>` / `<created, 13 digits>#<id>` for runtime jobs only |
| chunk | `JOB#<id>` | `CHUNK#<index>` | checkpoint, counters, lease (owner, expiry) |
| log line | `JOB#<id>` | `LOG#<time ns>#<random>` | |
| result entry | `JOBRES#<id>` | `<section>#<order>` | per-record results, at most 1,000 a job |

| counters | `JOB#<id>` | `COUNTERS` | `processed`, `failed`, `chunks_done`, `active_chunks` |

Counters: a checkpoint moves the chunk's `next_row` and counters and adds the same counts to the
job's counters item (and `chunks_done` on a chunk's last checkpoint) in one transaction, conditioned
on the chunk's lease and on the job item being RUNNING or STOPPING. So the job's two items always
hold exact totals and no reader needs the chunks; `get` reads both with one Query. The counters have
their own item so that the job item, and its listing entry (gsi1, shared by the tenant's jobs),
change only on a transition: a big job's checkpoints write no index. A final transition copies the
counts onto the job item (what the listing's `hasErrors` reads for an ended job).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from typing import Any, TypeVar

from backroom import keys
from backroom.dynamo import ConditionFailed, Table, TransactionFailed, Write, again_on_conflict
from backroom.jobs.models import RESULTS_MOST, Job, JobState, LogEntry

LIVE_WORK = (JobState.RUNNING, JobState.STOPPING)

# The job's running counters: their own item, so that the job item (and its listing entry in gsi1)
# changes only when the job changes state, not at every checkpoint.
_COUNTER_NAMES = ("processed", "failed", "chunks_done", "active_chunks")
T = TypeVar("T")
# States in which no worker holds the job, so it may be deleted.
_IDLE = (JobState.FINISHED, JobState.FAILED, JobState.CANCELED, JobState.STOPPED)


def _merged(item: Mapping[str, Any], counters: Mapping[str, Any] | None) -> Job:
    """The job item with its counters item's values (the counters item is the truth while it runs)."""
    data = dict(item)
    for name in _COUNTER_NAMES:
        if counters and name in counters:
            data[name] = counters[name]
    return Job.model_validate(data)


def transact(table: Table, writes: Sequence[Write]) -> bool:
    """All or nothing; False when a condition failed (tried again while it meets another transaction)."""
    try:
        again_on_conflict(lambda: table.transact(writes))
    except TransactionFailed:
        return False
    return True


def live_states(values: dict[str, Any], states: Sequence[JobState]) -> str:
    for i, state in enumerate(states):
        values[f":live{i}"] = state.value
    return f"#state IN ({', '.join(f':live{i}' for i in range(len(states)))})"


def _job_fields(job: Job) -> dict[str, Any]:
    data = job.model_dump(mode="json")
    data.update(pk=keys.job(job.id), sk=keys.JOB_SK)
    if job.is_runtime:  # the runtime dialect's listing, newest first by a Query on the tenant's key
        data.update(gsi1pk=keys.runtime_jobs(job.tenant_id), gsi1sk=keys.created_order(job.created_at, job.id))
    if job.scope:
        data.update(gsi2pk=job.scope, gsi2sk=job.scope_order or keys.created_order(job.created_at, job.id))
    return data


class JobRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    # Jobs ----------------------------------------------------------------
    def create(self, job: Job) -> None:
        self.table.put(_job_fields(job), condition="attribute_not_exists(pk)")

    def get(self, job_id: str) -> Job | None:
        """The job with its live counters: one Query reads its item and its counters item."""
        items = {
            i["sk"]: i
            for i in self.table.query(
                "pk = :p AND sk BETWEEN :c AND :j",
                {":p": keys.job(job_id), ":c": keys.COUNTERS_SK, ":j": keys.JOB_SK},
                consistent=True,
            )
        }
        item = items.get(keys.JOB_SK)
        return _merged(item, items.get(keys.COUNTERS_SK)) if item else None

    def state(self, job_id: str) -> JobState | None:
        item = self.table.get(keys.job(job_id), keys.JOB_SK, attributes=["state"])
        return JobState(item["state"]) if item else None

    def transition(
        self,
        job_id: str,
        from_states: tuple[JobState, ...],
        to_state: JobState,
        *,
        idle: bool = False,
        reset_active: bool = False,
        **fields: Any,
    ) -> Job | None:
        """Move a job to `to_state` only if it is in one of `from_states` (and, with `idle`, no delivery
        holds a chunk's lease; with `reset_active`, forgetting every hold); None when it was not."""
        names = {"#s": "state"}
        values: dict[str, Any] = {":to": to_state.value}
        sets = ["#s = :to"]
        for i, (name, value) in enumerate(fields.items()):
            names[f"#f{i}"] = name
            values[f":f{i}"] = value
            sets.append(f"#f{i} = :f{i}")
        allowed = []
        for i, state in enumerate(from_states):
            values[f":from{i}"] = state.value
            allowed.append(f":from{i}")
        condition = f"#s IN ({', '.join(allowed)})"
        update = "SET " + ", ".join(sets)
        if not idle and not reset_active:
            try:
                item = again_on_conflict(
                    lambda: self.table.update(
                        keys.job(job_id), keys.JOB_SK, update, names=names, values=values, condition=condition
                    )
                )
            except ConditionFailed:
                return None
            return _merged(item, self.table.get(keys.job(job_id), keys.COUNTERS_SK))
        # With the counters item in the same transaction: no chunk held (idle), or every hold dropped.
        counters = (
            Write(
                key=(keys.job(job_id), keys.COUNTERS_SK),
                check=True,
                condition="attribute_not_exists(#act) OR #act <= :zero",
                names={"#act": "active_chunks"},
                values={":zero": 0},
            )
            if idle
            else Write(
                key=(keys.job(job_id), keys.COUNTERS_SK),
                update="SET #act = :zero",
                names={"#act": "active_chunks"},
                values={":zero": 0},
            )
        )
        job_write = Write(
            key=(keys.job(job_id), keys.JOB_SK), update=update, condition=condition, names=names, values=values
        )
        if not transact(self.table, [job_write, counters]):
            return None
        return self.get(job_id)

    def note_error(self, job_id: str, error: str) -> None:
        """Why a delivery of one of the job's messages crashed (the dead-letter queue's reason)."""
        with suppress(ConditionFailed):
            self.table.update(
                keys.job(job_id),
                keys.JOB_SK,
                "SET last_error = :e",
                values={":e": error[:1000]},
                condition="attribute_exists(pk)",
            )

    def delete(self, job_id: str) -> bool:
        """Delete a job no worker can be touching (ended, stopped, or never started); False otherwise."""
        values = {f":s{i}": s.value for i, s in enumerate(_IDLE)}
        values[":pending"] = JobState.PENDING.value
        try:
            self.table.delete(
                keys.job(job_id),
                keys.JOB_SK,
                condition=f"#s IN ({', '.join(values)}) OR (#s = :pending AND attribute_not_exists(queued_at))",
                names={"#s": "state"},
                values=values,
            )
        except ConditionFailed:
            return False
        return True

    def delete_rest(self, job_id: str) -> None:
        """The chunks and logs left once a job's own item is gone."""
        for pk in (keys.job(job_id), keys.job_results(job_id)):
            left = [(i["pk"], i["sk"]) for i in self.table.query("pk = :p", {":p": pk}, attributes=["pk", "sk"])]
            self.table.batch_write(deletes=left)

    def mark_queued(self, job_id: str, now: int) -> bool:
        """Record that a pending job was started; False if it already was."""
        try:
            self.table.update(
                keys.job(job_id),
                keys.JOB_SK,
                "SET queued_at = :now",
                names={"#s": "state"},
                values={":now": now, ":pending": JobState.PENDING.value},
                condition="#s = :pending AND attribute_not_exists(queued_at)",
            )
        except ConditionFailed:
            return False
        return True

    def find_in_scope(self, scope: str, order: str) -> Job | None:
        items = list(self.table.query("gsi2pk = :p AND gsi2sk = :o", {":p": scope, ":o": order}, index="gsi2", limit=1))
        return Job.model_validate(items[0]) if items else None

    def by_alias(self, alias: str) -> Job | None:
        item = self.table.get(*keys.alias(alias), attributes=["job_id"])
        return self.get(item["job_id"]) if item else None

    def last_seq(self, counter: str) -> int:
        """The last number a counter gave (0 for a new counter)."""
        item = self.table.get(*keys.counter(counter), attributes=["value"])
        return int(item["value"]) if item else 0

    def create_numbered(self, job: Job, counter: str, seq: int, alias: str) -> bool:
        """Take number `seq` of `counter` and write the job and its alias, all or nothing.

        The counter moves only from `seq - 1`: False when another writer took `seq` first. One
        transaction, so a crash can leave no number without its job (no hole in a dense listing).
        """
        taken = "attribute_not_exists(pk)" if seq == 1 else "#v = :prev"
        try:
            self.table.transact(
                [
                    Write(
                        item={"pk": keys.counter(counter)[0], "sk": keys.counter(counter)[1], "value": seq},
                        condition=taken,
                        names={"#v": "value"} if seq > 1 else None,
                        values={":prev": seq - 1} if seq > 1 else None,
                    ),
                    Write(
                        item={"pk": keys.alias(alias)[0], "sk": keys.alias(alias)[1], "job_id": job.id},
                        condition="attribute_not_exists(pk)",
                    ),
                    Write(item=_job_fields(job), condition="attribute_not_exists(pk)"),
                ]
            )
        except TransactionFailed:
            return False
        return True

    # Per-record results ----------------------------------------------------
    def put_results(self, job_id: str, entries: Mapping[str, Any], *, section: str = "map") -> None:
        """Result entries keyed by their order (`<position>` of the row, so a replay writes the same items).

        `entries` maps an order key (a zero-padded row position) to `{"key": ..., "value": ...}`.
        """
        self.table.batch_write(puts=[w.item for w in self.result_writes(job_id, entries, section=section) if w.item])

    @staticmethod
    def result_writes(job_id: str, entries: Mapping[str, Any], *, section: str = "map") -> list[Write]:
        """The puts of `put_results`, for a transaction of the caller's (an entry committed with its row)."""
        return [
            Write(
                item={
                    "pk": keys.job_results(job_id),
                    "sk": keys.job_result(section, order),
                    "entry": json.dumps(entry, default=str),
                }
            )
            for order, entry in entries.items()
        ]

    def results(
        self, job_id: str, most: int = RESULTS_MOST, most_bytes: int | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """A job's result entries in order, at most `most`: (section, entry); with `most_bytes`, those whose
        JSON fits it, read no further (a page of DynamoDB's past it at most)."""
        spent = 0
        for item in self.table.query("pk = :p", {":p": keys.job_results(job_id)}, limit=most):
            spent += len(item["entry"])
            if most_bytes is not None and spent > most_bytes:
                return
            yield item["sk"].split("#", 1)[0], json.loads(item["entry"])

    # Runtime listing --------------------------------------------------------
    def runtime_jobs(
        self, tenant_id: str, *, created_from: int | None = None, created_to: int | None = None
    ) -> list[dict[str, Any]]:
        """A tenant's runtime jobs newest first (thin: what the listing filters on), created in a range.

        A job still live has its `failed` count from its counters item (read in batches, for those only).
        """
        lo = f"{created_from or 0:013d}#"
        hi = f"{created_to if created_to is not None else 9_999_999_999_999:013d}#~"
        thin = list(
            self.table.query(
                "gsi1pk = :p AND gsi1sk BETWEEN :lo AND :hi",
                {":p": keys.runtime_jobs(tenant_id), ":lo": lo, ":hi": hi},
                index="gsi1",
                forward=False,
                attributes=[
                    "id",
                    "type",
                    "kind",
                    "state",
                    "error",
                    "failed",
                    "created_by",
                    "created_at",
                    "started_at",
                    "ended_at",
                    "parent_id",
                ],
                page_size=200,
            )
        )
        live = [i["id"] for i in thin if not JobState(i["state"]).is_final]
        if live:
            counters = self.table.batch_get([(keys.job(j), keys.COUNTERS_SK) for j in live], attributes=["failed"])
            for item in thin:
                held = counters.get((keys.job(item["id"]), keys.COUNTERS_SK))
                if held is not None:
                    item["failed"] = held.get("failed", 0)
        return thin

    def jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """Jobs by id with their counters, in that order (those found): one BatchGetItem."""
        wanted = [(keys.job(j), sk) for j in job_ids for sk in (keys.JOB_SK, keys.COUNTERS_SK)]
        found = self.table.batch_get(wanted)
        return [
            _merged(found[(keys.job(j), keys.JOB_SK)], found.get((keys.job(j), keys.COUNTERS_SK)))
            for j in job_ids
            if (keys.job(j), keys.JOB_SK) in found
        ]

    # Logs ----------------------------------------------------------------
    def add_log(self, job_id: str, entry: LogEntry, *, at_ns: int | None = None) -> None:
        """A log line, ordered by `at_ns` (when what it says was true; default now)."""
        sk = keys.job_log(at_ns or time.time_ns(), secrets.token_hex(3))
        self.table.put({"pk": keys.job(job_id), "sk": sk, **entry.model_dump(mode="json")})

    def logs(self, job_id: str, *, limit: int | None = None) -> list[LogEntry]:
        items = self.table.query(
            "pk = :p AND begins_with(sk, :l)", {":p": keys.job(job_id), ":l": keys.LOGS}, limit=limit
        )
        return [LogEntry.model_validate(i) for i in items]

    def logs_between(self, job_id: str, lo_ms: int | None, hi_ms: int | None) -> Iterator[LogEntry]:
        """A job's log lines written from `lo_ms` to `hi_ms` (inclusive), oldest first: a key range."""
        lo, hi = keys.job_logs_between(lo_ms, hi_ms)
        items = self.table.query(
            "pk = :p AND sk BETWEEN :lo AND :hi", {":p": keys.job(job_id), ":lo": lo, ":hi": hi}, page_size=200
        )
        return (LogEntry.model_validate(i) for i in items)

    def count_logs(self, job_id: str) -> int:
        return self.table.count("pk = :p AND begins_with(sk, :l)", {":p": keys.job(job_id), ":l": keys.LOGS})

    def page_scope(self, scope: str, limit: int, *, after: str | None = None) -> tuple[list[Job], str | None]:
        """Up to `limit` jobs of a scope, newest first, from after `after`; and where the next page starts."""
        start = None
        if after:
            found = self.find_in_scope(scope, after)
            if found is None:
                return [], None
            start = {"pk": keys.job(found.id), "sk": keys.JOB_SK, "gsi2pk": scope, "gsi2sk": after}
        items = list(
            self.table.query("gsi2pk = :p", {":p": scope}, index="gsi2", forward=False, limit=limit + 1, start=start)
        )
        more = len(items) > limit
        items = items[:limit]
        return [Job.model_validate(i) for i in items], (items[-1]["gsi2sk"] if more and items else None)

    def list_scope_between(self, scope: str, low: str, high: str) -> list[Job]:
        items = self.table.query(
            "gsi2pk = :p AND gsi2sk BETWEEN :lo AND :hi", {":p": scope, ":lo": low, ":hi": high}, index="gsi2"
        )
        return [Job.model_validate(i) for i in items]
