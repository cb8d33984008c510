"""Users' permissions, materialised: what each user of a tenant may do with the app's entities, merged
from the groups it belongs to, kept in one item per user (`APP#<tenant>` / `USER#<email>`) so that a
request reads a caller's grants with one GetItem (`AppRepository.permissions`).

A user belongs to a group when it names the group (`User.groups`, set over the users API) or when the
group lists its e-mail (`Group.users`, as app files have done before users had groups). The items are
rewritten whole when the app is installed (`refresh`: every user of the tenant, and the items of users
granted nothing any more deleted) and one at a time when a user changes (`refresh_user`): for that, the
groups' definitions are kept under the app too (`APP#<tenant>` / `GROUP#<name>`), read back in one Query.
The items are read on every request, so a change takes effect at once, on tokens already given.

The rule an install checks for every user (`AppDefinition.labels_hiding_nothing`: a label names only
fields every reader of its entity reads) is checked again for one user before its groups change
(`check_membership`), by the API and by the tenant directory's apply alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from backroom.app.definition import AppDefinition, Entity, EntityPermission, Group, merged_permissions
from backroom.errors import FieldError, Invalid
from backroom.identity.models import User


class GrantStore(Protocol):
    """Where the grants and the groups' definitions sit (`AppRepository`)."""

    def put_grants(self, tenant_id: str, email: str, grants: Mapping[str, EntityPermission]) -> None: ...

    def delete_grants(self, tenant_id: str, emails: Iterable[str]) -> None: ...

    def granted(self, tenant_id: str) -> set[str]: ...

    def put_groups(self, tenant_id: str, groups: Sequence[Group]) -> None: ...

    def groups(self, tenant_id: str) -> list[Group]: ...

    def definition(self, tenant_id: str) -> tuple[AppDefinition, int] | None: ...

    def entities(self, tenant_id: str) -> list[Entity]: ...


class UserDirectory(Protocol):
    """The users a tenant has (`IdentityService`)."""

    def users_of(self, tenant_id: str) -> list[User]: ...

    def get_user(self, email: str) -> User | None: ...


class Grants:
    def __init__(self, store: GrantStore, users: UserDirectory) -> None:
        self.store = store
        self.users = users

    def refresh(self, tenant_id: str, app: AppDefinition) -> None:
        """Every user's grants from `app`'s groups: the tenant's users and the users its groups list;
        a label that would show a reader a field it may not read is a 400 before anything is written."""
        members = {u.email: u.groups for u in self.users.users_of(tenant_id)}
        app.labels_hiding_nothing(members)
        self.store.put_groups(tenant_id, app.groups)
        before = self.store.granted(tenant_id)
        for email in sorted({*members, *app.users}):
            grants = app.permissions_of(email, members.get(email, ()))
            if grants:
                self.store.put_grants(tenant_id, email, grants)
                before.discard(email)
        self.store.delete_grants(tenant_id, before)

    def refresh_user(self, tenant_id: str, email: str) -> None:
        """One user's grants from the groups the app defines (read in one Query); none: its item goes."""
        user = self.users.get_user(email)
        names = user.groups if user is not None and user.tenant_id == tenant_id else []
        grants = merged_permissions(self.store.groups(tenant_id), email, names)
        if grants:
            self.store.put_grants(tenant_id, email.lower(), grants)
        else:
            self.store.delete_grants(tenant_id, [email.lower()])

    def manages_groups(self, tenant_id: str, email: str, names: Iterable[str]) -> bool:
        """Whether the user of `email` (naming the groups `names`) belongs to a group with the flag to manage
        groups (`Group.manage_groups`): asked at an impersonating login only, the groups read in one Query."""
        return any(g.manage_groups and g.has_member(email, names) for g in self.store.groups(tenant_id))

    def check_groups(self, tenant_id: str, names: Iterable[str]) -> None:
        """A group a user is to belong to must be one the app defines (else a 400 naming it)."""
        defined = {g.name for g in self.store.groups(tenant_id)}
        unknown = sorted(set(names) - defined)
        if unknown:
            message = f"The app defines no group {', '.join(unknown)[:200]}"
            raise Invalid(message, errors=[FieldError("groups", message, "notFound")])

    def members(self, tenant_id: str) -> dict[str, list[str]]:
        """The tenant's users and the groups each names (`User.groups`), as `refresh` reads them: what an
        apply checks its labels against before it writes anything."""
        return {u.email: list(u.groups) for u in self.users.users_of(tenant_id)}

    def check_membership(self, tenant_id: str, email: str, names: Iterable[str]) -> None:
        """Before a user's groups become `names`: a 400 (nothing written) if a label of an entity it would
        read names a field it may not. The app as last applied (one GetItem), else as installed (its entity
        and group items); the other users' memberships do not change, so they are not read."""
        stored = self.store.definition(tenant_id)
        app = stored[0] if stored else self._installed(tenant_id)
        app.labels_hiding_nothing({email: names})

    def _installed(self, tenant_id: str) -> AppDefinition:
        """The app from its items, for a tenant whose app was installed without a stored definition."""
        return AppDefinition(
            app=tenant_id, entities=self.store.entities(tenant_id), groups=self.store.groups(tenant_id)
        )
