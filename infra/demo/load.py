"""Loads the demo data set (infra/demo/data) through the core's own services. Idempotent."""

from __future__ import annotations

import json
import logging
from contextlib import suppress
from pathlib import Path

from backroom.errors import Conflict
from backroom.identity.models import Role
from backroom.services import Services, services

DATA = Path(__file__).parent / "data"
log = logging.getLogger("local.demo")


def load_identity(core: Services) -> None:
    data = json.loads((DATA / "identity.json").read_text())
    for account in data["accounts"]:
        core.identity.create_account(account["id"], account["name"], account["parent_id"])
    for user in data["users"]:
        with suppress(Conflict):  # loaded before: keep it as it is
            core.identity.create_user(
                user["email"],
                user["password"],
                name=user["name"],
                role=Role(user["role"]),
                account_id=user["account_id"],
                user_id=user["id"],
            )


def load_demo(core: Services | None = None) -> None:
    core = core or services()
    load_identity(core)
    log.info("demo data loaded: accounts demo and demo-sub, users dev@, user@ and sub@demo.local")
