"""The files of a tenant's configuration directory, one pydantic model each (docs/config.md).

Each file starts with `"$schema"`, the address of its JSON Schema (`docs/schemas/<file>.schema.json`,
written from these models by `make schemas`), so an editor checks the file as it is typed. The files of
today's shapes (`app.json`: `backroom.app.definition.AppDefinition`; the gateway's items:
`backroom.calcengine.models`) keep them, snake_case as they are stored; the files new to the
configuration (tenant, accounts, users) are camelCase like the HTTP APIs.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from backroom.app.definition import AppDefinition
from backroom.calcengine.models import Batch, Calculation, ImportFileType, Participant, Period
from backroom.identity.models import Role
from backroom.identity.service import group_names
from backroom.records.schema import GATEWAY, Schema
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ID = r"^[A-Za-z0-9_-]{1,64}$"
_SCHEMA = Field(default=None, alias="$schema", description="The address of this file's JSON Schema.")


class ConfigFile(BaseModel):
    """A file of the directory: its `$schema`, and no key the model does not know (a typo is an error)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_url: str | None = _SCHEMA


class TenantFile(ConfigFile):
    """`tenant.json`: the tenant, which is the root account of its account tree."""

    id: str = Field(pattern=_ID, description="The root account's id: every key of the tenant's data holds it.")
    name: str = Field(min_length=1, max_length=200)


class AccountEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1, max_length=200)
    parent: str | None = Field(default=None, description="The parent account's id; none: the tenant (the root).")


class AccountsFile(ConfigFile):
    """`accounts.json`: the accounts below the root, the Tasks dialect's account tree."""

    accounts: list[AccountEntry] = Field(default_factory=list)


class UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(min_length=1, max_length=200)
    role: Role = Role.USER
    account: str | None = Field(default=None, description="The user's account id; none: the tenant (the root).")
    groups: list[str] = Field(default_factory=list, description="Names of the app's groups the user is a member of.")
    id: str | None = Field(
        default=None, pattern=_ID, description="The id given to a new user (default: a new one); never changed after."
    )
    password_file: str | None = Field(
        default=None,
        alias="passwordFile",
        description="A file, relative to the directory, holding a NEW user's password; without one, a new user "
        "gets a one-time password that apply prints once. An existing user's password is never changed.",
    )

    @field_validator("groups")
    @classmethod
    def _as_stored(cls, value: list[str]) -> list[str]:
        """Trimmed, each once, sorted, as a user's groups are stored: a name listed twice plans no change."""
        return group_names(value)

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


class UsersFile(ConfigFile):
    """`users.json`: every user of the tenant; one not listed is deactivated (docs/config.md)."""

    users: list[UserEntry] = Field(default_factory=list)


class AppFile(AppDefinition):
    """`app.json`: the runtime app (`backroom.app.definition.AppDefinition`): entities, actions, groups."""

    model_config = ConfigDict(populate_by_name=True)

    schema_url: str | None = _SCHEMA

    def definition(self) -> AppDefinition:
        return AppDefinition.model_validate(self.model_dump(by_alias=True, exclude={"schema_url"}))


class PeriodEntry(BaseModel):
    """A period: its dates (`start`, `end`), or a whole month of this year (`month`, and `years_ago`).

    The relative form is resolved at each plan: on January 1st the next plan moves those periods on a year.
    """

    model_config = ConfigDict(extra="forbid")

    number: int = Field(ge=1)
    start: dt.date | None = None
    end: dt.date | None = None
    month: int | None = Field(default=None, ge=1, le=12)
    years_ago: int = Field(default=0, ge=0)
    locked: bool = False

    @model_validator(mode="after")
    def _one_form(self) -> PeriodEntry:
        dated = self.start is not None and self.end is not None
        if dated == (self.month is not None) or (self.start is None) != (self.end is None):
            raise ValueError(f"period {self.number}: give either start and end, or month (and years_ago)")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"period {self.number}: it ends before it starts")
        return self

    def resolved(self, today: dt.date) -> Period:
        if self.start is not None and self.end is not None:
            return Period(number=self.number, start=self.start, end=self.end, locked=self.locked)
        year, month = today.year - self.years_ago, self.month or 1
        last = calendar.monthrange(year, month)[1]
        return Period(
            number=self.number, start=dt.date(year, month, 1), end=dt.date(year, month, last), locked=self.locked
        )


class GatewayFile(ConfigFile):
    """`gateway.json`: the gateway's custom tables (their schemas), periods, participants, calculations
    (plan templates, leader boards, scripts), batches and import file types."""

    tables: list[Schema] = Field(default_factory=list)
    periods: list[PeriodEntry] = Field(default_factory=list)
    participants: list[Participant] = Field(default_factory=list)
    calculations: list[Calculation] = Field(default_factory=list)
    batches: list[Batch] = Field(default_factory=list)
    file_types: list[ImportFileType] = Field(default_factory=list)

    @field_validator("tables")
    @classmethod
    def _gateway_tables(cls, tables: list[Schema]) -> list[Schema]:
        return [t.model_copy(update={"namespace": GATEWAY}) for t in tables]

    @model_validator(mode="after")
    def _unique_and_bound(self) -> GatewayFile:
        for kind, keys in (
            ("table", [t.name for t in self.tables]),
            ("period", [p.number for p in self.periods]),
            ("participant", [p.id for p in self.participants]),
            ("calculation", [c.id for c in self.calculations]),
            ("batch", [b.id for b in self.batches]),
            ("file type", [f.id for f in self.file_types]),
        ):
            _no_repeats(kind, keys)
        calculations = {c.id for c in self.calculations}
        for batch in self.batches:
            missing = sorted(set(batch.calculations) - calculations)
            if missing:
                raise ValueError(f"batch {batch.id}: calculations {missing} are not in this file")
        return self


def _no_repeats(kind: str, keys: list[Any]) -> None:
    seen: set[Any] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"two of the {kind}s are {key}")
        seen.add(key)


# The directory's files: the name, its model, and whether it must be there.
FILES: dict[str, type[ConfigFile] | type[AppFile]] = {
    "tenant.json": TenantFile,
    "accounts.json": AccountsFile,
    "users.json": UsersFile,
    "app.json": AppFile,
    "gateway.json": GatewayFile,
}
