"""Every key the core stores under: the table's pk/sk (and index keys) and the S3 keys of files, in one place.

Repositories build keys here and nowhere else, so a format is read in one module and a change to one
is seen whole. These strings are stored data: a format never changes, or what is stored stops being
found. `<n:12>` is a number zero-padded to 12 digits; `<hour>` is `YYYYMMDDHH` (UTC).

| item | pk | sk | index |
| --- | --- | --- | --- |
| user (by e-mail) | `USER#<email, lower case>` | `USER` | gsi1 `TENANT_USERS#<tenant>` / `<email>` |
| user id (points at the user's e-mail) | `USERID#<id>` | `USERID` | |
| account | `ACCOUNT#<id>` | `ACCOUNT` | gsi1 `CHILDREN#<parent>` / `<id>` |
| token | `TOKEN#<sha-256 of it>` | `TOKEN` | |
| a user's session | `SESSIONS#<user id>` | `<token hash>` | |
| failed-login counter | `LOGINS#<scope>#<key>` | `WINDOW#<n>` | |
| job | `JOB#<id>` | `JOB` | gsi1 `JOBS#<tenant>` / `<created:13>#<id>` (runtime jobs); gsi2 the job's scope |
| job counters | `JOB#<id>` | `COUNTERS` | |
| job chunk | `JOB#<id>` | `CHUNK#<n:6>` | |
| job log line | `JOB#<id>` | `LOG#<time ns:20>#<random>` | |
| job result entry | `JOBRES#<id>` | `<section>#<order>` | |
| job alias | `ALIAS#<alias>` | `ALIAS` | |
| job counter (dense numbers) | `COUNTER#<counter>` | `COUNTER` | |
| errand (a job) | | | alias `ERRAND#<tenant>#<n:12>`, counter `errand#<tenant>`, gsi2 `ERRANDS#<tenant>` / `<n:12>` |
| task (a job) | | | gsi2 `TASKS#<account>` / `<created:13>_<id>` |
| row marker of a job | `<family>#<job>#<shard 0-15>` | `<row>` | families `IMPRUN` (imports), `ACTRUN` (actions) |
| probe row | `PROBE#<job>` | `ROW#<n:8>` | |
| a job chunk's count moves not yet added to the counts (imports) | `MOVES#<job>#<chunk mod 16>` | `CHUNK#<n:6>` | |
| index entries put ahead (imports) | `AHEAD#<job>#<chunk mod 16>` | `CHUNK#<n:6>#<note id>` | |
| file metadata | `FILES#<owner>` | `<name>` | |
| pending upload | `UPLOADS#<hour>#<shard 0-7>` | `<tenant>#<file id>` | |
| share link | `SHARE#<share id>` | `SHARE` | |
| app log line | `LOGS#<tenant>#<hour>#<shard 0-7>` | `<ms:13>#<line id>` | |
| an hour with app log lines | `LOGHOURS#<tenant>` | `<hour>` | |
| app entity, a user's permissions, a group | `APP#<tenant>` | `ENTITY#<name>`, `USER#<email>`, `GROUP#<name>` | |
| app definition (as applied, versioned) | `APP#<tenant>` | `DEFINITION` | |
| evolution job (a job) | | | gsi2 `EVOLUTION#<tenant>` / `<created:13>#<id>` |
| calc engine configuration | `CALC#<tenant>` | `<kind>#<n:12>` (1), `FILETYPE#<id>`, `COUNTER#<name>` | |
| phone number | `NUMBER#<tenant>#<e164>` | `NUMBER` | gsi1 `NUMBERS#<account>` / `<e164>` |
| quantity record | `QUANTITY#<account>` | `<yyyy-mm>#<category>#<item>#<job>#<chunk:6>` | |
| a tenant's table (schema) | `TABLES#<tenant>` | `<table key>` | |
| record | `REC#<tenant>#<table key>#<shard>` | `<id>` | |
| index entry (thin) | `IDX#<tenant>#<table key>#<index>#<shard>#<digest>` (1) | `<order key>\\x01<id>` | |
| unique marker | `UNIQ#<tenant>#<table key>#<field>#<digest of the value>` | `UNIQ` | |
| a runtime table's count (records, or an index value's entries) (3) | `COUNT#<family>#<slot 0-7>` | `COUNT` | |
| the mark that a runtime table's counts hold all its records | `COUNT#REC#<tenant>#<table key>#since` | `COUNT` | |
| history entry | `HIST#<tenant>#<table key>#<id>` | `<version:12>` | gsi1 `HISTE#<tenant>#<table key>#<shard>` (2) |

(1) kinds `PERIOD`, `PARTICIPANT`, `CALCULATION`, `BATCH`, `IMPORTFILE`; for an index entry, the digest
of its equality values. (2) sort key `<history id>`: time in ms (11 hex), random. (3) `<family>` is the
partition key of the records (`REC#<tenant>#<table key>`) or of an index value's entries
(`IDX#<tenant>#<table key>#<index>#<digest>`) without its shard; a count is the sum of its 8 slots.

Records: `<table key>` is a runtime entity's name, or `gateway:<name>` for a gateway custom table; the
shard is the record id's CRC-32 modulo the table's shards. `backroom.records.keys` computes what goes
into these formats (shards, digests, order keys) from a schema and a record.

S3: a file of owner `<owner>` named `<name>` is `files/<owner>/<name>`; owners are `app/<tenant>` (an
app's uploads and exports' files), `job/<task id>` (a task's CSVs), `rtimport/<tenant>/<job>`,
`rtexport/<tenant>/<job>` and `import/<tenant>/<import file id>` (a gateway import's file).
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable
from dataclasses import dataclass

Key = tuple[str, str]


def hour(at_ms: int) -> str:
    """The UTC hour of an instant as keys hold it (`YYYYMMDDHH`)."""
    return dt.datetime.fromtimestamp(at_ms / 1000, tz=dt.UTC).strftime("%Y%m%d%H")


def _n12(value: int) -> str:
    return f"{value:012d}"


# Identity -------------------------------------------------------------------------------------
def user(email: str) -> Key:
    return f"USER#{email.strip().lower()}", "USER"


def tenant_users(tenant_id: str) -> str:
    """gsi1pk of a user: its tenant's users (gsi1sk: the e-mail)."""
    return f"TENANT_USERS#{tenant_id}"


def user_id(uid: str) -> Key:
    """The item that points at a user's e-mail from its id (the runtime API addresses users by id)."""
    return f"USERID#{uid}", "USERID"


def account(account_id: str) -> Key:
    return f"ACCOUNT#{account_id}", "ACCOUNT"


def children(parent_id: str) -> str:
    """gsi1pk of an account with a parent: its parent's children."""
    return f"CHILDREN#{parent_id}"


def token(token_hash: str) -> Key:
    return f"TOKEN#{token_hash}", "TOKEN"


def session(user_id: str, token_hash: str) -> Key:
    return f"SESSIONS#{user_id}", token_hash


def login_window(scope: str, key: str, window: int) -> Key:
    return f"LOGINS#{scope}#{key}", f"WINDOW#{window}"


# Jobs -----------------------------------------------------------------------------------------
JOB_SK = "JOB"
COUNTERS_SK = "COUNTERS"
CHUNKS = "CHUNK#"  # the sk prefix of a job's chunks
LOGS = "LOG#"  # the sk prefix of a job's log lines


def job(job_id: str) -> str:
    """The partition of a job: its item, counters, chunks and log lines."""
    return f"JOB#{job_id}"


def chunk(index: int) -> str:
    return f"{CHUNKS}{index:06d}"


def job_log(at_ns: int, suffix: str) -> str:
    return f"{LOGS}{at_ns:020d}#{suffix}"


def job_logs_between(lo_ms: int | None, hi_ms: int | None) -> tuple[str, str]:
    """The sk range of a job's log lines written from `lo_ms` to `hi_ms` (inclusive; None: open)."""
    lo = f"{LOGS}{(lo_ms or 0) * 1_000_000:020d}"
    hi = f"{LOGS}{(hi_ms + 1) * 1_000_000:020d}" if hi_ms is not None else f"{LOGS}~"
    return lo, hi


def runtime_jobs(tenant_id: str) -> str:
    """gsi1pk of a tenant's runtime jobs."""
    return f"JOBS#{tenant_id}"


def created_order(created_at: int, job_id: str) -> str:
    """gsi1sk of a runtime job, and gsi2sk of a scoped job that has no order of its own: by creation."""
    return f"{created_at:013d}#{job_id}"


def job_results(job_id: str) -> str:
    return f"JOBRES#{job_id}"


def job_result(section: str, order: str) -> str:
    return f"{section}#{order}"


def alias(name: str) -> Key:
    return f"ALIAS#{name}", "ALIAS"


def counter(name: str) -> Key:
    return f"COUNTER#{name}", "COUNTER"


def errand_counter(tenant_id: str) -> str:
    return f"errand#{tenant_id}"


def errand_order(seq: int) -> str:
    return _n12(seq)


def errand_alias(tenant_id: str, seq: int) -> str:
    return f"ERRAND#{tenant_id}#{errand_order(seq)}"


def errand_scope(tenant_id: str) -> str:
    return f"ERRANDS#{tenant_id}"


def task_scope(account_id: str) -> str:
    return f"TASKS#{account_id}"


def task_order(created_at: int, task_id: str) -> str:
    """URL-safe (`_`, not `#`): it is the next page's `start_key`."""
    return f"{created_at:013d}_{task_id}"


def probe(job_id: str) -> str:
    return f"PROBE#{job_id}"


def probe_row(job_id: str, row: int) -> Key:
    return probe(job_id), f"ROW#{row:08d}"


def probe_row_of(sk: str) -> int:
    return int(sk.removeprefix("ROW#"))


# Row markers ----------------------------------------------------------------------------------
MARK_SHARDS = 16


@dataclass(frozen=True)
class MarkFamily:
    """The row markers of one kind of job: `<prefix>#<job>#<shard>` / `sort(name)`; the shard is the
    CRC-32 of the row's name modulo `MARK_SHARDS`."""

    prefix: str
    sort: Callable[[str], str]

    def shard(self, job_id: str, shard: int) -> str:
        return f"{self.prefix}#{job_id}#{shard}"

    def key(self, job_id: str, name: str) -> Key:
        return self.shard(job_id, zlib.crc32(name.encode()) % MARK_SHARDS), self.sort(name)


def count_moves_of(job_id: str) -> list[str]:
    """The partitions of a job's pending count moves (`count_moves`): one item per chunk, its chunks
    spread over MARK_SHARDS partitions, as row markers are (each chunk writes its item at every
    transaction: the job's chunks running at once must not all write one partition)."""
    return [f"MOVES#{job_id}#{shard}" for shard in range(MARK_SHARDS)]


def count_moves(job_id: str, chunk_index: int) -> Key:
    """Where a chunk's bulk writes gather their count moves (an attribute per count family) until they
    are added to the counts, once (`RecordWriter.add_moves`)."""
    return count_moves_of(job_id)[chunk_index % MARK_SHARDS], chunk(chunk_index)


def entries_ahead_of(job_id: str) -> list[str]:
    """The partitions of a job's entries written ahead (`entries_ahead`), spread as its count moves are."""
    return [f"AHEAD#{job_id}#{shard}" for shard in range(MARK_SHARDS)]


def entries_ahead(job_id: str, chunk_index: int) -> Key:
    """Where a chunk's bulk creates note the index entries they put before their records' transaction
    (`RecordWriter.write_many`'s `ahead`): the partition, and the sort key's prefix (a note per transaction
    adds an id of its own)."""
    return entries_ahead_of(job_id)[chunk_index % MARK_SHARDS], chunk(chunk_index)


IMPORT_ROWS = MarkFamily("IMPRUN", lambda row: f"{int(row):09d}")  # a row's position
ACTION_ROWS = MarkFamily("ACTRUN", lambda rid: rid)  # a record id, or a group of a many-records action


# Files ----------------------------------------------------------------------------------------
PENDING_SHARDS = 8


def s3_object(owner: str, name: str) -> str:
    return f"files/{owner}/{name}"


def files_of(owner: str) -> str:
    """The partition of an owner's files' metadata (sk: the file's name)."""
    return f"FILES#{owner}"


def pending(at_hour: str, shard: int) -> str:
    return f"UPLOADS#{at_hour}#{shard}"


def pending_sk(tenant_id: str, file_id: str) -> str:
    return f"{tenant_id}#{file_id}"


def share(share_id: str) -> Key:
    return f"SHARE#{share_id}", "SHARE"


def app_owner(tenant_id: str) -> str:
    return f"app/{tenant_id}"


def task_owner(job_id: str) -> str:
    return f"job/{job_id}"


def import_owner(tenant_id: str, job_id: str) -> str:
    return f"rtimport/{tenant_id}/{job_id}"


def export_owner(tenant_id: str, job_id: str) -> str:
    return f"rtexport/{tenant_id}/{job_id}"


def aggregate_owner(tenant_id: str, job_id: str) -> str:
    """The scratch parts and the result of an `_async` aggregate's job."""
    return f"rtaggregate/{tenant_id}/{job_id}"


def gateway_import_owner(tenant_id: str, file_id: int) -> str:
    return f"import/{tenant_id}/{file_id}"


# App logs -------------------------------------------------------------------------------------
APP_LOG_SHARDS = 8


def app_log(tenant_id: str, at_hour: str, shard: int) -> str:
    return f"LOGS#{tenant_id}#{at_hour}#{shard}"


def app_log_sk(at_ms: int, line_id: str) -> str:
    return f"{at_ms:013d}#{line_id}"


def app_logs_between(since_ms: int, until_ms: int) -> tuple[str, str]:
    """The sk range of an hour's lines written from `since_ms` to `until_ms` (inclusive)."""
    return f"{max(since_ms, 0):013d}", f"{until_ms:013d}~"


def app_log_hours(tenant_id: str) -> str:
    return f"LOGHOURS#{tenant_id}"


# The runtime app ------------------------------------------------------------------------------
APP_USERS = "USER#"  # the sk prefix of users' permissions
APP_GROUPS = "GROUP#"  # the sk prefix of the app's groups (their definitions, for a user's permissions)
APP_MAINTENANCE = "MAINTENANCE"  # the sk of the app's maintenance flag


def app(tenant_id: str) -> str:
    return f"APP#{tenant_id}"


def app_entity(name: str) -> str:
    return f"ENTITY#{name}"


def app_user(email: str) -> str:
    return f"{APP_USERS}{email}"


def app_group(name: str) -> str:
    return f"{APP_GROUPS}{name}"


APP_DEFINITION = "DEFINITION"  # the sk of the whole app definition as last applied, with its version


def evolution_scope(tenant_id: str) -> str:
    """gsi2pk of a tenant's evolution jobs (the data work of an app's changes; not runtime jobs)."""
    return f"EVOLUTION#{tenant_id}"


# The calc engine's configuration --------------------------------------------------------------
PERIODS, PARTICIPANTS = "PERIOD#", "PARTICIPANT#"


def calc(tenant_id: str) -> str:
    return f"CALC#{tenant_id}"


def period(number: int) -> str:
    return f"{PERIODS}{_n12(number)}"


def participant(participant_id: int) -> str:
    return f"{PARTICIPANTS}{_n12(participant_id)}"


def calculation(calc_id: int) -> str:
    return f"CALCULATION#{_n12(calc_id)}"


def batch(batch_id: int) -> str:
    return f"BATCH#{_n12(batch_id)}"


def file_type(type_id: str) -> str:
    return f"FILETYPE#{type_id}"


def import_file(file_id: int) -> str:
    return f"IMPORTFILE#{_n12(file_id)}"


def calc_counter(name: str) -> str:
    return f"COUNTER#{name}"


# Numbers and quantities -----------------------------------------------------------------------
def number(tenant_id: str, e164: str) -> Key:
    return f"NUMBER#{tenant_id}#{e164}", "NUMBER"


def numbers_of(account_id: str) -> str:
    """gsi1pk of an account's numbers (gsi1sk: the number)."""
    return f"NUMBERS#{account_id}"


def quantities(account_id: str) -> str:
    return f"QUANTITY#{account_id}"


def quantity(month: str, category: str, item: str, writer: str) -> str:
    return f"{month}#{category}#{item}#{writer}"


def quantity_writer(job_id: str, chunk_index: int) -> str:
    """Who writes a quantity record: a job's chunk (its net change and the row it counted up to)."""
    return f"{job_id}#{chunk_index:06d}"


# Records (tables, records, index entries, unique markers, history) ----------------------------------
UNIQUE = "UNIQ"  # the sort key of every unique marker: what tells a marker from an index entry


def schemas(tenant_id: str) -> str:
    return f"TABLES#{tenant_id}"


def records(tenant_id: str, table_key: str, shard: int) -> str:
    return f"REC#{tenant_id}#{table_key}#{shard}"


def index_entry(tenant_id: str, table_key: str, index: str, shard: int, digest: str) -> str:
    return f"IDX#{tenant_id}#{table_key}#{index}#{shard}#{digest}"


def unique_prefix(tenant_id: str, table_key: str, field: str) -> str:
    """The start of every unique marker of one field (a record's `keys` tell its own by it)."""
    return f"UNIQ#{tenant_id}#{table_key}#{field}#"


def unique(tenant_id: str, table_key: str, field: str, digest: str) -> Key:
    return f"{unique_prefix(tenant_id, table_key, field)}{digest}", UNIQUE


def family(pk: str) -> str:
    """A record's or an index entry's partition key without its shard: what one count counts."""
    if pk.startswith("REC#"):
        return pk.rpartition("#")[0]
    head, shard, digest = pk.rsplit("#", 2)
    assert pk.startswith("IDX#") and shard.isdigit(), pk
    return f"{head}#{digest}"


def count(family_key: str, slot: int) -> Key:
    return f"COUNT#{family_key}#{slot}", "COUNT"


def counted_since(family_key: str) -> Key:
    """The mark that a table's counts hold every record: written when it is declared holding none."""
    return f"COUNT#{family_key}#since", "COUNT"


def history(tenant_id: str, table_key: str, rid: str) -> str:
    return f"HIST#{tenant_id}#{table_key}#{rid}"


def history_sk(version: int) -> str:
    return f"{version:012d}"


def table_history(tenant_id: str, table_key: str, shard: int) -> str:
    return f"HISTE#{tenant_id}#{table_key}#{shard}"
