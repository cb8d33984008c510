"""`plan(core, config) -> Plan`: what applying a tenant's directory would change, resource by resource.

Read-only: a plan reads what is stored (GetItem and Query, never a Scan) and writes nothing. Each kind
has its planner, run in the order apply runs their steps: accounts (parents first), the app, users
(whose groups name the app's), the gateway's items.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from backroom.app.definition import AppDefinition
from backroom.app.evolution import narrowing
from backroom.calcengine.models import Participant, Period
from backroom.calcengine.tables import define_custom_table
from backroom.errors import NotFound
from backroom.identity.models import Account, User
from backroom.identity.service import one_time_password
from backroom.records.schema import GATEWAY, Schema
from backroom.wiring import Core
from pydantic import BaseModel

from infra.tenant.changes import Change, Plan, Step, change
from infra.tenant.config import ConfigError, TenantConfig
from infra.tenant.models import AccountEntry, UserEntry

KEPT = "not in the directory: kept (apply never deletes one)"


class PlanError(ConfigError):
    """The directory cannot be applied to this stack (an account or user belongs elsewhere, a move apply
    does not make): nothing is planned."""


def plan(core: Core, config: TenantConfig, *, today: dt.date | None = None) -> Plan:
    """`today` dates the periods given as a month of this year (default: today, UTC)."""
    steps = [
        *_accounts(core, config),
        *([_app(core, config.tenant_id, config.app)] if config.app is not None else []),
        *_users(core, config),
        *_gateway(core, config, today or dt.datetime.now(dt.UTC).date()),
    ]
    return Plan(steps)


# Accounts ---------------------------------------------------------------------
def _accounts(core: Core, config: TenantConfig) -> list[Step]:
    tenant = config.tenant_id
    repo = core.identity.repo
    root = repo.get_account(tenant)
    if root is not None and root.parent_id:
        raise PlanError(f"tenant.json: {tenant} is an account of the tenant {root.tenant_id}, not a tenant")
    steps = [_account(core, AccountEntry(id=tenant, name=config.tenant.name), root)]
    if config.accounts is None:
        return steps
    for entry in config.accounts:
        stored = repo.get_account(entry.id)
        if stored is not None and (stored.tenant_id != tenant or stored.parent_id != entry.parent):
            raise PlanError(
                f"accounts.json: {entry.id} is under {stored.parent_id} (tenant {stored.tenant_id}); "
                "apply does not move an account"
            )
        steps.append(_account(core, entry, stored))
    listed = {tenant, *(a.id for a in config.accounts)}
    kept = [a for a in (repo.subtree(tenant) if root else []) if a.id not in listed]
    steps.extend(Step([Change(f"account {a.id}", "no change", f"{a.name}: {KEPT}")]) for a in kept)
    return steps


def _account(core: Core, entry: AccountEntry, stored: Account | None) -> Step:
    old = {"name": stored.name, "parent": stored.parent_id} if stored else None
    new = {"name": entry.name, "parent": entry.parent}
    where = f" under {entry.parent}" if entry.parent else " (the tenant)"

    def put() -> None:
        core.identity.create_account(entry.id, entry.name, entry.parent)  # a put: a rename keeps the place

    return Step([change(f"account {entry.id}", old, new, created=f"{entry.name}{where}")], put)


# The app ----------------------------------------------------------------------
def _app(core: Core, tenant: str, app: AppDefinition) -> Step:
    """The app's lines as its evolution plans them (entities, fields, indexes, actions, groups), applied
    as one new version; its data work runs as jobs the apply starts and does not wait for."""

    def evolve() -> str:
        # Destructive changes were refused by `apply` unless allowed, before any step ran.
        applied = core.evolution.apply(tenant, app, allow_destructive=True)
        jobs = f"; data jobs {', '.join(applied.job_ids)}" if applied.job_ids else ""
        return f"app: version {applied.version}{jobs}"

    return Step(core.evolution.plan(tenant, app), evolve)


# Users ------------------------------------------------------------------------
def _users(core: Core, config: TenantConfig) -> list[Step]:
    if config.users is None:
        return []
    tenant = config.tenant_id
    steps = []
    for entry in config.users:
        stored = core.identity.repo.get_user(entry.email)
        if stored is not None and stored.tenant_id != tenant:
            raise PlanError(f"users.json: {entry.email} is a user of another tenant")
        steps.append(_new_user(core, config, entry) if stored is None else _user(core, config, entry, stored))
    listed = {u.email for u in config.users}
    for user in core.identity.users_of(tenant):
        if user.email not in listed and user.active:
            steps.append(_deactivation(core, user))
    return steps


def _new_user(core: Core, config: TenantConfig, entry: UserEntry) -> Step:
    account = config.account_of(entry)
    how = "password from its passwordFile" if entry.password_file else "a one-time password, printed once"
    groups = ", ".join(entry.groups) or "none"
    detail = f"{entry.name}, {entry.role.value}, account {account}, groups: {groups}; {how}"
    if entry.password_file:
        config.password_of(entry)  # an unreadable file stops the plan, not an apply halfway through

    def create() -> str | None:
        core.grants.check_membership(config.tenant_id, entry.email, entry.groups)  # a label's rule, before a write
        given = config.password_of(entry)
        password = given or one_time_password()
        core.identity.create_user(
            entry.email, password, name=entry.name, role=entry.role, account_id=account,
            user_id=entry.id, groups=entry.groups, one_time=given is None,
        )  # fmt: skip
        core.grants.refresh_user(config.tenant_id, entry.email)
        return None if given else f"{entry.email}: one-time password {password} (shown once; changed at first login)"

    return Step([Change(f"user {entry.email}", "create", detail)], create)


def _user(core: Core, config: TenantConfig, entry: UserEntry, stored: User) -> Step:
    old = {
        "name": stored.name, "role": stored.role.value, "account": stored.account_id,
        "groups": sorted(stored.groups), "active": stored.active,
    }  # fmt: skip
    new = {
        "name": entry.name, "role": entry.role.value, "account": config.account_of(entry),
        "groups": sorted(entry.groups), "active": True,
    }  # fmt: skip

    def update() -> None:
        identity = core.identity
        core.grants.check_membership(config.tenant_id, entry.email, entry.groups)  # a label's rule, before a write
        if not stored.active:
            identity.reactivate_user(entry.email)
        if old["account"] != new["account"]:
            identity.move_user(entry.email, config.account_of(entry))
        identity.update_user(entry.email, name=entry.name, role=entry.role, groups=entry.groups)  # what differs
        core.grants.refresh_user(config.tenant_id, entry.email)

    return Step([change(f"user {entry.email}", old, new)], update)


def _deactivation(core: Core, user: User) -> Step:
    why = f"deactivates {user.email}: it can no longer log in (listing it again reactivates it)"

    def deactivate() -> None:
        core.identity.deactivate_user(user.email)

    return Step([Change(f"user {user.email}", "delete", "deactivated, not deleted (its data stays)", why)], deactivate)


# Gateway ----------------------------------------------------------------------
def _gateway(core: Core, config: TenantConfig, today: dt.date) -> list[Step]:
    gateway, tenant, repo = config.gateway, config.tenant_id, core.calc
    if gateway is None:
        return []
    steps = [_table(core, tenant, table) for table in gateway.tables]
    periods = {p.number: p for p in repo.periods(tenant)}
    for entry in gateway.periods:
        period = entry.resolved(today)
        put = _putter(repo.put_period, tenant, period)
        steps.append(_item(f"period {period.number}", periods.pop(period.number, None), period, put))
    steps.extend(Step([Change(f"period {n}", "no change", KEPT)]) for n in sorted(periods))
    participants = {p.id: p for p in repo.participants(tenant)}
    for participant in gateway.participants:
        put = _putter(repo.put_participant, tenant, participant)
        steps.append(_item(f"participant {participant.id}", participants.pop(participant.id, None), participant, put))
    steps.extend(Step([Change(f"participant {n}", "no change", KEPT)]) for n in sorted(participants))
    for calc in gateway.calculations:
        put = _putter(repo.put_calculation, tenant, calc)
        steps.append(_item(f"calculation {calc.id}", repo.calculation(tenant, calc.id), calc, put))
    for batch in gateway.batches:
        steps.append(
            _item(f"batch {batch.id}", repo.batch(tenant, batch.id), batch, _putter(repo.put_batch, tenant, batch))
        )
    for kind in gateway.file_types:
        put = _putter(repo.put_file_type, tenant, kind)
        steps.append(_item(f"file type {kind.id}", repo.file_type(tenant, kind.id), kind, put))
    return steps


def _putter(put: Callable[[str, Any], None], tenant: str, item: BaseModel) -> Callable[[], None]:
    return lambda: put(tenant, item)


def _item(resource: str, stored: BaseModel | None, desired: BaseModel, put: Callable[[], None]) -> Step:
    old = stored.model_dump(mode="json") if stored is not None else None
    return Step([change(resource, old, desired.model_dump(mode="json"), created=_described(desired))], put)


def _described(item: BaseModel) -> str:
    if isinstance(item, Period):
        return f"{item.start} to {item.end}" + (", locked" if item.locked else "")
    if isinstance(item, Participant):
        return item.eid
    return str(getattr(item, "name", ""))


def _table(core: Core, tenant: str, table: Schema) -> Step:
    try:
        stored: Schema | None = core.records.schema(tenant, table.name, namespace=GATEWAY)
    except NotFound:
        stored = None
    why = None
    if stored is not None:
        fields = {f.name: f for f in table.fields}
        lost = {f.name: "dropped" if f.name not in fields else narrowing(f, fields[f.name]) for f in stored.fields}
        reasons = [f"{name}: {why}" for name, why in lost.items() if why]
        if reasons and core.records.reader.holds_records(tenant, stored):
            why = f"{'; '.join(reasons)} of a table with rows"
    old = stored.model_dump(mode="json") if stored else None

    def define() -> None:
        define_custom_table(core.records, tenant, table)

    created = f"{len(table.fields)} fields, {len(table.indexes)} indexes"
    return Step(
        [change(f"table {table.name}", old, table.model_dump(mode="json"), created=created, destructive=why)], define
    )
