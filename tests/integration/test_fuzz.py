"""Schema-driven fuzzing: schemathesis over every operation of the OpenAPI document `/openapi.json` serves.

Valid and invalid requests (mode `all`: the coverage phase's boundary values, then a few random ones) to
every operation, as a developer of a tenant of its own (the fuzzer may delete, create and run whatever it
finds, so it gets nothing of the other tests' data). Each answer must be no server error (bar the Tasks
dialect's documented `500 invalid request` envelope), carry a documented status with a body and
Content-Type that conform to the document, and show no stack trace. Routes added later are fuzzed
without further work: the operations come from the document. A logout gets a token of its own per call
(it ends the token it carries).

Numbers DynamoDB cannot hold (1e-200, 1e200, 1e400, a 40-digit integer, NaN, -Infinity) reach every
operation as explicit cases, sent as written: in each numeric path or query parameter, in each value of
the documented example body (one at a time), and, for a free JSON object body, as the demo entities'
numeric fields and an app log's `additionalInfo`.

Knobs (see docs/api-contract.md): FUZZ_EXAMPLES (random examples per operation, default 3), FUZZ_RANDOM=1 (a new
seed each run instead of CI's fixed one), FUZZ_SHRINK=1 (shrink a failure to its smallest form),
FUZZ_OPERATIONS (a regex on `METHOD /path`), FUZZ_EXTREMES=all (every extreme number in every place of
a body, not half), FUZZ_URL (fuzz a running `make run` instead of the test stack) with FUZZ_TOKEN
(default: the demo developer's login).
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infra.local.gateway import merged_openapi
from infra.local.lambdas import FunctionPool, ensure_layer_on_path
from infra.local.template import ROOT, Template
from tests.integration.stack import Api

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))
DEMO_APP = ROOT / "infra" / "demo" / "tenant" / "app.json"
DEMO_TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
# The fuzzer's own tenant (a root account) in the test stack; the demo's when it fuzzes `make run`.
TENANT = DEMO_TENANT if os.environ.get("FUZZ_URL") else uuid.uuid4().hex
# What exists in that tenant, so that half the generated path parameters name something real.
ENTITIES = [e["name"] for e in json.loads(DEMO_APP.read_text())["entities"]]
TABLE = "test_table_name"
EXISTING = {"entity": ENTITIES, "table": [TABLE], "account_id": [TENANT]}
OPERATIONS = os.environ.get("FUZZ_OPERATIONS", "")
# As a JSON body or a query string writes them: past DynamoDB's range, past a float, 40 digits, no numbers.
# Each numeric parameter gets all six; each place in a body half of them, the halves alternating from one
# place to the next (FUZZ_EXTREMES=all: all six everywhere).
EXTREMES = ["1e-200", "NaN", "1e400", "1234567890123456789012345678901234567890", "1e200", "-Infinity"]
ALL_EXTREMES = os.environ.get("FUZZ_EXTREMES") == "all"
NUMERIC_FIELDS = sorted(
    {
        f["name"]
        for e in json.loads(DEMO_APP.read_text())["entities"]
        for f in e["schema"]["fields"]
        if f.get("type") in ("integer", "decimal", "money", "datetime")
    }
)
# Query parameters that take a body past the first check (a Tasks PUT names its category and action).
QUERY_DEFAULTS = {"category": "number_management", "action": "add"}
_PLACE = "\u0000number\u0000"  # where an extreme goes in a body, replaced in the JSON text
# A Python traceback, or a frame of one, in an answer.
STACK_TRACE = re.compile(r'Traceback \(most recent call last\)|File "[^"]+", line \d+|\w+Error: .*\n\s+at ')


# The logouts end the token they carry: each call gets a token of its own, the others keep theirs.
LOGOUTS = {("POST", "/runtime/api/auth/logout"), ("DELETE", "/v2/token_auth"), ("POST", "/gateway/auth/v1/logout")}
# The switch that may put the fuzzer's app in maintenance: taken out of it after each call, so that the
# operations fuzzed after it meet the app, not the maintenance's 503.
MAINTENANCE = ("PUT", "/runtime/api/status/maintenance")


def _headers(token: str) -> dict[str, str]:
    # All three dialects' headers, so that every route finds its own.
    return {"token": token, "X-Auth-Token": token, "Authorization": f"Bearer {token}"}


@dataclass
class Target:
    base: str
    token: str
    login: Callable[[], str]  # a new token of the same user

    def headers_for(self, case: Any) -> dict[str, str]:
        return _headers(self.login() if (case.method.upper(), case.path) in LOGOUTS else self.token)

    def out_of_maintenance(self) -> None:
        body = json.dumps({"maintenance": False}).encode()
        headers = {**_headers(self.token), "Content-Type": "application/json"}
        switch = urllib.request.Request(f"{self.base}{MAINTENANCE[1]}", data=body, method="PUT", headers=headers)  # noqa: S310
        with urllib.request.urlopen(switch, timeout=30) as answer:  # noqa: S310 - the stack under test
            assert answer.status == 200


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest) -> Target:
    url = os.environ.get("FUZZ_URL")
    if url:
        api = Api(url.rstrip("/"))
        demo = lambda: api.login("dev@demo.local", "demo-dev-password")  # noqa: E731
        return Target(api.base, os.environ.get("FUZZ_TOKEN") or demo(), demo)
    local = request.getfixturevalue("local")
    # A root account of its own: a tenant whose data nothing else reads, with the demo app's entities
    # (no records) and a custom table, so that the fuzzer reaches past "no such entity".
    from backroom.calcengine.tables import define_custom_table
    from backroom.identity.models import Role

    from infra.demo.load import demo_app, demo_table

    core = local.core
    account = core.identity.create_account(TENANT, f"fuzz-{TENANT[:8]}")
    email = f"fuzz-{TENANT[:8]}@fuzz.local"
    core.identity.create_user(email, TENANT, name="Fuzz", role=Role.DEVELOPER, account_id=account.id)
    core.app.repo.install(TENANT, demo_app())
    define_custom_table(core.records, TENANT, demo_table(TABLE))
    return Target(local.api.base, local.api.login(email, TENANT), lambda: local.api.login(email, TENANT))


def _document() -> dict[str, Any]:
    """The document `/openapi.json` serves (test_openapi checks they are the same), built at collection
    so that each operation is a test of its own."""
    if os.environ.get("FUZZ_URL"):
        with urllib.request.urlopen(f"{os.environ['FUZZ_URL'].rstrip('/')}/openapi.json", timeout=30) as answer:  # noqa: S310
            return dict(json.load(answer))
    ensure_layer_on_path()
    return merged_openapi({name: FunctionPool(f) for name, f in Template.load().functions().items()})


def _schema() -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES,
                "deterministic": os.environ.get("FUZZ_RANDOM") != "1",
                "with-security-parameters": False,
            },
        }
    )
    document = _document()
    loaded = schemathesis.openapi.from_dict(document, config=config)

    @loaded.hook
    def flatmap_path_parameters(ctx: Any, path_parameters: dict[str, Any]) -> Any:
        # Half the time, an entity, table or account that exists in the fuzzer's tenant.
        known = {k: v for k, v in EXISTING.items() if k in (path_parameters or {})}
        if not known:
            return st.just(path_parameters)
        real = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in known.items()})
        return st.one_of(st.just(path_parameters), real.map(lambda found: {**path_parameters, **found}))

    @loaded.hook
    def before_add_examples(ctx: Any, examples: list[Any]) -> None:
        examples.extend(extreme_numbers(ctx.operation, document))

    if OPERATIONS:
        pattern = re.compile(OPERATIONS)
        loaded = loaded.include(
            func=lambda ctx: bool(pattern.search(f"{ctx.operation.method.upper()} {ctx.operation.path}"))
        )
    return loaded


def _numeric(schema: dict[str, Any]) -> bool:
    kinds = [schema, *schema.get("anyOf", [])]
    return any(k.get("type") in ("integer", "number") for k in kinds)


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    return dict(document["components"]["schemas"][ref.rsplit("/", 1)[-1]]) if ref else schema


def _example_body(document: dict[str, Any], media: dict[str, Any]) -> Any:
    """The body the document shows for a JSON media type (its own example, else its model's), or None."""
    if media.get("examples"):
        return next(iter(media["examples"].values())).get("value")
    if "example" in media:
        return media["example"]
    schema = _resolve(document, media.get("schema", {}))
    return (schema.get("examples") or [None])[0]


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [leaf for key, inner in value.items() for leaf in _leaves(inner, (*path, key))]
    if isinstance(value, list):
        return [leaf for i, inner in enumerate(value) for leaf in _leaves(inner, (*path, i))]
    return [path]


def _placed(value: Any, path: tuple[Any, ...]) -> Any:
    """`value` with the leaf at `path` replaced by the placeholder."""
    if not path:
        return _PLACE
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _placed(value[path[0]], path[1:])
    return copy


def _bodies(document: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    """Bodies with one place for a number: each value of the documented example, or probes of a free object."""
    example = _example_body(document, media)
    if example is not None:
        return [_placed(example, leaf) for leaf in _leaves(example)]
    schema = _resolve(document, media.get("schema", {}))
    if schema.get("type") == "object" and not schema.get("properties"):
        probes: list[Any] = [{name: _PLACE} for name in NUMERIC_FIELDS]
        return [*probes, {"level": "INFO", "message": "m", "additionalInfo": {"n": [1, _PLACE]}}]
    return [{name: _PLACE} for name in schema.get("properties", {})]


def extreme_numbers(operation: Any, document: dict[str, Any]) -> list[Any]:
    """Explicit cases: each extreme number in each numeric parameter and each place of each body."""
    path = {
        p.name: (EXISTING.get(p.name) or ["1" if _numeric(p.definition.get("schema", {})) else "x"])[0]
        for p in operation.path_parameters
    }
    query = {p.name: QUERY_DEFAULTS[p.name] for p in operation.query if p.name in QUERY_DEFAULTS}
    cases = []
    for where, params in (("path", operation.path_parameters), ("query", operation.query)):
        for param in params:
            if not _numeric(param.definition.get("schema", {})):
                continue
            for number in EXTREMES:
                given = {"path_parameters": {**path, param.name: number}, "query": query}
                if where == "query":
                    given = {"path_parameters": path, "query": {**query, param.name: number}}
                cases.append(operation.Case(**given))
    media = operation.definition.raw.get("requestBody", {}).get("content", {}).get("application/json")
    for place, body in enumerate(_bodies(document, media) if media else []):
        text = json.dumps(body)
        half = len(EXTREMES) // 2
        for number in EXTREMES if ALL_EXTREMES else EXTREMES[place % 2 * half :][:half]:
            raw_body = text.replace(json.dumps(_PLACE), number).encode()
            cases.append(
                operation.Case(path_parameters=path, query=query, body=raw_body, media_type="application/json")
            )
    return cases


@schemathesis.serializer("text/csv")
def _csv(ctx: Any, value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


@schemathesis.deserializer("text/csv")
def _csv_text(ctx: Any, response: Any) -> Any:
    return response.content.decode(errors="replace")


def no_server_error(ctx: Any, response: Any, case: Any) -> None:
    """No 5xx, except the Tasks dialect's `500 invalid request`, which its spec documents for bad input."""
    if response.status_code < 500:
        return
    if case.path.startswith("/v2/") and response.status_code == 500:
        body = json.loads(response.content or b"{}")
        if body.get("status") == "error" and body.get("message") == "invalid request":
            return
    raise AssertionError(f"{response.status_code} from {case.method} {case.formatted_path}: {response.content[:500]!r}")


def no_stack_trace(ctx: Any, response: Any, case: Any) -> None:
    text = (response.content or b"").decode(errors="replace")
    found = STACK_TRACE.search(text)
    assert found is None, f"a stack trace in the answer: {text[max(0, found.start() - 200) : found.end() + 200]}"


CHECKS = [
    no_server_error,
    no_stack_trace,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
schema = _schema()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate] + ([Phase.shrink] if os.environ.get("FUZZ_SHRINK") == "1" else []),
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("FUZZ_RANDOM") != "1",
    database=None,
)
def test_every_operation_answers_as_documented(case: Any, target: Target) -> None:
    headers = target.headers_for(case)
    try:
        response = case.call(base_url=target.base, headers=headers, timeout=30)
    finally:
        if (case.method.upper(), case.path) == MAINTENANCE:
            target.out_of_maintenance()
    case.validate_response(response, checks=CHECKS, headers=headers)
