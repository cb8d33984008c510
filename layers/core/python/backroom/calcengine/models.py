"""The calculation engine's configuration: periods, participants, calculations, batches, import types and files."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field


class Period(BaseModel):
    number: int
    start: dt.date
    end: dt.date
    locked: bool = False

    def holds(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


class Participant(BaseModel):
    id: int
    eid: str
    active: bool = True


class Tier(BaseModel):
    """A marginal band: `rate` applies to the part of the measure between `above` and the next tier."""

    above: float = 0
    rate: float


class Calculation(BaseModel):
    """A plan template, leader board or script: aggregates `source` per participant and period into `output`.

    plan_template: `result` = measure x `rate`, or by marginal `tiers`.
    leader_board:  `result` = rank of the participant by the measure (1 = highest).
    script:        `result` = `expression`, over sum, count, average, minimum, maximum and rate.
    """

    id: int
    name: str
    type: Literal["plan_template", "leader_board", "script"]
    published: bool = True
    active: bool = True
    valid_from: int = 1
    valid_to: int = 999_999
    source: str
    participant_field: str = "participant_eid"
    period_field: str = "period"
    measure: str
    output: str
    result_field: str
    measure_field: str | None = None  # also write the aggregated measure under this name
    rate: float | None = None
    tiers: list[Tier] = Field(default_factory=list)
    expression: str | None = None
    precision: int = 2


class Batch(BaseModel):
    id: int
    name: str
    published: bool = True
    active: bool = True
    valid_from: int = 1
    valid_to: int = 999_999
    calculations: list[int]


class ImportFileType(BaseModel):
    id: str
    name: str
    table: str
    needs_period: bool = False
    # CSV column -> table field; columns not named here keep their own name.
    mapping: dict[str, str] = Field(default_factory=dict)
    # More rejected rows than this fail the import's errand (its accepted rows stay); None: never.
    max_rejected_rows: int | None = Field(default=None, ge=0)


class ImportFile(BaseModel):
    id: int
    name: str
    size: int = 0
    created_at: int = 0
