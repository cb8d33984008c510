"""Phone numbers: each belongs to exactly one account of its tenant. Every write is conditional and
carries the origin (job and row) that made it, so a replayed row recognises its own write.

Keys: `NUMBER#<tenant>#<e164>` / `NUMBER`: a number exists once per tenant, as in a Kazoo cluster's own
number database. A tenant's numbers say nothing of another tenant's: adding a number that another
tenant holds succeeds as for a free one, so no answer (no error text, no failure) tells a caller that
a number is held outside its tenant. gsi1 `NUMBERS#<account>` / number lists an account's numbers with
a Query. A deleted number leaves a tombstone (no gsi1 keys, expiring after a week) that remembers who
deleted it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import BaseModel

from backroom import keys
from backroom.clock import now_s
from backroom.dynamo import ConditionFailed, Table
from backroom.identity.models import Account

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_TOLL_FREE_US = ("+1800", "+1833", "+1844", "+1855", "+1866", "+1877", "+1888")
_LIVE, _DELETED = "in_service", "deleted"
_TOMBSTONE_S = 7 * 24 * 3600
CATEGORY = "phone_numbers"


class NumberTaken(Exception):
    """The number belongs to an account already."""


class NumberMissing(Exception):
    """No number in reach of the account by that name."""


class PhoneNumber(BaseModel):
    number: str
    account_id: str
    item: str
    created_at: int


def is_e164(value: str) -> bool:
    return bool(E164.match(value))


def item_of(number: str) -> str:
    """The quantity item a number counts under (as service plans bill them)."""
    if number.startswith(_TOLL_FREE_US):
        return "tollfree_us"
    return "did_us" if number.startswith("+1") else "international"


class NumberRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    def add(self, number: str, account: Account, *, origin: str, created_at: int) -> PhoneNumber:
        """Assign a number free in the account's tenant (or deleted) to `account`; a replay of the same
        origin succeeds again. NumberTaken when an account of the tenant holds it, whichever."""
        pk, sk = keys.number(account.tenant_id, number)
        found = PhoneNumber(number=number, account_id=account.id, item=item_of(number), created_at=created_at)
        item = {
            "pk": pk,
            "sk": sk,
            **found.model_dump(),
            "tenant_id": account.tenant_id,
            "ancestors": account.ancestors,
            "state": _LIVE,
            "origin": origin,
            "gsi1pk": keys.numbers_of(account.id),
            "gsi1sk": number,
        }
        try:
            self.table.put(
                item,
                condition="attribute_not_exists(pk) OR #o = :o OR #s = :deleted",
                names={"#o": "origin", "#s": "state"},
                values={":o": origin, ":deleted": _DELETED},
            )
        except ConditionFailed as err:
            raise NumberTaken(number) from err
        return found

    def delete(self, tenant_id: str, number: str, within: str, *, origin: str) -> PhoneNumber:
        """Delete a number of account `within` (of `tenant_id`) or its descendants, leaving a tombstone;
        replay-safe. NumberMissing whether no account or an account out of reach holds it.

        Read, then replace only if nobody wrote the number in between (optimistic): the tombstone keeps
        the account it was taken from, so a replay of the row reports the very same number and account.
        """
        pk, sk = keys.number(tenant_id, number)
        for _ in range(3):
            old = self.table.get(pk, sk)
            if old is None:
                raise NumberMissing(number)
            if old.get("state") == _DELETED and old.get("origin") == origin:
                return PhoneNumber.model_validate({**old, "account_id": old["deleted_from"]})
            if old.get("state") != _LIVE or within not in old.get("ancestors", []):
                raise NumberMissing(number)
            tombstone = {
                "pk": pk,
                "sk": sk,
                "number": number,
                "item": old["item"],
                "created_at": old["created_at"],
                "account_id": "",
                "deleted_from": old["account_id"],
                "state": _DELETED,
                "origin": origin,
                "expires_at": now_s() + _TOMBSTONE_S,
            }
            try:
                self.table.put(
                    tombstone,
                    condition="#o = :seen AND #s = :live",
                    names={"#o": "origin", "#s": "state"},
                    values={":seen": old["origin"], ":live": _LIVE},
                )
            except ConditionFailed:
                continue  # changed under us: look again
            return PhoneNumber.model_validate(old)
        raise NumberMissing(number)

    def of_account(self, account_id: str) -> Iterator[PhoneNumber]:
        items = self.table.query("gsi1pk = :p", {":p": keys.numbers_of(account_id)}, index="gsi1")
        return (PhoneNumber.model_validate(i) for i in items)

    def count(self, account_id: str) -> int:
        return self.table.count("gsi1pk = :p", {":p": keys.numbers_of(account_id)}, index="gsi1")
