"""Identity's domain models."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class Role(StrEnum):
    DEVELOPER = "developer"
    USER = "user"


class Account(BaseModel):
    id: str
    name: str
    parent_id: str | None = None
    # Ids from the root of the tree down to this account, inclusive.
    ancestors: list[str] = Field(default_factory=list)

    @property
    def tenant_id(self) -> str:
        """The root account: the tenant whose data this account shares."""
        return self.ancestors[0] if self.ancestors else self.id


class User(BaseModel):
    id: str
    email: str
    name: str
    role: Role
    account_id: str
    tenant_id: str
    password_hash: str = Field(repr=False)
    # Moves on every change of role, account or state: a login that read an older version opens no
    # session (docs/security.md, "Sessions and login throttling").
    version: int = 0
    active: bool = True
    # The app's groups the user belongs to (with the groups' own `users` lists: backroom.app.grants).
    groups: list[str] = Field(default_factory=list)
    # A one-time password (given by a developer): the next login must set a new one.
    password_change_required: bool = False


class Caller(BaseModel):
    """Who a request acts as, resolved from its token."""

    user_id: str
    email: str
    name: str
    role: Role
    account_id: str
    tenant_id: str
    admin_email: str | None = None
    token: str = Field(default="", repr=False)

    @property
    def is_developer(self) -> bool:
        return self.role is Role.DEVELOPER


class Session(BaseModel):
    """What a successful login hands back."""

    token: str
    caller: Caller
    ip: str | None = None
