"""The runtime dialect's actions and aggregate queries over HTTP: the spec's samples and its error rows.

Actions run on the demo companies Browsezoom and Blogpad as the spec's samples do (logSomething changes
nothing, so their versions stay; the data tests allow for changes anyway); aggregate queries read the
demo contacts, and the expected sums are computed from the same records read through `GET`.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

from tests.integration.stack import Api
from tests.integration.test_runtime_data import BLOGPAD, BROWSEZOOM, MISSING, call, error, ok

COMPANY_KEYS = {"id", "version", "label", "name", "state", "type", "numberOfEmployees", "isCustomer"}


def version(api: Api, token: str, rid: str) -> int:
    return int(ok(api, "GET", f"/data/companies/{rid}", token)["version"])


def finished(api: Api, token: str, ref: dict[str, Any], timeout: float = 40) -> dict[str, Any]:
    assert set(ref) == {"jobLink", "jobId"} and ref["jobLink"] == f"/api/status/jobs/{ref['jobId']}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ok(api, "GET", f"/status/jobs/{ref['jobId']}", token)
        if job["status"] in ("FINISHED", "FAILED"):
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {ref['jobId']} not finished after {timeout}s")


# Execute action over one record ------------------------------------------------
def test_log_something_over_one_record_answers_the_record(api: Api, dev: str) -> None:
    before = version(api, dev, BROWSEZOOM)
    logs = ok(api, "GET", f"/data/companies/{BROWSEZOOM}/history?_size=1", dev)["total"]
    answer = ok(api, "PUT", f"/data/companies/{BROWSEZOOM}/logSomething", dev, {"param1": "a", "param2": "b"})
    assert set(answer) >= COMPANY_KEYS
    assert (answer["id"], answer["label"], answer["name"]) == (BROWSEZOOM, "Browsezoom", "Browsezoom")
    assert answer["version"] == before  # logSomething changes nothing: no new version, no history entry
    assert answer["numberOfEmployees"] == 95 and answer["contactInformation"]["email"] == "jwoodsrq@spotify.com"
    assert ok(api, "GET", f"/data/companies/{BROWSEZOOM}/history?_size=1", dev)["total"] == logs


def test_log_something_in_the_background_answers_a_job_whose_results_hold_the_record(api: Api, dev: str) -> None:
    before = version(api, dev, BROWSEZOOM)
    ref = ok(api, "PUT", f"/data/companies/{BROWSEZOOM}/logSomething?_async=true", dev, {"param1": "a", "param2": "b"})
    job = finished(api, dev, ref)
    assert (job["status"], job["type"]) == ("FINISHED", "EXECUTE_ACTION")
    assert job["label"] == "Execute action logSomething from entity companies"
    assert job["results"][BROWSEZOOM]["status"] == "ok"
    assert job["results"][BROWSEZOOM]["response"]["version"] == before == version(api, dev, BROWSEZOOM)


def test_count_employees_over_one_record_answers_its_custom_response(api: Api, dev: str) -> None:
    assert ok(api, "PUT", f"/data/companies/{BROWSEZOOM}/countEmployees", dev) == {"numberOfEmployees": 95}


# Execute action over many records ----------------------------------------------
def test_log_something_over_two_records_answers_a_map_of_records(api: Api, dev: str) -> None:
    versions = {rid: version(api, dev, rid) for rid in (BROWSEZOOM, BLOGPAD)}
    answer = ok(api, "PUT", f"/data/companies/{BROWSEZOOM},{BLOGPAD}/logSomething", dev, {"param1": "a"})
    assert set(answer) == {BROWSEZOOM, BLOGPAD}
    for rid, outcome in answer.items():
        assert set(outcome) == {"status", "response"} and outcome["status"] == "ok"
        assert outcome["response"]["id"] == rid and outcome["response"]["version"] == versions[rid]
    assert answer[BLOGPAD]["response"]["label"] == "Blogpad"


def test_custom_response_over_two_records_answers_a_map_of_responses(api: Api, dev: str) -> None:
    answer = ok(api, "PUT", f"/data/companies/{BROWSEZOOM},{BLOGPAD}/customResponse", dev)
    assert answer == {rid: {"status": "ok", "response": "This is a custom response"} for rid in (BROWSEZOOM, BLOGPAD)}


def test_log_something_over_two_records_in_the_background(api: Api, dev: str) -> None:
    ref = ok(api, "PUT", f"/data/companies/{BROWSEZOOM},{BLOGPAD}/logSomething?_async=true", dev, {"param1": "a"})
    job = finished(api, dev, ref)
    assert job["status"] == "FINISHED" and set(job["results"]) == {BROWSEZOOM, BLOGPAD}
    assert (job["recordsCount"], job["recordsProcessed"], job["hasErrors"]) == (2, 2, False)


def test_count_employees_over_two_records_sums_them(api: Api, dev: str) -> None:
    assert ok(api, "PUT", f"/data/companies/{BROWSEZOOM},{BLOGPAD}/countEmployees", dev) == {"numberOfEmployees": 629}


# Execute action over a query ------------------------------------------------------
def test_actions_over_a_query_answer_as_the_specs_samples(api: Api, dev: str) -> None:
    ids = f"id={BROWSEZOOM},{BLOGPAD}"
    logged = ok(api, "PUT", f"/data/companies/logSomething?{ids}", dev, {"param1": "a", "param2": "b"})
    assert set(logged) == {BROWSEZOOM, BLOGPAD} and all(o["status"] == "ok" for o in logged.values())
    assert logged[BROWSEZOOM]["response"]["name"] == "Browsezoom"
    custom = ok(api, "PUT", f"/data/companies/customResponse?{ids}", dev)
    assert custom == {rid: {"status": "ok", "response": "This is a custom response"} for rid in (BROWSEZOOM, BLOGPAD)}
    assert ok(api, "PUT", f"/data/companies/countEmployees?{ids}", dev) == {"numberOfEmployees": 629}
    job = finished(api, dev, ok(api, "PUT", f"/data/companies/logSomething?_async=true&{ids}", dev, {"param1": "a"}))
    assert job["status"] == "FINISHED" and set(job["results"]) == {BROWSEZOOM, BLOGPAD}
    # any query of the query language: the companies named Browsezoom
    named = ok(api, "PUT", "/data/companies/countEmployees?name=Browsezoom", dev)
    assert named == {"numberOfEmployees": 95}


def test_a_put_on_an_entity_segment_is_still_a_records_update_when_it_is_no_action(api: Api, dev: str) -> None:
    current = version(api, dev, BLOGPAD)
    updated = ok(api, "PUT", f"/data/companies/{BLOGPAD}", dev, {"version": current, "notes": "updated by a test"})
    assert updated["version"] == current + 1 and updated["notes"] == "updated by a test"


# The error rows ----------------------------------------------------------------------
def test_an_action_whose_precondition_is_not_met_is_400(api: Api, dev: str) -> None:
    status, answer = call(api, "PUT", f"/data/companies/{BROWSEZOOM}/deactivate", dev, {"reason": "moved"})
    error(status, answer, 400, "validationErrors")
    assert "precondition" in answer["message"]


def test_an_action_checks_its_parameters_like_fields(api: Api, dev: str) -> None:
    status, answer = call(api, "PUT", f"/data/companies/{BROWSEZOOM}/deactivate", dev, {"reason": ["x"], "other": 1})
    error(status, answer, 400, "validationErrors")
    assert {e["field"] for e in answer["errors"]} == {"reason", "other"}
    status, answer = call(api, "PUT", f"/data/companies/{BROWSEZOOM}/deactivate", dev)
    error(status, answer, 400, "validationErrors")
    assert [(e["field"], e["code"]) for e in answer["errors"]] == [("reason", "REQUIRED")]


def test_an_action_the_caller_may_not_run_is_403_on_every_route(api: Api, user: str) -> None:
    for path in (
        f"/data/companies/{BROWSEZOOM}/customResponse",
        f"/data/companies/{BROWSEZOOM},{BLOGPAD}/customResponse",
        f"/data/companies/customResponse?id={BROWSEZOOM}",
    ):
        status, answer = call(api, "PUT", path, user)
        error(status, answer, 403, "forbidden")
    # ...while the actions its group grants run
    assert ok(api, "PUT", f"/data/companies/{BROWSEZOOM}/countEmployees", user) == {"numberOfEmployees": 95}


def test_an_unknown_entity_record_or_action_is_404(api: Api, dev: str) -> None:
    for path in (
        f"/data/nope/{BROWSEZOOM}/logSomething",
        f"/data/nope/{BROWSEZOOM},{BLOGPAD}/logSomething",
        "/data/nope/logSomething",
        f"/data/companies/{MISSING}/logSomething",
        f"/data/companies/{BROWSEZOOM}/noSuchAction",
    ):
        status, answer = call(api, "PUT", path, dev, {})
        error(status, answer, 404, "notFound")
    # Over many ids, a missing record is that record's error, the others run
    answer = ok(api, "PUT", f"/data/companies/{BROWSEZOOM},{MISSING}/customResponse", dev)
    assert answer[BROWSEZOOM]["status"] == "ok" and answer[MISSING]["status"] == "error"
    assert set(answer[MISSING]) == {"status", "errorMessage"}


def test_a_bad_async_flag_or_body_is_400(api: Api, dev: str) -> None:
    status, answer = call(api, "PUT", f"/data/companies/{BROWSEZOOM}/logSomething?_async=maybe", dev, {})
    error(status, answer, 400, "validationErrors")
    status, answer = call(api, "PUT", f"/data/companies/{BROWSEZOOM}/logSomething", dev, ["not", "an", "object"])
    error(status, answer, 400, "validationErrors")


# Aggregate queries ------------------------------------------------------------------------
def contacts(api: Api, token: str) -> list[dict[str, Any]]:
    return list(ok(api, "GET", "/data/contacts?_size=1000", token)["items"])


def test_the_specs_aggregate_sample_sums_skills_per_company(api: Api, dev: str) -> None:
    pipeline = [
        {"project": "company,numberOfSkills"},
        {"group": {"by": "company", "totalSkills": "sum(numberOfSkills)"}},
    ]
    answer = ok(api, "PUT", "/data/contacts/aggregate", dev, pipeline)
    expected: dict[Any, int] = defaultdict(int)
    for contact in contacts(api, dev):
        company = contact.get("company")
        expected[company["label"] if company else None] += int(contact.get("numberOfSkills") or 0)
    assert answer["total"] == len(expected) == len(answer["items"])
    assert {i["company"]: i["totalSkills"] for i in answer["items"]} == dict(expected)
    assert all(set(i) == {"company", "totalSkills"} for i in answer["items"])
    assert {"company": "Trudoo", "totalSkills": expected["Trudoo"]} in answer["items"]


def test_aggregate_counts_matches_and_sorts(api: Api, dev: str) -> None:
    everyone = contacts(api, dev)
    skilled = [c for c in everyone if int(c.get("numberOfSkills") or 0) > 2]
    counted = ok(
        api, "PUT", "/data/contacts/aggregate", dev, [{"match": {"numberOfSkills": "greater(2)"}}, {"count": "n"}]
    )
    assert counted == {"total": 1, "items": [{"n": len(skilled)}]}
    top = ok(
        api,
        "PUT",
        "/data/contacts/aggregate",
        dev,
        [{"sort": {"numberOfSkills": "desc", "id": "asc"}}, {"limit": 3}, {"project": "id,numberOfSkills"}],
    )
    expected = sorted(everyone, key=lambda c: c["id"])
    expected.sort(key=lambda c: c.get("numberOfSkills", -1), reverse=True)
    assert [i["id"] for i in top["items"]] == [c["id"] for c in expected[:3]]


def test_a_malformed_pipeline_is_400_naming_the_stage(api: Api, dev: str) -> None:
    for body in (
        {"group": {}},
        [],
        [{"group": {"by": "company", "total": "total(numberOfSkills)"}}],
        [{"sort": {"numberOfSkills": "sideways"}}],
        [{"noSuchStage": 1}],
        [{"project": "noSuchField"}],
    ):
        status, answer = call(api, "PUT", "/data/contacts/aggregate", dev, body)
        error(status, answer, 400, "validationErrors")
    status, answer = call(api, "PUT", "/data/contacts/aggregate", dev, [{"count": "n"}, {"limit": -1}])
    error(status, answer, 400, "validationErrors")
    assert answer["message"].startswith("Stage 2 (limit)")


def test_aggregating_a_field_the_caller_may_not_read_is_403(api: Api, sub: str) -> None:
    status, answer = call(api, "PUT", "/data/contacts/aggregate", sub, [{"group": {"by": "email", "n": "count()"}}])
    error(status, answer, 403, "forbidden")
    status, answer = call(api, "PUT", "/data/companies/aggregate", sub, [{"count": "n"}])
    error(status, answer, 403, "forbidden")  # sub may not read companies at all
    # ...what it may read aggregates
    answer = ok(api, "PUT", "/data/contacts/aggregate", sub, [{"count": "n"}])
    assert answer["items"][0]["n"] == len(contacts(api, sub))


def test_an_async_aggregate_answers_a_job_whose_file_holds_the_answer(api: Api, dev: str) -> None:
    # An extension of the spec: `_async=true` runs the pipeline as a job; its answer is a JSON file
    pipeline = [
        {"project": "company,numberOfSkills"},
        {"group": {"by": "company", "totalSkills": "sum(numberOfSkills)"}},
    ]
    ref = ok(api, "PUT", "/data/contacts/aggregate?_async=true", dev, pipeline)
    job = finished(api, dev, ref)
    assert (job["status"], job["type"]) == ("FINISHED", "AGGREGATE_RECORDS"), job
    results = job["results"]
    assert results["fileLink"] == f"{api.base}/runtime/api/files/{results['fileId']}"
    reply = api.call("GET", results["fileLink"], headers={"token": dev, "Accept": "*/*"})
    assert reply.status == 200, (reply.status, reply.body[:300])
    answer = json.loads(reply.body)
    assert answer == ok(api, "PUT", "/data/contacts/aggregate?_async=false", dev, pipeline)
    assert results["total"] == answer["total"] and results["recordsRead"] == len(contacts(api, dev))
    # The request checks the pipeline as a synchronous one: a 400 now, not a failed job
    status, refused = call(api, "PUT", "/data/contacts/aggregate?_async=true", dev, [{"noSuchStage": 1}])
    error(status, refused, 400, "validationErrors")
