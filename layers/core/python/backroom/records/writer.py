"""Writing records: single-record transactions, bulk writes from jobs, and the index entries and unique
markers each write keeps in step with the record (the `keys` module says where they sit).

A single-record write is one transaction conditioned on the record's version, with its history entry;
`write_many` and `delete_many` put several records' transactions in one, behind a job's `guard`, and fall
back to one by one so a conflict never blocks the others. Bulk writes of rows (`items`, `replacing`,
`keys`) follow the engine's idempotent per-row rule instead.

An update that changes a record's label tells `relabeled` once it is committed (`update`, a `write_many`
without a guard): the app copies the new label on to the records that reference it (`backroom.app.
references`). A job's `write_many` (behind its chunk's `guard`) tells `relabeling` BEFORE each transaction
instead, and starts what it answers after: the relabel job is stored before the rename commits, so a
replay of a group whose worker died in between finds it and starts it (the renames are not computable
again then: the records hold their new labels).
"""

from __future__ import annotations

import json
import secrets
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backroom.clock import now_ms
from backroom.dynamo import Table, TransactionFailed, Write, again_on_conflict
from backroom.errors import BackroomError, Conflict, FieldError, Invalid, NotFound
from backroom.ids import object_id
from backroom.records.history import RecordHistory
from backroom.records.keys import (
    COUNT_SLOTS,
    UNIQUE,
    count_key,
    counts_kept,
    index_entries,
    record_key,
    schemas_pk,
    since_key,
    tally,
    unique_markers,
)
from backroom.records.model import AlreadyApplied, Author, Create, GuardFailed, Record, Update, VersionConflict
from backroom.records.reader import RecordReader
from backroom.records.schema import Schema
from backroom.records.values import field_path, normalize, render_label

MAX_TRANSACTION = 100  # items of one TransactWriteItems
TRANSACTION_BYTES = 3_500_000  # an estimate of a transaction's size kept below DynamoDB's 4 MB
REWRITE_ATTEMPTS = 5  # reads of a record that keeps changing while an evolution job rewrites it
# Told of the records a committed update renamed: (tenant, schema, their ids, the author of the write).
Relabeled = Callable[[str, Schema, list[str], Author | None], None]
# Told, behind a job's guard, of the records a transaction is about to rename (none: the group's first
# write, which finds a relabel job an earlier delivery of the group left unstarted); answers what to run
# once the transaction is done (start the jobs).
Relabeling = Callable[[str, Schema, list[str], Author | None, Sequence[Write]], Callable[[], None]]


@dataclass
class Rewrite:
    """What an evolution job stores for a record: the record as it becomes (its `keys` included) and the
    writes of the items it takes or leaves (index entries, unique markers), in the same transaction."""

    record: Record
    writes: list[Write] = field(default_factory=list)


class RecordWriter:
    def __init__(self, table: Table, reader: RecordReader, history: RecordHistory) -> None:
        self.table = table
        self.reader = reader  # what a write checks first: the record as it is, related records, tables
        self.history = history
        self.relabeled: Relabeled | None = None  # set by the composition root
        self.relabeling: Relabeling | None = None  # set by the composition root

    def define(self, tenant_id: str, schema: Schema) -> Schema:
        """Declare a table in the schema's namespace; a runtime table that holds no record yet is marked
        as counted from now on (every write counts; one declared before counts were kept, with records,
        keeps exact totals by Select=COUNT)."""
        self.table.put({"pk": schemas_pk(tenant_id), "sk": schema.key, **schema.model_dump()})
        since = since_key(tenant_id, schema)
        if counts_kept(schema) and self.table.get(*since) is None and not self.reader.holds_records(tenant_id, schema):
            self.table.put({"pk": since[0], "sk": since[1], "at": now_ms()})
        return schema

    def undefine(self, tenant_id: str, schema: Schema) -> None:
        """Forget a table (its records go by a job of their own)."""
        self.table.delete(schemas_pk(tenant_id), schema.key)

    # Bulk writes from jobs (idempotent per row) -------------------------
    def items(self, tenant_id: str, schema: Schema, record: Record) -> list[dict[str, Any]]:
        """What a new record puts: its item and its thin index entries (a replay writes the same items)."""
        entries = index_entries(tenant_id, schema, record)
        stored = record.model_copy(update={"keys": entries, "created_at": record.created_at or now_ms()})
        stored.label = stored.label or render_label(schema.label, stored.data)
        thin = [{"pk": pk, "sk": sk, "rid": record.rid} for pk, sk in entries]
        return [_item(tenant_id, schema, stored), *thin]

    def add_counts(self, tenant_id: str, schema: Schema, records: Sequence[Record]) -> None:
        """Count new records that a bulk load put as `items` gives them (a bench, a test's seed): their
        counts are not in those items. Not for a job: a replay would count its rows twice."""
        moved: Counter[str] = Counter()
        for record in records:
            placed = record.model_copy(update={"keys": index_entries(tenant_id, schema, record)})
            moved.update(tally(tenant_id, schema, None, placed))
        writes = counting(moved)
        for start in range(0, len(writes), MAX_TRANSACTION):
            _transact(self.table, writes[start : start + MAX_TRANSACTION])

    def add_moves(self, pending: tuple[str, str], guard: Sequence[Write] = ()) -> None:
        """Add the count moves gathered at `pending` (`write_many`'s `counts_to`) to the counts, and take
        them from it in the same transaction, conditioned on their values as read: each move is added
        once, whoever runs this again (a replay, a job's settling). `guard` joins each transaction."""
        item = self.table.get(*pending)
        moves = {name: int(n) for name, n in (item or {}).items() if name not in ("pk", "sk")}
        families = sorted(moves)
        room = MAX_TRANSACTION - len(guard) - 1
        for start in range(0, len(families), room):
            part = families[start : start + room]
            names = {f"#m{i}": family for i, family in enumerate(part)}
            values = {f":m{i}": moves[family] for i, family in enumerate(part)}
            held = " AND ".join(f"{name} = :m{i}" for i, name in enumerate(names))
            if start + room >= len(families):  # the last of them: the item goes
                taken = Write(key=pending, condition=held, names=names, values=values)
            else:
                taken = Write(
                    key=pending, update="REMOVE " + ", ".join(names), condition=held, names=names, values=values
                )
            try:
                _transact(self.table, [*guard, *counting({f: moves[f] for f in part}), taken])
            except TransactionFailed as failed:
                _check_guard(failed, len(guard))
                raise Conflict(f"The counts gathered at {pending[0]} changed while they were added") from None

    def add_moves_of(self, pks: Sequence[str]) -> None:
        """`add_moves` for every item of partitions `pks` (a job's, once none of its chunks is held)."""
        for key in self._keys_in(pks):
            self.add_moves(key)

    def _keys_in(self, pks: Sequence[str]) -> list[tuple[str, str]]:
        """The keys of every item of partitions `pks` (a job's few pending items: its chunks' at most)."""
        return [
            (str(item["pk"]), str(item["sk"]))
            for pk in pks
            for item in self.table.query("pk = :p", {":p": pk}, consistent=True, attributes=["pk", "sk"])
        ]

    def keys(self, tenant_id: str, schema: Schema, record: Record) -> list[tuple[str, str]]:
        """Every item a record occupies: what a delete removes."""
        return [record_key(tenant_id, schema, record.rid), *record.keys]

    def replacing(
        self, tenant_id: str, schema: Schema, record: Record
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Puts and deletes that make `record` replace whatever its id held: only changed entries move."""
        old = self.reader.get(tenant_id, schema, record.rid)
        puts = self.items(tenant_id, schema, record)
        if old is None:
            return puts, []
        puts[0]["version"] = old.version + 1
        puts[0]["created_at"] = old.created_at
        new = set(puts[0]["keys"])
        return [puts[0], *(p for p in puts[1:] if (p["pk"], p["sk"]) not in set(old.keys))], [
            k for k in old.keys if k not in new
        ]

    def put(self, tenant_id: str, schema: Schema, record: Record) -> None:
        """Write `record` over whatever its id held, as `replacing` says (a batch write, no transaction)."""
        puts, deletes = self.replacing(tenant_id, schema, record)
        self.table.batch_write(puts=puts, deletes=deletes)

    # Single-record writes: one transaction each --------------------------
    def create(
        self,
        tenant_id: str,
        schema: Schema,
        values: Mapping[str, Any],
        *,
        author: Author | None = None,
        rid: str | None = None,
    ) -> Record:
        record, writes, uniques = self.creation(tenant_id, schema, values, rid or object_id(), author)
        self._commit([*writes, *counting(tally(tenant_id, schema, None, record))], uniques, record.data)
        return record

    def creation(
        self, tenant_id: str, schema: Schema, values: Mapping[str, Any], rid: str, author: Author | None
    ) -> tuple[Record, list[Write], dict[tuple[str, str], str]]:
        """The writes that create record `rid` from `values` (conditioned on its absence)."""
        checked = normalize(schema, values)
        errors = checked.errors + self._link(tenant_id, schema, checked.data, checked.links)
        if errors:
            raise Invalid("Validation error", errors=errors)
        now = now_ms()
        record = Record(rid=rid, data=checked.data, created_at=now, updated_at=now)
        record.label = render_label(schema.label, record.data)
        uniques = unique_markers(tenant_id, schema, record.data)
        record.keys = [*index_entries(tenant_id, schema, record), *uniques]
        writes = [Write(item=_item(tenant_id, schema, record), condition="attribute_not_exists(pk)")]
        writes += [Write(item={"pk": pk, "sk": sk, "rid": record.rid}) for pk, sk in record.keys if sk != UNIQUE]
        writes += _take(uniques, record.rid)
        writes += self.history.entry(tenant_id, schema, record, "create", {}, record.data, author)
        return record, writes, uniques

    def update(
        self,
        tenant_id: str,
        schema: Schema,
        rid: str,
        changes: Mapping[str, Any],
        *,
        version: int | None = None,
        author: Author | None = None,
        extra: Sequence[Write] = (),
    ) -> Record:
        """A partial update (`None` clears a field); with `version`, only if the record is still at it.

        `extra` writes join the transaction (log lines, a job's marker conditioned on its absence): when
        one of their conditions fails, nothing is written and `AlreadyApplied` says so.
        """
        for _attempt in range(3 if version is None else 1):
            current = self.reader.get(tenant_id, schema, rid)
            if current is None:
                raise NotFound(f"Record {rid} not found")
            expected = current.version if version is None else version
            record, writes, added = self._update(tenant_id, schema, current, changes, expected, author)
            counts = counting(tally(tenant_id, schema, current, record))
            try:
                self._commit([*writes, *counts, *extra], added, record.data, extra=len(extra))
            except VersionConflict:
                if version is not None:
                    raise
                continue
            self._renamed(tenant_id, schema, [(current, record)], author)
            return record
        raise VersionConflict("The record was changed by someone else, try again")

    def _update(
        self,
        tenant_id: str,
        schema: Schema,
        current: Record,
        changes: Mapping[str, Any],
        expected: int,
        author: Author | None,
    ) -> tuple[Record, list[Write], dict[tuple[str, str], str]]:
        """The writes that take `current` (at version `expected`) to its next version with `changes`."""
        rid = current.rid
        checked = normalize(schema, changes, previous=current.data, partial=True)
        errors = checked.errors + self._link(tenant_id, schema, checked.data, checked.links)
        if errors:
            raise Invalid("Validation error", errors=errors)
        record = current.model_copy(update={"data": checked.data, "version": expected + 1, "updated_at": now_ms()})
        record.label = render_label(schema.label, record.data)
        uniques = unique_markers(tenant_id, schema, record.data)
        record.keys = [*index_entries(tenant_id, schema, record), *uniques]
        gone = [k for k in current.keys if k not in set(record.keys)]
        # A marker the record does not hold yet is taken (its value changed, or the field just became unique).
        held = set(current.keys)
        added = {k: n for k, n in uniques.items() if k not in held}
        writes = [Write(item=_item(tenant_id, schema, record), condition="version = :v", values={":v": expected})]
        writes += [
            Write(item={"pk": pk, "sk": sk, "rid": rid})
            for pk, sk in record.keys
            if sk != UNIQUE and (pk, sk) not in set(current.keys)
        ]
        writes += [_release(k, rid) if k[1] == UNIQUE else Write(key=k) for k in gone]
        writes += _take(added, rid)
        changed = sorted(k for k in {*current.data, *record.data} if current.data.get(k) != record.data.get(k))
        old = {k: current.data.get(k) for k in changed}
        new = {k: record.data.get(k) for k in changed}
        writes += self.history.entry(tenant_id, schema, record, "update", old, new, author)
        return record, writes, added

    def delete(
        self, tenant_id: str, schema: Schema, rid: str, *, version: int | None = None, author: Author | None = None
    ) -> Record:
        current = self.reader.get(tenant_id, schema, rid)
        if current is None:
            raise NotFound(f"Record {rid} not found")
        writes = self._deletion(tenant_id, schema, current, current.version if version is None else version, author)
        self._commit([*writes, *counting(tally(tenant_id, schema, current, None))], {}, current.data)
        return current

    def _deletion(
        self, tenant_id: str, schema: Schema, current: Record, expected: int, author: Author | None
    ) -> list[Write]:
        """The writes that delete a record at version `expected`: it, what it holds, and its history entry."""
        rid = current.rid
        writes = [Write(key=record_key(tenant_id, schema, rid), condition="version = :v", values={":v": expected})]
        writes += [_release(k, rid) if k[1] == UNIQUE else Write(key=k) for k in current.keys]
        gone = current.model_copy(update={"version": expected + 1})
        writes += self.history.entry(tenant_id, schema, gone, "delete", current.data, {}, author)
        return writes

    def unchanged(
        self, tenant_id: str, schema: Schema, record: Record, extra: Sequence[Write], *, guard: Sequence[Write] = ()
    ) -> None:
        """Commit `extra` (an action's log lines, a job's marker) for a record that stays as it is: while it is
        still at the version read, with neither a new version nor a history entry. As `update` fails:
        `VersionConflict` (it changed), `AlreadyApplied` (a marker of `extra` exists), `GuardFailed`."""
        if not extra and not guard:
            return  # nothing to write
        writes = [*guard, _at_version(tenant_id, schema, record), *extra]
        self._commit(writes, {}, record.data, extra=len(extra), guarded=len(guard))

    def unchanged_many(
        self,
        tenant_id: str,
        schema: Schema,
        kept: Sequence[tuple[Record, Sequence[Write]]],
        *,
        guard: Sequence[Write] = (),
    ) -> list[BackroomError | None]:
        """`unchanged` for several records, as many to a transaction as 100 writes hold (with `guard`); a
        transaction that fails is tried record by record, so one record's conflict blocks no other. Each
        record's error (`VersionConflict`, `AlreadyApplied`) or None; `GuardFailed` is raised."""
        outcome: list[BackroomError | None] = [None] * len(kept)
        batch: list[int] = []

        def flush() -> None:
            if not batch:
                return
            writes = [w for i in batch for w in (_at_version(tenant_id, schema, kept[i][0]), *kept[i][1])]
            try:
                self._commit([*guard, *writes], {}, {}, guarded=len(guard))
            except GuardFailed:
                raise
            except BackroomError:
                for i in batch:
                    try:
                        self.unchanged(tenant_id, schema, *kept[i], guard=guard)
                    except GuardFailed:
                        raise
                    except BackroomError as err:
                        outcome[i] = err
            batch.clear()

        room, size = MAX_TRANSACTION - len(guard), 0
        for i, (_, extra) in enumerate(kept):
            if batch and size + 1 + len(extra) > room:
                flush()
                size = 0
            batch.append(i)
            size += 1 + len(extra)
        flush()
        return outcome

    # Several records to a transaction, behind a job's guard ----------------
    def write_many(
        self,
        tenant_id: str,
        schema: Schema,
        changes: Sequence[Update | Create],
        *,
        author: Author | None = None,
        guard: Sequence[Write] = (),
        counts_to: tuple[str, str] | None = None,
        ahead: tuple[str, str] | None = None,
    ) -> list[Record | BackroomError]:
        """Creates and updates, several to a transaction, each with its `extra` writes; an update applies to
        the record as read (conditioned on that version).

        Answers each change's saved record, or its error: `VersionConflict` when the record changed since
        it was read, `AlreadyApplied` when one of its `extra` markers exists (or a `once` create's record
        does), `Invalid` for bad values.
        When a transaction fails, its changes are tried one by one, so one never blocks the others.
        `guard` joins every transaction (a job's lease check): when it fails, nothing of that transaction
        is written and `GuardFailed` is raised, so a job that lost its chunk stops writing at once.
        `counts_to` (a job chunk's `keys.count_moves`): each transaction adds its count moves there, one
        item, instead of to the counts; the job adds them to the counts once (`add_moves`).
        `ahead` (a job chunk's `keys.entries_ahead`): the index entries of `once` creates are put before
        their transaction, by batch writes (a plain put is half a transactional one's capacity, and a
        transaction of fewer items holds more rows), noted first in one item that the transaction deletes
        (`_put_ahead`). An entry may so be seen a moment before its record: readers skip an entry whose
        record is missing. A transaction that fails leaves its note to be settled (`settle_ahead`): an
        entry no record holds goes.
        """
        outcome: list[Record | BackroomError] = []
        batch: list[Write] = []
        moved: Counter[str] = Counter()  # the batch's moves of the table's counts, written once each
        targets: set[tuple[str, str]] = set()  # a transaction names an item once: two rows taking one
        # unique value (or one record) go to two transactions, and the second fails as a row, not as a whole
        members: list[tuple[int, Update | Create, Record, list[Write], dict[tuple[str, str], str], dict[str, int]]] = []
        early: list[tuple[tuple[str, str], list[Write]]] = []  # with `ahead`: records' keys, their entries' puts
        room = MAX_TRANSACTION - len(guard)
        size = 0  # the batch's estimated bytes: rows of big records fill DynamoDB's 4 MB before 100 items

        def flush() -> None:
            nonlocal size
            if not batch:
                return
            note = self._put_ahead(ahead, early) if ahead and early else None
            noted = [Write(key=note)] if note else []  # the note goes with the records
            renaming = [r.rid for _, c, r, *_ in members if isinstance(c, Update) and r.label != c.current.label]
            started = self._relabeling(tenant_id, schema, renaming, author, guard)
            try:
                _transact(self.table, [*guard, *batch, *_moving(moved, counts_to), *noted])
            except TransactionFailed as failed:
                _check_guard(failed, len(guard))
                for index, change, record, writes, added, moves in members:
                    try:
                        self._commit(
                            [*guard, *writes, *_moving(moves, counts_to), *change.extra],
                            added,
                            record.data,
                            extra=len(change.extra),
                            guarded=len(guard),
                            once=isinstance(change, Create) and change.once,
                        )
                    except GuardFailed:
                        raise
                    except BackroomError as err:
                        outcome[index] = err
                if note:  # its rows are written or refused now: what no record holds goes
                    self.settle_ahead_at([note])
            finally:
                started()
            if not guard:
                committed = [(c.current, r) for i, c, r, *_ in members if isinstance(c, Update) and outcome[i] is r]
                self._renamed(tenant_id, schema, committed, author)
            batch.clear()
            moved.clear()
            targets.clear()
            members.clear()
            early.clear()
            size = 0

        self._relabeling(tenant_id, schema, [], author, guard)()  # an earlier delivery's jobs, started
        for change in changes:
            try:
                if isinstance(change, Create):
                    record, writes, added = self.creation(tenant_id, schema, change.values, change.rid, author)
                    moves = tally(tenant_id, schema, None, record)
                else:
                    current = change.current
                    record, writes, added = self._update(
                        tenant_id, schema, current, change.changes, current.version, author
                    )
                    moves = tally(tenant_id, schema, current, record)
            except BackroomError as err:
                outcome.append(err)
                continue
            outcome.append(record)
            entries: list[Write] = []
            if ahead and isinstance(change, Create) and change.once:
                entries, writes = _entries(record, writes)
            mine = [*writes, *change.extra]
            counts = (1 if counts_to else len(moved.keys() | moves.keys())) + (1 if ahead else 0)
            weight = sum(_estimated_size(w) for w in mine)
            if (
                len(batch) + len(mine) + counts > room
                or size + weight > TRANSACTION_BYTES
                or not targets.isdisjoint(w.target for w in mine)
            ):
                flush()
            size += weight
            if entries:
                early.append((record_key(tenant_id, schema, record.rid), entries))
            batch.extend(mine)
            moved.update(moves)
            targets.update(w.target for w in mine)
            members.append((len(outcome) - 1, change, record, writes, added, moves))
        flush()
        return outcome

    def _put_ahead(
        self, ahead: tuple[str, str], early: Sequence[tuple[tuple[str, str], list[Write]]]
    ) -> tuple[str, str]:
        """Note the entries of `early`'s records, then put them (batch writes); answers the note's key,
        which the records' transaction deletes. The note names each record's key and the entries it was given, packed
        (zlib'd JSON: the keys repeat their prefixes), so that settling it needs no other read than the records'."""
        pk, prefix = ahead
        note = (pk, f"{prefix}#{object_id()}")  # never an earlier delivery's: that one's strays are listed there
        listed = [[list(key), [[w.item["pk"], w.item["sk"]] for w in puts if w.item]] for key, puts in early]
        self.table.put({"pk": note[0], "sk": note[1], "entries": zlib.compress(json.dumps(listed).encode())})
        self.table.batch_write(puts=[w.item for _, puts in early for w in puts if w.item])
        return note

    def settle_ahead(self, pks: Sequence[str]) -> None:
        """Settle every note of partitions `pks` (a job's `keys.entries_ahead_of`, once none of its chunks
        is held, or when it finishes): `settle_ahead_at` each."""
        self.settle_ahead_at(self._keys_in(pks))

    def settle_ahead_at(self, notes: Sequence[tuple[str, str]]) -> None:
        """Delete each entry a note lists that its record does not hold (the record was refused, never
        written, or written by an earlier delivery with other values), then the note."""
        for key in notes:
            note = self.table.get(*key, exact=True)
            if note is None:
                continue
            listed = json.loads(zlib.decompress(bytes(note["entries"])))
            records = self.table.batch_get([tuple(r) for r, _ in listed], attributes=["pk", "sk", "keys"], exact=True)
            stray: list[tuple[str, str]] = []
            for record, entries in listed:
                held = {tuple(k) for k in (records.get(tuple(record)) or {}).get("keys", [])}
                stray += [(pk, sk) for pk, sk in entries if (pk, sk) not in held]
            self.table.batch_write(deletes=stray)
            self.table.delete(*key)

    def delete_many(
        self,
        tenant_id: str,
        schema: Schema,
        rids: Sequence[str],
        *,
        author: Author | None = None,
        guard: Sequence[Write] = (),
        extra: Mapping[str, Sequence[Write]] | None = None,
    ) -> dict[str, str | None]:
        """Delete these records, several to a transaction (each on the version read); `{id: error or None}`.

        A record already gone counts as deleted. When a transaction fails (a record changed meanwhile),
        its records are deleted one by one, so one conflict never blocks the others. `guard` joins every
        transaction, as in `write_many`: when it fails, `GuardFailed` is raised and nothing more is deleted.
        `extra[id]` joins that record's delete (a job's result entry): written exactly when it is deleted.
        """
        extra = extra or {}
        found = {r.rid: r for r in self.reader.get_many(tenant_id, schema, rids)}
        outcome: dict[str, str | None] = dict.fromkeys(rids)
        batch: list[Write] = []
        moved: Counter[str] = Counter()
        members: list[Record] = []

        def flush() -> None:
            if not batch:
                return
            try:
                _transact(self.table, [*guard, *batch, *counting(moved)])
            except TransactionFailed as failed:
                _check_guard(failed, len(guard))
                for record in members:
                    current = self.reader.get(tenant_id, schema, record.rid)
                    if current is None:
                        continue
                    writes = self._deletion(tenant_id, schema, current, current.version, author)
                    counts = counting(tally(tenant_id, schema, current, None))
                    try:
                        self._commit(
                            [*guard, *writes, *counts, *extra.get(record.rid, ())], {}, current.data, guarded=len(guard)
                        )
                    except GuardFailed:
                        raise
                    except Conflict as err:
                        outcome[record.rid] = err.message
            batch.clear()
            moved.clear()
            members.clear()

        for rid in dict.fromkeys(rids):
            record = found.get(rid)
            if record is None:
                continue
            writes = [*self._deletion(tenant_id, schema, record, record.version, author), *extra.get(rid, ())]
            moves = tally(tenant_id, schema, record, None)
            if len(batch) + len(writes) + len(moved.keys() | moves.keys()) > MAX_TRANSACTION - len(guard):
                flush()
            batch.extend(writes)
            moved.update(moves)
            members.append(record)
        flush()
        return outcome

    # Rewrites of what records hold, from the app's evolution jobs ----------------
    def rewrite_many(
        self,
        tenant_id: str,
        schema: Schema,
        rids: Sequence[str],
        rewrite: Callable[[Record], Rewrite | None],
        *,
        guard: Sequence[Write] = (),
    ) -> dict[str, tuple[str, str] | None]:
        """Store `rewrite(record)` for each record of `rids` that exists (None: it needs nothing), several
        records to a transaction: the record's item conditioned on the version read, with its own writes
        (index entries, markers). No history entry: the record's values as a user sees them are the
        rewrite's, not a user's change. A replay reads the records again and rewrites nothing more.

        Answers `{id: None}` for a record done (or gone), else the key of the write of its own that was
        refused (a marker another record holds). A record that changed meanwhile is read and rewritten
        again. `guard` joins every transaction, as in `write_many`. A transaction holds at most 100 writes
        and about 3.5 MB (`TRANSACTION_BYTES`); one DynamoDB refuses as too large anyway (Invalid) is
        written again one record to a transaction.
        """
        outcome: dict[str, tuple[str, str] | None] = dict.fromkeys(rids)
        batch: list[Write] = []
        moved: Counter[str] = Counter()
        members: list[str] = []
        targets: set[tuple[str, str]] = set()
        size = 0  # the batch's estimated bytes

        def flush() -> None:
            nonlocal size
            if not batch:
                return
            try:
                _transact(self.table, [*guard, *batch, *counting(moved)])
            except (TransactionFailed, Invalid) as failed:  # Invalid: larger than DynamoDB takes at once
                if isinstance(failed, TransactionFailed):
                    _check_guard(failed, len(guard))
                for rid in members:
                    outcome[rid] = self._rewrite_one(tenant_id, schema, rid, rewrite, guard)
            batch.clear()
            moved.clear()
            members.clear()
            targets.clear()
            size = 0

        for current in self.reader.get_many(tenant_id, schema, list(dict.fromkeys(rids))):
            change = rewrite(current)
            if change is None:
                continue
            writes = _rewritten(tenant_id, schema, current, change)
            moves = tally(tenant_id, schema, current, change.record)
            weight = sum(_estimated_size(w) for w in writes)
            if (
                len(batch) + len(writes) + len(moved.keys() | moves.keys()) > MAX_TRANSACTION - len(guard)
                or size + weight > TRANSACTION_BYTES
                or not targets.isdisjoint(w.target for w in writes)
            ):
                flush()
            batch.extend(writes)
            moved.update(moves)
            size += weight
            targets.update(w.target for w in writes)
            members.append(current.rid)
        flush()
        return outcome

    def _rewrite_one(
        self,
        tenant_id: str,
        schema: Schema,
        rid: str,
        rewrite: Callable[[Record], Rewrite | None],
        guard: Sequence[Write],
    ) -> tuple[str, str] | None:
        """One record's rewrite in its own transaction, read again while it changes under it."""
        for _attempt in range(REWRITE_ATTEMPTS):
            current = self.reader.get(tenant_id, schema, rid)
            change = rewrite(current) if current is not None else None
            if current is None or change is None:
                return None
            writes = _rewritten(tenant_id, schema, current, change)
            try:
                self.table.transact([*guard, *writes, *counting(tally(tenant_id, schema, current, change.record))])
                return None
            except TransactionFailed as failed:
                _check_guard(failed, len(guard))
                reasons = failed.reasons[len(guard) :]
                if failed.conflicted or reasons[0] == "ConditionalCheckFailed":
                    continue  # another transaction, or the record changed: read it again
                refused = next(
                    (w for w, r in zip(writes, reasons, strict=False) if r == "ConditionalCheckFailed"), None
                )
                if refused is not None:
                    return refused.target
                raise Conflict(f"Record {rid} could not be rewritten ({failed})") from None
        raise Conflict(f"Record {rid} kept changing while it was rewritten")

    def _renamed(
        self, tenant_id: str, schema: Schema, written: Sequence[tuple[Record, Record]], author: Author | None
    ) -> None:
        """Tell `relabeled` which records a committed update renamed, unless its author does not cascade."""
        renamed = [after.rid for before, after in written if after.label != before.label]
        if renamed and self.relabeled is not None and (author is None or author.cascades):
            self.relabeled(tenant_id, schema, renamed, author)

    def _relabeling(
        self, tenant_id: str, schema: Schema, renaming: list[str], author: Author | None, guard: Sequence[Write]
    ) -> Callable[[], None]:
        """Behind a job's guard, tell `relabeling` which records a transaction is about to rename (the job
        relabelling their references is stored, unstarted, before it); answers what starts it after."""
        if not guard or self.relabeling is None or (author is not None and not author.cascades):
            return _nothing
        return self.relabeling(tenant_id, schema, renaming, author, guard)

    def _commit(
        self,
        writes: list[Write],
        taken: Mapping[tuple[str, str], str],
        data: Mapping[str, Any],
        *,
        extra: int = 0,
        guarded: int = 0,
        once: bool = False,
    ) -> None:
        """Run a record's transaction; a failed condition says which: the guard (the first `guarded`
        writes), a marker (the last `extra`, or with `once` the create's own record), the version or a
        unique value."""
        try:
            _transact(self.table, writes)
        except TransactionFailed as failed:
            _check_guard(failed, guarded)
            if guarded:
                writes, failed = writes[guarded:], TransactionFailed(failed.reasons[guarded:])
            tail = failed.reasons[len(writes) - extra : len(writes)] if extra else []
            if "ConditionalCheckFailed" in tail or (once and failed.reasons[:1] == ["ConditionalCheckFailed"]):
                raise AlreadyApplied("This write was committed before") from None
            names = dict(taken)
            duplicated = [
                names[(w.item["pk"], w.item["sk"])]
                for w, reason in zip(writes, failed.reasons, strict=False)
                if reason == "ConditionalCheckFailed" and w.item is not None and (w.item["pk"], w.item["sk"]) in names
            ]
            if duplicated:
                raise Invalid(
                    "Validation error",
                    errors=[
                        FieldError(n, f"{n} must be unique: {str(data.get(n))[:60]} is taken", "duplicated")
                        for n in duplicated
                    ],
                ) from None
            if failed.reasons and failed.reasons[0] == "ConditionalCheckFailed":
                raise VersionConflict("The record was changed by someone else: its version does not match") from None
            raise Conflict(f"The record could not be written ({failed})") from None

    def _link(
        self, tenant_id: str, schema: Schema, data: dict[str, Any], links: list[tuple[list[str | int], str, str]]
    ) -> list[FieldError]:
        """Fill each relationship's label from its record; a related record that does not exist is an error.

        A related table is looked up in the writer's namespace: a relationship never reaches the other's.
        """
        errors: list[FieldError] = []
        schemas: dict[str, Schema | None] = {}
        for path, entity, rid in links:
            if entity not in schemas:
                try:
                    schemas[entity] = self.reader.schema(tenant_id, entity, namespace=schema.namespace)
                except NotFound:
                    schemas[entity] = None
            target = schemas[entity]
            found = self.reader.get(tenant_id, target, rid) if target else None
            name = field_path(path)
            if found is None:
                errors.append(FieldError(name, f"{name}: no {entity} record has id {rid}", "notFound"))
                continue
            holder: Any = data
            for step in path[:-1]:
                holder = holder[step]
            holder[path[-1]] = {"id": rid, "label": found.label}
        return errors


def _nothing() -> None:
    return None


def _entries(record: Record, writes: Sequence[Write]) -> tuple[list[Write], list[Write]]:
    """A create's writes parted: the puts of its index entries (no condition: nothing else may hold them),
    and the rest."""
    held = {k for k in record.keys if k[1] != UNIQUE}
    entries: list[Write] = []
    rest: list[Write] = []
    for w in writes:
        is_entry = w.item is not None and w.condition is None and (w.item["pk"], w.item["sk"]) in held
        (entries if is_entry else rest).append(w)
    return entries, rest


def counting(moves: Mapping[str, int]) -> list[Write]:
    """The writes that add `moves` to the table's counts, in one slot picked at random for them all
    (a transaction names an item once; concurrent writers mostly meet in different slots)."""
    slot = secrets.randbelow(COUNT_SLOTS)
    return [Write(key=count_key(family, slot), update="ADD n :n", values={":n": n}) for family, n in moves.items() if n]


def _moving(moves: Mapping[str, int], pending: tuple[str, str] | None) -> list[Write]:
    """The writes of a transaction's count moves: to the counts, or added to `pending` in one item."""
    if pending is None:
        return counting(moves)
    moved = {family: n for family, n in moves.items() if n}
    if not moved:
        return []
    names = {f"#m{i}": family for i, family in enumerate(moved)}
    return [
        Write(
            key=pending,
            update="ADD " + ", ".join(f"{name} :m{i}" for i, name in enumerate(names)),
            names=names,
            values={f":m{i}": n for i, n in enumerate(moved.values())},
        )
    ]


def _transact(table: Table, writes: Sequence[Write]) -> None:
    """A transaction, tried again while it only meets another on an item: counts are items every writer shares."""
    again_on_conflict(lambda: table.transact(writes))


def _item(tenant_id: str, schema: Schema, record: Record) -> dict[str, Any]:
    pk, sk = record_key(tenant_id, schema, record.rid)
    return {"pk": pk, "sk": sk, **record.model_dump()}


def _rewritten(tenant_id: str, schema: Schema, current: Record, change: Rewrite) -> list[Write]:
    """A rewrite's writes: the record's item, only while it is still at the version read, then its own."""
    item = _item(tenant_id, schema, change.record)
    return [Write(item=item, condition="version = :v", values={":v": current.version}), *change.writes]


def _estimated_size(write: Write) -> int:
    """About the bytes a write sends: its item (or key) and values as JSON; DynamoDB counts a little less."""
    return len(json.dumps([write.item or write.key, write.values], default=str))


def _take(uniques: Mapping[tuple[str, str], str], rid: str) -> list[Write]:
    """Puts of unique markers for record `rid`, each only if no record holds its value yet."""
    return [
        Write(item={"pk": pk, "sk": sk, "rid": rid, "field": name}, condition="attribute_not_exists(pk)")
        for (pk, sk), name in uniques.items()
    ]


def _release(key: tuple[str, str], rid: str) -> Write:
    """The delete of a unique marker, only while record `rid` still holds it (never another's)."""
    return Write(key=key, condition="rid = :r", values={":r": rid})


def _check_guard(failed: TransactionFailed, guarded: int) -> None:
    """Raise `GuardFailed` when one of the transaction's first `guarded` writes (a job's guard) failed."""
    if "ConditionalCheckFailed" in failed.reasons[:guarded]:
        raise GuardFailed("The job no longer holds this work") from None


def _at_version(tenant_id: str, schema: Schema, record: Record) -> Write:
    """A check that writes nothing: the record is still at the version read."""
    key = record_key(tenant_id, schema, record.rid)
    return Write(key=key, check=True, condition="version = :v", values={":v": record.version})
