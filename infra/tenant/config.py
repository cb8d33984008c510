"""A tenant's configuration directory, read and checked as a whole: `load(dir) -> TenantConfig`.

Every file but `tenant.json` may be left out: a kind whose file is missing is not managed (its plan is
empty, nothing of it is created, changed or deactivated).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from backroom.app.definition import AppDefinition
from pydantic import BaseModel, ValidationError

from infra.tenant.models import AccountEntry, AccountsFile, AppFile, GatewayFile, TenantFile, UserEntry, UsersFile

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """The directory is not a valid configuration: the message names the file and what is wrong."""


@dataclass
class TenantConfig:
    directory: Path
    tenant: TenantFile
    accounts: list[AccountEntry] | None = None  # parents before children; None: accounts.json is missing
    users: list[UserEntry] | None = None  # None: users.json is missing, users are not managed
    app: AppDefinition | None = None
    gateway: GatewayFile | None = None

    @property
    def tenant_id(self) -> str:
        return self.tenant.id

    def account_of(self, user: UserEntry) -> str:
        return user.account or self.tenant.id

    def password_of(self, user: UserEntry) -> str | None:
        """A new user's password from its `passwordFile`, read only when it is created."""
        if user.password_file is None:
            return None
        path = (self.directory / user.password_file).resolve()
        if not path.is_relative_to(self.directory.resolve()):
            raise ConfigError(f"users.json: {user.email}: passwordFile {user.password_file} is outside the directory")
        try:
            return password_in(path)
        except ConfigError as err:
            raise ConfigError(f"users.json: {user.email}: passwordFile: {err}") from None


MIN_PASSWORD = 12  # a password from a file shorter than this is refused
MAX_PASSWORD = 1024  # the login's own limit


def password_in(path: Path) -> str:
    """The first line of `path`, stripped: a password an operator chose (`passwordFile`, `admin bootstrap
    --password-file`); refused when unreadable, empty, shorter than MIN_PASSWORD or longer than MAX_PASSWORD."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the password file {path}: {err}") from None
    password = lines[0].strip() if lines else ""
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"the password in {path} is empty or shorter than {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ConfigError(f"the password in {path} is longer than {MAX_PASSWORD} characters")
    return password


def load(directory: Path | str) -> TenantConfig:
    """Read and validate every file of the directory, then check that they agree with one another."""
    directory = Path(directory)
    tenant = _read(directory, "tenant.json", TenantFile)
    if tenant is None:
        raise ConfigError(f"{directory}: no tenant.json (every configuration directory has one)")
    accounts = _read(directory, "accounts.json", AccountsFile)
    users = _read(directory, "users.json", UsersFile)
    app = _read(directory, "app.json", AppFile)
    config = TenantConfig(
        directory=directory,
        tenant=tenant,
        accounts=_tree_order(tenant.id, accounts.accounts) if accounts else None,
        users=users.users if users else None,
        app=app.definition() if app else None,
        gateway=_read(directory, "gateway.json", GatewayFile),
    )
    _check_users(config)
    return config


def _read(directory: Path, name: str, model: type[M]) -> M | None:
    path = directory / name
    if not path.exists():
        return None
    try:
        data: Any = json.loads(path.read_text())
        return model.model_validate(data)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{name}: not JSON: {err}") from None
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{name}: {problems}") from None


def _tree_order(root: str, accounts: list[AccountEntry]) -> list[AccountEntry]:
    """The accounts with each one's parent named (the root by default), parents first; a parent that is
    neither the root nor listed, a repeated id or a cycle is refused."""
    by_id: dict[str, AccountEntry] = {}
    for account in accounts:
        if account.id in by_id or account.id == root:
            raise ConfigError(f"accounts.json: account {account.id} is listed twice (or is the tenant itself)")
        by_id[account.id] = account.model_copy(update={"parent": account.parent or root})
    ordered: list[AccountEntry] = []
    placed = {root}
    while len(ordered) < len(by_id):
        ready = [a for a in by_id.values() if a.id not in placed and a.parent in placed]
        if not ready:
            stuck = sorted(a.id for a in by_id.values() if a.id not in placed)
            raise ConfigError(f"accounts.json: accounts {stuck} have a parent that is not in the tree")
        ordered.extend(ready)
        placed.update(a.id for a in ready)
    return ordered


def _check_users(config: TenantConfig) -> None:
    accounts = {config.tenant_id, *(a.id for a in config.accounts or [])}
    groups = {g.name for g in config.app.groups} if config.app else None
    seen: set[str] = set()
    for user in config.users or []:
        if user.email in seen:
            raise ConfigError(f"users.json: {user.email} is listed twice")
        seen.add(user.email)
        if config.account_of(user) not in accounts:
            raise ConfigError(f"users.json: {user.email}: account {user.account} is not in the tenant's tree")
        unknown = sorted(set(user.groups) - groups) if groups is not None else []
        if unknown or (user.groups and groups is None):
            raise ConfigError(f"users.json: {user.email}: groups {unknown or user.groups} are not in app.json")
