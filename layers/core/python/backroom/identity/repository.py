"""Identity's data access: every read is a GetItem or a Query on a key.

A session is a token item (`TOKEN#<sha-256 of the token>`, what authentication reads: one GetItem)
and, per user it stands for (the caller, and the developer impersonating it), an entry in that
user's sessions partition (`SESSIONS#<user id>`, sort key the token's hash), so that all of a user's
sessions are one strongly consistent Query away when the user changes. Both are written in one
transaction with a check that each user is still at the version the login read.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from backroom import keys
from backroom.dynamo import ConditionFailed, Table, TransactionFailed, Write, again_on_conflict
from backroom.errors import Conflict, NotFound
from backroom.identity.models import Account, Caller, User

_NOT_EXISTS = "attribute_not_exists(pk)"
_EXISTS = "attribute_exists(pk)"
# What a change of user may set (names from here, never from a caller).
_USER_FIELDS = (
    "name",
    "role",
    "account_id",
    "tenant_id",
    "active",
    "groups",
    "password_hash",
    "password_change_required",
    "gsi1pk",
    "gsi1sk",
)
# Two logins of one user check its item in their transactions at once: DynamoDB may cancel one
# (TransactionConflict), which is tried again (`again_on_conflict`); so is a change of the user that
# meets a login's.


def _listed(tenant_id: str, email: str) -> dict[str, str]:
    """A user's index keys: its tenant's users, by e-mail."""
    return {"gsi1pk": keys.tenant_users(tenant_id), "gsi1sk": email}


def _at_version(user: User) -> Write:
    """A check that the user is still there at the version read (a user from before versions has none)."""
    condition = "attribute_exists(pk) AND #v = :v"
    if user.version == 0:
        condition = "attribute_exists(pk) AND (attribute_not_exists(#v) OR #v = :v)"
    return Write(
        key=keys.user(user.email), check=True, condition=condition, names={"#v": "version"}, values={":v": user.version}
    )


class IdentityRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    # Users ---------------------------------------------------------------
    def get_user(self, email: str) -> User | None:
        item = self.table.get(*keys.user(email))
        return User.model_validate(item) if item else None

    def email_of(self, uid: str) -> str | None:
        """The e-mail of the user of id `uid` (its pointer item), or None."""
        item = self.table.get(*keys.user_id(uid)) if 0 < len(uid) <= 64 else None
        return str(item["email"]) if item else None

    def put_user(self, user: User) -> None:
        """The user, listed under its tenant, and its id's pointer, in one transaction; Conflict if either exists."""
        pk, sk = keys.user(user.email)
        data = {"pk": pk, "sk": sk, **_listed(user.tenant_id, user.email), **user.model_dump(mode="json")}
        id_pk, id_sk = keys.user_id(user.id)
        pointer = {"pk": id_pk, "sk": id_sk, "email": user.email}
        try:
            writes = [Write(item=data, condition=_NOT_EXISTS), Write(item=pointer, condition=_NOT_EXISTS)]
            again_on_conflict(lambda: self.table.transact(writes))
        except TransactionFailed as err:
            raise Conflict(f"User {user.email} already exists") from err

    def users_of(self, tenant_id: str, *, limit: int | None = None) -> list[User]:
        """The tenant's users by e-mail, the first `limit` of them (one Query on gsi1)."""
        items = self.table.query("gsi1pk = :p", {":p": keys.tenant_users(tenant_id)}, index="gsi1", limit=limit)
        return [User.model_validate(i) for i in items]

    def count_users(self, tenant_id: str) -> int:
        return self.table.count("gsi1pk = :p", {":p": keys.tenant_users(tenant_id)}, index="gsi1")

    def update_user(self, email: str, changes: dict[str, Any], *, expect_hash: str | None = None) -> User:
        """Set `changes` (of `_USER_FIELDS`) and move the user's version on; 404 if no such user.

        With `expect_hash`, only while the stored password hash is still that one (else Conflict)."""
        if "tenant_id" in changes:  # listed under its new tenant
            changes = {**changes, **_listed(str(changes["tenant_id"]), email.strip().lower())}
        names = {"#v": "version"}
        values: dict[str, Any] = {":one": 1}
        sets = []
        for i, name in enumerate(n for n in _USER_FIELDS if n in changes):
            names[f"#f{i}"], values[f":f{i}"] = name, changes[name]
            sets.append(f"#f{i} = :f{i}")
        expression = (f"SET {', '.join(sets)} " if sets else "") + "ADD #v :one"
        condition = _EXISTS
        if expect_hash is not None:
            condition, names["#h"], values[":h"] = f"{_EXISTS} AND #h = :h", "password_hash", expect_hash
        key = keys.user(email)
        try:
            item = again_on_conflict(
                lambda: self.table.update(*key, expression, names=names, values=values, condition=condition)
            )
        except ConditionFailed as err:
            if expect_hash is not None and self.get_user(email) is not None:
                raise Conflict("The password changed meanwhile; log in again") from err
            raise NotFound(f"User {email.strip().lower()} does not exist") from err
        return User.model_validate(item)

    def delete_user(self, user: User) -> None:
        """The user and its id's pointer; 404 if the user is gone."""
        writes = [Write(key=keys.user(user.email), condition=_EXISTS), Write(key=keys.user_id(user.id))]
        try:
            again_on_conflict(lambda: self.table.transact(writes))
        except TransactionFailed as err:
            raise NotFound(f"User {user.email} does not exist") from err

    def replace_password_hash(self, email: str, old: str, new: str) -> bool:
        """Store `new` in place of `old`; False, writing nothing, if the stored hash is no longer `old`."""
        try:
            self.table.update(
                *keys.user(email),
                "SET password_hash = :new",
                values={":new": new, ":old": old},
                condition="password_hash = :old",
            )
        except ConditionFailed:
            return False
        return True

    # Accounts ------------------------------------------------------------
    def get_account(self, account_id: str) -> Account | None:
        item = self.table.get(*keys.account(account_id))
        return Account.model_validate(item) if item else None

    def put_account(self, account: Account) -> None:
        pk, sk = keys.account(account.id)
        data: dict[str, Any] = {"pk": pk, "sk": sk, **account.model_dump(mode="json")}
        if account.parent_id:
            data["gsi1pk"] = keys.children(account.parent_id)
            data["gsi1sk"] = account.id
        self.table.put(data)

    def children(self, account_id: str) -> list[Account]:
        items = self.table.query("gsi1pk = :p", {":p": keys.children(account_id)}, index="gsi1")
        return [Account.model_validate(i) for i in items]

    def subtree(self, account_id: str) -> list[Account]:
        """The account and all its descendants, parents before children (a Query per account)."""
        root = self.get_account(account_id)
        if root is None:
            return []
        found, i = [root], 0
        while i < len(found):
            found.extend(self.children(found[i].id))
            i += 1
        return found

    # Sessions ------------------------------------------------------------
    def put_session(
        self, token_hash: str, caller: Caller, users: Sequence[User], *, now_ms: int, expires_s: int, ends_s: int
    ) -> None:
        """The token item and an entry per user of `users`, if every one of them is still at the version
        read; Conflict otherwise (a user changed meanwhile: the session would carry what it was)."""
        ids = [u.id for u in users]
        token = {
            "pk": keys.token(token_hash)[0],
            "sk": keys.token(token_hash)[1],
            **caller.model_dump(mode="json", exclude={"token"}),
            "user_ids": ids,
            "created_ms": now_ms,
            "last_used_ms": now_ms,
            "expires_at": expires_s,
        }
        writes = [Write(item=token)]
        for user in users:
            pk, sk = keys.session(user.id, token_hash)
            writes.append(Write(item={"pk": pk, "sk": sk, "user_ids": ids, "expires_at": ends_s}))
            writes.append(_at_version(user))
        try:
            again_on_conflict(lambda: self.table.transact(writes))
        except TransactionFailed as err:
            raise Conflict("The user changed while logging in; log in again") from err

    def get_token(self, token_hash: str) -> dict[str, Any] | None:
        return self.table.get(*keys.token(token_hash))

    def touch_token(self, token_hash: str, *, now_ms: int, expires_s: int) -> None:
        with suppress(ConditionFailed):  # a token ended meanwhile is not written back to life
            self.table.update(
                *keys.token(token_hash),
                "SET last_used_ms = :now, expires_at = :exp",
                values={":now": now_ms, ":exp": expires_s},
                condition=_EXISTS,
            )

    def end_session(self, token_hash: str) -> bool:
        """Delete a token and its users' entries; False if there was no such token."""
        item = self.get_token(token_hash)
        if item is None:
            return False
        self._end([(token_hash, item.get("user_ids") or [])])
        return True

    def end_sessions_of(self, user_id: str) -> int:
        """End every session `user_id` has (its own, and those it impersonates with); how many."""
        entries = self.table.query(
            "pk = :p", {":p": keys.session(user_id, "")[0]}, consistent=True, attributes=["sk", "user_ids"]
        )
        found = [(e["sk"], e.get("user_ids") or [user_id]) for e in entries]
        self._end(found)
        return len(found)

    def _end(self, sessions: Sequence[tuple[str, Sequence[str]]]) -> None:
        # The token items first: a session stops answering before its entries go.
        self.table.batch_write(deletes=[keys.token(token_hash) for token_hash, _ in sessions])
        self.table.batch_write(deletes=[keys.session(uid, token_hash) for token_hash, ids in sessions for uid in ids])

    # Login attempts --------------------------------------------------------
    def count_attempt(self, scope: str, key: str, window: int, *, by: int, expires_s: int) -> int:
        """Add `by` to a counter of login attempts and answer its new count (one atomic update)."""
        item = self.table.update(
            *keys.login_window(scope, key, window),
            "ADD #n :by SET expires_at = :exp",
            names={"#n": "attempts"},
            values={":by": by, ":exp": expires_s},
        )
        return int(item["attempts"])
