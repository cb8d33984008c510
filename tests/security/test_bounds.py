"""Bounded work per request (the security issue's findings 4 and 5), over HTTP against the local stack.

Finding 4: `like(/re/)` ran on Python's backtracking `re`, where `.*.*.*.*.*x` against a 160-character
value took 35 s. Regular expressions now run on RE2, whose time grows only with the text: patterns a
backtracking engine cannot survive answer like any other, and what RE2 lacks (backreferences,
lookarounds) is a 400 that says so. The tests fail fast on the old code: its first answer to a
catastrophic pattern was a 400, so the slow pattern is never sent to it.

Finding 5: aggregates had no work bound (three self-lookups with unwind made 332 million documents in
112 s) and `limit`/`skip` past 2^63-1 were a 500. A pipeline now stops with a 400 past its budget of
documents and of records read, and every number a stage takes is checked.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from tests.integration.stack import Api

BASE = "/runtime/api"


def call(api: Api, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    reply = api.call(method, BASE + path, body=body, headers={"token": token})
    return reply.status, reply.json()


def names_matching(api: Api, token: str, prefix: str, pattern: str) -> tuple[int, Any]:
    """The companies whose name starts with `prefix` (an index range) and meets `like(pattern)`."""
    between = f"between({quote(prefix, safe='')},{quote(prefix + '~', safe='')})"
    return call(api, "GET", f"/data/companies?name={between}&name={quote(f'like({pattern})', safe='')}", token)


def refused(status: int, answer: Any) -> str:
    assert status == 400, (status, answer)
    assert answer["code"] == "validationErrors", answer
    return str(answer["message"])


def test_finding_4_like_regex_runs_on_a_linear_time_engine(api: Api, user: str) -> None:
    # Given a company whose name is a prefix and 150 x's: 160 characters, as in the finding
    prefix = f"re{uuid.uuid4().hex[:8]}"
    name = prefix + "x" * 150
    status, created = call(api, "POST", "/data/companies", user, {"name": name})
    assert status == 200, created

    # When patterns that make a backtracking engine try exponentially or polynomially many ways are sent,
    # Then each is answered, and rightly (the old code refused the first as one that "could run for ever")
    for pattern, found in [
        ("/(x+x+)+y/", []),  # exponential for a backtracking engine
        ("/(x+x+)+$/", [name]),
        ("/.*.*.*.*.*y/", []),  # the finding's pattern: 35 s on `re` at this length
        ("/(?:x|xx)*x{150}$/", [name]),
    ]:
        status, answer = names_matching(api, user, prefix, pattern)
        assert status == 200, (pattern, status, answer)
        assert [i["name"] for i in answer["items"]] == found, pattern

    # And the documented semantics stay: case as written, unless the pattern says (?i)
    assert names_matching(api, user, prefix, f"/^{prefix.upper()}/")[1]["items"] == []
    assert [i["name"] for i in names_matching(api, user, prefix, f"/(?i)^{prefix.upper()}/")[1]["items"]] == [name]

    # And what RE2 lacks is a 400 that says so, not a pattern run by another engine
    for pattern, feature in [("/(x)\\1/", "a backreference"), ("/x(?=x)/", "a lookahead")]:
        message = refused(*names_matching(api, user, prefix, pattern))
        assert f"uses {feature}, which RE2 does not support" in message, message


def fan_out(company: str, lookups: int) -> list[dict[str, Any]]:
    """The company's addresses unwound, then `lookups` times: the company looked up by id and its addresses
    unwound again, then counted; with n addresses, n ** (lookups + 1) documents."""
    pipeline: list[dict[str, Any]] = [{"match": {"id": company}}, {"unwind": {"fieldPath": "addresses"}}]
    for n in range(lookups):
        alias = f"again{n}"
        lookup = {"localFieldPath": "id", "foreignFieldPath": "id", "foreignEntityName": "companies", "as": alias}
        pipeline += [
            {"lookup": lookup},
            {"unwind": {"fieldPath": alias}},
            {"unwind": {"fieldPath": f"{alias}.addresses"}},
        ]
    return [*pipeline, {"count": "n"}]


def test_finding_5_aggregate_fan_out_stops_at_the_documented_budget(api: Api, user: str) -> None:
    # Given a company of 30 addresses, made by a plain user
    addresses = [{"addressLine": f"{i} Main St", "city": "Reno", "state": "NV"} for i in range(30)]
    status, created = call(
        api, "POST", "/data/companies", user, {"name": f"fan{uuid.uuid4().hex}", "addresses": addresses}
    )
    assert status == 200, created

    # When it is looked up in itself once: 900 documents, within the budget
    status, answer = call(api, "PUT", "/data/companies/aggregate", user, fan_out(created["id"], 1))
    assert (status, answer.get("items")) == (200, [{"n": 900}]), answer

    # And three times, as in the finding: 810,000 documents, each carrying the company it looked up
    status, answer = call(api, "PUT", "/data/companies/aggregate", user, fan_out(created["id"], 3))

    # Then the pipeline stops with a 400 that names the stage and says what to do instead
    message = refused(status, answer)
    assert message.startswith("Stage "), message
    assert "more than 500,000 documents" in message and "leading match" in message, message


def test_finding_5_numbers_out_of_range_are_a_400_not_a_500(api: Api, user: str) -> None:
    for stage in ({"limit": 2**63}, {"skip": 2**64}, {"limit": 10**30}, {"skip": -(2**63)}, {"limit": 500_001}):
        status, answer = call(api, "PUT", "/data/companies/aggregate", user, [stage, {"count": "n"}])
        message = refused(status, answer)
        assert "must be a whole number from" in message, (stage, message)
    status, answer = call(api, "PUT", "/data/companies/aggregate", user, [{"skip": 500_000}, {"count": "n"}])
    assert (status, answer["items"]) == (200, [{"n": 0}]), answer


def test_finding_5_query_language_loops_are_bounded(api: Api, user: str) -> None:
    # 1,001 record ids, or values in all, are one key range or read each: a 400 before any is read
    ids = ",".join(f"{i:024x}" for i in range(1001))
    assert "at most 1,000 values" in refused(*call(api, "GET", f"/data/companies?id={ids}", user))
    names = ",".join(f"n{i}" for i in range(1001))
    assert "at most 1,000 values" in refused(*call(api, "GET", f"/data/companies?name={names}", user))
    # Filters beyond 100 in all, parameters and _query together
    many = ",".join(["filter('type','a')"] * 100)
    assert "at most 100 filters" in refused(
        *call(api, "GET", f"/data/companies?state=active&_query={quote(f'or({many})', safe='')}", user)
    )
    # A history page size that is digits to str.isdigit() but not to int() ("²"), or 5,000 digits long
    for size in ("%C2%B2", "9" * 5000):
        assert "_size" in refused(*call(api, "GET", f"/data/companies/history?_size={size}", user))
