"""Sub-accounts in the Tasks dialect: a sibling account (`demo-sib`) and the demo's sub-account
(`demo-sub`) see nothing of each other, nor of their parent, nor of the other tenant's accounts; the
parent sees both (its descendants). A task's rows reach only the task's account and its descendants,
whatever `account_id` a row names.
"""

from __future__ import annotations

import csv
import io

import pytest
from backroom.numbers import NumberRepository

from tests.integration.stack import LocalStack
from tests.security.actors import (
    DEMO,
    DEMO_SIB,
    DEMO_SUB,
    OTHER,
    OTHER_SUB,
    Actor,
    World,
    send,
    start_task,
    task_over,
    world_fixture,  # noqa: F401 - the fixture `world`
)


def tasks_of(account: str) -> str:
    return f"/v2/accounts/{account}/tasks"


def new_task(world: World, actor: Actor, account: str, action: str = "list", csv_body: bytes | None = None) -> str:
    path = f"{tasks_of(account)}?category=number_management&action={action}"
    reply = send(world.api, "PUT", path, actor.tasks, csv_body, "text/csv" if csv_body else None)
    assert reply.status == 200, reply.body
    return str(reply.json()["data"]["_read_only"]["id"])


@pytest.fixture(scope="module")
def sub_task(world: World) -> str:
    return new_task(world, world.sub, DEMO_SUB)


@pytest.fixture(scope="module")
def sib_task(world: World) -> str:
    return new_task(world, world.sib, DEMO_SIB)


def every_route(base: str, task_id: str) -> list[tuple[str, str]]:
    path = f"{base}/{task_id}"
    return [
        ("GET", path),
        ("GET", f"{path}?csv_name=in.csv"),
        ("PATCH", path),
        ("PATCH", f"{path}/stop"),
        ("GET", f"{path}/input"),
        ("GET", f"{path}/output"),
        ("DELETE", path),
    ]


def refused(world: World, actor: Actor, routes: list[tuple[str, str]], statuses: tuple[int, ...] = (404,)) -> None:
    for method, path in routes:
        reply = world.api.call(method, path, headers=actor.tasks)
        assert reply.status in statuses, (actor.email, method, path, reply.status, reply.body[:200])
        assert reply.json()["status"] == "error"


def test_siblings_see_nothing_of_each_others_accounts(world: World, sub_task: str, sib_task: str) -> None:
    for actor, theirs, own, task_id in (
        (world.sib, DEMO_SUB, DEMO_SIB, sub_task),
        (world.sub, DEMO_SIB, DEMO_SUB, sib_task),
    ):
        refused(
            world,
            actor,
            [("GET", tasks_of(theirs)), ("PUT", f"{tasks_of(theirs)}?category=number_management&action=list")],
        )
        refused(world, actor, every_route(tasks_of(theirs), task_id))  # the task under its own account's path
        refused(world, actor, every_route(tasks_of(own), task_id))  # the task under the caller's account
        refused(world, actor, every_route("/v2/tasks", task_id), (403, 404))  # the system form: developers only
        own_list = world.api.call("GET", tasks_of(own), headers=actor.tasks).json()["data"]
        assert task_id not in {t["id"] for t in own_list}


def test_a_sub_account_sees_nothing_above_it_nor_in_another_tenant(world: World, sub_task: str) -> None:
    for account in (DEMO, OTHER, OTHER_SUB, "x" * 64):
        refused(
            world,
            world.sub,
            [("GET", tasks_of(account)), ("PUT", f"{tasks_of(account)}?category=number_management&action=list")],
        )
    for account in (OTHER, OTHER_SUB):
        refused(world, world.user, [("GET", tasks_of(account))])
    # The parent's users see their descendants' tasks (the account tree's rule)
    listed = world.api.call("GET", tasks_of(DEMO_SUB), headers=world.user.tasks).json()["data"]
    assert sub_task in {t["id"] for t in listed}
    own = world.api.call("GET", f"{tasks_of(DEMO_SUB)}/{sub_task}", headers=world.sub.tasks).json()
    assert own["data"]["_read_only"]["status"] == "pending"


def test_a_tasks_rows_reach_only_its_account_and_descendants(world: World, local: LocalStack) -> None:
    # Given a number of demo-sub's (made through the core, as a finished add task leaves it)
    held = f"+1555{int(world.tag, 16) % 10**7:07d}"
    account = local.core.identity.repo.get_account(DEMO_SUB)
    assert account is not None
    NumberRepository(local.core.table).add(held, account, origin=f"security/{world.tag}", created_at=1)
    # When sub adds numbers to accounts out of its reach, and the sibling deletes sub's number, at once
    fresh = f"+1556{int(world.tag, 16) % 10**7:07d}"
    rows = [("+15550100001", DEMO), ("+15550100002", DEMO_SIB), ("+15550100003", OTHER), (fresh, DEMO_SUB)]
    body = "number,account_id\n" + "".join(f"{n},{a}\n" for n, a in rows)
    adding = new_task(world, world.sub, DEMO_SUB, "add", body.encode())
    deleting = new_task(world, world.sib, DEMO_SIB, "delete", f"number\n{held}\n".encode())
    start_task(world.api, world.sub.tasks, f"{tasks_of(DEMO_SUB)}/{adding}")
    start_task(world.api, world.sib.tasks, f"{tasks_of(DEMO_SIB)}/{deleting}")
    # Then only the row for its own account is added, and the sibling's delete finds nothing
    done = task_over(world.api, world.sub.tasks, f"{tasks_of(DEMO_SUB)}/{adding}")
    assert (done["success_count"], done["failure_count"]) == (1, 3), done
    out = world.api.call("GET", f"{tasks_of(DEMO_SUB)}/{adding}/output", headers=world.sub.tasks).body.decode()
    errors = {r["account_id"]: r["error"] for r in csv.DictReader(io.StringIO(out))}
    assert errors == {DEMO: "bad account_id", DEMO_SIB: "bad account_id", OTHER: "bad account_id", DEMO_SUB: ""}, out
    gone = task_over(world.api, world.sib.tasks, f"{tasks_of(DEMO_SIB)}/{deleting}")
    assert (gone["success_count"], gone["failure_count"]) == (0, 1), gone
