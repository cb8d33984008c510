"""The runtime's users: a developer lists, creates and changes the users of its tenant; any caller reads
itself. Users are addressed by id, and another tenant's user is a 404 (never revealed).

A user created or reset gets a one-time password, answered once: its first login must set its own
(`IdentityService.login`'s `new_password`). The groups a user names must be groups the app defines (400),
and a change of its groups reaches its permissions at once (`Grants.refresh_user`), on the tokens it has.
Each change is a line of the app's log, as the runtime logs a login or a record's change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from backroom.app.grants import Grants
from backroom.app.logs import AppLogs, LogLine
from backroom.errors import Forbidden, Invalid, NotFound
from backroom.identity.models import Caller, Role, User
from backroom.identity.service import IdentityService, one_time_password
from backroom.params import OFFSET_MOST, whole

SIZE_DEFAULT, SIZE_MOST = 20, 1000


@dataclass
class UserPage:
    total: int
    users: list[User]
    offset: int | None  # where the next page starts; None on the last


class AppUsers:
    def __init__(self, identity: IdentityService, grants: Grants, logs: AppLogs) -> None:
        self.identity = identity
        self.grants = grants
        self.logs = logs

    # Reading --------------------------------------------------------------
    def page(self, caller: Caller, params: Mapping[str, str]) -> UserPage:
        """A page of the caller's tenant's users by e-mail: `_size` (20 by default) from `_offset`."""
        _developer(caller)
        size = whole(params.get("_size"), "_size", 1, SIZE_MOST) or SIZE_DEFAULT
        offset = whole(params.get("_offset"), "_offset", 0, OFFSET_MOST) or 0
        total, users = self.identity.users_page(caller.tenant_id, offset, size)
        return UserPage(total, users, offset + size if offset + size < total else None)

    def get(self, caller: Caller, uid: str) -> User:
        _developer(caller)
        return self._of_tenant(caller, uid)

    def current(self, caller: Caller) -> User:
        """The caller's own user (the one impersonated, when a developer impersonates)."""
        user = self.identity.get_user(caller.email)
        if user is None:
            raise NotFound("Your user does not exist any more")
        return user

    # Changes --------------------------------------------------------------
    def create(
        self,
        caller: Caller,
        *,
        email: str,
        name: str,
        role: Role,
        groups: Sequence[str],
        account_id: str | None,
        ip: str | None,
    ) -> tuple[User, str]:
        """A user of an account the caller reaches (its own by default), and its one-time password."""
        _developer(caller)
        account = self.identity.account_in_reach(caller, account_id or caller.account_id)
        self.grants.check_groups(caller.tenant_id, groups)
        password = one_time_password()
        user = self.identity.create_user(
            email, password, name=name, role=role, account_id=account.id, groups=groups, one_time=True
        )
        self.grants.refresh_user(caller.tenant_id, user.email)
        self._log(caller, user, "created", ip)
        return user, password

    def update(
        self,
        caller: Caller,
        uid: str,
        *,
        name: str | None,
        role: Role | None,
        groups: Sequence[str] | None,
        ip: str | None,
    ) -> User:
        _developer(caller)
        user = self._of_tenant(caller, uid)
        if groups is not None:
            self.grants.check_groups(caller.tenant_id, groups)
        changed = self.identity.update_user(user.email, name=name, role=role, groups=groups)
        self.grants.refresh_user(caller.tenant_id, user.email)
        self._log(caller, changed, "changed", ip)
        return changed

    def deactivate(self, caller: Caller, uid: str, ip: str | None) -> User:
        """The user keeps its data and cannot log in; its sessions end."""
        _developer(caller)
        user = self._of_tenant(caller, uid)
        if user.email == caller.email:
            raise Invalid("You cannot deactivate yourself")
        changed = self.identity.deactivate_user(user.email)
        self._log(caller, changed, "deactivated", ip)
        return changed

    def reactivate(self, caller: Caller, uid: str, ip: str | None) -> User:
        _developer(caller)
        changed = self.identity.reactivate_user(self._of_tenant(caller, uid).email)
        self._log(caller, changed, "reactivated", ip)
        return changed

    def reset_password(self, caller: Caller, uid: str, ip: str | None) -> str:
        """A new one-time password (its sessions end); answered once."""
        _developer(caller)
        user = self._of_tenant(caller, uid)
        password = self.identity.reset_password(user.email)
        self._log(caller, user, "given a new one-time password", ip)
        return password

    def _of_tenant(self, caller: Caller, uid: str) -> User:
        user = self.identity.user_by_id(uid)
        if user is None or user.tenant_id != caller.tenant_id:
            raise NotFound(f"User {uid[:64]} does not exist")
        return user

    def _log(self, caller: Caller, user: User, what: str, ip: str | None) -> None:
        line = LogLine(
            message=f"User [{user.email}] was {what}",
            user=caller.email,
            admin_user=caller.admin_email,
            ip=ip,
            sub_type="USER_CHANGED",
            additional_info={"userId": user.id},
        )
        self.logs.add(caller.tenant_id, [line])


def _developer(caller: Caller) -> None:
    if not caller.is_developer:
        raise Forbidden("Only developers may manage users")
