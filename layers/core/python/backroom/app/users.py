"""The runtime's users: a developer lists, creates and changes the users it reaches (those of its account
and the accounts below it, as `IdentityService.account_in_reach`); any caller reads itself. Users are
addressed by id, and a user out of reach (another tenant's, a parent account's) is a 404 (never revealed).
An e-mail names one user across the stack: a create with a taken one is a 409 that says not by whom.

A user created or reset gets a one-time password, answered once: its first login must set its own
(`IdentityService.login`'s `new_password`). The groups a user names must be groups the app defines, and
may not make it read an entity whose label names a field it may not read (400, nothing written,
`Grants.check_membership`); a change of its groups reaches its permissions at once (`Grants.refresh_user`),
on the tokens it has.
Each change rides on the request's line of the app's log (`subType: USER_CHANGED`), as a record's change does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from backroom.app.grants import Grants
from backroom.app.logs import AppLogs, LogLine
from backroom.errors import Conflict, Forbidden, Invalid, NotFound
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
        """A page of the users the caller reaches, by e-mail: `_size` (20 by default) from `_offset`."""
        _developer(caller)
        size = whole(params.get("_size"), "_size", 1, SIZE_MOST) or SIZE_DEFAULT
        offset = whole(params.get("_offset"), "_offset", 0, OFFSET_MOST) or 0
        total, users = self.identity.users_page(caller, offset, size)
        return UserPage(total, users, offset + size if offset + size < total else None)

    def get(self, caller: Caller, uid: str) -> User:
        _developer(caller)
        return self.identity.user_in_reach(caller, uid)

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
        self.grants.check_membership(caller.tenant_id, email, groups)
        password = one_time_password()
        try:
            user = self.identity.create_user(
                email, password, name=name, role=role, account_id=account.id, groups=groups, one_time=True
            )
        except Conflict:  # e-mails are keys across tenants: whose it is, is not said
            raise Conflict("This e-mail cannot be used for a new user") from None
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
        user = self.identity.user_in_reach(caller, uid)
        if groups is not None:
            self.grants.check_groups(caller.tenant_id, groups)
            self.grants.check_membership(caller.tenant_id, user.email, groups)
        changed = self.identity.update_user(user.email, name=name, role=role, groups=groups)
        self.grants.refresh_user(caller.tenant_id, user.email)
        self._log(caller, changed, "changed", ip)
        return changed

    def deactivate(self, caller: Caller, uid: str, ip: str | None) -> User:
        """The user keeps its data and cannot log in; its sessions end."""
        _developer(caller)
        user = self.identity.user_in_reach(caller, uid)
        if user.email == caller.email:
            raise Invalid("You cannot deactivate yourself")
        changed = self.identity.deactivate_user(user.email)
        self._log(caller, changed, "deactivated", ip)
        return changed

    def reactivate(self, caller: Caller, uid: str, ip: str | None) -> User:
        _developer(caller)
        changed = self.identity.reactivate_user(self.identity.user_in_reach(caller, uid).email)
        self._log(caller, changed, "reactivated", ip)
        return changed

    def reset_password(self, caller: Caller, uid: str, ip: str | None) -> str:
        """A new one-time password (its sessions end); answered once."""
        _developer(caller)
        user = self.identity.user_in_reach(caller, uid)
        password = self.identity.reset_password(user.email)
        self._log(caller, user, "given a new one-time password", ip)
        return password

    def _log(self, caller: Caller, user: User, what: str, ip: str | None) -> None:
        line = LogLine(
            message=f"User [{user.email}] was {what}",
            user=caller.email,
            admin_user=caller.admin_email,
            ip=ip,
            sub_type="USER_CHANGED",
            additional_info={"userId": user.id, "change": what},
        )
        self.logs.note(caller.tenant_id, line)


def _developer(caller: Caller) -> None:
    if not caller.is_developer:
        raise Forbidden("Only developers may manage users")
