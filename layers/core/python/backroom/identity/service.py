"""Identity logic: login, impersonation, token checks and account-tree access."""

from __future__ import annotations

import hashlib
import secrets

from backroom.clock import now_ms
from backroom.errors import Conflict, Forbidden, NotFound, Unauthorized
from backroom.identity.models import Account, Caller, Role, Session, User
from backroom.identity.passwords import decoy_hash, hash_password, needs_rehash, verify_password
from backroom.identity.repository import IdentityRepository
from backroom.ids import new_id

# A token's last use is written back at most this often, to spare a write per request.
_TOUCH_EVERY_MS = 60_000


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
    def __init__(self, repo: IdentityRepository, *, token_idle_seconds: int) -> None:
        self.repo = repo
        self.idle_ms = token_idle_seconds * 1000

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
        self, email: str, password: str, *, name: str, role: Role, account_id: str, user_id: str | None = None
    ) -> User:
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
            password_hash=hash_password(password),
        )
        self.repo.put_user(user)
        return user

    # Login ---------------------------------------------------------------
    def login(self, email: str, password: str, *, impersonate: str | None = None, ip: str | None = None) -> Session:
        user = self.repo.get_user(email)
        if not verify_password(password, user.password_hash if user else decoy_hash()) or user is None:
            raise Unauthorized("Invalid credentials")
        if needs_rehash(user.password_hash):
            # Made at an older cost: replaced, now that the password is known, unless another login did first.
            self.repo.replace_password_hash(user.email, user.password_hash, hash_password(password))
        caller = _caller(user)
        if impersonate:
            if user.role is not Role.DEVELOPER:
                raise Forbidden("Only developers may impersonate other users")
            target = self.repo.get_user(impersonate)
            if target is None:
                raise NotFound(f"User {impersonate} does not exist")
            if target.tenant_id != user.tenant_id:
                # Another tenant's user is indistinguishable from a missing one.
                raise NotFound(f"User {impersonate} does not exist")
            caller = _caller(target, admin_email=user.email)
        token = secrets.token_urlsafe(24)
        now = now_ms()
        self.repo.put_token(_hash_token(token), caller, now_ms=now, expires_s=(now + self.idle_ms) // 1000)
        return Session(token=token, caller=caller.model_copy(update={"token": token}), ip=ip)

    def authenticate(self, token: str | None) -> Caller:
        """The caller a token stands for; a missing, unknown or idle-expired token is 401."""
        if not token:
            raise Unauthorized("A token is required")
        token_hash = _hash_token(token)
        item = self.repo.get_token(token_hash)
        now = now_ms()
        if item is None or now - int(item["last_used_ms"]) > self.idle_ms:
            raise Unauthorized("The token is not valid or has expired")
        if now - int(item["last_used_ms"]) > _TOUCH_EVERY_MS:
            self.repo.touch_token(token_hash, now_ms=now, expires_s=(now + self.idle_ms) // 1000)
        return Caller.model_validate({**item, "token": token})

    # Access --------------------------------------------------------------
    def account_in_reach(self, caller: Caller, account_id: str) -> Account:
        """The account if the caller's account is it or one of its ancestors; otherwise 404 (never revealed)."""
        account = self.repo.get_account(account_id)
        if account is None or caller.account_id not in account.ancestors:
            raise NotFound(f"Account {account_id} does not exist")
        return account
