"""The seams to contracts 1 (users, H-users) and 2 (app evolution, H-evolve), with STUBS until they merge.

LEAD: once both branches are in, each function below keeps only its first branch (the contract's call);
`stub_evolution.py` goes, and so does `TenantConfig.effective_app` where it is used here (membership then
lives on the users: `User.groups`, granted by `Grants`).
"""

from __future__ import annotations

import inspect
from typing import Any

from backroom import keys
from backroom.identity.models import Role, User
from backroom.wiring import Core

from infra.tenant import stub_evolution
from infra.tenant.changes import Change, Step
from infra.tenant.config import TenantConfig


def plan_app(core: Core, config: TenantConfig) -> Step:
    """The app's changes and the step that installs them (contract 2's plan and apply, or the stub's)."""
    evolution = getattr(core, "evolution", None)
    if evolution is None:  # STUB (H-evolve): membership from users.json folded into the groups
        desired = config.effective_app()
        assert desired is not None
        return stub_evolution.plan(core, config.tenant_id, desired)
    tenant, app = config.tenant_id, config.app
    changes = [Change(c.resource, c.action, c.detail, c.destructive) for c in evolution.plan(tenant, app)]

    def evolve() -> str | None:
        # Destructive changes were refused by `apply` unless allowed, before any step ran.
        applied = evolution.apply(tenant, app, allow_destructive=True)
        jobs = list(getattr(applied, "job_ids", []) or [])
        return f"app version {applied.version}" + (f"; data jobs {', '.join(jobs)}" if jobs else "")

    return Step(changes, evolve)


def users_of(core: Core, tenant: str) -> list[User]:
    """Every user of the tenant (contract 1: a Query on gsi1)."""
    identity: Any = core.identity
    if hasattr(identity, "users_of"):
        return list(identity.users_of(tenant))
    # STUB (H-users): the users the tenant's app grants something to, the only ones found without a Scan today.
    emails = {i["sk"].removeprefix(keys.APP_USERS) for i in stub_evolution.stored_items(core, tenant, keys.APP_USERS)}
    found = [core.identity.repo.get_user(e) for e in sorted(emails)]
    return [u for u in found if u is not None and u.tenant_id == tenant]


def groups_of(user: User) -> list[str] | None:
    """The user's groups (contract 1), None while `User` has none (STUB: the app's grants carry them)."""
    groups = getattr(user, "groups", None)
    return sorted(groups) if groups is not None else None


def create_user(
    core: Core,
    email: str,
    password: str,
    *,
    name: str,
    role: Role,
    account_id: str,
    user_id: str | None,
    groups: list[str],
    one_time: bool,
) -> User:
    create: Any = core.identity.create_user
    extra: dict[str, Any] = {}
    if "one_time" in inspect.signature(create).parameters:  # contract 1; STUB (H-users): neither is known yet
        extra = {"groups": groups, "one_time": one_time}
    user: User = create(email, password, name=name, role=role, account_id=account_id, user_id=user_id, **extra)
    return user


def update_user(core: Core, email: str, *, name: str | None, role: Role | None, groups: list[str] | None) -> None:
    """Contract 1's `update_user`; the STUB (H-users) changes the role as today and the name in place."""
    identity: Any = core.identity
    if name is None and role is None and groups is None:
        return  # a reactivation or a move alone: nothing more to change (each change ends the user's sessions)
    if hasattr(identity, "update_user"):
        identity.update_user(email, name=name, role=role, groups=groups)
        refresh_grants(core, email)
        return
    if role is not None:
        identity.change_role(email, role)
    if name is not None:
        user = identity.repo.get_user(email)
        identity.repo.put_user(user.model_copy(update={"name": name}), replace=True)


def refresh_grants(core: Core, email: str) -> None:
    """A user's materialised permissions after its groups changed (contract 1's `Grants.refresh_user`)."""
    grants: Any = getattr(core, "grants", None)  # LEAD: the wiring's name for `backroom.app.grants.Grants`
    user = core.identity.repo.get_user(email)
    if grants is not None and user is not None:
        grants.refresh_user(user.tenant_id, email)
