"""The runtime dialect's users (`/runtime/api/users`): bodies and views. A user as JSON never carries
its password's hash; a one-time password is in the answer that made it, once."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from backroom.api.runtime import RuntimeModel
from backroom.identity.models import Caller, Role, User

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"
Name = Annotated[str, Field(min_length=1, max_length=200)]
Groups = Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=100)]


class UserView(RuntimeModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "57fce0c3e4b0ce322b0c06b2",
                    "email": "user@test.com",
                    "name": "User Test",
                    "role": "user",
                    "groups": ["Sales"],
                    "account": "demo",
                    "active": True,
                    "passwordChangeRequired": False,
                }
            ]
        }
    )

    id: str
    email: str
    name: str
    role: Role
    groups: list[str]
    account: str
    active: bool
    password_change_required: bool

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            groups=user.groups,
            account=user.account_id,
            active=user.active,
            password_change_required=user.password_change_required,
        )


class CreatedUserView(UserView):
    password: str = Field(description="The one-time password: shown once; the first login must replace it")


class CurrentUserView(UserView):
    impersonated_by: str | None = Field(default=None, description="The developer impersonating the user, if one is")

    @classmethod
    def of_caller(cls, user: User, caller: Caller) -> CurrentUserView:
        return cls(**UserView.of(user).model_dump(), impersonated_by=caller.admin_email)


class UserPageView(RuntimeModel):
    """`GET /users`: `total`, the `offset` of the next page (absent on the last), `items`."""

    total: int
    offset: int | None = None
    items: list[UserView]


class PasswordView(RuntimeModel):
    password: str = Field(description="The new one-time password: shown once; the next login must replace it")


class NewUser(RuntimeModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": "ana@test.com", "name": "Ana", "role": "user", "groups": ["Sales"]}]},
    )

    email: str = Field(min_length=3, max_length=320, pattern=EMAIL_PATTERN)
    name: Name
    role: Role = Role.USER
    groups: Groups = Field(default_factory=list)
    account: str | None = Field(default=None, min_length=1, max_length=64, description="Default: the caller's")


class UserChange(RuntimeModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"groups": ["Sales", "Readers"]}]})

    name: Name | None = None
    role: Role | None = None
    groups: Groups | None = None
