"""The gateway's use cases: check a request against the engine's configuration, then start its errand.

Every rule the Errand spec lists is checked here, before anything is queued, with the status the
project gives it (docs/dialects.md, gateway): 400 for what is missing or malformed, 404 for what does
not exist, 422 for what exists but may not run so. Before any of them, the caller's authority
(`authority.gateway_owner`): 403 for a verb its account or role may not use. The work itself happens
in the job kinds (`imports`, `calculations`), on the gateway's own custom tables (`tables`).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from backroom import keys
from backroom.calcengine.authority import GatewayVerb, gateway_owner
from backroom.calcengine.calculations import BatchKind, CalculationKind, child_label
from backroom.calcengine.imports import FILE_NAME, DeleteImportedKind, ImportKind, file_source
from backroom.calcengine.models import ImportFile, ImportFileType, Period
from backroom.calcengine.repository import CalcRepository
from backroom.calcengine.tables import custom_table
from backroom.clock import now_ms
from backroom.errands import Errands
from backroom.errors import Invalid, NotFound, Unprocessable
from backroom.files import FileStore
from backroom.identity.models import Caller
from backroom.jobs.models import Job, LogEntry, NewJob
from backroom.records import BadValue, RecordStore, Schema, typed
from backroom.records.values import check_numbers

MAX_RECORDS = 50
MAX_RECORDS_BYTES = 256 * 1024
MAX_PERIODS = 120
MAX_PARTICIPANTS = 10_000
MAX_FILE_NAME = 255


def _range(numbers: list[int]) -> list[int]:
    """Every period from the lowest to the highest number given."""
    low, high = min(numbers), max(numbers)
    if high - low >= MAX_PERIODS:
        raise Invalid(f"periodRange spans more than {MAX_PERIODS} periods")
    return list(range(low, high + 1))


class CalcEngine:
    """The gateway's calculation engine: periods, participants, calculations and batches as errands,
    imports of files into custom tables (what the errand and extract dialects serve)."""

    def __init__(self, repo: CalcRepository, records: RecordStore, errands: Errands, files: FileStore) -> None:
        self.repo = repo
        self.records = records
        self.errands = errands
        self.files = files

    # Periods and participants -------------------------------------------
    def _periods(
        self, tenant_id: str, requested: list[int] | None, *, current: bool
    ) -> tuple[list[int], dict[int, Period]]:
        known = {p.number: p for p in self.repo.periods(tenant_id)}
        if not requested:
            if not current:
                raise Invalid("Required parameter periodRange is missing")
            today = dt.datetime.now(dt.UTC).date()
            found = next((p for p in known.values() if p.holds(today)), None)
            if found is None:
                raise Unprocessable(f"Period Range was omitted and no current Period could be found for {today}")
            requested = [found.number]
        return _range(requested), known

    @staticmethod
    def _check_periods(numbers: list[int], known: dict[int, Period], *, locks: bool) -> None:
        missing = [n for n in numbers if n not in known]
        if missing:
            raise Unprocessable(f"One or more of the provided Periods do not exist: {', '.join(map(str, missing))}")
        locked = [n for n in numbers if known[n].locked]
        if locks and locked:
            raise Unprocessable(f"One or more of the provided Periods are locked: {', '.join(map(str, locked))}")

    def _participants(self, tenant_id: str, ids: list[int] | None, eids: list[str] | None) -> list[int] | None:
        """Participant ids to run for; None for all active participants."""
        if not ids and not eids:
            return None
        if len(ids or eids or []) > MAX_PARTICIPANTS:
            raise Invalid(f"At most {MAX_PARTICIPANTS} participants per request")
        everyone = self.repo.participants(tenant_id)
        if eids:
            wanted = set(eids)
            found = [p.id for p in everyone if p.eid in wanted and p.active]
            if not found:
                raise Unprocessable("The provided Participant EIDs do not resolve to any Participants")
        else:
            wanted_ids = set(ids or [])
            found = [p.id for p in everyone if p.id in wanted_ids]
            if not found:
                raise Unprocessable("The provided Participant IDs do not resolve to any Participants")
        return found

    def _start(
        self, caller: Caller, tenant_id: str, kind: str, label: str, errand_type: str, params: dict[str, Any]
    ) -> Job:
        spec = NewJob(
            kind=kind,
            tenant_id=tenant_id,
            account_id=caller.account_id,
            created_by=caller.user_id,
            created_by_name=caller.name,
            label=label,
            type=errand_type,
            params=params,
        )
        return self.errands.create(spec)

    def _run_scope(
        self,
        tenant_id: str,
        what: str,
        valid: tuple[int, int],
        periods: list[int] | None,
        participant_ids: list[int] | None,
        eids: list[str] | None,
        v2: bool,
    ) -> tuple[list[int], list[int] | None]:
        """The periods and participants a calculation or batch (`what`, valid for `valid` periods) runs for."""
        numbers, known = self._periods(tenant_id, periods, current=v2)
        if numbers[0] < valid[0] or numbers[-1] > valid[1]:
            raise Unprocessable(
                f"{what} is not valid for Periods {numbers[0]}..{numbers[-1]} (valid for {valid[0]}..{valid[1]})"
            )
        self._check_periods(numbers, known, locks=v2)
        return numbers, self._participants(tenant_id, participant_ids, eids)

    # Calculations and batches -------------------------------------------
    def calculate(
        self,
        caller: Caller,
        calc_id: int,
        periods: list[int] | None,
        *,
        participant_ids: list[int] | None = None,
        eids: list[str] | None = None,
        v2: bool = False,
    ) -> Job:
        tenant = gateway_owner(caller, GatewayVerb.CALCULATE)
        calc = self.repo.calculation(tenant, calc_id)
        if calc is None:
            raise NotFound(f"Could not find Calculation with id {calc_id}")
        what = f"Calculation {calc.name}"
        if not calc.published:
            raise Unprocessable(f"{what} is not published")
        if not calc.active:
            raise Unprocessable(f"{what} is not active")
        valid = (calc.valid_from, calc.valid_to)
        numbers, chosen = self._run_scope(tenant, what, valid, periods, participant_ids, eids, v2)
        params = {"calculation": calc.id, "periods": numbers, "participants": chosen}
        return self._start(caller, tenant, CalculationKind.name, child_label(calc.name, numbers), "Calc", params)

    def run_batch(
        self,
        caller: Caller,
        batch_id: int,
        periods: list[int] | None,
        *,
        participant_ids: list[int] | None = None,
        eids: list[str] | None = None,
        v2: bool = False,
    ) -> Job:
        tenant = gateway_owner(caller, GatewayVerb.RUN_BATCH)
        batch = self.repo.batch(tenant, batch_id)
        if batch is None:
            raise NotFound(f"Could not find Batch with id {batch_id}")
        what = f"Batch {batch.name}"
        if not batch.published:
            raise Unprocessable(f"{what} is not published")
        valid = (batch.valid_from, batch.valid_to)
        numbers, chosen = self._run_scope(tenant, what, valid, periods, participant_ids, eids, v2)
        params = {"batch": batch.id, "calculations": batch.calculations, "periods": numbers, "participants": chosen}
        return self._start(caller, tenant, BatchKind.name, batch.name, "Calc", params)

    # Imports and deletes ------------------------------------------------
    def _file_type(self, tenant_id: str, type_id: str) -> ImportFileType:
        """The import file type (its table is checked when the import runs: a missing one fails the errand)."""
        file_type = self.repo.file_type(tenant_id, type_id)
        if file_type is None:
            raise NotFound(f"Could not find Import File Type with id {type_id}")
        return file_type

    def _import_periods(self, tenant_id: str, file_type: ImportFileType, periods: list[int] | None) -> list[int]:
        if not periods:
            if file_type.needs_period:
                raise Invalid(
                    f"Required parameter periodRange is missing: Import File Type {file_type.id} needs a Period"
                )
            return []
        numbers, known = self._periods(tenant_id, periods, current=False)
        self._check_periods(numbers, known, locks=False)
        return numbers

    @staticmethod
    def _import_label(file_type: ImportFileType, numbers: list[int]) -> str:
        return f"{file_type.name}: Period {numbers[0]}" if numbers else file_type.name

    def import_file(self, caller: Caller, file_id: int, type_id: str, periods: list[int] | None) -> Job:
        tenant = gateway_owner(caller, GatewayVerb.IMPORT)
        if self.repo.import_file(tenant, file_id) is None:
            raise NotFound(f"Could not find Import File with id {file_id}")
        file_type = self._file_type(tenant, type_id)
        numbers = self._import_periods(tenant, file_type, periods)
        params = {"file_type": file_type.id, "file_id": file_id, "source": file_source(file_id), "periods": numbers}
        return self._start(caller, tenant, ImportKind.name, self._import_label(file_type, numbers), "Import", params)

    def import_records(
        self, caller: Caller, records: list[dict[str, Any]], type_id: str, periods: list[int] | None
    ) -> Job:
        tenant = gateway_owner(caller, GatewayVerb.IMPORT)
        if len(records) > MAX_RECORDS:
            raise Invalid(f"Record count in the request ({len(records)}) exceeds the maximum allowed ({MAX_RECORDS})")
        if len(json.dumps(records, default=str)) > MAX_RECORDS_BYTES:
            raise Invalid(f"The records are larger than {MAX_RECORDS_BYTES // 1024} KB")
        check_numbers(records, "records")  # they wait in the errand's item: NaN or 1e-200 is the caller's 400
        file_type = self._file_type(tenant, type_id)
        numbers = self._import_periods(tenant, file_type, periods)
        params = {"file_type": file_type.id, "records": records, "periods": numbers}
        return self._start(caller, tenant, ImportKind.name, self._import_label(file_type, numbers), "Import", params)

    def delete_imported(self, caller: Caller, file_id: int) -> Job:
        tenant = gateway_owner(caller, GatewayVerb.DELETE_IMPORTED)
        found = self.repo.import_file(tenant, file_id)
        if found is None:
            raise NotFound(f"Could not find Import File with id {file_id}")
        params = {"file_id": file_id}
        return self._start(caller, tenant, DeleteImportedKind.name, found.name, "Delete Imported Data", params)

    # Import files --------------------------------------------------------
    def upload(self, caller: Caller, name: str, data: bytes) -> ImportFile:
        """A caller's new import file."""
        return self.store_file(gateway_owner(caller, GatewayVerb.UPLOAD), name, data)

    def store_file(self, tenant_id: str, name: str, data: bytes, *, file_id: int | None = None) -> ImportFile:
        """Store an import file's bytes (S3) and then its record, so a crash leaves no record without bytes."""
        name = name.strip()
        if not name or len(name) > MAX_FILE_NAME:
            raise Invalid(f"The file name must have 1 to {MAX_FILE_NAME} characters")
        if not data.strip():
            raise Invalid("The import file is empty")
        number = file_id or self.repo.next_number(tenant_id, "importfile")
        self.files.put(keys.gateway_import_owner(tenant_id, number), FILE_NAME, data)
        stored = ImportFile(id=number, name=name, size=len(data), created_at=now_ms())
        self.repo.put_file(tenant_id, stored)
        return stored

    # Errands -------------------------------------------------------------
    def errand(self, caller: Caller, errand_id: int) -> Job:
        return self.errands.get(gateway_owner(caller, GatewayVerb.READ_ERRANDS), errand_id)

    def errand_page(self, caller: Caller, page: int, size: int) -> tuple[list[Job], int]:
        return self.errands.page(gateway_owner(caller, GatewayVerb.READ_ERRANDS), page, size)

    def errand_logs(self, caller: Caller, errand_id: int, page: int, size: int) -> tuple[list[LogEntry], int]:
        return self.errands.logs(gateway_owner(caller, GatewayVerb.READ_ERRANDS), errand_id, page, size)

    # Extracts ------------------------------------------------------------
    def extract(
        self, caller: Caller, table: str, filters: dict[str, list[str]], page: int, size: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of a custom table's rows equal to every filter value (a field given twice must equal both)."""
        tenant_id = gateway_owner(caller, GatewayVerb.EXTRACT)
        schema = custom_table(self.records, tenant_id, table)
        strangers = [f for f in filters if schema.field(f) is None]
        if strangers:
            raise Unprocessable(
                "Unable to execute the extract.",
                details=[f"The following fields do not belong to {table}: {', '.join(strangers)}"],
            )
        if any(len({_typed_or_raw(schema, name, v) for v in values}) > 1 for name, values in filters.items()):
            return [], 0  # one field equal to two different values: no row can match
        found, total = self.records.select(
            tenant_id, schema, {name: values[0] for name, values in filters.items()}, start=page * size, size=size
        )
        texts = {f.name for f in schema.fields if f.type == "text"}
        return [{f.name: _shown(r.data.get(f.name), f.name in texts) for f in schema.fields} for r in found], total


def _typed_or_raw(schema: Schema, name: str, raw: str) -> str:
    """A filter value as its field stores it ("3" and "3.0" are one number); one it cannot hold as sent."""
    try:
        return repr(typed(schema, name, raw))
    except BadValue:
        return f"unmatchable {raw!r}"


def _shown(value: Any, text: bool) -> Any:
    """A stored value as the Extract API shows it: JSON numbers (60.5, 3), text as it is ("" when empty)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return "" if value is None and text else value
