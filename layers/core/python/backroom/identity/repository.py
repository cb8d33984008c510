"""Identity's data access: every read is a GetItem or a Query on a key."""

from __future__ import annotations

from typing import Any

from backroom.dynamo import ConditionFailed, Table
from backroom.errors import Conflict
from backroom.identity.models import Account, Caller, User

_NOT_EXISTS = "attribute_not_exists(pk)"


def _user_key(email: str) -> tuple[str, str]:
    return f"USER#{email.strip().lower()}", "USER"


def _account_key(account_id: str) -> tuple[str, str]:
    return f"ACCOUNT#{account_id}", "ACCOUNT"


def _token_key(token_hash: str) -> tuple[str, str]:
    return f"TOKEN#{token_hash}", "TOKEN"


class IdentityRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    # Users ---------------------------------------------------------------
    def get_user(self, email: str) -> User | None:
        item = self.table.get(*_user_key(email))
        return User.model_validate(item) if item else None

    def put_user(self, user: User, *, replace: bool = False) -> None:
        pk, sk = _user_key(user.email)
        data = {"pk": pk, "sk": sk, **user.model_dump(mode="json")}
        try:
            self.table.put(data, condition=None if replace else _NOT_EXISTS)
        except ConditionFailed as err:
            raise Conflict(f"User {user.email} already exists") from err

    def replace_password_hash(self, email: str, old: str, new: str) -> bool:
        """Store `new` in place of `old`; False, writing nothing, if the stored hash is no longer `old`."""
        try:
            self.table.update(
                *_user_key(email),
                "SET password_hash = :new",
                values={":new": new, ":old": old},
                condition="password_hash = :old",
            )
        except ConditionFailed:
            return False
        return True

    # Accounts ------------------------------------------------------------
    def get_account(self, account_id: str) -> Account | None:
        item = self.table.get(*_account_key(account_id))
        return Account.model_validate(item) if item else None

    def put_account(self, account: Account) -> None:
        pk, sk = _account_key(account.id)
        data: dict[str, Any] = {"pk": pk, "sk": sk, **account.model_dump(mode="json")}
        if account.parent_id:
            data["gsi1pk"] = f"CHILDREN#{account.parent_id}"
            data["gsi1sk"] = account.id
        self.table.put(data)

    def children(self, account_id: str) -> list[Account]:
        items = self.table.query("gsi1pk = :p", {":p": f"CHILDREN#{account_id}"}, index="gsi1")
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

    # Tokens --------------------------------------------------------------
    def put_token(self, token_hash: str, caller: Caller, *, now_ms: int, expires_s: int) -> None:
        pk, sk = _token_key(token_hash)
        data = {
            "pk": pk,
            "sk": sk,
            **caller.model_dump(mode="json", exclude={"token"}),
            "last_used_ms": now_ms,
            "expires_at": expires_s,
        }
        self.table.put(data)

    def get_token(self, token_hash: str) -> dict[str, Any] | None:
        return self.table.get(*_token_key(token_hash))

    def touch_token(self, token_hash: str, *, now_ms: int, expires_s: int) -> None:
        self.table.update(
            *_token_key(token_hash),
            "SET last_used_ms = :now, expires_at = :exp",
            values={":now": now_ms, ":exp": expires_s},
        )
