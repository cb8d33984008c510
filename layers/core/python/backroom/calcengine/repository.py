"""Data access for the engine's configuration: one partition per tenant (`CALC#<tenant>`), a prefix per kind
(`backroom.keys`)."""

from __future__ import annotations

from contextlib import suppress
from typing import Any, TypeVar

from pydantic import BaseModel

from backroom import keys
from backroom.calcengine.models import Batch, Calculation, ImportFile, ImportFileType, Participant, Period
from backroom.dynamo import ConditionFailed, Table

M = TypeVar("M", bound=BaseModel)


class CalcRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    def _put(self, tenant_id: str, sk: str, model: BaseModel) -> None:
        self.table.put({"pk": keys.calc(tenant_id), "sk": sk, **model.model_dump(mode="json")})

    def _get(self, tenant_id: str, sk: str, model: type[M]) -> M | None:
        item = self.table.get(keys.calc(tenant_id), sk)
        return model.model_validate(item) if item else None

    def _all(self, tenant_id: str, prefix: str, model: type[M]) -> list[M]:
        items = self.table.query("pk = :p AND begins_with(sk, :s)", {":p": keys.calc(tenant_id), ":s": prefix})
        return [model.model_validate(i) for i in items]

    # Periods and participants -------------------------------------------
    def put_period(self, tenant_id: str, period: Period) -> None:
        self._put(tenant_id, keys.period(period.number), period)

    def periods(self, tenant_id: str) -> list[Period]:
        return self._all(tenant_id, keys.PERIODS, Period)

    def put_participant(self, tenant_id: str, participant: Participant) -> None:
        self._put(tenant_id, keys.participant(participant.id), participant)

    def participants(self, tenant_id: str) -> list[Participant]:
        return self._all(tenant_id, keys.PARTICIPANTS, Participant)

    # Calculations and batches -------------------------------------------
    def put_calculation(self, tenant_id: str, calc: Calculation) -> None:
        self._put(tenant_id, keys.calculation(calc.id), calc)

    def calculation(self, tenant_id: str, calc_id: int) -> Calculation | None:
        return self._get(tenant_id, keys.calculation(calc_id), Calculation)

    def put_batch(self, tenant_id: str, batch: Batch) -> None:
        self._put(tenant_id, keys.batch(batch.id), batch)

    def batch(self, tenant_id: str, batch_id: int) -> Batch | None:
        return self._get(tenant_id, keys.batch(batch_id), Batch)

    # Imports -------------------------------------------------------------
    def put_file_type(self, tenant_id: str, file_type: ImportFileType) -> None:
        self._put(tenant_id, keys.file_type(file_type.id), file_type)

    def file_type(self, tenant_id: str, type_id: str) -> ImportFileType | None:
        return self._get(tenant_id, keys.file_type(type_id), ImportFileType) if 0 < len(type_id) <= 255 else None

    def put_file(self, tenant_id: str, file: ImportFile) -> None:
        self._put(tenant_id, keys.import_file(file.id), file)

    def import_file(self, tenant_id: str, file_id: int) -> ImportFile | None:
        return self._get(tenant_id, keys.import_file(file_id), ImportFile)

    def add_file_table(self, tenant_id: str, file_id: int, table: str) -> None:
        """Remember that an import of the file writes into `table` (a set: adding twice is adding once)."""
        self.table.update(
            keys.calc(tenant_id),
            keys.import_file(file_id),
            "ADD #t :t",
            names={"#t": "written_to"},
            values={":t": {table}},
            condition="attribute_exists(pk)",
        )

    def file_tables(self, tenant_id: str, file_id: int) -> list[str]:
        item: dict[str, Any] | None = self.table.get(keys.calc(tenant_id), keys.import_file(file_id))
        return sorted((item or {}).get("written_to", []))

    def next_number(self, tenant_id: str, counter: str) -> int:
        item = self.table.update(
            keys.calc(tenant_id), keys.calc_counter(counter), "ADD #v :one", names={"#v": "value"}, values={":one": 1}
        )
        return int(item["value"])

    def ensure_counter(self, tenant_id: str, counter: str, at_least: int) -> None:
        """Make the counter's next number higher than `at_least` (for numbered demo data)."""
        with suppress(ConditionFailed):
            self.table.update(
                keys.calc(tenant_id),
                keys.calc_counter(counter),
                "SET #v = :n",
                names={"#v": "value"},
                values={":n": at_least},
                condition="attribute_not_exists(#v) OR #v < :n",
            )
