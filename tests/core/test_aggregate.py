"""Aggregate queries (`backroom.app.aggregate`) on the demo app, against a plain-Python oracle.

The demo app is installed in a fresh tenant on moto (one stack and one data set for the module): 8
companies and 60 contacts of fixed random data, with values left out and values that tie. Hypothesis
draws a pipeline over contacts or companies, a stage at a time (match, project, group with every
accumulator, sort, skip, limit, count, unwind), and runs it through `aggregate` as a developer; the
answer must be the oracle's. The oracle works on the records as `GET` lists them, written from the
documented semantics, without `aggregate`'s code: each drawn stage comes with the oracle's own step.

Order: the store hands records over in the order it reads them (by id, or by the field of the index
range a leading match uses), which the semantics leave open. So the generator tracks whether the
documents' order is determined: it is once a sort ends with keys that tell documents apart (id, then
an unwound address's id, or a group's `by` fields; a third of the pipelines start with one), and
stays so through match, project, unwind and group (groups come in the order of their first
document). Order-sensitive stages (skip, limit, first, last) are drawn only when it is; otherwise the
answer is compared with the oracle's as a multiset (the total exactly). Values that sort equal are
equal in the data (no 2.8 beside 2.80), so min and max do not depend on the order.
`AGGREGATE_EXAMPLES=2000` for a long hunt.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext
from functools import cmp_to_key
from typing import Any

import pytest
from backroom.api.runtime import JobView, job_data
from backroom.app import aggregate as aggregate_module
from backroom.app import aggregate_job
from backroom.app.aggregate import aggregate
from backroom.app.aggregate_job import AggregateRecordsKind, start_aggregate
from backroom.app.permissions import Gate
from backroom.errors import Forbidden, Invalid, ServiceFailure
from backroom.identity.models import Caller, Role
from backroom.jobs.models import Job, JobState
from backroom.records import Condition, Record, Schema
from backroom.records.query import plan
from backroom.wiring import Core
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from infra.demo.load import demo_app
from tests.core.conftest import QueueDriver, core_on_moto

TENANT = "aggtenant"


def caller(email: str, role: Role) -> Caller:
    return Caller(user_id=email, email=email, name=email, role=role, account_id=TENANT, tenant_id=TENANT)


DEV = caller("dev@aggregate.local", Role.DEVELOPER)
SALES = caller("user@demo.local", Role.USER)  # the demo app's Sales: companies without taxId, contacts
READER = caller("sub@demo.local", Role.USER)  # Readers: contacts without email, no companies

COMPANY_NAMES = ["Trudoo", "Riffwire", "Snaptags", "Edgeify", "Flipopia", "Rooxo", "Zoomzone", "Quiet Co"]
RATINGS = ["0.5", "1.25", "2.5", "3.75", "-1.5", "4"]  # distinct values: no two spellings of one number
CITIES = ["Reno", "Austin", "Las Vegas", "Boston"]
STATES = ["NV", "TX", "CA"]
FIRST = ["Ann", "Bob", "Cid", "Dee", "Eve"]
LAST = ["Doe", "Roe", "Poe", "Zoe", "Moe", "Lee"]


# The world: a stack, the app, the records --------------------------------------------------------
def company_body(rng: random.Random, name: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    choices: list[tuple[str, list[Any]]] = [
        ("state", ["active", "inactive", "pending"]),
        ("type", ["a", "b", "c"]),
        ("numberOfEmployees", [5, 10, 10, 100, 250]),
        ("rating", RATINGS),
        ("isCustomer", [True, False]),
        ("taxId", ["111-KWM", "222-ABC"]),
    ]
    for key, values in choices:
        if rng.random() < 0.75:
            body[key] = rng.choice(values)
    if rng.random() < 0.6:
        body["contactInformation"] = {"email": f"{name.split()[0].lower()}@{rng.choice(['a.io', 'b.io'])}"}
    addresses = []
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        address: dict[str, Any] = {"zipCode": str(rng.randint(10000, 99999))}
        if rng.random() < 0.8:
            address["city"] = rng.choice(CITIES)
        if rng.random() < 0.8:
            address["state"] = rng.choice(STATES)
        addresses.append(address)
    if addresses:
        body["addresses"] = addresses
    return body


def contact_body(rng: random.Random, companies: list[str]) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    body: dict[str, Any] = {"firstName": first, "lastName": last}
    if rng.random() < 0.7:
        body["email"] = f"{first}.{last}@x.io".lower()
    if rng.random() < 0.8:
        body["numberOfSkills"] = rng.randint(0, 5)
    if rng.random() < 0.8:
        body["company"] = rng.choice(companies)
    return body


class World:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.docs: dict[str, list[dict[str, Any]]] = {}  # by entity: as GET lists them, in id order

    def __repr__(self) -> str:
        return f"<{len(self.docs.get('companies', []))} companies, {len(self.docs.get('contacts', []))} contacts>"

    def run(self, who: Caller, entity: str, pipeline: Any) -> dict[str, Any]:
        return aggregate(self.core.app, who, entity, pipeline)


def listed(core: Core, entity: str) -> list[dict[str, Any]]:
    """The records as the oracle's documents: GET's view without the version, decimals as Decimals."""
    page = core.app.find(DEV, entity, {"_size": "1000", "_sortField": "id", "_sortType": "asc"})
    docs = []
    for item in page["items"]:
        doc = {k: v for k, v in item.items() if k != "version"}
        if "rating" in doc:
            doc["rating"] = Decimal(doc["rating"])
        docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """One moto stack for the module (conftest's fixtures are per test): the demo app and its records."""
    with pytest.MonkeyPatch.context() as patch, core_on_moto(patch) as (_, core):
        core.app.repo.install(TENANT, demo_app(listing_members=True))  # SALES and READER below
        rng = random.Random(20240612)
        companies = [core.app.create(DEV, "companies", company_body(rng, n), None)["id"] for n in COMPANY_NAMES]
        for _ in range(60):
            core.app.create(DEV, "contacts", contact_body(rng, companies), None)
        here = World(core)
        here.docs = {name: listed(core, name) for name in ("companies", "contacts")}
        assert len(here.docs["contacts"]) == 60
        yield here


# The oracle --------------------------------------------------------------------------------------
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "<absent>"})()
Doc = dict[str, Any]
Step = Callable[[list[Doc]], list[Doc]]


def at(doc: Any, path: str) -> Any:
    """The value at a path of dicts (the generator names no path through a list for sort or group)."""
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return ABSENT
        doc = doc[part]
    return doc


def values_at(doc: Doc, path: str) -> list[Any]:
    """Every value at a path, through lists (any of them meets a filter), empty ones left out."""
    found: list[Any] = [doc]
    for part in path.split("."):
        nxt: list[Any] = []
        for holder in found:
            if isinstance(holder, dict) and part in holder:
                value = holder[part]
                nxt += value if isinstance(value, list) else [value]
        found = nxt
    return [v for v in found if v not in (None, "", [])]


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def rank(value: Any) -> tuple[Any, ...]:
    """missing/null < numbers < text < objects (by label) < booleans."""
    if value is ABSENT or value is None:
        return (0,)
    if isinstance(value, bool):
        return (5, int(value))
    if is_number(value):
        return (1, Decimal(str(value)))
    if isinstance(value, str):
        return (2, value)
    assert isinstance(value, dict)
    return (3, value.get("label") or "")


def is_link(value: Any) -> bool:
    return isinstance(value, dict) and sorted(value) == ["id", "label"]


def shown(value: Any) -> Any:
    if value is ABSENT:
        return None
    return value["label"] if is_link(value) else value


def put(doc: Doc, path: str, value: Any) -> None:
    *heads, last = path.split(".")
    for head in heads:
        doc = doc.setdefault(head, {})
    doc[last] = value


def render(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: render(v) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v) for v in value]
    return value


def project(value: Any, paths: list[list[str]]) -> Any:
    if isinstance(value, list):
        return [project(v, paths) for v in value if isinstance(v, dict)]
    out: Doc = {}
    for head in dict.fromkeys(p[0] for p in paths):
        if head not in value:
            continue
        below = [p[1:] for p in paths if p[0] == head]
        if [] in below:
            out[head] = value[head]
        elif isinstance(value[head], dict | list):
            out[head] = project(value[head], below)
    return out


def accumulate(op: str, members: list[Doc], path: str | None) -> Any:
    values = [at(m, path) for m in members] if path else []
    numbers = [v for v in values if is_number(v)]
    present = [v for v in values if v is not ABSENT and v is not None]
    if op == "count":
        return len(members)
    if op == "sum":
        return sum(numbers) if numbers else 0
    if op == "avg":
        if not numbers:
            return None
        if all(isinstance(n, int) for n in numbers):
            return sum(numbers) / len(numbers)
        with localcontext(Context(prec=34)):
            return sum(numbers, Decimal(0)) / len(numbers)
    if op in ("min", "max"):
        if not present:
            return None
        return min(present, key=rank) if op == "min" else max(present, key=rank)
    chosen = values[0] if op == "first" else values[-1]
    return None if chosen is ABSENT else chosen


def group(docs: list[Doc], by: list[str], outputs: list[tuple[str, str, str | None]]) -> list[Doc]:
    def norm(value: Any) -> Any:
        if value is ABSENT or value is None:
            return None
        if is_link(value):
            return ["t", value["label"]]
        if isinstance(value, bool):
            return ["b", value]
        if is_number(value):
            return ["n", format(Decimal(str(value)).normalize(), "f")]
        return ["t", value]

    members: dict[str, list[Doc]] = {}
    for doc in docs:
        members.setdefault(json.dumps([norm(at(doc, p)) for p in by]), []).append(doc)
    out = []
    for mine in members.values():
        result: Doc = {}
        for path in by:
            put(result, path, shown(at(mine[0], path)))
        for name, op, source in outputs:
            result[name] = accumulate(op, mine, source)
        out.append(result)
    return out


def ordered(docs: list[Doc], keys: list[tuple[str, bool]]) -> list[Doc]:
    def compare(a: Doc, b: Doc) -> int:
        for path, descending in keys:
            ra, rb = rank(at(a, path)), rank(at(b, path))
            if ra != rb:
                return (1 if ra > rb else -1) * (-1 if descending else 1)
        return 0

    return sorted(docs, key=cmp_to_key(compare))


def unwound(docs: list[Doc], keep: bool) -> list[Doc]:
    out = []
    for doc in docs:
        addresses = doc.get("addresses")
        if addresses:
            out += [{**doc, "addresses": a} for a in addresses]
        elif keep:
            out.append(doc)
    return out


# What hypothesis draws -----------------------------------------------------------------------------
SORTABLE = {"id", "text", "number", "link", "bool"}
FILTERABLE = {*SORTABLE, "texts"}
FIELDS: dict[str, dict[str, str]] = {
    "contacts": {
        "id": "id",
        "label": "text",
        "firstName": "text",
        "lastName": "text",
        "email": "text",
        "numberOfSkills": "number",
        "company": "link",
        "company.label": "text",
    },
    "companies": {
        "id": "id",
        "label": "text",
        "name": "text",
        "state": "text",
        "type": "text",
        "numberOfEmployees": "number",
        "rating": "number",
        "isCustomer": "bool",
        "contactInformation.email": "text",
        "addresses": "list",
        "addresses.id": "texts",
        "addresses.city": "texts",
        "addresses.state": "texts",
    },
}


@dataclass(frozen=True)
class Shape:
    """What the generator knows of the documents at a point of the pipeline."""

    fields: dict[str, str]  # path -> id | text | number | link | bool | list | texts (in a list) | object
    unique: tuple[str, ...] | None  # paths that tell documents apart (() when there is at most one)
    ordered: bool  # whether their order is determined
    grouped: bool = False  # after a group or count


def overlapping(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def held(docs: list[Doc], path: str) -> list[Any]:
    found: dict[str, Any] = {}
    for doc in docs:
        for value in values_at(doc, path):
            found.setdefault(json.dumps(render(value), sort_keys=True), value)
    return [found[k] for k in sorted(found)]


def quoted(text: str) -> str:
    if not re.search(r'[,"()]|^\s|\s$', text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def number_text(value: Any) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def draw_filter(data: st.DataObject, docs: list[Doc], path: str, kind: str) -> tuple[Any, Callable[[Doc], bool]]:
    """A filter's JSON value and the oracle's test of a document."""
    known = held(docs, path)
    if kind == "id":
        ids = data.draw(st.lists(st.sampled_from(known or ["0" * 24]), min_size=1, max_size=2, unique=True))
        return ",".join(ids), lambda d: any(v in ids for v in values_at(d, path))
    if kind == "bool":
        flag = data.draw(st.booleans())
        return flag, lambda d: flag in values_at(d, path)
    if kind == "texts":
        if not known:
            return "notEmpty()", lambda d: bool(values_at(d, path))
        one = data.draw(st.sampled_from(known))
        return quoted(one), lambda d: one in values_at(d, path)
    if kind == "link":
        how = data.draw(st.sampled_from(["id", "label", "empty"] if known else ["empty"]))
        if how == "empty":
            return "empty()", lambda d: not values_at(d, path)
        link = data.draw(st.sampled_from(known))
        text = link[how]
        return quoted(text), lambda d: any(isinstance(v, dict) and v.get(how) == text for v in values_at(d, path))
    if kind == "number":
        return draw_number_filter(data, known, path)
    return draw_text_filter(data, known, path)


def draw_number_filter(data: st.DataObject, known: list[Any], path: str) -> tuple[Any, Callable[[Doc], bool]]:
    """A bound (or two) among the held numbers and a few others, with any comparison the language has."""
    numbers = [n for n in known if is_number(n)] or [0]
    bound = data.draw(st.sampled_from(numbers) | st.integers(-2, 12))
    op = data.draw(st.sampled_from(["gt", "ge", "lt", "le", "between", "eq", "json"]))
    mine = lambda d: [Decimal(str(v)) for v in values_at(d, path) if is_number(v)]  # noqa: E731
    limit = Decimal(str(bound))
    if op == "between":
        other = Decimal(str(data.draw(st.sampled_from(numbers))))
        low, high = min(limit, other), max(limit, other)
        written = f"between({number_text(low)},{number_text(high)})"
        return written, lambda d: any(low <= n <= high for n in mine(d))
    if op in ("eq", "json"):
        value = bound if op == "json" and isinstance(bound, int) else number_text(bound)
        return value, lambda d: limit in mine(d)
    spelled = {"gt": "greater", "ge": "greaterOrEquals", "lt": "less", "le": "lessOrEquals"}[op]
    test: Callable[[Decimal], bool] = {
        "gt": lambda n: n > limit,
        "ge": lambda n: n >= limit,
        "lt": lambda n: n < limit,
        "le": lambda n: n <= limit,
    }[op]
    return f"{spelled}({number_text(bound)})", lambda d: any(test(n) for n in mine(d))


def draw_text_filter(data: st.DataObject, known: list[Any], path: str) -> tuple[Any, Callable[[Doc], bool]]:
    """Equals, not-equals or like among the held texts, or (outside the label) empty and not-empty."""
    texts = [t for t in known if isinstance(t, str)]
    if not texts:  # nothing to pick a value from (and a choice or an email field takes only its own kind)
        return (
            ('"nothing"', lambda d: "nothing" in values_at(d, path))
            if path == "label"
            else ("empty()", lambda d: not values_at(d, path))
        )
    ops = ["eq", "ne", "like"] + ([] if path == "label" else ["empty", "notEmpty"])
    op = data.draw(st.sampled_from(ops))
    if op == "empty":
        return "empty()", lambda d: not values_at(d, path)
    if op == "notEmpty":
        return "notEmpty()", lambda d: bool(values_at(d, path))
    if op == "like":
        whole = data.draw(st.sampled_from(texts))
        start = data.draw(st.integers(0, len(whole) - 1))
        part = whole[start : start + data.draw(st.integers(1, 3))]
        part = part.swapcase() if data.draw(st.booleans()) else part
        return f"like({part})", lambda d: any(
            isinstance(v, str) and part.lower() in v.lower() for v in values_at(d, path)
        )
    chosen = data.draw(st.lists(st.sampled_from(texts), min_size=1, max_size=2, unique=True))
    written = ",".join(quoted(t) for t in chosen)
    if op == "ne":
        return f"notEquals({written})", lambda d: not any(v in chosen for v in values_at(d, path))
    return written, lambda d: any(v in chosen for v in values_at(d, path))


Stage = tuple[dict[str, Any], Step, Shape]  # a stage's JSON, the oracle's step and the shape after it


def draw_stage(data: st.DataObject, shape: Shape, docs: list[Doc]) -> Stage:
    """One stage, of a kind the shape allows (`stage_kinds`), drawn by that kind's own helper."""
    sortable = [p for p, k in shape.fields.items() if k in SORTABLE]
    op = data.draw(st.sampled_from(stage_kinds(shape, sortable)))
    if op == "match":
        return draw_match(data, shape, docs)
    if op == "sort":
        return draw_sort(data, shape, sortable)
    if op == "group":
        return draw_group(data, shape, sortable)
    if op == "skip":
        count = data.draw(st.integers(0, 8))
        return {"skip": count}, lambda ds: ds[count:], shape
    if op == "limit":
        count = data.draw(st.integers(1, 15))
        return {"limit": count}, lambda ds: ds[:count], shape
    if op == "project":
        return draw_project(data, shape)
    if op == "unwind":
        return draw_unwind(data, shape)
    return {"count": "n"}, lambda ds: [{"n": len(ds)}], Shape({"n": "number"}, (), True, grouped=True)


def stage_kinds(shape: Shape, sortable: list[str]) -> list[str]:
    """The kinds of stage that may come next, each as often as it should be drawn: sorts need a sortable
    field, unwinds the address list, skips and limits an order; a pipeline groups at most once."""
    options = ["match", "match", "sort", "sort", "project", "count"]
    if not shape.grouped:
        options += ["group", "group", "group"]
    if shape.fields.get("addresses") == "list":
        options += ["unwind", "unwind"]
    if shape.ordered:
        options += ["skip", "limit"]
    return [o for o in options if o != "sort" or sortable]


def draw_match(data: st.DataObject, shape: Shape, docs: list[Doc]) -> Stage:
    fields = shape.fields
    # The query language knows no `addresses.id` (a group's items carry ids it does not filter by).
    filterable = [p for p, k in fields.items() if k in FILTERABLE and (shape.grouped or p != "addresses.id")]
    if not filterable:
        return draw_stage(data, shape, docs)
    paths = data.draw(st.lists(st.sampled_from(filterable), min_size=1, max_size=2, unique=True))
    drawn = {p: draw_filter(data, docs, p, fields[p]) for p in paths}
    tests = [t for _, t in drawn.values()]
    return (
        {"match": {p: v for p, (v, _) in drawn.items()}},
        lambda ds: [d for d in ds if all(t(d) for t in tests)],
        shape,
    )


def draw_sort(data: st.DataObject, shape: Shape, sortable: list[str]) -> Stage:
    keys = data.draw(st.lists(st.sampled_from(sortable), min_size=1, max_size=2, unique=True))
    spec = {p: data.draw(st.sampled_from(["asc", "desc", "DESC"])) for p in keys}
    # Mostly a total order (ending with the keys that tell documents apart): order-sensitive stages may follow.
    total = shape.unique is not None and data.draw(st.integers(0, 3)) > 0
    if total:
        for path in shape.unique or ():
            spec.setdefault(path, "asc")
    order = [(p, d.lower() == "desc") for p, d in spec.items()]
    after = Shape(shape.fields, shape.unique, shape.ordered or total, shape.grouped)
    return {"sort": spec}, lambda ds: ordered(ds, order), after


def draw_project(data: st.DataObject, shape: Shape) -> Stage:
    fields = shape.fields
    chosen: list[str] = []
    lists = [p for p, k in fields.items() if k in ("list", "texts")]  # drawn more often: they project by element
    for path in data.draw(st.lists(st.sampled_from([*fields, *lists, *lists]), min_size=1, max_size=3, unique=True)):
        if not any(overlapping(path, c) for c in chosen):
            chosen.append(path)
    kept = {p: k for p, k in fields.items() if any(p == c or p.startswith(c + ".") for c in chosen)}
    unique = shape.unique if shape.unique is not None and all(u in kept for u in shape.unique) else None
    parts = [c.split(".") for c in chosen]
    after = Shape(kept, unique, shape.ordered, shape.grouped)
    return {"project": ",".join(chosen)}, lambda ds: [project(d, parts) for d in ds], after


def draw_group(data: st.DataObject, shape: Shape, sortable: list[str]) -> Stage:
    fields = shape.fields
    by: list[str] = []
    for path in data.draw(st.lists(st.sampled_from(sortable or ["id"]), max_size=2, unique=True)):
        if path in fields and not any(overlapping(path, b) for b in by):
            by.append(path)
    made: dict[str, str] = {p: "text" if fields[p] in ("link", "id") else fields[p] for p in by}
    outputs = draw_accumulators(data, shape, made)
    grouping: dict[str, Any] = {"by": ",".join(by)} if by else {}
    grouping.update({name: f"{kind}({path or ''})" for name, kind, path in outputs})
    after = Shape(made, tuple(by), shape.ordered or not by, grouped=True)
    return {"group": grouping}, lambda ds: group(ds, by, outputs), after


def draw_accumulators(data: st.DataObject, shape: Shape, made: dict[str, str]) -> list[tuple[str, str, str | None]]:
    """A group's one to three outputs (name, accumulator, source path), each added to `made` with its kind."""
    fields = shape.fields
    numbers = [p for p, k in fields.items() if k == "number"]
    scalars = [p for p, k in fields.items() if k in ("number", "text", "id")]
    firsts = [p for p, k in fields.items() if k in ("number", "text", "id", "link")]
    ops = ["count"] + (["sum", "avg"] if numbers else []) + (["min", "max"] if scalars else [])
    ops += ["first", "last"] * 2 if shape.ordered and firsts else []
    sources = {"sum": numbers, "avg": numbers, "min": scalars, "max": scalars, "first": firsts, "last": firsts}
    outputs: list[tuple[str, str, str | None]] = []
    for i in range(data.draw(st.integers(1, 3))):
        name, kind = f"r{i}", data.draw(st.sampled_from(ops))
        if kind == "count":
            outputs.append((name, kind, None))
            made[name] = "number"
            continue
        path = data.draw(st.sampled_from(sources[kind]))
        outputs.append((name, kind, path))
        made[name] = "number" if kind in ("sum", "avg") else "text" if fields[path] == "id" else fields[path]
    return outputs


def draw_unwind(data: st.DataObject, shape: Shape) -> Stage:
    keep = data.draw(st.booleans())
    settings_: dict[str, Any] = {"fieldPath": "addresses"}
    if keep or data.draw(st.booleans()):
        settings_["includeEmpty"] = keep
    kinds = {p: ("object" if p == "addresses" else "text" if k == "texts" else k) for p, k in shape.fields.items()}
    unique = (*shape.unique, "addresses.id") if shape.unique is not None and "addresses.id" in shape.fields else None
    return {"unwind": settings_}, lambda ds: unwound(ds, keep), Shape(kinds, unique, shape.ordered)


def canonical_items(items: list[Any]) -> list[str]:
    return sorted(json.dumps(i, sort_keys=True) for i in items)


# Tests ----------------------------------------------------------------------------------------------
@settings(
    max_examples=int(os.environ.get("AGGREGATE_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_pipelines_agree_with_the_oracle(world: World, data: st.DataObject) -> None:
    entity = data.draw(st.sampled_from(["contacts", "companies"]))
    docs = world.docs[entity]
    shape = Shape(FIELDS[entity], ("id",), False)
    pipeline: list[dict[str, Any]] = []
    if data.draw(st.integers(0, 2)) == 0:  # an order fixed from the start: skip, limit, first and last may follow
        keys = data.draw(st.lists(st.sampled_from(["label", "id"]), max_size=1))
        spec = {**{k: data.draw(st.sampled_from(["asc", "desc"])) for k in keys}, "id": "asc"}
        order = [(p, d == "desc") for p, d in spec.items()]
        pipeline.append({"sort": spec})
        docs, shape = ordered(docs, order), Shape(shape.fields, shape.unique, True)
    for _ in range(data.draw(st.integers(1, 5))):
        stage, step, shape = draw_stage(data, shape, docs)
        pipeline.append(stage)
        docs = step(docs)
        event(next(iter(stage)))
    event("compared in order" if shape.ordered else "compared as a multiset")
    event("some documents" if docs else "no documents")

    answer = world.run(DEV, entity, pipeline)

    expected = render(docs)
    assert answer["total"] == len(expected)
    if shape.ordered:
        assert answer["items"] == expected
    else:
        assert canonical_items(answer["items"]) == canonical_items(expected)


def test_the_spec_sample_sums_skills_per_company_label(world: World) -> None:
    pipeline = [
        {"project": "company,numberOfSkills"},
        {"group": {"by": "company", "totalSkills": "sum(numberOfSkills)"}},
    ]

    answer = world.run(DEV, "contacts", pipeline)

    expected: dict[str | None, int] = {}
    for contact in world.docs["contacts"]:
        label = contact["company"]["label"] if "company" in contact else None
        expected[label] = expected.get(label, 0) + contact.get("numberOfSkills", 0)
    assert answer["total"] == len(expected)
    assert all(set(item) == {"company", "totalSkills"} for item in answer["items"])
    assert {item["company"]: item["totalSkills"] for item in answer["items"]} == expected
    assert set(expected) - {None} <= set(COMPANY_NAMES)


def test_decimals_stay_exact_and_integer_averages_are_floats(world: World) -> None:
    pipeline = [
        {"group": {"rating": "sum(rating)", "average": "avg(rating)", "people": "avg(numberOfEmployees)"}},
    ]

    answer = world.run(DEV, "companies", pipeline)

    ratings = [c["rating"] for c in world.docs["companies"] if "rating" in c]
    employees = [c["numberOfEmployees"] for c in world.docs["companies"] if "numberOfEmployees" in c]
    with localcontext(Context(prec=34)):
        average = sum(ratings, Decimal(0)) / len(ratings)
    assert answer == {
        "total": 1,
        "items": [
            {
                "rating": format(sum(ratings, Decimal(0)), "f"),
                "average": format(average, "f"),
                "people": sum(employees) / len(employees),
            }
        ],
    }
    assert isinstance(answer["items"][0]["people"], float)


def test_counts_and_groups_of_nothing(world: World) -> None:
    nobody = {"match": {"lastName": "Nobody"}}

    assert world.run(DEV, "contacts", [nobody, {"count": "n"}]) == {"total": 1, "items": [{"n": 0}]}
    assert world.run(DEV, "contacts", [nobody, {"group": {"n": "count()"}}]) == {"total": 0, "items": []}


def test_items_stop_at_the_cap_while_total_counts_them_all(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aggregate_module, "MAX_ITEMS", 5)

    answer = world.run(DEV, "contacts", [{"sort": {"id": "asc"}}])

    assert answer["total"] == 60
    assert [i["id"] for i in answer["items"]] == [c["id"] for c in world.docs["contacts"][:5]]


@dataclass
class Reads:
    """The store's reads during a call: each stream's table and conditions, the records streams hand over,
    and the records read by id."""

    streams: list[tuple[str, list[Condition]]] = field(default_factory=list)
    checked: list[bool] = field(default_factory=list)  # whether a stream was given a `where` to run on each record
    streamed: dict[str, int] = field(default_factory=dict)  # by table
    records: dict[str, int] = field(default_factory=dict)  # read by id, by table
    batches: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def reads(world: World, monkeypatch: pytest.MonkeyPatch) -> Reads:
    store, seen = world.core.app.records, Reads()
    stream, get_many = store.stream, store.get_many

    def spy_stream(tenant_id: str, schema: Schema, filters: Any, **kw: Any) -> Iterator[Record]:
        seen.streams.append((schema.name, list(filters)))
        seen.checked.append(kw.get("where") is not None)
        for record in stream(tenant_id, schema, filters, **kw):
            seen.streamed[schema.name] = seen.streamed.get(schema.name, 0) + 1
            yield record

    def spy_get_many(tenant_id: str, schema: Schema, rids: Any) -> list[Record]:
        seen.records[schema.name] = seen.records.get(schema.name, 0) + len(rids)
        seen.batches[schema.name] = seen.batches.get(schema.name, 0) + 1
        return get_many(tenant_id, schema, rids)

    monkeypatch.setattr(store, "stream", spy_stream)
    monkeypatch.setattr(store, "get_many", spy_get_many)
    return seen


def test_a_leading_match_is_a_query_of_the_index_that_serves_it(world: World, reads: Reads) -> None:
    # Given the company that has the most contacts
    contacts = world.docs["contacts"]
    counts: dict[str, int] = {}
    for contact in contacts:
        if "company" in contact:
            counts[contact["company"]["id"]] = counts.get(contact["company"]["id"], 0) + 1
    company = max(counts, key=lambda c: counts[c])

    # When its contacts are counted by a leading match
    answer = world.run(DEV, "contacts", [{"match": {"company": company}}, {"count": "n"}])

    # Then the store was asked for those contacts only, a condition its company index serves
    assert answer["items"] == [{"n": counts[company]}]
    assert reads.streams == [("contacts", [Condition("company", "eq", (company,))])]
    assert reads.checked == [False]  # nothing left to check record by record
    schema = world.core.app.repo.entity(TENANT, "contacts").schema
    chosen = plan(schema, reads.streams[0][1])
    assert chosen.index is not None and chosen.index.name == "company" and not chosen.residual
    assert reads.streamed["contacts"] == counts[company] < len(contacts)

    # And the same match after another stage has every contact read, then filters them
    reads.streamed.clear()
    late = world.run(DEV, "contacts", [{"sort": {"id": "asc"}}, {"match": {"company": company}}, {"count": "n"}])
    assert late == answer
    assert reads.streams[-1] == ("contacts", []) and reads.streamed["contacts"] == len(contacts)


def test_a_leading_match_on_ids_reads_just_those_records(world: World, reads: Reads) -> None:
    wanted = [c["id"] for c in world.docs["contacts"][:3]]

    answer = world.run(DEV, "contacts", [{"match": {"id": ",".join(wanted)}}, {"project": "id"}])

    assert sorted(i["id"] for i in answer["items"]) == sorted(wanted)
    assert reads.streams == [] and reads.records == {"contacts": 3}


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        ({"match": {}}, "The body must be a JSON array of stages"),
        ([], "The body must be a JSON array of stages"),
        ([{"match": {"a": "b"}, "count": "n"}], "Stage 1 must be an object holding one operation"),
        (["count"], "Stage 1 must be an object holding one operation"),
        ([{"count": "n"}, {"median": "x"}], "Stage 2: median is not an operation"),
        (
            [{"project": "company,numberOfSkills"}, {"group": {"by": "company", "totalSkills": "sum()"}}],
            "Stage 2 (group): sum needs a field, as sum(numberOfSkills)",
        ),
        ([{"group": {"x": "median(numberOfSkills)"}}], "Stage 1 (group): median() is not an accumulator"),
        ([{"group": {"x": "count(numberOfSkills)"}}], "Stage 1 (group): count() takes no field"),
        ([{"group": {"x": 3}}], "Stage 1 (group): x must be an accumulator"),
        ([{"group": {"by": "company,company.label"}}], "Stage 1 (group): by names company and company.label"),
        ([{"group": {"by": "company", "company": "count()"}}], "Stage 1 (group): company is both grouped by"),
        ([{"skip": -1}], "Stage 1 (skip): settings must be a whole number from 0 to 500,000"),
        ([{"limit": 0}], "Stage 1 (limit): settings must be a whole number from 1 to 500,000"),
        ([{"limit": True}], "Stage 1 (limit): settings must be a whole number"),
        ([{"limit": 2**63}], "Stage 1 (limit): settings must be a whole number from 1 to 500,000"),
        ([{"skip": 2**64}], "Stage 1 (skip): settings must be a whole number from 0 to 500,000"),
        ([{"limit": 1.0}], "Stage 1 (limit): settings must be a whole number"),
        ([{"project": ",".join(f"f{i}" for i in range(101))}], "Stage 1 (project): a stage names at most 100 fields"),
        ([{"sort": {f"f{i}": "asc" for i in range(101)}}], "Stage 1 (sort): a sort names at most 100 fields"),
        ([{"group": {f"n{i}": "count()" for i in range(101)}}], "Stage 1 (group): a group computes at most 100"),
        ([{"count": "n"}, {"project": ".".join("a" * 11)}], 'Stage 2 (project): "a.a.a.a.a.a.a.a.a.a.a" names more'),
        (
            [{"match": {"lastName": "Doe"}}] * 2
            + [{"match": {"_query": "or(" + ",".join(["filter('lastName','x')"] * 99) + ")"}}],
            "A pipeline's matches hold at most 100 filters in all (this one 101)",
        ),
        ([{"sort": {"lastName": "up"}}], "Stage 1 (sort): the direction of lastName must be asc or desc"),
        ([{"sort": {}}], "Stage 1 (sort): settings must be an object"),
        ([{"unwind": {"includeEmpty": True}}], "Stage 1 (unwind): fieldPath must name a field"),
        ([{"unwind": {"fieldPath": "company", "includeEmpty": "yes"}}], "Stage 1 (unwind): includeEmpty"),
        ([{"count": "a b"}], "Stage 1 (count): settings must be the name of the count"),
        ([{"match": "lastName=Doe"}], "Stage 1 (match): settings must be an object of query-language filters"),
        ([{"match": {"numberOfSkills": "greater(many)"}}], 'Stage 1 (match): Invalid value "many"'),
        ([{"match": {"lastName": ["Doe"]}}], "Stage 1 (match): the filter on lastName must be text"),
        ([{"match": {"_size": "3"}}], 'Stage 1 (match): "_size" is not a field to filter by'),
        ([{"lookup": {"localFieldPath": "company"}}], "Stage 1 (lookup): settings must be an object of"),
        ([{"project": ""}], "Stage 1 (project): name one or more fields"),
        ([{"project": "a..b"}], 'Stage 1 (project): "a..b" is not a field path'),
        # Unknown fields, while the documents are the entity's
        ([{"project": "firstName,nope"}], 'Stage 1 (project): "nope" is not a field of contacts'),
        ([{"match": {"nope": "x"}}], 'Stage 1 (match): "nope" is not a field of contacts'),
        ([{"group": {"by": "nope"}}], 'Stage 1 (group): "nope" is not a field of contacts'),
        ([{"group": {"x": "sum(nope)"}}], 'Stage 1 (group): "nope" is not a field of contacts'),
        ([{"sort": {"company.name": "asc"}}], 'Stage 1 (sort): "company.name" is not a field of contacts'),
        ([{"limit": 3}, {"unwind": {"fieldPath": "nope"}}], 'Stage 2 (unwind): "nope" is not a field of contacts'),
        (
            [
                {
                    "lookup": {
                        "localFieldPath": "nope",
                        "foreignFieldPath": "id",
                        "foreignEntityName": "companies",
                        "as": "c",
                    }
                }
            ],
            'Stage 1 (lookup): "nope" is not a field of contacts',
        ),
        (
            [
                {
                    "lookup": {
                        "localFieldPath": "company",
                        "foreignFieldPath": "x",
                        "foreignEntityName": "companies",
                        "as": "c",
                    }
                }
            ],
            'Stage 1 (lookup): "x" is not a field of companies',
        ),
        (
            [
                {
                    "lookup": {
                        "localFieldPath": "company",
                        "foreignFieldPath": "id",
                        "foreignEntityName": "nope",
                        "as": "c",
                    }
                }
            ],
            "Stage 1 (lookup): foreignEntityName: nope is not an entity",
        ),
    ],
)
def test_a_malformed_pipeline_is_a_400_naming_the_stage(world: World, pipeline: Any, message: str) -> None:
    with pytest.raises(Invalid) as raised:
        world.run(DEV, "contacts", pipeline)

    assert raised.value.status == 400
    assert raised.value.message.startswith(message), raised.value.message


def test_after_a_group_names_are_the_new_documents(world: World) -> None:
    pipeline = [
        {"group": {"by": "lastName", "n": "count()"}},
        {"match": {"n": "greater(0)", "nope": "empty()"}},
        {"sort": {"nope": "asc", "lastName": "asc"}},
        {"project": "lastName,n,nope"},
    ]

    answer = world.run(DEV, "contacts", pipeline)

    names = sorted({c["lastName"] for c in world.docs["contacts"]})
    assert [i["lastName"] for i in answer["items"]] == names
    assert sum(i["n"] for i in answer["items"]) == 60


@pytest.mark.parametrize(
    "pipeline",
    [
        [{"match": {"email": "notEmpty()"}}],
        [{"limit": 5}, {"match": {"email": "notEmpty()"}}],
        [{"project": "firstName,email"}],
        [{"group": {"by": "email"}}],
        [{"group": {"first": "first(email)"}}],
        [{"sort": {"email": "asc"}}],
        [{"lookup": {"localFieldPath": "email", "foreignFieldPath": "id", "foreignEntityName": "contacts", "as": "c"}}],
        [{"lookup": {"localFieldPath": "id", "foreignFieldPath": "email", "foreignEntityName": "contacts", "as": "c"}}],
        [
            {
                "lookup": {
                    "localFieldPath": "company",
                    "foreignFieldPath": "id",
                    "foreignEntityName": "companies",
                    "as": "c",
                }
            }
        ],
    ],
)
def test_what_the_caller_may_not_read_is_a_403(world: World, pipeline: list[Any]) -> None:
    with pytest.raises(Forbidden) as raised:
        world.run(READER, "contacts", pipeline)

    assert raised.value.status == 403
    assert raised.value.message.startswith("Stage "), raised.value.message


def test_fields_the_caller_may_not_read_are_never_in_the_documents(world: World) -> None:
    answer = world.run(READER, "contacts", [{"sort": {"id": "asc"}}])

    assert answer["total"] == 60
    assert [i["id"] for i in answer["items"]] == [c["id"] for c in world.docs["contacts"]]
    assert not any("email" in i for i in answer["items"])
    assert any("email" in c for c in world.docs["contacts"])


def test_a_lookup_by_id_joins_the_related_records_as_the_caller_may_read_them(world: World, reads: Reads) -> None:
    lookup = {"localFieldPath": "company", "foreignFieldPath": "id", "foreignEntityName": "companies", "as": "info"}

    answer = world.run(SALES, "contacts", [{"lookup": lookup}, {"sort": {"id": "asc"}}])

    companies = {c["id"]: {k: v for k, v in c.items() if k != "taxId"} for c in world.docs["companies"]}
    expected = [
        {**c, "info": [companies[c["company"]["id"]]] if "company" in c else []} for c in world.docs["contacts"]
    ]
    assert answer["items"] == render(expected)
    assert any("taxId" in c for c in world.docs["companies"])
    assert reads.batches["companies"] == 1  # 60 documents, one batch of the distinct companies


def test_a_lookup_on_an_indexed_path_queries_the_index_once_a_value(world: World, reads: Reads) -> None:
    lookup = {"localFieldPath": "id", "foreignFieldPath": "company", "foreignEntityName": "contacts", "as": "people"}

    answer = world.run(DEV, "companies", [{"lookup": lookup}, {"project": "id,people.id"}])

    expected = {
        company["id"]: sorted(
            c["id"] for c in world.docs["contacts"] if c.get("company", {}).get("id") == company["id"]
        )
        for company in world.docs["companies"]
    }
    assert {i["id"]: [p["id"] for p in i["people"]] for i in answer["items"]} == expected
    queries = [conditions for name, conditions in reads.streams if name == "contacts"]
    assert sorted(c[0].values[0] for c in queries) == sorted(expected)
    assert all(len(c) == 1 and c[0].field == "company" for c in queries)


def test_a_lookup_no_index_serves_reads_the_foreign_table_once(world: World, reads: Reads) -> None:
    lookup = {
        "localFieldPath": "firstName",
        "foreignFieldPath": "firstName",
        "foreignEntityName": "contacts",
        "as": "s",
    }

    answer = world.run(DEV, "contacts", [{"lookup": lookup}, {"project": "id,firstName,s.id"}])

    contacts = world.docs["contacts"]
    for item in answer["items"]:
        assert [s["id"] for s in item["s"]] == sorted(c["id"] for c in contacts if c["firstName"] == item["firstName"])
    assert [name for name, _ in reads.streams] == ["contacts", "contacts"]  # the source, then the foreign table


def test_names_a_lookup_added_are_fields_of_later_stages(world: World) -> None:
    lookup = {"localFieldPath": "company", "foreignFieldPath": "id", "foreignEntityName": "companies", "as": "info"}
    pipeline = [
        {"lookup": lookup},
        {"unwind": {"fieldPath": "info"}},
        {"match": {"info.state": "active"}},
        {"group": {"by": "info.name", "n": "count()"}},
    ]

    answer = world.run(SALES, "contacts", pipeline)

    states = {c["id"]: (c["name"], c.get("state")) for c in world.docs["companies"]}
    expected: dict[str, int] = {}
    for contact in world.docs["contacts"]:
        name, state = states[contact["company"]["id"]] if "company" in contact else (None, None)
        if state == "active" and name is not None:
            expected[name] = expected.get(name, 0) + 1
    assert {i["info"]["name"]: i["n"] for i in answer["items"]} == expected
    # The foreign documents never hold what the caller may not read: a name under `info` just has no value.
    hidden = world.run(SALES, "contacts", [{"lookup": lookup}, {"match": {"info.taxId": "notEmpty()"}}, {"count": "n"}])
    assert hidden["items"] == [{"n": 0}]
    with pytest.raises(Forbidden):
        world.run(SALES, "companies", [{"project": "taxId"}])


# The work budget (finding 5 of the security issue) -----------------------------------------------
def self_lookup(alias: str, path: str = "lastName") -> dict[str, Any]:
    return {"lookup": {"localFieldPath": path, "foreignFieldPath": path, "foreignEntityName": "contacts", "as": alias}}


def test_finding_5_three_self_lookups_with_unwind_stop_at_the_budget(world: World) -> None:
    # Each contact shares its last name with about ten: three self-lookups unwound multiply the 60 by 1,000
    pipeline: list[dict[str, Any]] = []
    for alias in ("a", "b", "c"):
        pipeline += [self_lookup(alias), {"unwind": {"fieldPath": alias}}]

    with pytest.raises(Invalid) as raised:
        world.run(SALES, "contacts", [*pipeline, {"count": "n"}])

    message = raised.value.message
    assert message.startswith("Stage ") and "would work through more than 500,000 documents" in message, message
    assert "select fewer records with a leading match" in message
    # Two of them stay well within it
    two = world.run(SALES, "contacts", [*pipeline[:4], {"count": "n"}])
    shared = [sum(1 for o in world.docs["contacts"] if o["lastName"] == c["lastName"]) for c in world.docs["contacts"]]
    assert two["items"] == [{"n": sum(n * n for n in shared)}]


def weight(document: Any) -> int:
    """The documented weight: one, plus one for each object and list item inside."""
    if isinstance(document, dict):
        return 1 + sum(weight(v) for v in document.values() if isinstance(v, dict | list))
    return sum(weight(v) if isinstance(v, dict | list) else 1 for v in document)


def test_documents_are_counted_as_each_stage_takes_them_in(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the budget of exactly what a project of two fields then a count take in
    contacts = world.docs["contacts"]
    projected = [{k: v for k, v in c.items() if k in ("company", "numberOfSkills")} for c in contacts]
    spent = 2 * sum(weight(c) for c in contacts) + sum(weight(p) for p in projected) + 1  # the answer's one document
    pipeline = [{"project": "company,numberOfSkills"}, {"count": "n"}]
    monkeypatch.setattr(aggregate_module, "MAX_DOCUMENTS", spent)

    # Then the pipeline fits, and one document less does not
    assert world.run(DEV, "contacts", pipeline)["items"] == [{"n": 60}]
    monkeypatch.setattr(aggregate_module, "MAX_DOCUMENTS", spent - 1)
    with pytest.raises(Invalid, match="would work through more than"):
        world.run(DEV, "contacts", pipeline)


def test_a_match_counts_the_documents_it_drops_once_per_filter(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # The documents hold only the fields the pipeline reads before its count (and id and label)
    contacts = [
        {k: v for k, v in c.items() if k in ("id", "label", "lastName", "firstName")} for c in world.docs["contacts"]
    ]
    pipeline = [{"sort": {"id": "asc"}}, {"match": {"lastName": "Nobody", "firstName": "Nobody"}}, {"count": "n"}]
    spent = sum(weight(c) for c in contacts) * (1 + 2) + 1
    monkeypatch.setattr(aggregate_module, "MAX_DOCUMENTS", spent)
    assert world.run(DEV, "contacts", pipeline)["items"] == [{"n": 0}]
    monkeypatch.setattr(aggregate_module, "MAX_DOCUMENTS", spent - 2)  # the answer's document is the last one
    with pytest.raises(Invalid, match=r"^Stage 2 \(match\): the aggregate would work through more than"):
        world.run(DEV, "contacts", pipeline)


def test_records_read_are_counted_those_a_filter_turns_down_too(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # A leading match no index serves reads every contact to find the few it keeps
    monkeypatch.setattr(aggregate_module, "MAX_READ", 60)
    pipeline = [{"match": {"firstName": "like(/^Ann$/)"}}, {"count": "n"}]
    ann = sum(1 for c in world.docs["contacts"] if c["firstName"] == "Ann")
    assert world.run(DEV, "contacts", pipeline)["items"] == [{"n": ann}]
    monkeypatch.setattr(aggregate_module, "MAX_READ", 59)
    with pytest.raises(Invalid) as raised:
        world.run(DEV, "contacts", pipeline)
    assert raised.value.message == (
        "The leading match: the aggregate would read more than 59 records, the most one request may read; "
        "run it as a job with _async=true, or select fewer records with a leading match an index serves "
        "(or look up fewer distinct values)"
    )


def test_a_lookups_reads_count_a_query_per_value(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Companies (8 read) look their contacts up by the company index: a query for each company, and the
    # contacts they find (those with a company)
    lookup = {"localFieldPath": "id", "foreignFieldPath": "company", "foreignEntityName": "contacts", "as": "people"}
    linked = sum(1 for c in world.docs["contacts"] if "company" in c)
    spent = 8 + 8 * aggregate_module.LOOKUP_QUERY + linked
    monkeypatch.setattr(aggregate_module, "MAX_READ", spent)
    assert world.run(DEV, "companies", [{"lookup": lookup}, {"count": "n"}])["items"] == [{"n": 8}]
    monkeypatch.setattr(aggregate_module, "MAX_READ", spent - 1)
    with pytest.raises(Invalid, match=r"^Stage 1 \(lookup\): the aggregate would read more than"):
        world.run(DEV, "companies", [{"lookup": lookup}, {"count": "n"}])


# Reading only what the pipeline uses; past a request's budget, `_async=true` (a job, its answer a file) ------
SAMPLE = [{"project": "company,numberOfSkills"}, {"group": {"by": "company", "totalSkills": "sum(numberOfSkills)"}}]


def test_the_store_fetches_only_the_fields_the_pipeline_reads(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    store, fetched = world.core.app.records, []
    stream = store.stream

    def spy(tenant_id: str, schema: Schema, filters: Any, **kw: Any) -> Iterator[Record]:
        for record in stream(tenant_id, schema, filters, **kw):
            fetched.append(set(record.data))
            yield record

    monkeypatch.setattr(store, "stream", spy)
    # The sample reads company and numberOfSkills: DynamoDB hands back nothing else of each contact
    assert world.run(DEV, "contacts", SAMPLE)["total"] > 1
    assert len(fetched) == 60 and set().union(*fetched) == {"company", "numberOfSkills"}
    # A later match's field is read too; a count alone reads no field at all
    fetched.clear()
    world.run(DEV, "contacts", [{"sort": {"id": "asc"}}, {"match": {"lastName": "Doe"}}, {"count": "n"}])
    assert set().union(*fetched) == {"lastName"}
    fetched.clear()
    assert world.run(DEV, "contacts", [{"count": "n"}])["items"] == [{"n": 60}]
    assert len(fetched) == 60 and set().union(*fetched) == set()
    # Whole documents to the end: every field the caller may read, and never one it may not
    fetched.clear()
    world.run(READER, "contacts", [{"limit": 60}])
    assert "email" not in set().union(*fetched) and "lastName" in set().union(*fetched)


def test_past_a_requests_budget_the_400_says_to_run_it_with_async(world: World) -> None:
    small = aggregate_module.Limits(59, 10_000, "one request may", "run it as a job with _async=true, or ")

    with pytest.raises(Invalid) as raised:
        aggregate(world.core.app, DEV, "contacts", SAMPLE, limits=small)

    assert "would read more than 59 records" in raised.value.message
    assert "run it as a job with _async=true" in raised.value.message
    assert aggregate_module.sync_limits().advice == small.advice  # the request's own budget says the same


def drive(world: World) -> QueueDriver:
    return QueueDriver(world.core)


def async_answer(world: World, who: Caller, entity: str, pipeline: Any) -> tuple[Job, Any]:
    """Run the pipeline as a job to its end; the job and its result file's JSON (downloaded by id)."""
    job = start_aggregate(world.core.app, who, entity, pipeline, "203.0.113.9", "https://api.example/prod/runtime")
    drive(world).drain()
    return finished(world, job.id)


def finished(world: World, job_id: str) -> tuple[Job, Any]:
    done = world.core.jobs.get(job_id, TENANT)
    assert done.state is JobState.FINISHED, (done.state, done.error)
    download = world.core.app.files.download(DEV, done.results["fileId"])
    # the file's link, an absolute URL under the root the job's request came to, is the runtime dialect's
    # (the root the request left, else the reader's)
    shown = JobView.of(done, stoppable=False, origin="https://reader.example/runtime").results
    root = "https://api.example/prod/runtime" if "origin" in done.params else "https://reader.example/runtime"
    assert shown["fileLink"] == f"{root}/api/files/{done.results['fileId']}"
    assert "fileLink" not in done.results and "origin" not in job_data(done)
    return done, json.loads(download.body or b"")


ASYNC_PIPELINES = [
    SAMPLE,
    [
        {"match": {"lastName": "Doe,Roe,Poe,Lee"}},
        {
            "group": {
                "by": "lastName",
                "f": "first(firstName)",
                "l": "last(company)",
                "lo": "min(numberOfSkills)",
                "hi": "max(email)",
                "a": "avg(numberOfSkills)",
                "n": "count()",
            }
        },
        {"sort": {"n": "desc", "lastName": "asc"}},
    ],
    [{"project": "firstName,numberOfSkills"}, {"match": {"numberOfSkills": "greater(2)"}}, {"count": "n"}],
    [{"project": "id,company,numberOfSkills"}, {"sort": {"numberOfSkills": "desc", "id": "asc"}}, {"skip": 3}],
]


@pytest.mark.parametrize("pipeline", ASYNC_PIPELINES, ids=["sample", "group-all", "count", "sort-skip"])
def test_an_async_aggregate_leaves_the_synchronous_answer_as_a_file(
    world: World, pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AggregateRecordsKind, "commit_rows", 25)  # 60 contacts in three pages, merged in order

    done, answer = async_answer(world, SALES, "contacts", pipeline)

    assert answer == world.run(SALES, "contacts", pipeline)
    assert done.results["total"] == answer["total"] and done.results["recordsRead"] == 60


def test_a_replayed_page_and_a_stop_and_resume_leave_the_same_answer(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AggregateRecordsKind, "commit_rows", 12)  # five pages
    pipeline = ASYNC_PIPELINES[1]
    job = start_aggregate(world.core.app, DEV, "contacts", pipeline, None)
    real, pages = AggregateRecordsKind.before_commit, {"n": 0}

    def dying(self: AggregateRecordsKind, ctx: Any, job: Job, chunk: Any, outcomes: Any) -> None:
        pages["n"] += 1
        real(self, ctx, job, chunk, outcomes)
        if pages["n"] == 2:  # the second page's part is written, then the worker dies before its checkpoint
            raise ServiceFailure("ServiceUnavailable", "worker killed")
        if pages["n"] == 4:  # a stop, honoured once this page's checkpoint moves
            world.core.jobs.stop(job.id, TENANT)

    monkeypatch.setattr(AggregateRecordsKind, "before_commit", dying)
    queue = drive(world)
    with pytest.raises(ServiceFailure):
        queue.drain()
    queue.sqs.send_message(QueueUrl=queue.url, MessageBody=json.dumps({"job": job.id, "op": "chunk", "chunk": 0}))
    queue.drain()  # the page replayed, then pages up to the stop
    assert world.core.jobs.get(job.id, TENANT).state is JobState.STOPPED
    world.core.jobs.resume(job.id, TENANT)
    queue.drain()

    done, answer = finished(world, job.id)
    assert answer == world.run(DEV, "contacts", pipeline)
    assert done.results["recordsRead"] == 60 and pages["n"] == 6  # five pages, one of them twice


def test_the_job_runs_as_its_user_asking_its_gate_again_each_page(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The request refuses what the caller may not read, as a synchronous aggregate does
    with pytest.raises(Forbidden):
        start_aggregate(world.core.app, READER, "contacts", [{"project": "email"}], None)
    # A job of Sales whose user loses companies before its pages run (here: read as the Readers read them)
    job = start_aggregate(world.core.app, SALES, "companies", [{"count": "n"}], None)
    for_job = Gate.for_job
    monkeypatch.setattr(
        aggregate_job.Gate,
        "for_job",
        lambda repo, tenant, params, entities: for_job(repo, tenant, {"user": READER.email}, entities),
    )
    drive(world).drain()

    failed = world.core.jobs.get(job.id, TENANT)
    assert failed.state is JobState.FAILED
    assert "You have no permission to read records of companies: the aggregate stopped" in (failed.error or "")
