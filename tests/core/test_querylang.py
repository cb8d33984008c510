"""The runtime query language: parsing, checking against the demo schemas, evaluating, and the split.

The demo entities (`infra/demo/tenant/app.json`) are the schemas: `companies` (text, choices, numbers,
a boolean, a group, a multi-valued group, a date-time) and `contacts` (a relationship to companies).
`things` adds what the demo lacks: a multi-valued text, a date, money, multi-valued relationships and
a relationship inside a multi-valued group.

The last tests are the property the service relies on: for random records and random queries, the
store's conditions (`matches`) and the rest (`evaluate`) together select exactly the records the
whole query (`evaluate(where)`) does.
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from backroom.app.querylang import (
    RESERVED,
    AllOf,
    AnyOf,
    Bound,
    Filter,
    Query,
    bind,
    evaluate,
    parse,
)
from backroom.errors import Invalid
from backroom.records.query import Condition, Sort, matches, plan
from backroom.records.schema import Schema
from backroom.records.values import normalize, render_label
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

APP = json.loads((Path(__file__).parents[2] / "infra/demo/tenant/app.json").read_text())
SCHEMAS = {e["name"]: Schema.model_validate(e["schema"]) for e in APP["entities"]}
COMPANIES = SCHEMAS["companies"]
CONTACTS = SCHEMAS["contacts"]
THINGS = Schema.model_validate(
    {
        "name": "things",
        "fields": [
            {"name": "tags", "type": "text", "multi": True},
            {"name": "born", "type": "date"},
            {"name": "price", "type": "money"},
            {"name": "owners", "type": "relationship", "entity": "contacts", "multi": True},
            {
                "name": "lines",
                "type": "group",
                "multi": True,
                "fields": [
                    {"name": "product", "type": "relationship", "entity": "products"},
                    {"name": "qty", "type": "integer"},
                ],
            },
        ],
    }
)

TRUDOO = "5506fc44c2eee3b1a7026701"
JAZZY = "5506fc44c2eee3b1a7026702"
BLOGPAD = {
    "id": "5506fc44c2eee3b1a7026700",
    "label": "Blogpad",
    "name": "Blogpad",
    "type": "a",
    "state": "active",
    "numberOfEmployees": D("534"),
    "isCustomer": False,
    "contactInformation": {"phoneNumber": "555-1234", "email": "info@blogpad.com", "id": "g1", "label": "Contact"},
    "addresses": [
        {"state": "NV", "zipCode": "89145", "id": "a1", "label": "NV - 89145"},
        {"state": "CA", "zipCode": "90210", "id": "a2", "label": "CA - 90210"},
    ],
    "lastMeeting": D("1429623180000"),
    "rating": D("2.8"),
}
JOHN = {
    "id": "5506fc44c2eee3b1a7026710",
    "label": "Doe, John",
    "firstName": "John",
    "lastName": "Doe",
    "company": {"id": TRUDOO, "label": "Trudoo"},
}
THING = {
    "id": "5506fc44c2eee3b1a7026720",
    "label": "",
    "tags": ["red", "Big"],
    "born": "2020-02-29",
    "price": D("10.50"),
    "owners": [{"id": TRUDOO, "label": "Ann"}, {"id": JAZZY, "label": "Bob"}],
    "lines": [{"product": {"id": JAZZY, "label": "Widget"}, "qty": D("3"), "id": "l1", "label": "lines"}],
}


def where(params: dict[str, Any]) -> tuple[Any, ...]:
    return parse(params).where.items


def meets(schema: Schema, params: dict[str, Any], record: dict[str, Any]) -> bool:
    query = parse(params)
    bind(schema, query)  # every query evaluated here is also a valid one
    return evaluate(schema, query.where, record)


def refused(schema: Schema, params: dict[str, Any]) -> str:
    with pytest.raises(Invalid) as caught:
        bind(schema, parse(params))
    return caught.value.message


# Parsing: options ------------------------------------------------------------
def test_defaults() -> None:
    query = parse({})
    assert query == Query(where=AllOf(()))
    assert (query.size, query.offset, query.sort_field, query.descending) == (20, None, "id", True)
    assert (query.fields, query.format, query.fetch) == (None, "native", [])


def test_options() -> None:
    query = parse(
        {
            "_size": "1000",
            "_offset": "5506fc44c2eee3b1a7026700",
            "_sortField": "name",
            "_sortType": "ASC",
            "_fields": "name, id,contactInformation.email,name,version",
            "_format": "plaintext",
            "_relationshipsToFetch": "company",
            "_async": "true",
            "_lowPriority": "False",
            "_includeDeleted": "false",
        }
    )
    assert (query.size, query.offset, query.sort_field, query.descending) == (
        1000,
        "5506fc44c2eee3b1a7026700",
        "name",
        False,
    )
    assert query.fields == ["name", "contactInformation.email"]  # system fields are allowed and left out
    assert (query.format, query.fetch) == ("plainText", ["company"])
    assert parse({"_offset": "40"}).offset == 40
    assert parse({"_offset": "0"}).offset == 0
    assert parse({"_offset": ""}).offset is None
    assert parse({"_fields": "id"}).fields == []  # only the system fields
    assert parse({"_fields": ""}).fields is None
    assert parse({"_size": ["5", "7"]}).size == 7  # a repeated option: the last one
    assert parse({"_sortType": "Desc"}).descending is True
    assert "_query" in RESERVED and "_size" in RESERVED


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"_size": "0"}, "_size must be a whole number from 1 to 1000"),
        ({"_size": "1001"}, "_size must be a whole number from 1 to 1000"),
        ({"_size": "ten"}, "_size must be a whole number from 1 to 1000"),
        ({"_size": "²"}, "_size must be a whole number from 1 to 1000"),
        ({"_size": ""}, "_size must be a whole number from 1 to 1000"),
        ({"_offset": "-1"}, "_offset must be a number of records to skip (0 to 100000)"),
        ({"_offset": "100001"}, "_offset must be a number of records to skip (0 to 100000)"),
        ({"_offset": "5506FC44C2EEE3B1A7026700"}, "_offset must be a number of records to skip"),
        ({"_sortType": "up"}, "_sortType must be asc or desc"),
        ({"_sortField": ""}, "_sortField must name a field (or id)"),
        ({"_format": "xml"}, "_format must be native or plainText"),
        ({"_async": "yes"}, "_async must be true or false"),
        ({"_foo": "1"}, "Unknown parameter _foo: parameters starting with _ are _async, _fields"),
        ({"_Size": "1"}, "Unknown parameter _Size"),
        ({"name": 3}, "The parameter name must be text"),
    ],
)
def test_bad_options(params: dict[str, Any], message: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse(params)
    assert caught.value.message.startswith(message)
    assert caught.value.status == 400


# Parsing: values -------------------------------------------------------------
def test_plain_values_comma_or_and_quotes() -> None:
    assert where({"name": "Blogpad"}) == (Filter("name", "eq", ("Blogpad",)),)
    assert where({"name": "Blogpad,Jazzy"}) == (Filter("name", "eq", ("Blogpad", "Jazzy")),)
    assert where({"name": '"Doe, Inc",Jazzy'}) == (Filter("name", "eq", ("Doe, Inc", "Jazzy")),)
    assert where({"name": '"Say \\"hi\\"" , "a\\\\b"'}) == (Filter("name", "eq", ('Say "hi"', "a\\b")),)
    assert where({"name": 'Jazzy," Doe, Inc "'}) == (Filter("name", "eq", ("Jazzy", " Doe, Inc ")),)
    assert where({"name": '5" pipe'}) == (Filter("name", "eq", ('5" pipe',)),)  # a quote inside a plain value
    assert where({"name": " Blogpad"}) == (Filter("name", "eq", (" Blogpad",)),)  # kept as written
    assert where({"name": ""}) == (Filter("name", "empty", ()),)


def test_plain_values_with_parentheses() -> None:
    assert where({"name": "Acme (US)"}) == (Filter("name", "eq", ("Acme (US)",)),)
    assert where({"name": "(555) 123"}) == (Filter("name", "eq", ("(555) 123",)),)
    assert where({"name": "a(b)c"}) == (Filter("name", "eq", ("a(b)c",)),)
    assert where({"name": '"like(x)"'}) == (Filter("name", "eq", ("like(x)",)),)  # quoted: a plain value
    assert where({"name": '"foo(x)","Acme(US)"'}) == (Filter("name", "eq", ("foo(x)", "Acme(US)")),)


def test_operators() -> None:
    cases = {
        "notEquals(a)": Filter("name", "ne", ("a",)),
        'notEquals(a,"b,c")': Filter("name", "ne", ("a", "b,c")),
        "like(Blog)": Filter("name", "like", ("Blog",)),
        "like(a,b)": Filter("name", "like", ("a,b",)),  # the pattern as written, commas and all
        "like(/^a{1,3}$/)": Filter("name", "like", ("/^a{1,3}$/",)),
        "between(10,100)": Filter("name", "between", ("10", "100")),
        'between("a,b",c)': Filter("name", "between", ("a,b", "c")),
        "greater(5)": Filter("name", "gt", ("5",)),
        "greaterOrEquals(5)": Filter("name", "ge", ("5",)),
        "less(5)": Filter("name", "lt", ("5",)),
        "lessOrEquals(5)": Filter("name", "le", ("5",)),
        'greater("1,5")': Filter("name", "gt", ("1,5",)),
        "empty()": Filter("name", "empty", ()),
        "notEmpty()": Filter("name", "notEmpty", ()),
        "notEmpty( )": Filter("name", "notEmpty", ()),
    }
    for raw, expected in cases.items():
        assert where({"name": raw}) == (expected,), raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("foo(x)", "name: foo() is not an operator; the operators are notEquals(), like(), between()"),
        ("Like(x)", "name: Like() is not an operator"),
        ("between(1)", "name: between() takes two values (from,to)"),
        ("between(1,2,3)", "name: between() takes two values (from,to)"),
        ("greater(1,2)", "name: greater() takes one value"),
        ("greater()", "name: greater has an empty value; use empty() to find records without a value"),
        ("notEquals()", "name: notEquals has an empty value"),
        ("empty(x)", "name: empty() takes no value"),
        ("like()", "name: like() needs some text to look for"),
        ("like(/)", "name: like() needs some text to look for"),
        ("like(//)", "name: like(//) needs a regular expression between the slashes"),
        ("a,", "name: equals has an empty value; use empty() to find records without a value"),
        ('a,""', "name: equals has an empty value"),
        ('"abc', "name: the quote at character 1 of the value is never closed"),
        ('a,"b"c', "name: a comma must follow the quoted value (character 6 of the value)"),
        ("a,like(b)", "name: like(b) looks like an operator, which must be the whole value"),
    ],
)
def test_bad_values(raw: str, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse({"name": raw})
    assert caught.value.message.startswith(message), caught.value.message


def test_repeated_keys_are_anded() -> None:
    params = {"numberOfEmployees": ["greater(10)", "less(1000)"], "name": "Blogpad"}
    assert where(params) == (
        Filter("numberOfEmployees", "gt", ("10",)),
        Filter("numberOfEmployees", "lt", ("1000",)),
        Filter("name", "eq", ("Blogpad",)),
    )
    assert meets(COMPANIES, params, BLOGPAD)
    assert not meets(COMPANIES, {"numberOfEmployees": ["greater(10)", "less(500)"]}, BLOGPAD)


# Parsing: _query ---------------------------------------------------------------
def test_complex_query() -> None:
    text = "or(filter('type','a'),and(filter('type','b'),filter('isCustomer','true')))"
    assert where({"_query": text}) == (
        AnyOf(
            (
                Filter("type", "eq", ("a",)),
                AllOf((Filter("type", "eq", ("b",)), Filter("isCustomer", "eq", ("true",)))),
            )
        ),
    )
    spaced = ' or ( filter ( "type" , "a" ) ,\n and( filter("numberOfEmployees", "between(10,100)") ) ) '
    assert where({"_query": spaced}) == (
        AnyOf((Filter("type", "eq", ("a",)), Filter("numberOfEmployees", "between", ("10", "100")))),
    )
    escaped = r"""filter('name','O\'Brien, \"Ltd\"')"""
    assert where({"_query": escaped}) == (Filter("name", "eq", ("O'Brien", "Ltd")),)  # spaces around quotes go
    assert where({"_query": "filter('name','\"Doe, Inc\"')"}) == (Filter("name", "eq", ("Doe, Inc",)),)
    assert where({"_query": "filter('notes','')"}) == (Filter("notes", "empty", ()),)
    assert where({"_query": "  "}) == ()


def test_complex_query_joins_the_top_level_and() -> None:
    params = {"name": "Blogpad", "_query": "and(filter('type','a'),and(filter('state','active')))"}
    assert where(params) == (
        Filter("name", "eq", ("Blogpad",)),
        Filter("type", "eq", ("a",)),
        Filter("state", "eq", ("active",)),
    )
    bound = bind(COMPANIES, parse(params))
    assert [c.field for c in bound.conditions] == ["name", "type", "state"]
    assert bound.rest is None
    nested_or = "or(or(filter('type','a'),filter('type','b')),filter('type','c'))"
    assert where({"_query": nested_or}) == (AnyOf(tuple(Filter("type", "eq", (t,)) for t in "abc")),)
    assert len(where({"_query": ["filter('type','a')", "filter('state','active')"]})) == 2  # repeated: ANDed


def test_complex_query_evaluates() -> None:
    text = "or(filter('type','b'),and(filter('numberOfEmployees','greater(500)'),filter('isCustomer','false')))"
    assert meets(COMPANIES, {"_query": text}, BLOGPAD)
    assert not meets(COMPANIES, {"_query": text.replace("500", "600")}, BLOGPAD)
    assert meets(COMPANIES, {"_query": "or(filter('addresses.state','CA'),filter('type','b'))"}, BLOGPAD)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("filter('type','a'", 'expected ")" closing filter( at character 18, found the end'),
        ("filter('type' 'a')", 'expected "," between the path and the value at character 15, found "\'a\')"'),
        ("filter(type,'a')", "expected a quoted string at character 8, found \"type,'a')\""),
        ("xor(filter('type','a'))", 'expected and(, or( or filter( at character 1, found "xor(filter"'),
        ("and(filter('type','a') filter('type','b'))", 'expected "," or ")" in and( at character 24'),
        ("and()", "expected and(, or( or filter( at character 5"),
        ("and", 'expected "(" after and at character 4, found the end'),
        ("filter('type','a'))", 'expected the end of the query at character 19, found ")"'),
        ("filter('type,'a')", 'expected "," between the path and the value at character 15'),
        ("filter('type','a", "the string at character 15 is never closed"),
        ("or(filter('type','a'),)", "expected and(, or( or filter( at character 23"),
    ],
)
def test_malformed_complex_query(text: str, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse({"_query": text})
    assert caught.value.message == f"_query is malformed: {message}" or caught.value.message.startswith(
        f"_query is malformed: {message}"
    ), caught.value.message


def test_complex_query_bad_value_names_the_filter() -> None:
    with pytest.raises(Invalid) as caught:
        parse({"_query": "or(filter('type','a'), filter('name','foo(x)'))"})
    assert caught.value.message.startswith("_query, in the filter at character 24: name: foo() is not an operator")


def test_complex_query_limits() -> None:
    deep = "filter('type','a')"
    for _ in range(10):
        deep = f"and({deep},filter('type','a'))"
    assert parse({"_query": deep})  # 10 levels of and()/or()
    with pytest.raises(Invalid, match="_query nests and\\(\\)/or\\(\\) more than 10 deep"):
        parse({"_query": f"or({deep},filter('type','b'))"})
    many = ",".join(["filter('type','a')"] * 100)
    assert len(where({"_query": f"or({many})"})[0].items) == 100
    with pytest.raises(Invalid, match="_query holds more than 100 filters"):
        parse({"_query": f"or({many},filter('type','a'))"})


def test_finding_5_a_query_bounds_its_filters_values_and_text() -> None:
    # Filters in all: the parameters and _query's together (each is work on every record read)
    many = ",".join(["filter('type','a')"] * 100)
    assert parse({"_query": f"or({many})"})
    with pytest.raises(Invalid, match="A query holds at most 100 filters"):
        parse({"_query": f"or({many})", "state": "active"})
    with pytest.raises(Invalid, match="A query holds at most 100 filters"):
        parse({"name": [f"n{i}" for i in range(101)]})  # a repeated key is a filter per value
    # Values in all (each may be a key range, or a record to read): 1,000, ids included
    ids = [f"{i:024x}" for i in range(1000)]
    assert bind(COMPANIES, parse({"id": ",".join(ids)})).ids == tuple(ids)
    with pytest.raises(Invalid, match="A query holds at most 1,000 values in all its filters \\(this one 1,001\\)"):
        parse({"id": ",".join([*ids, "f" * 24])})
    with pytest.raises(Invalid, match="at most 1,000 values"):
        parse({"name": ",".join(f"n{i}" for i in range(600)), "type": "notEquals(" + ",".join("x" * 401) + ")"})
    # A parameter's text, before any loop over it
    assert parse({"notes": "like(" + "x" * 49_994 + ")"})
    with pytest.raises(Invalid, match="The parameter notes is longer than 50,000 characters"):
        parse({"notes": "like(" + "x" * 49_995 + ")"})
    with pytest.raises(Invalid, match="The parameter _query is longer than 50,000 characters"):
        parse({"_query": " " * 50_001})


def test_a_long_in_list_on_a_sorted_field_is_checked_on_reads_not_a_range_each() -> None:
    # 100 names are 100 key ranges of the name index; past that, one range per value would be a Query
    # per value and shard, so the planner leaves the list to be checked on the records read.
    schema = SCHEMAS["contacts"]
    few = bind(schema, parse({"lastName": ",".join(f"n{i}" for i in range(100))}))
    chosen = plan(schema, few.conditions)
    assert chosen.index is not None and len(chosen.ranges) == 100 and not chosen.residual
    more = bind(schema, parse({"lastName": ",".join(f"n{i}" for i in range(101))}))
    chosen = plan(schema, more.conditions)
    assert chosen.index is None and chosen.residual == more.conditions


# like ------------------------------------------------------------------------
def test_like_forms_ignore_case() -> None:
    def like(pattern: str, path: str = "name") -> bool:
        return meets(COMPANIES, {path: f"like({pattern})"}, BLOGPAD)

    assert like("LOGP") and like("/bLoG") and like("PAD/") and like("blogpad")
    assert not like("/pad") and not like("blog/") and not like("xyz")
    assert like("/^Blog.*d$/") and not like("/^blog/")  # a regular expression keeps its case as written
    assert like("/(?i)^blog/")
    assert like("@blogpad.", "contactInformation.email")
    assert like("/act", "state")  # choices are text
    assert like("v/", "addresses.state")  # any element of a multi-valued group
    assert meets(COMPANIES, {"label": "like(blog)"}, BLOGPAD)


def test_like_on_relationships_reads_the_label() -> None:
    assert meets(CONTACTS, {"company": "like(trud)"}, JOHN)
    assert meets(CONTACTS, {"company.label": "like(/tru)"}, JOHN)
    assert not meets(CONTACTS, {"company": "like(5506)"}, JOHN)  # never the id
    assert meets(THINGS, {"owners": "like(bo)"}, THING)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("numberOfEmployees", "like() looks for text, and numberOfEmployees is an integer field"),
        ("isCustomer", "like() looks for text, and isCustomer is a boolean field"),
        ("lastMeeting", "like() looks for text, and lastMeeting is a datetime field"),
        ("rating", "like() looks for text, and rating is a decimal field"),
        ("id", "id takes record ids, one or more separated by commas (id=a,b), and no operator"),
        ("addresses", "addresses is a group of fields: filter by one of them (addresses.addressLine)"),
    ],
)
def test_like_refused(path: str, message: str) -> None:
    assert refused(COMPANIES, {path: "like(5)"}).startswith(message)


def test_like_on_a_related_id_is_refused() -> None:
    assert refused(CONTACTS, {"company.id": "like(55)"}) == (
        "like() looks for text; company.id is a record id (use company.label for the label)"
    )


@pytest.mark.parametrize(
    ("regex", "text", "found"),
    [
        ("(x+x+)+y", "x" * 5000, False),  # exponential on a backtracking engine
        ("(x+x+)+$", "x" * 5000, True),
        ("(a|aa)*c", "a" * 5000, False),
        ("(a*)*b", "a" * 5000, False),
        (".*.*.*.*.*y", "x" * 5000, False),  # the finding's pattern: 35 s at 160 characters on Python's re
        ("(.*a){20}y", "a" * 5000, False),
        ("(.*a){20}y", "a" * 5000 + "y", True),
    ],
)
def test_finding_4_regexes_run_on_re2_in_linear_time(regex: str, text: str, found: bool) -> None:
    # Patterns that make a backtracking engine try exponentially or polynomially many ways are taken
    # (the old guard refused the nested ones and let the polynomial ones run for minutes) and answered.
    # First a pattern only a linear-time engine may take: on a backtracking one this test stops here,
    # before a polynomial pattern can run for hours.
    assert parse({"name": "like(/(x+x+)+y/)"})
    assert meets(COMPANIES, {"name": f"like(/{regex}/)"}, {**BLOGPAD, "name": text}) is found


@pytest.mark.parametrize(
    ("regex", "feature"),
    [
        ("(a)\\1", "a backreference"),
        ("(?P<x>a)(?P=x)", "a backreference"),
        ("a(?=b)", "a lookahead"),
        ("(?!x)", "a lookahead"),
        ("(?<!a)b", "a lookbehind"),
        ("(?<=a)b", "a lookbehind"),
        ("(?>ab)c", "an atomic group"),
        ("a++b", "a possessive quantifier"),
        ("a{1,3}+b", "a possessive quantifier"),
        ("(?(1)a|b)", "a conditional group"),
    ],
)
def test_what_re2_lacks_is_a_400_that_says_so(regex: str, feature: str) -> None:
    # Python's re takes every one of these; RE2 has none of them, and no other engine runs them
    with pytest.raises(Invalid) as caught:
        parse({"name": f"like(/{regex}/)"})
    assert caught.value.message == (
        f"name: the regular expression uses {feature}, which RE2 does not support (regular expressions run on "
        "RE2, whose time grows only with the text); rewrite the pattern without it"
    )


def test_regex_bounds() -> None:
    with pytest.raises(Invalid, match="name: the regular expression is longer than 200 characters"):
        parse({"name": "like(/" + "a" * 201 + "/)"})
    assert parse({"name": "like(/" + "a" * 200 + "/)"})
    with pytest.raises(Invalid, match="name: the regular expression does not compile: missing \\): \\(ab"):
        parse({"name": "like(/(ab/)"})
    with pytest.raises(Invalid, match="name: the regular expression is too large once compiled"):
        parse({"name": "like(/\\pL{100}/)"})  # about 120,000 instructions: past RE2's REGEX_MEMORY
    for fine in ("^B.*d$", "[0-9]{5}", "(ab)?c", "(a|b)*", "x{2,3}y+", "(?:a+)?", "(?P<n>a)b", "\\pL+", "(a+)+$"):
        assert parse({"name": f"like(/{fine}/)"}), fine


def test_regex_syntax_is_re2s() -> None:
    # Classes, anchors, (?i) and Unicode classes as RE2 reads them; \d and \w are ASCII there
    assert meets(COMPANIES, {"name": "like(/^[A-Z][a-z]+pad$/)"}, BLOGPAD)
    assert meets(COMPANIES, {"name": "like(/(?i)^BLOG/)"}, BLOGPAD)
    assert meets(COMPANIES, {"name": "like(/^\\p{Lu}\\pL+$/)"}, {**BLOGPAD, "name": "Ébène"})
    assert not meets(COMPANIES, {"name": "like(/^\\w+$/)"}, {**BLOGPAD, "name": "Ébène"})
    assert meets(COMPANIES, {"name": "like(/\\d{3}/)"}, {**BLOGPAD, "name": "Unit 404"})


# Evaluating ------------------------------------------------------------------
def test_equality_and_comma_or() -> None:
    assert meets(COMPANIES, {"name": "Jazzy,Blogpad"}, BLOGPAD)
    assert not meets(COMPANIES, {"name": "blogpad"}, BLOGPAD)  # equality keeps case
    assert meets(COMPANIES, {"numberOfEmployees": "534.0"}, BLOGPAD)  # numbers compare as numbers
    assert meets(COMPANIES, {"rating": "2.80"}, BLOGPAD)
    assert meets(COMPANIES, {"isCustomer": "false"}, BLOGPAD)
    assert not meets(COMPANIES, {"isCustomer": "true"}, BLOGPAD)
    assert meets(COMPANIES, {"lastMeeting": "2015-04-21T13:33:00Z"}, BLOGPAD)  # ISO 8601 for a date-time
    assert meets(COMPANIES, {"contactInformation.phoneNumber": "555-1234"}, BLOGPAD)
    assert meets(COMPANIES, {"state": "inactive,active"}, BLOGPAD)


def test_not_equals() -> None:
    assert meets(COMPANIES, {"name": "notEquals(Jazzy)"}, BLOGPAD)
    assert not meets(COMPANIES, {"name": "notEquals(Jazzy,Blogpad)"}, BLOGPAD)  # equal to none of them
    assert meets(COMPANIES, {"color": "notEquals(red)"}, BLOGPAD)  # no value: equal to nothing
    assert meets(COMPANIES, {"numberOfEmployees": "notEquals(535)"}, BLOGPAD)
    assert not meets(COMPANIES, {"numberOfEmployees": "notEquals(534.00)"}, BLOGPAD)


def test_comparisons() -> None:
    checks = {
        "between(534,600)": True,
        "between(100,533)": False,
        "between(600,100)": False,
        "greater(533)": True,
        "greater(534)": False,
        "greaterOrEquals(534)": True,
        "less(534)": False,
        "less(1000)": True,  # as numbers: "1000" sorts before "534" as text
        "lessOrEquals(534)": True,
    }
    for raw, expected in checks.items():
        assert meets(COMPANIES, {"numberOfEmployees": raw}, BLOGPAD) is expected, raw
    assert meets(COMPANIES, {"rating": "between(-1,2.8)"}, BLOGPAD)
    assert meets(COMPANIES, {"lastMeeting": "greater(2015-04-21T00:00:00Z)"}, BLOGPAD)
    assert meets(COMPANIES, {"name": "between(B,C)"}, BLOGPAD)
    assert not meets(COMPANIES, {"color": "greater(a)"}, BLOGPAD)  # no value meets a range
    assert meets(THINGS, {"born": "between(2020-01-01,2020-12-31)"}, THING)
    assert meets(THINGS, {"price": "greater(10.49)"}, THING)
    assert meets(THINGS, {"tags": "less(Big)"}, {"tags": ["Apple", "zebra"]})  # any value of a list


def test_empty_and_not_empty() -> None:
    assert meets(COMPANIES, {"color": "empty()"}, BLOGPAD)
    assert meets(COMPANIES, {"color": ""}, BLOGPAD)
    assert meets(COMPANIES, {"color": "empty()"}, {**BLOGPAD, "color": ""})
    assert not meets(COMPANIES, {"color": "notEmpty()"}, BLOGPAD)
    assert meets(COMPANIES, {"name": "notEmpty()"}, BLOGPAD)
    assert meets(COMPANIES, {"isCustomer": "notEmpty()"}, BLOGPAD)  # false is a value
    assert meets(COMPANIES, {"contactInformation": "notEmpty()"}, BLOGPAD)
    assert meets(COMPANIES, {"addresses": "notEmpty()"}, BLOGPAD)
    assert meets(COMPANIES, {"addresses": "empty()"}, {**BLOGPAD, "addresses": []})
    assert meets(COMPANIES, {"addresses.city": "empty()"}, BLOGPAD)  # no element holds one
    assert not meets(COMPANIES, {"addresses.state": "empty()"}, BLOGPAD)
    assert meets(COMPANIES, {"contactInformation.email": "empty()"}, {"id": "x", "label": ""})
    assert meets(THINGS, {"tags": "empty()"}, {"tags": []})


def test_multi_valued_groups_and_fields() -> None:
    assert meets(COMPANIES, {"addresses.state": "CA"}, BLOGPAD)  # any element
    assert meets(COMPANIES, {"addresses.state": "TX,NV"}, BLOGPAD)
    assert not meets(COMPANIES, {"addresses.state": "TX"}, BLOGPAD)
    assert not meets(COMPANIES, {"addresses.state": "notEquals(CA)"}, BLOGPAD)  # an element equals it
    assert meets(COMPANIES, {"addresses.state": "notEquals(TX)"}, BLOGPAD)
    assert meets(COMPANIES, {"addresses.zipCode": "between(90000,99999)"}, BLOGPAD)
    assert meets(THINGS, {"tags": "Big"}, THING)
    assert not meets(THINGS, {"tags": "notEquals(red)"}, THING)
    assert meets(THINGS, {"lines.qty": "greater(2)"}, THING)
    assert meets(THINGS, {"lines.product": "Widget"}, THING)
    assert meets(THINGS, {"lines.product.id": JAZZY}, THING)


def test_relationships() -> None:
    assert meets(CONTACTS, {"company": TRUDOO}, JOHN)  # a record id: the related id
    assert meets(CONTACTS, {"company": "Trudoo"}, JOHN)  # other text: the related label
    assert not meets(CONTACTS, {"company": "trudoo"}, JOHN)
    assert meets(CONTACTS, {"company": f"{JAZZY},Trudoo"}, JOHN)
    assert not meets(CONTACTS, {"company": JAZZY}, JOHN)
    assert meets(CONTACTS, {"company.id": TRUDOO}, JOHN)
    assert not meets(CONTACTS, {"company.id": "Trudoo"}, JOHN)
    assert meets(CONTACTS, {"company.label": "Trudoo"}, JOHN)
    assert not meets(CONTACTS, {"company.label": TRUDOO}, JOHN)
    assert meets(CONTACTS, {"company": f"notEquals({JAZZY})"}, JOHN)
    assert not meets(CONTACTS, {"company": "notEquals(Trudoo)"}, JOHN)
    assert meets(CONTACTS, {"company": "notEmpty()"}, JOHN)
    assert meets(CONTACTS, {"company": "empty()"}, {"id": "x", "label": ""})
    assert meets(CONTACTS, {"company.label": "empty()"}, {"company": {"id": TRUDOO, "label": ""}})
    assert meets(THINGS, {"owners": JAZZY}, THING)  # any of a multi-valued relationship
    assert meets(THINGS, {"owners": "Ann"}, THING)
    assert not meets(THINGS, {"owners": "notEquals(Ann)"}, THING)


def test_system_paths() -> None:
    assert meets(COMPANIES, {"id": f"{JAZZY},{BLOGPAD['id']}"}, BLOGPAD)
    assert not meets(COMPANIES, {"id": JAZZY}, BLOGPAD)
    assert meets(CONTACTS, {"label": '"Doe, John"'}, JOHN)
    assert meets(CONTACTS, {"label": "notEquals(Doe)"}, JOHN)
    assert meets(CONTACTS, {"label": "like(/doe,)"}, JOHN)
    assert meets(COMPANIES, {"_query": f"or(filter('id','{JAZZY}'),filter('label','Blogpad'))"}, BLOGPAD)


# Errors against the schema -----------------------------------------------------
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"nme": "x"}, '"nme" is not a field of companies'),
        ({"contactInformation.fax": "x"}, '"contactInformation.fax" is not a field of companies'),
        ({"name.first": "x"}, '"name.first" is not a field of companies'),
        ({"addresses.state.x": "x"}, '"addresses.state.x" is not a field of companies'),
        ({"": "x"}, '"" is not a field of companies'),
        ({"_query": "filter('version','1')"}, '"version" is not a field of companies'),
        ({"numberOfEmployees": "abc"}, 'Invalid value "abc" for numberOfEmployees: it is not a number: abc'),
        ({"numberOfEmployees": "1.5"}, 'Invalid value "1.5" for numberOfEmployees: it is not an integer'),
        ({"numberOfEmployees": "between(1,x)"}, 'Invalid value "x" for numberOfEmployees: it is not a number: x'),
        ({"numberOfEmployees": " "}, "numberOfEmployees: a blank value; use empty()"),
        ({"lastMeeting": "greater(yesterday)"}, 'Invalid value "yesterday" for lastMeeting: it is not a date-time'),
        ({"isCustomer": "maybe"}, 'Invalid value "maybe" for isCustomer: it is not true or false'),
        ({"state": "closed"}, 'Invalid value "closed" for state: it must be one of active, inactive, pending'),
        ({"contactInformation.email": "nobody"}, 'Invalid value "nobody" for contactInformation.email: it is not an'),
        ({"color": "x" * 21}, 'Invalid value "xxxxxxxxxxxxxxxxxxxxx" for color: it is longer than 20 characters'),
        ({"isCustomer": "greater(true)"}, "isCustomer is a boolean field: it has no order for greater()"),
        ({"contactInformation": "x"}, "contactInformation is a group of fields: filter by one of them"),
        ({"addresses": "between(a,b)"}, "addresses is a group of fields"),
        ({"id": "notEquals(5506fc44c2eee3b1a7026700)"}, "id takes record ids"),
        ({"id": "empty()"}, "id takes record ids"),
        ({"id": "abc"}, 'id: "abc" is not a record id (24 hexadecimal digits)'),
        ({"label": "greater(a)"}, "label takes a value (label=a,b), notEquals() or like(), not greater()"),
        ({"label": "empty()"}, "label takes a value (label=a,b), notEquals() or like(), not empty()"),
        ({"_sortField": "addresses"}, '_sortField: "addresses" is not a field of companies holding one value'),
        ({"_sortField": "addresses.state"}, '_sortField: "addresses.state" is not a field of companies'),
        ({"_sortField": "contactInformation"}, '_sortField: "contactInformation" is not a field of companies'),
        ({"_sortField": "label"}, '_sortField: "label" is not a field of companies'),
        ({"_fields": "name,nope"}, '"nope" is not a field of companies'),
        ({"_fields": "contactInformation.fax"}, '"contactInformation.fax" is not a field of companies'),
        ({"_relationshipsToFetch": "name"}, '_relationshipsToFetch: "name" is not a relationship field of companies'),
    ],
)
def test_refused_against_the_schema(params: dict[str, Any], message: str) -> None:
    got = refused(COMPANIES, params)
    assert got.startswith(message), got


def test_relationship_refusals() -> None:
    assert (
        refused(CONTACTS, {"company": "greater(a)"}) == "company is a relationship field: it has no order for greater()"
    )
    assert refused(CONTACTS, {"company.label": "between(a,b)"}).startswith("company.label is a relationship field")
    assert refused(CONTACTS, {"company.name": "x"}) == '"company.name" is not a field of contacts'
    assert refused(CONTACTS, {"company.id.x": "x"}) == '"company.id.x" is not a field of contacts'
    assert refused(CONTACTS, {"_relationshipsToFetch": "firstName"}).startswith("_relationshipsToFetch")
    assert bind(CONTACTS, parse({"_relationshipsToFetch": "company"})).conditions == []


def test_evaluate_checks_hand_made_filters() -> None:
    with pytest.raises(Invalid, match="name: between takes two values, not 1"):
        evaluate(COMPANIES, Filter("name", "between", ("a",)), BLOGPAD)
    with pytest.raises(Invalid, match="name: unknown operator regex"):
        evaluate(COMPANIES, Filter("name", "regex", ("a",)), BLOGPAD)
    with pytest.raises(Invalid, match="regular expression uses a backreference"):
        evaluate(COMPANIES, Filter("name", "like", ("/(a)\\1/",)), BLOGPAD)
    assert evaluate(COMPANIES, Filter("name", "eq", ("Jazzy", "Blogpad")), BLOGPAD)


# Binding -------------------------------------------------------------------------
def test_bind_splits_store_conditions_from_the_rest() -> None:
    params = {
        "name": "Blogpad,Jazzy",
        "numberOfEmployees": "between(10,1000)",
        "rating": "greater(2)",
        "color": "empty()",
        "isCustomer": "true",
        "contactInformation.email": "info@blogpad.com",
        "lastMeeting": "notEmpty()",
        "state": "notEquals(inactive)",
        "type": "like(a)",
        "addresses.state": "NV",
        "contactInformation": "notEmpty()",
        "label": "Blogpad",
        "_query": "or(filter('type','a'),filter('type','b'))",
        "_sortField": "numberOfEmployees",
        "_sortType": "asc",
    }
    bound = bind(COMPANIES, parse(params))
    assert bound.conditions == [
        Condition("name", "eq", ("Blogpad", "Jazzy")),
        Condition("numberOfEmployees", "between", (D(10), D(1000))),
        Condition("rating", "gt", (D(2),)),
        Condition("color", "empty", ()),
        Condition("isCustomer", "eq", (True,)),
        Condition("contactInformation.email", "eq", ("info@blogpad.com",)),
        Condition("lastMeeting", "notEmpty", ()),
    ]
    assert bound.rest == AllOf(
        (
            Filter("state", "ne", ("inactive",)),
            Filter("type", "like", ("a",)),
            Filter("addresses.state", "eq", ("NV",)),
            Filter("contactInformation", "notEmpty", ()),
            Filter("label", "eq", ("Blogpad",)),
            AnyOf((Filter("type", "eq", ("a",)), Filter("type", "eq", ("b",)))),
        )
    )
    assert bound.ids is None
    assert bound.sort == Sort("numberOfEmployees", False)
    assert bound.paths == {
        "name",
        "numberOfEmployees",
        "rating",
        "color",
        "isCustomer",
        "contactInformation",
        "lastMeeting",
        "state",
        "type",
        "addresses",
    }


def test_bind_relationships_by_id_only() -> None:
    bound = bind(CONTACTS, parse({"company": f"{TRUDOO},{JAZZY}", "lastName": "Doe"}))
    assert bound.conditions == [Condition("company", "eq", (TRUDOO, JAZZY)), Condition("lastName", "eq", ("Doe",))]
    assert bound.rest is None
    assert bind(CONTACTS, parse({"company.id": "other-id"})).conditions == [Condition("company", "eq", ("other-id",))]
    for by_label in ({"company": "Trudoo"}, {"company": f"{TRUDOO},Trudoo"}, {"company.label": "Trudoo"}):
        bound = bind(CONTACTS, parse(by_label))
        assert bound.conditions == [] and isinstance(bound.rest, Filter), by_label
    for other in ("empty()", "notEmpty()", f"notEquals({TRUDOO})", "like(tru)"):
        assert bind(CONTACTS, parse({"company": other})).conditions == [], other
    bound = bind(THINGS, parse({"owners": TRUDOO, "tags": "red", "born": "2020-02-29", "price": "10.5"}))
    assert bound.conditions == [Condition("born", "eq", ("2020-02-29",)), Condition("price", "eq", (D("10.50"),))]


def test_bind_ids() -> None:
    first, second = BLOGPAD["id"], JAZZY
    bound = bind(COMPANIES, parse({"id": f"{first},{second},{first}", "name": "Blogpad"}))
    assert bound.ids == (first, second)
    assert bound.conditions == [Condition("name", "eq", ("Blogpad",))]
    assert bound.rest is None and bound.paths == {"name"}
    assert bind(COMPANIES, parse({"id": [f"{first},{second}", second]})).ids == (second,)  # repeated: AND
    nested = bind(COMPANIES, parse({"_query": f"or(filter('id','{first}'),filter('type','a'))"}))
    assert nested.ids is None and isinstance(nested.rest, AnyOf)


def test_bind_sort_and_paths() -> None:
    assert bind(COMPANIES, parse({})).sort == Sort(None, True)
    assert bind(COMPANIES, parse({"_sortType": "asc"})).sort == Sort(None, False)
    bound = bind(COMPANIES, parse({"_sortField": "contactInformation.email"}))
    assert bound.sort == Sort("contactInformation.email", True)
    assert bound.paths == {"contactInformation"}
    assert bind(CONTACTS, parse({"_sortField": "company"})).sort == Sort("company", True)
    assert bind(COMPANIES, parse({"label": "x", "id": JAZZY})).paths == set()  # system paths need no field


def test_bind_accepts_fields_and_paths() -> None:
    bound = bind(COMPANIES, parse({"_fields": "name,contactInformation.email,addresses.state,id,label"}))
    assert isinstance(bound, Bound)
    assert bind(CONTACTS, parse({"_fields": "company,company.label"})).rest is None


# The split: store conditions and the rest select what the whole query does --------
HEX = [f"5506fc44c2eee3b1a70267{i:02x}" for i in range(6)]
TEXTS = ["Blogpad", "blogpad", "Jazzy", "Doe, Inc", 'Say "hi"', "Acme (US)", "a\\b", "Zed"]
POOLS: dict[str, dict[str, list[str]]] = {
    "companies": {
        "name": TEXTS,
        "color": ["red", "Red", "blue"],
        "state": ["active", "inactive", "pending"],
        "type": ["a", "b", "c"],
        "numberOfEmployees": ["-3", "0", "2", "10", "534", "1000"],
        "isCustomer": ["true", "false"],
        "contactInformation.phoneNumber": ["555", "555-1234", "1"],
        "contactInformation.email": ["a@b.com", "info@blogpad.com"],
        "addresses.state": ["NV", "CA", "ca"],
        "addresses.zipCode": ["89145", "90210", "1"],
        "homepage": ["https://a.com", "http://b.org/x"],
        "rating": ["2.8", "2.80", "3", "-1.5", "0", "10"],
        "lastMeeting": ["1429623180000", "1429623180001", "2015-04-21T13:33:00Z", "0"],
    },
    "contacts": {
        "firstName": ["John", "Ann", "ann"],
        "lastName": TEXTS,
        "email": ["a@b.com", "j@doe.org"],
        "numberOfSkills": ["1", "2", "12"],
        "company.label": ["Trudoo", "Blogpad", "Doe, Inc"],
        "company.id": HEX[:3],
    },
}
GROUPS = {"companies": ["contactInformation", "addresses"], "contacts": []}
LIKES = ["blog", "/blog", "pad/", "A", "/j", "o, i", "/^B.*d$/", "/[0-9]{3}/", "/a/", "5/", "/(?i)ca/", "@", "/."]


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def one_value(draw: st.DrawFn, pool: list[str]) -> str:
    value = draw(st.sampled_from(pool))
    plain = not any(c in value for c in ',"\\') and not value.startswith(" ") and value != ""
    return value if plain and draw(st.booleans()) else quote(value)


@st.composite
def filter_param(draw: st.DrawFn, entity: str) -> tuple[str, str]:
    """A path and a value text valid for it: every operator the path takes."""
    schema = SCHEMAS[entity]
    pools = POOLS[entity]
    choices = [*pools, *GROUPS[entity], "id", "label", *(["company"] if entity == "contacts" else [])]
    path = draw(st.sampled_from(choices))
    if path in GROUPS[entity]:
        return path, draw(st.sampled_from(["empty()", "notEmpty()"]))
    if path == "id":
        return path, ",".join(draw(st.lists(st.sampled_from(HEX), min_size=1, max_size=3)))
    if path in ("label", "company", "company.label"):
        labels = TEXTS if path == "label" else pools["company.label"]
        pool = [*labels, *HEX[:3]] if path == "company" else labels
        ops = ["eq", "ne", "like"] + (["empty", "notEmpty"] if path != "label" else [])
    elif path == "company.id":
        pool, ops = pools[path], ["eq", "ne", "empty", "notEmpty"]
    else:
        pool = pools[path]
        spec = schema.field(path)
        kind = spec.type if spec else "text"  # addresses.* walk a multi group: all text
        ops = ["eq", "ne", "empty", "notEmpty"]
        if kind != "boolean":
            ops += ["between", "gt", "ge", "lt", "le"]
        if kind in ("text", "email", "url", "choice"):
            ops += ["like"]
    op = draw(st.sampled_from(ops))
    if op == "eq":
        values = draw(st.lists(one_value(pool), min_size=1, max_size=3))
        return path, ",".join(values)
    if op == "ne":
        return path, "notEquals(" + ",".join(draw(st.lists(one_value(pool), min_size=1, max_size=2))) + ")"
    if op in ("empty", "notEmpty"):
        return path, draw(st.sampled_from([f"{op}()", ""] if op == "empty" else ["notEmpty()"]))
    if op == "like":
        return path, f"like({draw(st.sampled_from(LIKES))})"
    name = {"gt": "greater", "ge": "greaterOrEquals", "lt": "less", "le": "lessOrEquals", "between": "between"}[op]
    count = 2 if op == "between" else 1
    return path, f"{name}({','.join(draw(one_value(pool)) for _ in range(count))})"


def complex_text(entity: str) -> st.SearchStrategy[str]:
    def single(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    leaf = filter_param(entity).map(lambda pv: f"filter({single(pv[0])}, {single(pv[1])})")
    return st.recursive(
        leaf,
        lambda inner: st.tuples(st.sampled_from(["and", "or"]), st.lists(inner, min_size=1, max_size=3)).map(
            lambda t: f"{t[0]}({','.join(t[1])})"
        ),
        max_leaves=6,
    )


@st.composite
def params(draw: st.DrawFn, entity: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in draw(st.lists(filter_param(entity), max_size=4)):
        out.setdefault(path, []).append(value)
    if draw(st.booleans()):
        out["_query"] = draw(complex_text(entity))
    return out


def maybe(pool: list[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), st.sampled_from(pool))


@st.composite
def company(draw: st.DrawFn) -> dict[str, Any]:
    pools = POOLS["companies"]
    raw: dict[str, Any] = {name: draw(maybe(pools[name])) for name in pools if "." not in name}
    if draw(st.booleans()):
        raw["contactInformation"] = {
            "phoneNumber": draw(maybe(pools["contactInformation.phoneNumber"])),
            "email": draw(maybe(pools["contactInformation.email"])),
        }
    raw["addresses"] = [
        {"state": draw(maybe(pools["addresses.state"])), "zipCode": draw(maybe(pools["addresses.zipCode"]))}
        for _ in range(draw(st.integers(0, 3)))
    ]
    data = normalize(COMPANIES, {k: v for k, v in raw.items() if v is not None}).data
    return {**data, "label": render_label(COMPANIES.label, data)}


@st.composite
def contact(draw: st.DrawFn) -> dict[str, Any]:
    pools = POOLS["contacts"]
    raw = {name: draw(maybe(pools[name])) for name in ("firstName", "lastName", "email", "numberOfSkills")}
    data = normalize(CONTACTS, {k: v for k, v in raw.items() if v is not None}).data
    if draw(st.booleans()):
        data["company"] = {"id": draw(st.sampled_from(HEX[:3])), "label": draw(st.sampled_from(pools["company.label"]))}
    return {**data, "label": render_label(CONTACTS.label, data)}


def check_split(schema: Schema, query: Query, records: list[dict[str, Any]]) -> Bound:
    bound = bind(schema, query)
    for condition in bound.conditions:  # only what the store's key ranges serve exactly
        spec = schema.field(condition.field)
        assert spec is not None and not spec.multi and spec.type != "group"
        assert condition.op not in ("like",)
    for i, record in enumerate(records):
        record = {**record, "id": HEX[i % len(HEX)]}
        data = {k: v for k, v in record.items() if k not in ("id", "label")}
        split = (
            (bound.ids is None or record["id"] in bound.ids)
            and matches(schema, data, bound.conditions)
            and (bound.rest is None or evaluate(schema, bound.rest, record))
        )
        assert split == evaluate(schema, query.where, record), (record, bound)
    return bound


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=params("companies"), records=st.lists(company(), max_size=8))
def test_split_is_exact_for_companies(params: dict[str, Any], records: list[dict[str, Any]]) -> None:
    check_split(COMPANIES, parse(params), records)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=params("contacts"), records=st.lists(contact(), max_size=8))
def test_split_is_exact_for_contacts(params: dict[str, Any], records: list[dict[str, Any]]) -> None:
    check_split(CONTACTS, parse(params), records)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entity=st.sampled_from(["companies", "contacts"]),
    data=st.data(),
)
def test_split_is_exact_for_one_filter(entity: str, data: st.DataObject) -> None:
    """One filter alone, over many records: no other filter hides a difference between the two sides."""
    path, value = data.draw(filter_param(entity))
    records = data.draw(st.lists(company() if entity == "companies" else contact(), min_size=4, max_size=12))
    check_split(SCHEMAS[entity], parse({path: value}), records)


def test_split_on_a_known_record() -> None:
    query = parse({"numberOfEmployees": "between(500,600)", "name": "like(blog)", "addresses.state": "CA"})
    bound = check_split(COMPANIES, query, [BLOGPAD, {**BLOGPAD, "numberOfEmployees": D(7)}])
    assert len(bound.conditions) == 1 and isinstance(bound.rest, AllOf)
