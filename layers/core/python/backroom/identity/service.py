"""Identity logic: login (throttled; a one-time password changed at login), impersonation, sessions
(idle and absolute lifetimes, logout, revocation when a user changes), users (by tenant, by id, their
groups, one-time passwords) and account-tree access."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable

from backroom.clock import now_ms
from backroom.errors import (
    Conflict,
    FieldError,
    Forbidden,
    Invalid,
    NotFound,
    Overloaded,
    PasswordChangeRequired,
    Unauthorized,
)
from backroom.identity.models import Account, Caller, Role, Session, User
from backroom.identity.passwords import decoy_hash, hash_password, needs_rehash, verify_password
from backroom.identity.repository import IdentityRepository
from backroom.identity.throttle import HashSlots, LoginLimits, LoginThrottle
from backroom.ids import new_id

# A token's last use is written back at most this often, to spare a write per request.
_TOUCH_EVERY_MS = 60_000
NEW_PASSWORD_LEAST = 12  # characters of a password a user chooses
_ONE_TIME_BYTES = 18  # a one-time password: 24 URL-safe characters, 144 random bits
GROUPS_MOST, GROUP_NAME_MOST = 100, 100


def one_time_password() -> str:
    return secrets.token_urlsafe(_ONE_TIME_BYTES)


def check_new_password(new: str, old: str) -> None:
    """A password a user chooses: at least `NEW_PASSWORD_LEAST` characters, and not the one it replaces."""
    problem = None
    if len(new) < NEW_PASSWORD_LEAST:
        problem = f"must be at least {NEW_PASSWORD_LEAST} characters"
    elif new == old:
        problem = "must differ from the password it replaces"
    if problem:
        raise Invalid(f"newPassword {problem}", errors=[FieldError("newPassword", problem, "invalid")])


def group_names(groups: Iterable[str]) -> list[str]:
    """A user's groups as stored: trimmed, each once, sorted; a name empty or too long is a 400."""
    names = sorted({str(g).strip() for g in groups})
    if len(names) > GROUPS_MOST or any(not 0 < len(n) <= GROUP_NAME_MOST for n in names):
        message = f"groups are at most {GROUPS_MOST} names of 1 to {GROUP_NAME_MOST} characters"
        raise Invalid(message, errors=[FieldError("groups", message, "invalid")])
    return names


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _caller(user: User, admin_email: str | None = None) -> Caller:
    return Caller(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        account_id=user.account_id,
        tenant_id=user.tenant_id,
        admin_email=admin_email,
    )


class IdentityService:
    def __init__(
        self,
        repo: IdentityRepository,
        *,
        token_idle_seconds: int,
        token_lifetime_seconds: int = 7 * 24 * 3600,
        limits: LoginLimits | None = None,
        hashes_at_once: int = 2,
        hash_wait_seconds: float = 10.0,
        manages_groups: Callable[[User], bool] | None = None,
    ) -> None:
        self.repo = repo
        # Whether a user (not a developer) belongs to an app group with the flag to manage groups: such a
        # user may impersonate, as the spec says (the app's groups are not identity's: the wiring asks them).
        self.manages_groups = manages_groups or (lambda _user: False)
        self.idle_ms = token_idle_seconds * 1000
        self.lifetime_ms = token_lifetime_seconds * 1000
        self.throttle = LoginThrottle(repo, limits or LoginLimits())
        self.hashing = HashSlots(hashes_at_once, hash_wait_seconds)

    # Set-up --------------------------------------------------------------
    def create_account(self, account_id: str, name: str, parent_id: str | None = None) -> Account:
        ancestors: list[str] = []
        if parent_id:
            parent = self.repo.get_account(parent_id)
            if parent is None:
                raise NotFound(f"Account {parent_id} does not exist")
            ancestors = parent.ancestors
        account = Account(id=account_id, name=name, parent_id=parent_id, ancestors=[*ancestors, account_id])
        self.repo.put_account(account)
        return account

    def create_user(
        self,
        email: str,
        password: str,
        *,
        name: str,
        role: Role,
        account_id: str,
        user_id: str | None = None,
        groups: Iterable[str] = (),
        one_time: bool = False,
    ) -> User:
        """A user of the account's tenant; `one_time`: the password must be changed at the first login."""
        account = self.repo.get_account(account_id)
        if account is None:
            raise NotFound(f"Account {account_id} does not exist")
        if self.repo.get_user(email) is not None:  # before the hash: half a second saved (the put checks again)
            raise Conflict(f"User {email.strip().lower()} already exists")
        user = User(
            id=user_id or new_id(),
            email=email.strip().lower(),
            name=name,
            role=role,
            account_id=account.id,
            tenant_id=account.tenant_id,
            password_hash=self._hash(password),
            groups=group_names(groups),
            password_change_required=one_time,
        )
        self.repo.put_user(user)
        return user

    # Users ---------------------------------------------------------------
    def get_user(self, email: str) -> User | None:
        return self.repo.get_user(email)

    def user_by_id(self, uid: str) -> User | None:
        email = self.repo.email_of(uid)
        return self.repo.get_user(email) if email else None

    def users_of(self, tenant_id: str) -> list[User]:
        """Every user of the tenant, by e-mail (a Query on gsi1, never a Scan)."""
        return self.repo.users_of(tenant_id)

    def users_page(self, caller: Caller, offset: int, size: int) -> tuple[int, list[User]]:
        """How many users the caller reaches, and `size` of them from `offset`, by e-mail.

        A caller of the tenant's root account reaches them all: a count and the first `offset + size`.
        Below the root, a caller reaches the users of its account and those under it only: the tenant's
        users are read (one Query, the items the root's count reads too) and those of its subtree kept
        (a Query per account of the subtree), so its total and pages are exact."""
        tenant_id = caller.tenant_id
        if caller.account_id == tenant_id:
            total = self.repo.count_users(tenant_id)
            return total, self.repo.users_of(tenant_id, limit=offset + size)[offset:] if offset < total else []
        reach = {a.id for a in self.repo.subtree(caller.account_id)}
        users = [u for u in self.repo.users_of(tenant_id) if u.account_id in reach]
        return len(users), users[offset : offset + size]

    def user_in_reach(self, caller: Caller, uid: str) -> User:
        """The user of id `uid` if the caller reaches its account (see `account_in_reach`); otherwise
        404, as for a missing user: a parent account's or another tenant's user is never revealed."""
        user = self.user_by_id(uid)
        if user is None or not self._reaches(caller, user):
            raise NotFound(f"User {uid[:64]} does not exist")
        return user

    # Changes -------------------------------------------------------------
    # Each change moves the user's version on, then ends every session of the user: a token carries
    # the role and account it was opened with, so none may outlive them. A login that read the user
    # before the change cannot open a session after it (its transaction checks the version). Ending
    # the sessions is idempotent: a change interrupted before it is finished by running it again.
    # A change of groups alone leaves the sessions be: a token carries no groups, and the permissions
    # they give are read on every request (backroom.app.grants).
    def change_role(self, email: str, role: Role) -> User:
        return self._change(email, {"role": role.value})

    def set_groups(self, email: str, groups: Iterable[str]) -> User:
        return self._change(email, {"groups": group_names(groups)}, end_sessions=False)

    def update_user(
        self, email: str, *, name: str | None = None, role: Role | None = None, groups: Iterable[str] | None = None
    ) -> User:
        """Change what is given and differs; nothing differs: the user as it is, nothing written."""
        user = self._user(email)
        changes: dict[str, object] = {}
        if name is not None and name != user.name:
            changes["name"] = name
        if role is not None and role is not user.role:
            changes["role"] = role.value
        carried = bool(changes)  # a session carries the name and role it was opened with
        if groups is not None and group_names(groups) != user.groups:
            changes["groups"] = group_names(groups)
        return self._change(email, changes, end_sessions=carried) if changes else user

    def reset_password(self, email: str) -> str:
        """A new one-time password in place of the user's (answered once, never stored in clear)."""
        password = one_time_password()
        self._change(email, {"password_hash": self._hash(password), "password_change_required": True})
        return password

    def move_user(self, email: str, account_id: str) -> User:
        account = self.repo.get_account(account_id)
        if account is None:
            raise NotFound(f"Account {account_id} does not exist")
        return self._change(email, {"account_id": account.id, "tenant_id": account.tenant_id})

    def deactivate_user(self, email: str) -> User:
        """The user keeps its data and cannot log in (a good password answers as a wrong one)."""
        return self._change(email, {"active": False})

    def reactivate_user(self, email: str) -> User:
        return self._change(email, {"active": True})

    def remove_user(self, email: str) -> None:
        user = self._user(email)
        self.repo.delete_user(user)
        self.repo.end_sessions_of(user.id)

    def _user(self, email: str) -> User:
        user = self.repo.get_user(email)
        if user is None:
            raise NotFound(f"User {email.strip().lower()} does not exist")
        return user

    def _change(self, email: str, changes: dict[str, object], *, end_sessions: bool = True) -> User:
        user = self.repo.update_user(email, changes)
        if end_sessions:
            self.repo.end_sessions_of(user.id)
        return user

    def _hash(self, password: str) -> str:
        with self.hashing.slot():  # 128 MiB a hash: as many at once as the instance allows
            return hash_password(password)

    # Login ---------------------------------------------------------------
    def login(
        self,
        email: str,
        password: str,
        *,
        impersonate: str | None = None,
        ip: str | None = None,
        new_password: str | None = None,
    ) -> Session:
        """A session for a good password; `new_password` replaces the password first (a one-time
        password must be replaced so: without one, a 403 `passwordChangeRequired` and no session)."""
        if new_password is not None:
            check_new_password(new_password, password)
        user = self._checked(email, password, ip, rehash=new_password is None)
        if new_password is not None:
            user = self._replace_password(user, new_password)
        elif user.password_change_required:
            raise PasswordChangeRequired("This password must be changed: log in again with newPassword")
        caller, users = _caller(user), [user]
        if impersonate:
            target = self._impersonated(user, impersonate)
            caller, users = _caller(target, admin_email=user.email), [target, user]
        token = secrets.token_urlsafe(24)
        now = now_ms()
        ends = now + self.lifetime_ms
        self.repo.put_session(
            _hash_token(token),
            caller,
            users,
            now_ms=now,
            expires_s=min(now + self.idle_ms, ends) // 1000,
            ends_s=ends // 1000,
        )
        return Session(token=token, caller=caller.model_copy(update={"token": token}), ip=ip)

    def _impersonated(self, user: User, email: str) -> User:
        """The user `user` may log in as: a developer may impersonate any user it reaches; a member of a
        group with the flag to manage groups, any user it reaches but a developer (who may do more than it).
        Anyone else: 403, before the target is looked up (no answer says who exists)."""
        manager = user.role is not Role.DEVELOPER
        if manager and not self.manages_groups(user):
            raise Forbidden("Only developers and members of a group that manages groups may impersonate other users")
        target = self.repo.get_user(email)
        # A user out of reach (another tenant's, a parent account's) or deactivated is as a missing one.
        if target is None or not self._reaches(_caller(user), target) or not target.active:
            raise NotFound(f"User {email} does not exist")
        if manager and target.role is Role.DEVELOPER:
            raise Forbidden("Only developers may impersonate a developer")
        return target

    def _checked(self, email: str, password: str, ip: str | None, *, rehash: bool) -> User:
        """The active user whose password this is; 401 otherwise, the failure counted (429 past the limits)."""
        # Counted before any hash: over a limit, a 429 and no scrypt (docs/security.md, "Sessions and login
        # throttling").
        attempt = self.throttle.admit(email, ip)
        user = self.repo.get_user(email)
        try:
            with self.hashing.slot():
                good = verify_password(password, user.password_hash if user else decoy_hash())
                if good and rehash and user is not None and needs_rehash(user.password_hash):
                    # Made at an older cost: replaced, now that the password is known, unless another login did first.
                    self.repo.replace_password_hash(user.email, user.password_hash, hash_password(password))
        except Overloaded:
            self.throttle.give_back(attempt)  # no password was checked
            raise
        if not good or user is None or not user.active:
            raise Unauthorized("Invalid credentials")  # the attempt stays counted
        self.throttle.give_back(attempt)  # a good password: only failures count
        return user

    def _replace_password(self, user: User, new_password: str) -> User:
        """The user with `new_password` in place of the one just checked (unless it changed meanwhile: 409);
        every session it had ends, as a password changed is a password that may have leaked."""
        changes = {"password_hash": self._hash(new_password), "password_change_required": False}
        changed = self.repo.update_user(user.email, changes, expect_hash=user.password_hash)
        self.repo.end_sessions_of(user.id)
        return changed

    def authenticate(self, token: str | None) -> Caller:
        """The caller a token stands for; a missing, unknown, ended, idle or too old token is 401."""
        if not token:
            raise Unauthorized("A token is required")
        token_hash = _hash_token(token)
        item = self.repo.get_token(token_hash)
        now = now_ms()
        # A token from before absolute lifetimes (no `created_ms`) has no known age: it is refused.
        if (
            item is None
            or "created_ms" not in item
            or now - int(item["last_used_ms"]) > self.idle_ms
            or now - int(item["created_ms"]) >= self.lifetime_ms
        ):
            raise Unauthorized("The token is not valid or has expired")
        if now - int(item["last_used_ms"]) > _TOUCH_EVERY_MS:
            ends = int(item["created_ms"]) + self.lifetime_ms
            self.repo.touch_token(token_hash, now_ms=now, expires_s=min(now + self.idle_ms, ends) // 1000)
        return Caller.model_validate({**item, "token": token})

    def logout(self, token: str | None) -> None:
        """End the session of `token` at once: from now on it is a 401 everywhere."""
        if not token or not self.repo.end_session(_hash_token(token)):
            raise Unauthorized("The token is not valid or has expired")

    # Access --------------------------------------------------------------
    def account_in_reach(self, caller: Caller, account_id: str) -> Account:
        """The account if the caller's account is it or one of its ancestors; otherwise 404 (never revealed)."""
        account = self.repo.get_account(account_id)
        if account is None or caller.account_id not in account.ancestors:
            raise NotFound(f"Account {account_id} does not exist")
        return account

    def _reaches(self, caller: Caller, user: User) -> bool:
        """Whether the caller's account is the user's or one of its ancestors (its own: no read)."""
        if user.tenant_id != caller.tenant_id:
            return False
        if user.account_id == caller.account_id:
            return True
        account = self.repo.get_account(user.account_id)
        return account is not None and caller.account_id in account.ancestors
