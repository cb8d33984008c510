"""The runtime dialect's app logs over HTTP (`/runtime/api/status/logs`): the spec's samples, every listed
error, the filters and paging, and the lines the app writes itself (logins, each call's line with the
record it changed, failed validations, actions' logs). Each test finds its own lines by a uuid marker,
so none depends on another.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any
from urllib.parse import quote

from backroom.app.logs import LogLine

from tests.integration.stack import Api, LocalStack
from tests.integration.test_runtime_data import BROWSEZOOM, HEX24, call, error, ok

TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
LOG_KEYS = {"id", "type", "subType", "level", "message", "userEmail", "adminUserEmail", "timestamp", "ip"}
DAY = 86_400_000


def marker() -> str:
    return uuid.uuid4().hex[:12]


def logs(api: Api, token: str, query: str) -> dict[str, Any]:
    return dict(ok(api, "GET", f"/status/logs?{query}", token))


def now_ms() -> int:
    return int(time.time() * 1000)


# The spec's samples -------------------------------------------------------------------
def test_posting_a_log_answers_the_specs_sample(api: Api, dev: str) -> None:
    body = {"level": "INFO", "message": "This is a test log", "additionalInfo": {"test": "Additional info property"}}
    answer = ok(api, "POST", "/status/logs", dev, body)
    assert set(answer) == LOG_KEYS | {"additionalInfo"}
    assert answer["type"] == "EXTERNAL" and answer["subType"] is None and answer["level"] == "INFO"
    assert answer["message"] == "This is a test log" and answer["userEmail"] == "dev@demo.local"
    assert answer["adminUserEmail"] is None and answer["additionalInfo"] == {"test": "Additional info property"}
    assert isinstance(answer["ip"], str) and answer["timestamp"] > now_ms() - 60_000
    assert re.match(HEX24, answer["id"])
    found = logs(api, dev, "message=this+is+a+test+log&_size=1000")
    assert any(item["id"] == answer["id"] for item in found["items"])


def test_two_logs_of_yesterday_for_one_user_as_the_specs_sample(api: Api, dev: str, local: LocalStack) -> None:
    # Given three lines of one user yesterday (written as the app writes them), and one of today
    email = f"test-{marker()}@slingr.io"
    midnight = now_ms() - now_ms() % DAY
    lines = [
        LogLine(message=f"GET /api/users/current {i}", user=email, at=midnight - DAY + 1000 * (i + 1)) for i in range(3)
    ]
    lines.append(LogLine(message="POST /login", user=email, sub_type="LOGIN", at=now_ms()))
    local.core.app.logs.add(TENANT, lines)

    # When the spec's query asks for two of yesterday's
    answer = logs(api, dev, f"period=yesterday&userEmail={quote(email)}&_size=2")

    # Then it answers the newest two and counts the three
    assert answer["total"] == 3 and answer["offset"] == 2
    assert [i["message"] for i in answer["items"]] == ["GET /api/users/current 2", "GET /api/users/current 1"]
    assert all(set(i) == LOG_KEYS and i["type"] == "APP" and i["userEmail"] == email for i in answer["items"])
    rest = logs(api, dev, f"period=yesterday&userEmail={quote(email)}&_size=2&_offset=2")
    assert [i["message"] for i in rest["items"]] == ["GET /api/users/current 0"] and rest["offset"] is None


# Every listed error -----------------------------------------------------------------------
def test_logs_are_for_developers_only(api: Api, user: str, sub: str) -> None:
    for token in (user, sub):
        status, answer = call(api, "GET", "/status/logs", token)
        error(status, answer, 403, "forbidden")
        status, answer = call(api, "POST", "/status/logs", token, {"level": "INFO", "message": "x"})
        error(status, answer, 403, "forbidden")
    status, answer = call(api, "GET", "/status/logs", None)
    error(status, answer, 401, "unauthorized")


def test_a_posted_log_with_validation_errors_is_400_with_the_details(api: Api, dev: str) -> None:
    status, answer = call(api, "POST", "/status/logs", dev, {"level": "LOUD", "additionalInfo": "text"})
    error(status, answer, 400, "validationErrors")
    assert {e["field"] for e in answer["errors"]} == {"level", "message", "additionalInfo"}
    status, answer = call(api, "POST", "/status/logs", dev, ["not", "an", "object"])
    error(status, answer, 400, "validationErrors")


def test_bad_query_parameters_are_400(api: Api, dev: str) -> None:
    for query in ("period=fortnight", "level=LOUD", "_size=0", "_size=x", "from=abc", "from=20&to=10", "nope=1"):
        status, answer = call(api, "GET", f"/status/logs?{query}", dev)
        error(status, answer, 400, "validationErrors")


# Filters and order ------------------------------------------------------------------------
def test_filters_by_time_level_and_message_newest_first(api: Api, dev: str) -> None:
    tag = marker()
    posted = [
        ok(api, "POST", "/status/logs", dev, {"level": level, "message": f"{tag} {i} Mixed Case"})
        for i, level in enumerate(("INFO", "WARN", "ERROR", "DEBUG", "ERROR"))
    ]
    # Levels, several at once, and a partial message in any case
    both = logs(api, dev, f"message={tag.upper()}&level=warn,ERROR")
    assert [i["id"] for i in both["items"]] == [posted[4]["id"], posted[2]["id"], posted[1]["id"]]
    assert both["total"] == 3
    # A span of time, both ends included
    low, high = posted[1]["timestamp"], posted[3]["timestamp"]
    spanned = logs(api, dev, f"message={tag}&from={low}&to={high}")
    assert {i["id"] for i in spanned["items"]} == {p["id"] for p in posted if low <= p["timestamp"] <= high}
    # Newest first
    stamps = [i["timestamp"] for i in logs(api, dev, "period=today&_size=50")["items"]]
    assert stamps == sorted(stamps, reverse=True)


# Lines the app writes itself ----------------------------------------------------------------
def test_the_app_logs_logins_record_changes_failed_validations_and_actions(api: Api, dev: str) -> None:
    since = now_ms() - 1000
    token = api.login("dev@demo.local", "demo-dev-password")
    name = f"Logged {marker()}"
    created = ok(api, "POST", "/data/companies", token, {"name": name})
    ok(api, "PUT", f"/data/companies/{created['id']}", token, {"notes": "changed"})
    status, _ = call(api, "POST", "/data/companies", token, {"name": name, "numberOfEmployees": "many"})
    assert status == 400
    ok(api, "DELETE", f"/data/companies/{created['id']}", token)
    ok(api, "PUT", f"/data/companies/{BROWSEZOOM}/logSomething", token, {"param1": name, "param2": "b"})

    found = logs(api, dev, f"from={since}&userEmail=dev@demo.local&_size=1000")["items"]
    login = [i for i in found if i["subType"] == "LOGIN"]
    assert login and login[-1]["message"] == "POST /login" and login[-1]["type"] == "APP"
    # ...an impersonated login names both users
    body = {"email": "dev@demo.local", "password": "demo-dev-password", "emailImpersonatedUser": "user@demo.local"}
    assert api.call("POST", "/runtime/api/auth/login", body=body).status == 200
    acting = logs(api, dev, f"from={since}&userEmail=user@demo.local&_size=1000")["items"]
    assert any(i["subType"] == "LOGIN" and i["adminUserEmail"] == "dev@demo.local" for i in acting)
    # Each change rides on its call's line, and follows it as a line of its own, as the spec's sample
    verbs = ("created", "changed", "deleted")
    follows = [
        (i["subType"], i["ip"], i["message"])
        for i in found
        if i["message"] in {f"Data record of type [companies] with label [{name}] was {v} successfully" for v in verbs}
    ]
    assert [(sub, ip) for sub, ip, _ in follows] == [(None, None)] * 3
    assert [m.rsplit(" ", 2)[1] for _, _, m in follows] == ["deleted", "changed", "created"]
    changed = [
        (i["subType"], i["message"])
        for i in found
        if any(r.get("label") == name for r in (i.get("additionalInfo") or {}).get("records", []))
    ]
    path = f"/api/data/companies/{created['id']}"
    assert changed == [
        ("REST_API_RECORD_DELETED", f"DELETE {path}"),
        ("REST_API_RECORD_UPDATED", f"PUT {path}"),
        ("REST_API_RECORD_CREATED", "POST /api/data/companies"),
    ]
    # ...a refused write's line in its call's place, as the sample prints it: no subType, no ip
    invalid = [i for i in found if (i.get("additionalInfo") or {}).get("recordLabel") == name]
    assert [i["message"].startswith("Validation exceptions on record") for i in invalid] == [True]
    assert (invalid[0]["subType"], invalid[0]["ip"]) == (None, None)
    assert invalid[0]["additionalInfo"]["errors"][0]["field"] == "numberOfEmployees"
    # ...and an action's own lines besides its call's
    action = next(i for i in found if name in i["message"] and i["message"].startswith("Action logSomething"))
    assert action["additionalInfo"]["action"] == "logSomething"
    assert any(i["message"] == f"PUT /api/data/companies/{BROWSEZOOM}/logSomething" for i in found)
