"""Jobs and logs of others: a runtime job is read (with its results and logs) only by the user who ran it
and the tenant's developers, and commanded by no one else; the three dialects' jobs stay in their own
dialect (a task or an errand is no runtime job, a runtime job no task); the app's logs are the
developers'.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.actors import (
    DEMO,
    MISSING,
    Actor,
    World,
    finished,
    ok,
    runtime,
    world_fixture,  # noqa: F401 - the fixture `world`
)

COMMANDS = ("stop", "forceStop", "cancel", "resume")


@pytest.fixture(scope="module", autouse=True)
def jobs(world: World) -> dict[str, str]:
    """Jobs started at once: user's and sub's exports of the secret contact (as each reads it), and a
    developer's delete of ids that name no record. The users' jobs are waited for; the developer's not."""
    query = f"/data/contacts/export?id={world.secret.contact_id}"
    started = {
        "user": ok(world.api, "PUT", query, world.user)["jobId"],
        "sub": ok(world.api, "PUT", query, world.sub)["jobId"],
        "dev": ok(world.api, "DELETE", f"/data/contacts/{MISSING},{'0' * 24}?_async=true", world.dev)["jobId"],
    }
    for name, actor in (("user", world.user), ("sub", world.sub)):
        assert finished(world.api, actor, started[name])["status"] == "FINISHED"
    return started


def others(world: World, owner: str) -> list[Actor]:
    """Who must not see `owner`'s job: the other demo users, the sibling, the other tenant."""
    everyone = {"user": world.user, "sub": world.sub}
    return [a for n, a in everyone.items() if n != owner] + [world.sib, world.other_user, world.other_dev]


@pytest.mark.parametrize("owner", ["user", "sub"])
def test_a_users_job_its_results_and_logs_are_404_to_everyone_else(
    world: World, jobs: dict[str, str], owner: str
) -> None:
    job_id = jobs[owner]
    for actor in others(world, owner):
        for path in (f"/status/jobs/{job_id}", f"/status/jobs/{job_id}/logs"):
            status, answer = runtime(world.api, "GET", path, actor)
            assert status == 404, (actor.email, path, status, answer)
        listed = ok(world.api, "GET", "/status/jobs?_size=1000", actor)
        assert job_id not in {j["id"] for j in listed["items"]}, actor.email
    # Its developer sees it (the spec's rule), and so does its owner
    assert ok(world.api, "GET", f"/status/jobs/{job_id}", world.dev)["id"] == job_id


@pytest.mark.parametrize("owner", ["user", "sub"])
def test_no_one_else_commands_a_users_job(world: World, jobs: dict[str, str], owner: str) -> None:
    job_id = jobs[owner]
    for actor in others(world, owner):
        for verb in COMMANDS:
            status, answer = runtime(world.api, "PUT", f"/status/jobs/{job_id}/{verb}", actor)
            # The spec: another user's job is a 403 to command (404 in another tenant)
            assert status in (403, 404), (actor.email, verb, status, answer)
    assert ok(world.api, "GET", f"/status/jobs/{job_id}", world.dev)["status"] == "FINISHED"


def test_a_developers_job_is_not_a_users(world: World, jobs: dict[str, str]) -> None:
    job_id = jobs["dev"]
    # Commanded while it may still run: the refusals come before any state check
    for actor in (world.user, world.sub, world.sib):
        for verb in COMMANDS:
            status, answer = runtime(world.api, "PUT", f"/status/jobs/{job_id}/{verb}", actor)
            assert status in (403, 404), (actor.email, verb, status, answer)
        assert runtime(world.api, "GET", f"/status/jobs/{job_id}", actor)[0] == 404
    job = finished(world.api, world.dev, job_id)
    # ids that name no record: each row fails with the error a synchronous delete answers
    assert job["status"] == "FINISHED" and (job["recordsCount"], job["hasErrors"]) == (2, True), job
    assert {v["status"] for v in job["results"].values()} == {"error"} and len(job["results"]) == 2, job


def task_id_of(world: World) -> str:
    made = world.api.call(
        "PUT", f"/v2/accounts/{DEMO}/tasks?category=number_management&action=list", headers=world.dev.tasks
    )
    return str(made.json()["data"]["_read_only"]["id"])


def test_each_dialects_jobs_stay_in_that_dialect(world: World, jobs: dict[str, str]) -> None:
    task_id = task_id_of(world)
    for path, method in [(f"/status/jobs/{task_id}", "GET"), (f"/status/jobs/{task_id}/logs", "GET")] + [
        (f"/status/jobs/{task_id}/{verb}", "PUT") for verb in COMMANDS
    ]:
        status, answer = runtime(world.api, method, path, world.dev)
        assert status == 404, (path, status, answer)
    listed = ok(world.api, "GET", "/status/jobs?_size=1000", world.dev)
    assert task_id not in {j["id"] for j in listed["items"]}
    for job_id in jobs.values():  # no runtime job is a task
        for base in (f"/v2/accounts/{DEMO}/tasks/{job_id}", f"/v2/tasks/{job_id}"):
            reply = world.api.call("GET", base, headers=world.dev.tasks)
            assert reply.status == 404, (base, reply.body)
    errands = world.api.call("GET", "/gateway/errand/v1/errands?size=2000", headers=world.dev.gateway).json()
    assert not {str(e["id"]) for e in errands["results"]} & set(jobs.values())  # nor an errand


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("POST", {"level": "INFO", "message": "forged line"})])
def test_the_apps_logs_are_the_developers(world: World, method: str, body: Any) -> None:
    for actor in (world.user, world.sub, world.sib, world.other_user):
        status, answer = runtime(world.api, method, "/status/logs", actor, body)
        assert status == 403, (actor.email, status, answer)
    forged = ok(world.api, "GET", "/status/logs?message=forged%20line", world.dev)
    assert forged["total"] == 0


def test_a_log_line_says_who_wrote_it_and_from_where_whatever_the_body(world: World) -> None:
    forged = {"userEmail": "user@demo.local", "adminUserEmail": "x@example.test", "ip": "6.6.6.6", "type": "APP"}
    status, answer = runtime(world.api, "POST", "/status/logs", world.dev, {"level": "INFO", "message": "x", **forged})
    assert status == 400 and {e["field"] for e in answer["errors"]} >= {"userEmail", "ip"}, answer
    reply = world.api.call(
        "POST",
        "/runtime/api/status/logs",
        body={"level": "INFO", "message": "spoofed?"},
        headers={**world.dev.runtime, "X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6"},
    )
    line = reply.json()
    assert (line["userEmail"], line["type"]) == ("dev@demo.local", "EXTERNAL") and line["ip"] != "6.6.6.6", line
