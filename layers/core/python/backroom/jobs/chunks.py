"""A job's chunks: their checkpoints, counters and leases (a chunk is `JOB#<id>` / `CHUNK#<index>`, in its
job's partition; `backroom.jobs.repository`'s docstring says how a checkpoint moves the job's counters).

A delivery that runs a chunk takes its lease (an owner token and an expiry, renewed at each checkpoint);
a checkpoint is a transaction conditioned on that lease and on the job being RUNNING or STOPPING, so a
holder whose lease was taken over or revoked commits nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

from backroom import keys
from backroom.dynamo import ConditionFailed, Table, Write
from backroom.jobs.models import Chunk, ChunkPlan, ChunkStatus, JobState
from backroom.jobs.repository import LIVE_WORK, live_states, transact


class ChunkRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    def create_chunk(self, job_id: str, plan: ChunkPlan) -> None:
        chunk = Chunk(job_id=job_id, **plan.model_dump())
        data = {"pk": keys.job(job_id), "sk": keys.chunk(plan.index), **chunk.model_dump(mode="json")}
        with suppress(ConditionFailed):  # planned before: keep its checkpoint
            self.table.put(data, condition="attribute_not_exists(pk)")

    def get_chunk(self, job_id: str, index: int) -> Chunk | None:
        item = self.table.get(keys.job(job_id), keys.chunk(index))
        return Chunk.model_validate(item) if item else None

    def chunks(self, job_id: str) -> list[Chunk]:
        items = self.table.query(
            "pk = :p AND begins_with(sk, :c)", {":p": keys.job(job_id), ":c": keys.CHUNKS}, consistent=True
        )
        return [Chunk.model_validate(i) for i in items]

    def take_lease(self, chunk: Chunk, owner: str, expires: int) -> Chunk | None:
        """Give the chunk's lease to `owner` while its job is RUNNING; None when it is done or the job is not.

        A lease held by another delivery is taken over (the duplicate of a message, or the redelivery of
        a dead worker's): its holder can no longer commit. The job counts the chunks that have a holder
        (`active_chunks`), so STOPPING can tell when nothing runs any more without reading the chunks.
        """
        values: dict[str, Any] = {
            ":me": owner,
            ":exp": expires,
            ":run": ChunkStatus.RUNNING.value,
            ":done": ChunkStatus.DONE.value,
        }
        if chunk.lease_owner:
            held = "#owner = :seen"
            values[":seen"] = chunk.lease_owner
        else:
            held = "attribute_not_exists(#owner)"
        job_values: dict[str, Any] = {":inc": 0 if chunk.lease_owner else 1, ":running": JobState.RUNNING.value}
        taken = transact(
            self.table,
            [
                Write(
                    key=(keys.job(chunk.job_id), keys.chunk(chunk.index)),
                    update="SET #owner = :me, #exp = :exp, #st = :run",
                    condition=f"#st <> :done AND {held}",
                    names={"#owner": "lease_owner", "#exp": "lease_expires", "#st": "status"},
                    values=values,
                ),
                Write(
                    key=(keys.job(chunk.job_id), keys.JOB_SK),
                    check=True,
                    condition="#state = :running",
                    names={"#state": "state"},
                    values={":running": JobState.RUNNING.value},
                ),
                Write(
                    key=(keys.job(chunk.job_id), keys.COUNTERS_SK),
                    update="ADD #act :inc",
                    names={"#act": "active_chunks"},
                    values={":inc": job_values[":inc"]},
                ),
            ],
        )
        if not taken:
            return None
        # The chunk as it stands now: the holder taken over may have moved its checkpoint since `chunk`
        # was read (a renewal keeps the owner), and a new holder must start from where it really is.
        fresh = self.get_chunk(chunk.job_id, chunk.index)
        return fresh if fresh is not None and fresh.lease_owner == owner else None

    def renew_lease(self, chunk: Chunk, expires: int) -> bool:
        """Push the lease's expiry back, if the chunk's holder is still `chunk.lease_owner`."""
        try:
            self.table.update(
                keys.job(chunk.job_id),
                keys.chunk(chunk.index),
                "SET #exp = :exp",
                names={"#owner": "lease_owner", "#exp": "lease_expires"},
                values={":exp": expires, ":me": chunk.lease_owner or "-"},
                condition="#owner = :me",
            )
        except ConditionFailed:
            return False
        return True

    def release_lease(self, chunk: Chunk, status: ChunkStatus) -> bool:
        """The holder leaves the chunk (paused, handed back to the queue); False if it no longer held it."""
        return transact(
            self.table,
            [
                Write(
                    key=(keys.job(chunk.job_id), keys.chunk(chunk.index)),
                    update="SET #st = :st REMOVE #owner, #exp",
                    condition="#owner = :me AND #st <> :done",
                    names={"#owner": "lease_owner", "#exp": "lease_expires", "#st": "status"},
                    values={":me": chunk.lease_owner or "-", ":st": status.value, ":done": ChunkStatus.DONE.value},
                ),
                Write(
                    key=(keys.job(chunk.job_id), keys.COUNTERS_SK),
                    update="ADD #act :dec",
                    names={"#act": "active_chunks"},
                    values={":dec": -1},
                ),
            ],
        )

    def revoke_leases(self, job_id: str) -> int:
        """Take every lease of a job back (force stop): no holder may commit after this. Returns how many."""
        held = self.table.query(
            "pk = :p AND begins_with(sk, :c)",
            {":p": keys.job(job_id), ":c": keys.CHUNKS},
            consistent=True,
            attributes=["sk", "lease_owner", "status"],
        )
        revoked = 0
        for item in held:
            if not item.get("lease_owner"):
                continue
            with suppress(ConditionFailed):
                self.table.update(
                    keys.job(job_id),
                    item["sk"],
                    "SET #st = :paused REMOVE #owner, #exp",
                    names={"#owner": "lease_owner", "#exp": "lease_expires", "#st": "status"},
                    values={":paused": ChunkStatus.PAUSED.value, ":done": ChunkStatus.DONE.value},
                    condition="#st <> :done",
                )
                revoked += 1
        return revoked

    def holds_lease(self, chunk: Chunk) -> bool:
        """Whether `chunk.lease_owner` still holds the chunk's lease (expired or not)."""
        item = self.table.get(keys.job(chunk.job_id), keys.chunk(chunk.index), attributes=["lease_owner"])
        return bool(item and chunk.lease_owner and item.get("lease_owner") == chunk.lease_owner)

    @staticmethod
    def lease_check(chunk: Chunk, now: int) -> Write:
        """A ConditionCheck that holds while `chunk.lease_owner` holds a live lease on the chunk."""
        return Write(
            key=(keys.job(chunk.job_id), keys.chunk(chunk.index)),
            check=True,
            condition="#owner = :me AND #exp > :now",
            names={"#owner": "lease_owner", "#exp": "lease_expires"},
            values={":me": chunk.lease_owner or "-", ":now": now},
        )

    def advance_chunk(
        self,
        chunk: Chunk,
        *,
        rows: int,
        ok: int,
        bad: int,
        last: bool,
        effects: Sequence[Write] = (),
        now: int | None = None,
        expires: int | None = None,
        cursor: dict[str, Any] | None = None,
        more: int = 0,
    ) -> bool:
        """Move a chunk's checkpoint by `rows`, its counters and the job's with it, only from where it stood;
        with `cursor`, the kind's cursor moves with it (`JobKind.checkpoint`); with `more`, the job's
        `total_rows` moves by it (an open-ended chunk's last checkpoint: the rows it did less its estimate).

        One transaction: the chunk (conditioned on its checkpoint, on not being done, and on
        `chunk.lease_owner` holding a live lease, which it renews to `expires`), the job's counters
        (`processed` / `failed`, and on the chunk's last checkpoint `chunks_done` and the lease given
        back), a check that the job is RUNNING or STOPPING, and `effects` (the rows' own writes, for
        a kind that commits them with its checkpoint). False when any condition failed: another
        delivery moved it, the lease is gone, or the job was stopped for good.
        """
        now = int(time.time() * 1000) if now is None else now
        values: dict[str, Any] = {
            ":next": chunk.next_row + rows,
            ":expected": chunk.next_row,
            ":st": (ChunkStatus.DONE if last else ChunkStatus.RUNNING).value,
            ":ok": ok,
            ":bad": bad,
            ":done": ChunkStatus.DONE.value,
            ":me": chunk.lease_owner or "-",
            ":now": now,
        }
        names = {
            "#st": "status",
            "#next": "next_row",
            "#ok": "processed",
            "#bad": "failed",
            "#owner": "lease_owner",
            "#exp": "lease_expires",
        }
        if last:
            update = "SET #next = :next, #st = :st REMOVE #owner, #exp ADD #ok :ok, #bad :bad"
        else:
            values[":exp"] = expires if expires is not None else now + 120_000
            update = "SET #next = :next, #st = :st, #exp = :exp ADD #ok :ok, #bad :bad"
        if cursor is not None:
            names["#cur"], values[":cur"] = "cursor", cursor
            update = update.replace("SET ", "SET #cur = :cur, ", 1)
        counter_values: dict[str, Any] = {":ok": ok, ":bad": bad}
        counter_update = "ADD #ok :ok, #bad :bad"
        if last:
            counter_update += ", #cd :one, #act :dec"
            counter_values.update({":one": 1, ":dec": -1})
        job_values: dict[str, Any] = {}
        live = live_states(job_values, LIVE_WORK)
        job_names = {"#state": "state"}
        if more:  # the job item is checked and updated at once (a transaction names an item once)
            job_names["#total"], job_values[":more"] = "total_rows", more
        return transact(
            self.table,
            [
                Write(
                    key=(keys.job(chunk.job_id), keys.chunk(chunk.index)),
                    update=update,
                    condition="#next = :expected AND #st <> :done AND #owner = :me AND #exp > :now",
                    names=names,
                    values=values,
                ),
                Write(
                    key=(keys.job(chunk.job_id), keys.JOB_SK),
                    check=not more,
                    update="ADD #total :more" if more else None,
                    condition=live,
                    names=job_names,
                    values=job_values,
                ),
                Write(
                    key=(keys.job(chunk.job_id), keys.COUNTERS_SK),
                    update=counter_update,
                    names={"#ok": "processed", "#bad": "failed"}
                    | ({"#cd": "chunks_done", "#act": "active_chunks"} if last else {}),
                    values=counter_values,
                ),
                *effects,
            ],
        )

    def write_rows(self, puts: Sequence[Mapping[str, Any]], deletes: Sequence[tuple[str, str]]) -> None:
        """A group's idempotent row effects, for kinds that do not commit them with the checkpoint."""
        self.table.batch_write(puts=puts, deletes=deletes)

    @staticmethod
    def row_writes(puts: Sequence[Mapping[str, Any]], deletes: Sequence[tuple[str, str]]) -> list[Write]:
        return [Write(item=p) for p in puts] + [Write(key=d) for d in deletes]
