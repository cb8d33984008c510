"""Who may do what with a tenant's gateway data (docs/security.md "Gateway authority").

Gateway data (custom tables, import files, calculations, errands) belongs to the tenant's root
account. A caller of another account, a sub-account, never acts on it: the Tasks dialect's account
tree lets a user reach its account and those below, never those above. Of the root account's users,
developers may do everything; users may read and run (imports, calculations, batches) but not
delete imported data, which no errand can undo. The check comes before any lookup, so a refusal
says nothing about whether the named table, file or errand exists.
"""

from __future__ import annotations

from enum import StrEnum

from backroom.errors import Forbidden
from backroom.identity.models import Caller, Role


class GatewayVerb(StrEnum):
    EXTRACT = "extract custom tables"
    UPLOAD = "upload import files"
    IMPORT = "import"
    DELETE_IMPORTED = "delete imported data"
    CALCULATE = "run calculations"
    RUN_BATCH = "run batches"
    READ_ERRANDS = "read errands and their logs"


_EVERYONE = frozenset(Role)
# The roles of the root account's users that may do each verb.
ALLOWED: dict[GatewayVerb, frozenset[Role]] = {
    GatewayVerb.EXTRACT: _EVERYONE,
    GatewayVerb.UPLOAD: _EVERYONE,
    GatewayVerb.IMPORT: _EVERYONE,
    GatewayVerb.DELETE_IMPORTED: frozenset({Role.DEVELOPER}),
    GatewayVerb.CALCULATE: _EVERYONE,
    GatewayVerb.RUN_BATCH: _EVERYONE,
    GatewayVerb.READ_ERRANDS: _EVERYONE,
}


def gateway_owner(caller: Caller, verb: GatewayVerb) -> str:
    """The account whose gateway data the caller may `verb` (the tenant's root); 403 if it may not."""
    # The root account is the only one whose ancestors are itself alone: `account_in_reach(caller,
    # tenant)` without a read.
    if caller.account_id != caller.tenant_id:
        raise Forbidden("Gateway data belongs to the root account: a sub-account's users may not use it")
    if caller.role not in ALLOWED[verb]:
        raise Forbidden(f"Only developers may {verb}")
    return caller.tenant_id
