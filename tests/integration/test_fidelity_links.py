"""Issue 27, points 1 to 3, over HTTP through the local stack: links as the spec prints them (and
followed as printed), the `entity` object on the records of answers over many records, and the
results of async deletes and actions as the synchronous answer's map."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.integration.stack import Api
from tests.integration.test_runtime_data import BLOGPAD, BROWSEZOOM, MISSING, company, ok
from tests.integration.test_runtime_files import upload

ROOT = "/runtime"  # the runtime's root: a jobLink is relative to it
SAMPLE_PARAMS = {"param1": "a", "param2": "b"}


def followed(api: Api, ref: dict[str, Any], token: str, timeout: float = 40) -> dict[str, Any]:
    """The job at its `jobLink` as printed (under the runtime's root), once it is done."""
    assert ref == {"jobLink": f"/api/status/jobs/{ref['jobId']}", "jobId": ref["jobId"]}, ref
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = api.call("GET", ROOT + ref["jobLink"], headers={"token": token})
        assert reply.status == 200, reply.body
        job: dict[str, Any] = reply.json()
        if job["status"] in ("FINISHED", "FAILED"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {ref['jobId']} not done after {timeout}s")


def entity_of(api: Api, dev: str, rid: str) -> dict[str, Any]:
    """The entity object the spec prints, `{id, name}`: its id is the one history entries carry."""
    [entry, *_] = ok(api, "GET", f"/data/companies/{rid}/history", dev)["items"]
    return {"id": entry["entityId"], "name": "Companies"}


def whole(record: dict[str, Any], entity: dict[str, Any]) -> dict[str, Any]:
    """The record as an answer over many records shows it: `entity` after its system fields."""
    system = {k: record[k] for k in ("id", "version", "label")}
    return {**system, "entity": entity, **{k: v for k, v in record.items() if k not in system}}


def test_links_are_printed_as_the_spec_prints_them_and_work_as_printed(api: Api, dev: str) -> None:
    # POST /files: the file's link is an absolute URL of this API, and downloads it as printed
    status, answer = upload(api, dev, "links.txt", b"followed as printed")
    assert status == 200 and answer["fileLink"] == f"{api.base}{ROOT}/api/files/{answer['fileId']}", answer
    got = api.call("GET", answer["fileLink"], headers={"token": dev, "Accept": "*/*"})
    assert (got.status, got.body) == (200, b"followed as printed")

    # The spec's export sample: a jobLink relative to the runtime's root, a fileLink absolute, both followed
    ref = ok(api, "PUT", "/data/companies/export?type=b&_size=50", dev)
    job = followed(api, ref, dev)
    assert job["status"] == "FINISHED" and list(job["results"]) == ["fileLink", "fileId", "recordsExported"], job
    results = job["results"]
    assert results["fileLink"] == f"{api.base}{ROOT}/api/files/{results['fileId']}"
    exported = api.call("GET", results["fileLink"], headers={"token": dev, "Accept": "*/*"})
    assert exported.status == 200 and exported.body.decode().count("\n") == results["recordsExported"] + 1


def test_records_of_answers_over_many_records_carry_their_entity(api: Api, dev: str) -> None:
    entity = entity_of(api, dev, BROWSEZOOM)
    # The spec's samples of an action over two records, by ids and over a query, as printed
    for path in (
        f"/data/companies/{BROWSEZOOM},{BLOGPAD}/logSomething",
        f"/data/companies/logSomething?id={BROWSEZOOM},{BLOGPAD}",
    ):
        answer = ok(api, "PUT", path, dev, SAMPLE_PARAMS)
        assert sorted(answer) == sorted([BROWSEZOOM, BLOGPAD]), answer
        for rid, outcome in answer.items():
            assert outcome == {"status": "ok", "response": whole(ok(api, "GET", f"/data/companies/{rid}", dev), entity)}
    # ...the one-record answer keeps the spec's form, without it
    assert "entity" not in ok(api, "PUT", f"/data/companies/{BROWSEZOOM}/logSomething", dev, SAMPLE_PARAMS)

    # The spec's deletes of many records, by ids and over a query (on records of this test's own)
    tag = uuid.uuid4().hex[:8]
    made = [company(api, dev, f"Entity {tag} {i}", type="a") for i in range(3)]
    answer = ok(api, "DELETE", f"/data/companies/{made[0]['id']},{made[1]['id']}", dev)
    assert answer == {r["id"]: {"status": "ok", "response": whole(r, entity)} for r in made[:2]}
    answer = ok(api, "DELETE", f"/data/companies?type=a&name=Entity%20{tag}%202", dev)
    assert answer == {made[2]["id"]: {"status": "ok", "response": whole(made[2], entity)}}


def test_async_deletes_and_actions_leave_the_synchronous_answers_map_in_their_results(api: Api, dev: str) -> None:
    tag = uuid.uuid4().hex[:8]
    made = [company(api, dev, f"Async map {tag} {i}", type="c", numberOfEmployees=i) for i in range(5)]
    entity = entity_of(api, dev, made[0]["id"])
    missing = {"status": "error", "errorMessage": f"Record {MISSING} of companies does not exist"}

    # A synchronous delete of a record and of an id that names none: the form the job's results take
    answer = ok(api, "DELETE", f"/data/companies/{made[4]['id']},{MISSING}", dev)
    assert answer == {made[4]["id"]: {"status": "ok", "response": whole(made[4], entity)}, MISSING: missing}

    # An async delete: its results are that map, each record whole, and its counts are the job's own
    ref = ok(api, "DELETE", f"/data/companies/{made[0]['id']},{MISSING},{made[1]['id']}?_async=true", dev)
    job = followed(api, ref, dev)
    assert job["results"] == {
        made[0]["id"]: {"status": "ok", "response": whole(made[0], entity)},
        MISSING: missing,
        made[1]["id"]: {"status": "ok", "response": whole(made[1], entity)},
    }
    assert (job["status"], job["recordsCount"], job["recordsProcessed"], job["hasErrors"]) == ("FINISHED", 3, 3, True)

    # An async action over ids (the spec's sample, on this test's records): the records as the action left them
    path = f"/data/companies/{made[2]['id']},{MISSING},{made[3]['id']}/logSomething?_async=true"
    job = followed(api, ok(api, "PUT", path, dev, SAMPLE_PARAMS), dev)
    after = {r["id"]: ok(api, "GET", f"/data/companies/{r['id']}", dev) for r in made[2:4]}
    assert job["results"] == {
        made[2]["id"]: {"status": "ok", "response": whole(after[made[2]["id"]], entity)},
        MISSING: missing,
        made[3]["id"]: {"status": "ok", "response": whole(after[made[3]["id"]], entity)},
    }
    assert all(r["version"] == 0 for r in after.values())  # logSomething changes nothing: no new version
