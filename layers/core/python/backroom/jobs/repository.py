"""The job engine's data access: a job, its chunks and its logs share one partition key."""

from __future__ import annotations

import secrets
import time
from contextlib import suppress
from typing import Any

from backroom.dynamo import ConditionFailed, Table, TransactionFailed, Write
from backroom.jobs.models import Chunk, ChunkPlan, ChunkStatus, Job, JobState, LogEntry

_JOB_SK = "JOB"
# States in which no worker holds the job, so it may be deleted.
_IDLE = (JobState.FINISHED, JobState.FAILED, JobState.CANCELED, JobState.STOPPED)


def _pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def _chunk_sk(index: int) -> str:
    return f"CHUNK#{index:06d}"


def _job_fields(job: Job) -> dict[str, Any]:
    data = job.model_dump(mode="json")
    data.update(pk=_pk(job.id), sk=_JOB_SK, gsi1pk=f"JOBS#{job.tenant_id}", gsi1sk=f"{job.created_at:013d}#{job.id}")
    if job.scope:
        data.update(gsi2pk=job.scope, gsi2sk=job.scope_order or f"{job.created_at:013d}#{job.id}")
    return data


class JobRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    # Jobs ----------------------------------------------------------------
    def create(self, job: Job) -> None:
        self.table.put(_job_fields(job), condition="attribute_not_exists(pk)")

    def get(self, job_id: str) -> Job | None:
        item = self.table.get(_pk(job_id), _JOB_SK)
        return Job.model_validate(item) if item else None

    def state(self, job_id: str) -> JobState | None:
        item = self.table.get(_pk(job_id), _JOB_SK, attributes=["state"])
        return JobState(item["state"]) if item else None

    def transition(
        self, job_id: str, from_states: tuple[JobState, ...], to_state: JobState, **fields: Any
    ) -> Job | None:
        """Move a job to `to_state` only if it is in one of `from_states`; None when it was not."""
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
        try:
            item = self.table.update(
                _pk(job_id),
                _JOB_SK,
                "SET " + ", ".join(sets),
                names=names,
                values=values,
                condition=f"#s IN ({', '.join(allowed)})",
            )
        except ConditionFailed:
            return None
        return Job.model_validate(item)

    def delete(self, job_id: str) -> bool:
        """Delete a job no worker can be touching (ended, stopped, or never started); False otherwise."""
        values = {f":s{i}": s.value for i, s in enumerate(_IDLE)}
        values[":pending"] = JobState.PENDING.value
        try:
            self.table.delete(
                _pk(job_id),
                _JOB_SK,
                condition=f"#s IN ({', '.join(values)}) OR (#s = :pending AND attribute_not_exists(queued_at))",
                names={"#s": "state"},
                values=values,
            )
        except ConditionFailed:
            return False
        return True

    def delete_rest(self, job_id: str) -> None:
        """The chunks and logs left once a job's own item is gone."""
        keys = [(i["pk"], i["sk"]) for i in self.table.query("pk = :p", {":p": _pk(job_id)}, attributes=["pk", "sk"])]
        self.table.batch_write(deletes=keys)

    def mark_queued(self, job_id: str, now: int) -> bool:
        """Record that a pending job was started; False if it already was."""
        try:
            self.table.update(
                _pk(job_id),
                _JOB_SK,
                "SET queued_at = :now",
                names={"#s": "state"},
                values={":now": now, ":pending": JobState.PENDING.value},
                condition="#s = :pending AND attribute_not_exists(queued_at)",
            )
        except ConditionFailed:
            return False
        return True

    def count_scope(self, scope: str) -> int:
        return self.table.count("gsi2pk = :p", {":p": scope}, index="gsi2")

    def find_in_scope(self, scope: str, order: str) -> Job | None:
        items = list(self.table.query("gsi2pk = :p AND gsi2sk = :o", {":p": scope, ":o": order}, index="gsi2", limit=1))
        return Job.model_validate(items[0]) if items else None

    def by_alias(self, alias: str) -> Job | None:
        item = self.table.get(f"ALIAS#{alias}", "ALIAS", attributes=["job_id"])
        return self.get(item["job_id"]) if item else None

    def last_seq(self, counter: str) -> int:
        """The last number a counter gave (0 for a new counter)."""
        item = self.table.get(f"COUNTER#{counter}", "COUNTER", attributes=["value"])
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
                        item={"pk": f"COUNTER#{counter}", "sk": "COUNTER", "value": seq},
                        condition=taken,
                        names={"#v": "value"} if seq > 1 else None,
                        values={":prev": seq - 1} if seq > 1 else None,
                    ),
                    Write(
                        item={"pk": f"ALIAS#{alias}", "sk": "ALIAS", "job_id": job.id},
                        condition="attribute_not_exists(pk)",
                    ),
                    Write(item=_job_fields(job), condition="attribute_not_exists(pk)"),
                ]
            )
        except TransactionFailed:
            return False
        return True

    # Chunks --------------------------------------------------------------
    def create_chunk(self, job_id: str, plan: ChunkPlan) -> None:
        chunk = Chunk(job_id=job_id, **plan.model_dump())
        data = {"pk": _pk(job_id), "sk": _chunk_sk(plan.index), **chunk.model_dump(mode="json")}
        with suppress(ConditionFailed):  # planned before: keep its checkpoint
            self.table.put(data, condition="attribute_not_exists(pk)")

    def get_chunk(self, job_id: str, index: int) -> Chunk | None:
        item = self.table.get(_pk(job_id), _chunk_sk(index))
        return Chunk.model_validate(item) if item else None

    def chunks(self, job_id: str) -> list[Chunk]:
        items = self.table.query(
            "pk = :p AND begins_with(sk, :c)", {":p": _pk(job_id), ":c": "CHUNK#"}, consistent=True
        )
        return [Chunk.model_validate(i) for i in items]

    def set_chunk_status(self, job_id: str, index: int, status: ChunkStatus) -> bool:
        """Set a chunk's status unless it is done; False when it is done."""
        try:
            self.table.update(
                _pk(job_id),
                _chunk_sk(index),
                "SET #st = :st",
                names={"#st": "status"},
                values={":st": status.value, ":done": ChunkStatus.DONE.value},
                condition="#st <> :done",
            )
        except ConditionFailed:
            return False
        return True

    def advance_chunk(self, chunk: Chunk, *, rows: int, ok: int, bad: int, last: bool) -> bool:
        """Move a chunk's checkpoint by `rows` and its counters with it, only from where it stood.

        One conditional write on one item: the counters can never drift from the checkpoint.
        False when another delivery of the chunk moved it first.
        """
        status = ChunkStatus.DONE if last else ChunkStatus.RUNNING
        try:
            self.table.update(
                _pk(chunk.job_id),
                _chunk_sk(chunk.index),
                "SET #next = :next, #st = :st ADD #ok :ok, #bad :bad",
                names={"#st": "status", "#next": "next_row", "#ok": "processed", "#bad": "failed"},
                values={
                    ":next": chunk.next_row + rows,
                    ":expected": chunk.next_row,
                    ":st": status.value,
                    ":ok": ok,
                    ":bad": bad,
                    ":done": ChunkStatus.DONE.value,
                },
                condition="#next = :expected AND #st <> :done",
            )
        except ConditionFailed:
            return False
        return True

    # Logs ----------------------------------------------------------------
    def add_log(self, job_id: str, entry: LogEntry) -> None:
        sk = f"LOG#{time.time_ns():020d}#{secrets.token_hex(3)}"
        self.table.put({"pk": _pk(job_id), "sk": sk, **entry.model_dump(mode="json")})

    def logs(self, job_id: str, *, limit: int | None = None) -> list[LogEntry]:
        items = self.table.query("pk = :p AND begins_with(sk, :l)", {":p": _pk(job_id), ":l": "LOG#"}, limit=limit)
        return [LogEntry.model_validate(i) for i in items]

    def count_logs(self, job_id: str) -> int:
        return self.table.count("pk = :p AND begins_with(sk, :l)", {":p": _pk(job_id), ":l": "LOG#"})

    def page_scope(self, scope: str, limit: int, *, after: str | None = None) -> tuple[list[Job], str | None]:
        """Up to `limit` jobs of a scope, newest first, from after `after`; and where the next page starts."""
        start = None
        if after:
            found = self.find_in_scope(scope, after)
            if found is None:
                return [], None
            start = {"pk": _pk(found.id), "sk": _JOB_SK, "gsi2pk": scope, "gsi2sk": after}
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
