"""Schema-driven fuzzing: schemathesis over every operation of the OpenAPI document `/openapi.json` serves.

Valid and invalid requests (mode `all`: the coverage phase's boundary values, then a few random ones) to
every operation, as a developer of a tenant of its own (the fuzzer may delete, create and run whatever it
finds, so it gets nothing of the other tests' data). Each answer must be no server error (bar the Tasks
dialect's documented `500 invalid request` envelope), carry a documented status with a body and
Content-Type that conform to the document, and show no stack trace. Routes added later are fuzzed
without further work: the operations come from the document.

Knobs (see the README): FUZZ_EXAMPLES (random examples per operation, default 3), FUZZ_RANDOM=1 (a new
seed each run instead of CI's fixed one), FUZZ_SHRINK=1 (shrink a failure to its smallest form),
FUZZ_OPERATIONS (a regex on `METHOD /path`), FUZZ_URL (fuzz a running `make run` instead of the test
stack) with FUZZ_TOKEN (default: the demo developer's login).
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
import uuid
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
from tests.integration.conftest import Api

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))
DEMO_DATA = ROOT / "infra" / "demo" / "data"
DEMO_TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"
# The fuzzer's own tenant (a root account) in the test stack; the demo's when it fuzzes `make run`.
TENANT = DEMO_TENANT if os.environ.get("FUZZ_URL") else uuid.uuid4().hex
# What exists in that tenant, so that half the generated path parameters name something real.
ENTITIES = [e["name"] for e in json.loads((DEMO_DATA / "app.json").read_text())["entities"]]
TABLE = "test_table_name"
EXISTING = {"entity": ENTITIES, "table": [TABLE], "account_id": [TENANT]}
OPERATIONS = os.environ.get("FUZZ_OPERATIONS", "")
# A Python traceback, or a frame of one, in an answer.
STACK_TRACE = re.compile(r'Traceback \(most recent call last\)|File "[^"]+", line \d+|\w+Error: .*\n\s+at ')


@dataclass
class Target:
    base: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        # All three dialects' headers, so that every route finds its own.
        return {"token": self.token, "X-Auth-Token": self.token, "Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest) -> Target:
    url = os.environ.get("FUZZ_URL")
    if url:
        api = Api(url.rstrip("/"))
        return Target(api.base, os.environ.get("FUZZ_TOKEN") or api.login("dev@demo.local", "demo-dev-password"))
    local = request.getfixturevalue("local")
    # A root account of its own: a tenant whose data nothing else reads, with the demo app's entities
    # (no records) and a custom table, so that the fuzzer reaches past "no such entity".
    from backroom.app.definition import AppDefinition
    from backroom.calcengine.tables import define_custom_table
    from backroom.identity.models import Role
    from backroom.records import Schema

    core = local.core
    account = core.identity.create_account(TENANT, f"fuzz-{TENANT[:8]}")
    email = f"fuzz-{TENANT[:8]}@fuzz.local"
    core.identity.create_user(email, TENANT, name="Fuzz", role=Role.DEVELOPER, account_id=account.id)
    core.app.repo.install(TENANT, AppDefinition.model_validate_json((DEMO_DATA / "app.json").read_text()))
    tables = json.loads((DEMO_DATA / "gateway.json").read_text())["tables"]
    define_custom_table(core.records, TENANT, Schema.model_validate(next(t for t in tables if t["name"] == TABLE)))
    return Target(local.api.base, local.api.login(email, TENANT))


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
    loaded = schemathesis.openapi.from_dict(_document(), config=config)

    @loaded.hook
    def flatmap_path_parameters(ctx: Any, path_parameters: dict[str, Any]) -> Any:
        # Half the time, an entity, table or account that exists in the fuzzer's tenant.
        known = {k: v for k, v in EXISTING.items() if k in (path_parameters or {})}
        if not known:
            return st.just(path_parameters)
        real = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in known.items()})
        return st.one_of(st.just(path_parameters), real.map(lambda found: {**path_parameters, **found}))

    if OPERATIONS:
        pattern = re.compile(OPERATIONS)
        loaded = loaded.include(
            func=lambda ctx: bool(pattern.search(f"{ctx.operation.method.upper()} {ctx.operation.path}"))
        )
    return loaded


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
    response = case.call(base_url=target.base, headers=target.headers, timeout=30)
    case.validate_response(response, checks=CHECKS, headers=target.headers)
