"""The runtime API's query language (Slingr's), as `GET /runtime/api/data/{entity}?...` takes it.

Three steps, all pure:

- `parse` reads the query-string parameters into a `Query`: one `Filter` per filter parameter (a
  repeated key is one filter per value, all ANDed), the `_query` expression (`and(...)`, `or(...)` of
  `filter('path','value')`), paging, sorting and projection. It checks the syntax only.
- `bind` checks the query against a table's schema (paths, operators, values typed as the fields
  store them) and splits it: the top-level filters a store key range can serve become
  `records.query.Condition`s, everything else stays an expression (`Bound.rest`) for `evaluate`.
- `evaluate` decides whether one record meets an expression.

A filter's value is a comma-OR list (`name=Blogpad,Jazzy`; `"Doe, Inc"` quotes a comma, `\\"` a
quote) or one operator as the whole value: `notEquals(a,b)`, `like(v)`, `between(a,b)`,
`greater(v)`, `greaterOrEquals(v)`, `less(v)`, `lessOrEquals(v)`, `empty()`, `notEmpty()`; an empty
value means `empty()`. `like` ignores case: `like(v)` contains, `like(/v)` starts with, `like(v/)` ends
with, `like(/re/)` a regular expression search, run on RE2: its time grows with the text, never
exponentially nor polynomially as a backtracking engine's can, so RE2's syntax is the one taken (no
backreference, no lookaround: a 400 that says so).

Paths run through groups (`contactInformation.email`) and multi-valued groups (`addresses.state`:
ANY element meets it, and `notEquals` holds when NO element equals). A relationship compares its id
when the value is a record id (24 lowercase hex digits) and its label otherwise; `company.id` and
`company.label` pick one. `id` and `label` are the record's own. Every mistake is an `Invalid` (400)
that says what is wrong; caller-given names are only ever compared with the schema's names.

Every loop over what a caller wrote is bounded before it runs: a parameter's text (`MAX_TEXT`), the
filters (`MAX_FILTERS`) and values (`MAX_VALUES`) of a query, `_query`'s nesting (`MAX_DEPTH`, so the
recursive reader never nears Python's recursion limit), a regular expression's length and its
compiled size (RE2's `max_mem`).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import re2

from backroom.errors import Invalid
from backroom.records.query import Condition, Op, Sort
from backroom.records.schema import FOLDABLE, Schema, TableField
from backroom.records.values import BadValue, canonical, is_empty, order_key, scalar

RESERVED: frozenset[str] = frozenset(
    {
        "_size",
        "_offset",
        "_sortField",
        "_sortType",
        "_fields",
        "_format",
        "_relationshipsToFetch",
        "_query",
        "_async",
        "_lowPriority",
        "_includeDeleted",
    }
)
SYSTEM_FIELDS = frozenset({"id", "label", "version"})  # shown on every record; `_fields` may name them
MAX_SIZE = 1000
MAX_OFFSET = 100_000  # records skipped by a numeric `_offset` (each is read and passed over)
MAX_DEPTH = 10  # and()/or() nesting in `_query`
MAX_FILTERS = 100  # filters of a query: its filter parameters and the filter() calls in `_query`
MAX_VALUES = 1000  # values of a query's filters in all (`id=a,b,...` included): one key range or lookup each
MAX_TEXT = 50_000  # characters of one parameter's value (1,000 record ids and their commas fit)
MAX_REGEX = 200  # characters of a `like(/re/)` pattern
REGEX_MEMORY = 1 << 20  # bytes RE2 may use for one pattern (its program and its DFA's cache)
FORMATS = ("native", "plainText")

# The operators as the language writes them, and as a `Filter` names them.
OPERATORS: dict[str, str] = {
    "notEquals": "ne",
    "like": "like",
    "between": "between",
    "greater": "gt",
    "greaterOrEquals": "ge",
    "less": "lt",
    "lessOrEquals": "le",
    "empty": "empty",
    "notEmpty": "notEmpty",
}
_SPELLED = {op: name for name, op in OPERATORS.items()} | {"eq": "equals"}
_COMPARE = frozenset({"between", "gt", "ge", "lt", "le"})
_STORE_OPS = frozenset({"eq", "empty", "notEmpty", *_COMPARE})  # ne and like stay with evaluate (see bind)
_TEXTUAL = frozenset({"text", "email", "url", "choice"})
_ID = re.compile(r"[0-9a-f]{24}")
_CALL = re.compile(r"([A-Za-z][A-Za-z0-9]*)\((.*)\)", re.DOTALL)  # `name(...)` as the whole value
_WORD = re.compile(r"[A-Za-z]+")
_WHOLE = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() also takes "²", which int() refuses


# The query ------------------------------------------------------------------
@dataclass(frozen=True)
class Filter:
    """One filter as written: the path, the operator, and its values as raw texts (typed by `bind`)."""

    path: str
    op: str  # eq | ne | like | between | gt | ge | lt | le | empty | notEmpty
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class AllOf:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Expr, ...]


Expr: TypeAlias = Filter | AllOf | AnyOf


@dataclass
class Query:
    where: AllOf = field(default_factory=lambda: AllOf(()))  # every filter param AND the _query expression
    size: int = 20
    offset: int | str | None = None  # records to skip, or the id of the record the page starts after
    sort_field: str = "id"
    descending: bool = True
    fields: list[str] | None = None  # None: every field
    format: str = "native"
    fetch: list[str] = field(default_factory=list)  # relationships to fetch inline


@dataclass
class Bound:
    """A query checked against a schema and split between the store's key ranges and `evaluate`."""

    conditions: list[Condition]
    rest: Expr | None
    ids: tuple[str, ...] | None
    paths: set[str]
    sort: Sort


def _clip(text: str, most: int = 60) -> str:
    return text if len(text) <= most else text[:most] + "..."


# Parsing ----------------------------------------------------------------------
def parse(params: Mapping[str, str | list[str]]) -> Query:
    """The query in a request's query-string parameters (a list where a key repeats); raises Invalid.

    Only the syntax is checked here; `bind` checks paths and values against the entity's schema.
    """
    query = Query()
    where: list[Expr] = []
    for key, given in params.items():
        values = list(given) if isinstance(given, list | tuple) else [given]
        if not all(isinstance(v, str) for v in values):
            raise Invalid(f"The parameter {_clip(str(key))} must be text")
        if any(len(v) > MAX_TEXT for v in values):
            raise Invalid(f"The parameter {_clip(str(key))} is longer than {MAX_TEXT:,} characters")
        if key.startswith("_"):
            if key not in RESERVED:
                raise Invalid(
                    f"Unknown parameter {_clip(key)}: parameters starting with _ are {', '.join(sorted(RESERVED))}"
                )
            if key == "_query":
                where.extend(expr for expr in (parse_complex(v) for v in values) if expr is not None)
            else:
                _option(query, key, values[-1])  # a repeated option: the last one counts
        else:
            where.extend(parse_value(key, v) for v in values)
    query.where = AllOf(_flat(AllOf, where))
    _within_bounds(query.where)
    return query


def _within_bounds(where: AllOf) -> None:
    """At most MAX_FILTERS filters and MAX_VALUES values in all: each is work on every record read, and each
    value of an equality can be a key range the store queries on every shard."""
    filters = list(_filters_of(where))
    if len(filters) > MAX_FILTERS:
        raise Invalid(f"A query holds at most {MAX_FILTERS} filters (parameters and filter() calls in _query)")
    values = sum(len(f.values) for f in filters)
    if values > MAX_VALUES:
        raise Invalid(
            f"A query holds at most {MAX_VALUES:,} values in all its filters (this one {values:,}); "
            "split the request, or filter by a field the values share"
        )


def _filters_of(expr: Expr) -> Iterable[Filter]:
    if isinstance(expr, Filter):
        yield expr
    else:
        for item in expr.items:
            yield from _filters_of(item)


def _option(query: Query, key: str, raw: str) -> None:
    setter = _OPTION_SETTERS.get(key)
    if setter is not None:
        setter(query, raw)
    elif raw.lower() not in ("true", "false"):  # _async, _lowPriority, _includeDeleted: flags others act on
        raise Invalid(f"{key} must be true or false")


def _set_size(query: Query, raw: str) -> None:
    if not _WHOLE.fullmatch(raw) or not 1 <= int(raw) <= MAX_SIZE:
        raise Invalid(f"_size must be a whole number from 1 to {MAX_SIZE}")
    query.size = int(raw)


def _set_offset(query: Query, raw: str) -> None:
    if _ID.fullmatch(raw):
        query.offset = raw
    elif _WHOLE.fullmatch(raw) and int(raw) <= MAX_OFFSET:
        query.offset = int(raw)
    elif raw:
        raise Invalid(
            f"_offset must be a number of records to skip (0 to {MAX_OFFSET}) or the id of the record "
            "the page starts after (the offset a previous page returned)"
        )


def _set_sort_field(query: Query, raw: str) -> None:
    if not raw:
        raise Invalid("_sortField must name a field (or id)")
    query.sort_field = raw


def _set_sort_type(query: Query, raw: str) -> None:
    if raw.lower() not in ("asc", "desc"):
        raise Invalid("_sortType must be asc or desc")
    query.descending = raw.lower() == "desc"


def _set_fields(query: Query, raw: str) -> None:
    names = _names(raw)
    query.fields = [n for n in names if n not in SYSTEM_FIELDS] if names else None


def _set_format(query: Query, raw: str) -> None:
    chosen = next((f for f in FORMATS if f.lower() == raw.lower()), None)
    if chosen is None:
        raise Invalid("_format must be native or plainText")
    query.format = chosen


def _set_fetch(query: Query, raw: str) -> None:
    query.fetch = _names(raw)


# The options that set something on the query; the other reserved options are flags (true or false).
_OPTION_SETTERS: dict[str, Callable[[Query, str], None]] = {
    "_size": _set_size,
    "_offset": _set_offset,
    "_sortField": _set_sort_field,
    "_sortType": _set_sort_type,
    "_fields": _set_fields,
    "_format": _set_format,
    "_relationshipsToFetch": _set_fetch,
}


def _names(raw: str) -> list[str]:
    return list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))


def parse_value(path: str, raw: str) -> Filter:
    """One filter parameter's value (`a,b`, `"Doe, Inc"`, `between(1,5)`, `like(/x)`, ...) as a Filter."""
    if raw == "":
        return Filter(path, "empty")
    call = _CALL.fullmatch(raw)
    if call is None:
        return Filter(path, "eq", _items(path, raw, "equals"))
    name, inner = call.groups()
    op = OPERATORS.get(name)
    if op is None:
        raise Invalid(
            f"{_clip(path)}: {_clip(name, 40)}() is not an operator; the operators are "
            f"{', '.join(n + '()' for n in OPERATORS)} (write a value that looks like one in double quotes)"
        )
    if op in ("empty", "notEmpty"):
        if inner.strip():
            raise Invalid(f"{_clip(path)}: {name}() takes no value")
        return Filter(path, op)
    if op == "like":
        like_matcher(path, inner)  # a bad pattern is a 400 now, not when the first record is read
        return Filter(path, op, (inner,))
    values = _items(path, inner, name)
    want = {"between": 2, "ne": None}.get(op, 1)
    if want is not None and len(values) != want:
        raise Invalid(f"{_clip(path)}: {name}() takes {'one value' if want == 1 else 'two values (from,to)'}")
    return Filter(path, op, values)


def _items(path: str, text: str, operator: str) -> tuple[str, ...]:
    """A comma-separated list; an item in double quotes may hold commas, and `\\"` (or `\\\\`) inside."""
    items: list[tuple[str, bool]] = []  # (text, whether it was quoted)
    i, n = 0, len(text)
    while True:
        start = i
        while start < n and text[start] in " \t":
            start += 1
        if start < n and text[start] == '"':
            chars: list[str] = []
            k = start + 1
            while k < n and text[k] != '"':
                if text[k] == "\\" and k + 1 < n and text[k + 1] in '"\\':
                    k += 1
                chars.append(text[k])
                k += 1
            if k >= n:
                raise Invalid(f"{_clip(path)}: the quote at character {start + 1} of the value is never closed")
            k += 1
            while k < n and text[k] in " \t":
                k += 1
            if k < n and text[k] != ",":
                raise Invalid(f"{_clip(path)}: a comma must follow the quoted value (character {k + 1} of the value)")
            items.append(("".join(chars), True))
            if k >= n:
                break
            i = k + 1
            continue
        comma = text.find(",", i)
        items.append((text[i:] if comma < 0 else text[i:comma], False))
        if comma < 0:
            break
        i = comma + 1
    for item, quoted in items:
        if item == "":
            raise Invalid(f"{_clip(path)}: {operator} has an empty value; use empty() to find records without a value")
        if operator == "equals" and not quoted and _CALL.fullmatch(item):
            # `a,like(b)`: an operator is the whole value, never one item of a list
            raise Invalid(
                f"{_clip(path)}: {_clip(item, 40)} looks like an operator, which must be the whole value; "
                "write a value that looks like one in double quotes"
            )
    return tuple(item for item, _ in items)


def _flat(kind: type[AllOf] | type[AnyOf], items: Iterable[Expr]) -> tuple[Expr, ...]:
    """and(and(a,b),c) is and(a,b,c): the top-level AND then serves every filter it can."""
    out: list[Expr] = []
    for item in items:
        out.extend(item.items if isinstance(item, kind) else (item,))
    return tuple(out)


def parse_complex(text: str) -> Expr | None:
    """A `_query` expression: `and(...)`/`or(...)` of `filter('path','value')`; None when blank."""
    if not text.strip():
        return None
    reader = _Complex(text)
    expr = reader.expr(1)
    reader.skip()
    if reader.pos < len(text):
        reader.fail("the end of the query")
    return expr


class _Complex:
    """A recursive-descent reader of `_query`; every error names the character where it went wrong."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.filters = 0

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def fail(self, wanted: str) -> None:
        if self.pos >= len(self.text):
            raise Invalid(f"_query is malformed: expected {wanted} at character {self.pos + 1}, found the end")
        found = _clip(self.text[self.pos : self.pos + 10], 10)
        raise Invalid(f'_query is malformed: expected {wanted} at character {self.pos + 1}, found "{found}"')

    def take(self, char: str, wanted: str) -> None:
        self.skip()
        if not self.text.startswith(char, self.pos):
            self.fail(wanted)
        self.pos += 1

    def expr(self, depth: int) -> Expr:
        self.skip()
        word = _WORD.match(self.text, self.pos)
        name = word.group() if word else ""
        if name not in ("and", "or", "filter"):
            self.fail("and(, or( or filter(")
        start = self.pos
        self.pos += len(name)
        self.take("(", f'"(" after {name}')
        if name == "filter":
            self.filters += 1
            if self.filters > MAX_FILTERS:
                raise Invalid(f"_query holds more than {MAX_FILTERS} filters")
            path = self.string()
            self.take(",", '"," between the path and the value')
            value = self.string()
            self.take(")", '")" closing filter(')
            try:
                return parse_value(path, value)
            except Invalid as bad:
                raise Invalid(f"_query, in the filter at character {start + 1}: {bad.message}") from None
        if depth > MAX_DEPTH:
            raise Invalid(f"_query nests and()/or() more than {MAX_DEPTH} deep (at character {start + 1})")
        items = [self.expr(depth + 1)]
        while True:
            self.skip()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                items.append(self.expr(depth + 1))
            elif self.text.startswith(")", self.pos):
                self.pos += 1
                break
            else:
                self.fail(f'"," or ")" in {name}(')
        if len(items) == 1:
            return items[0]
        return AllOf(_flat(AllOf, items)) if name == "and" else AnyOf(_flat(AnyOf, items))

    def string(self) -> str:
        """A string in single or double quotes; a backslash makes the next character literal."""
        self.skip()
        quote = self.text[self.pos] if self.pos < len(self.text) else ""
        if quote not in ("'", '"'):
            self.fail("a quoted string")
        start = self.pos
        chars: list[str] = []
        self.pos += 1
        while self.pos < len(self.text) and self.text[self.pos] != quote:
            if self.text[self.pos] == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
            chars.append(self.text[self.pos])
            self.pos += 1
        if self.pos >= len(self.text):
            raise Invalid(f"_query is malformed: the string at character {start + 1} is never closed")
        self.pos += 1
        return "".join(chars)


# like --------------------------------------------------------------------------
def like_matcher(path: str, pattern: str) -> Callable[[str], bool]:
    """`like(v)` contains v, `like(/v)` starts with it, `like(v/)` ends with it (all ignoring case);
    `like(/re/)` searches a regular expression (RE2's syntax, case as written unless it says `(?i)`)."""
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        source = pattern[1:-1]
        _regex(path, source)  # a bad pattern is a 400 before any record is read
        # The check looks the compiled pattern up when it runs instead of holding it: the query cache keeps
        # checks alive, and RE2's own cache (128 patterns, REGEX_MEMORY each at most) stays the only one.
        return lambda value: _compiled_regex(source).search(value) is not None
    if pattern.startswith("/"):
        prefix = pattern[1:].casefold()
        check: Callable[[str], bool] = lambda value: value.casefold().startswith(prefix)  # noqa: E731
        needle = prefix
    elif pattern.endswith("/"):
        suffix = pattern[:-1].casefold()
        check, needle = (lambda value: value.casefold().endswith(suffix)), suffix
    else:
        part = pattern.casefold()
        check, needle = (lambda value: part in value.casefold()), part
    if not needle:
        raise Invalid(f"{_clip(path)}: like() needs some text to look for")
    return check


def _options() -> re2.Options:
    options = re2.Options()
    options.never_capture = True  # a search only answers whether it matched: RE2 keeps to its fastest engines
    options.log_errors = False  # a caller's bad pattern is a 400, not a line on stderr
    options.max_mem = REGEX_MEMORY
    return options


_OPTIONS = _options()

# What RE2 refuses that Python's `re` takes, by the start of RE2's message: (its text, what the caller used).
_UNSUPPORTED = (
    ("invalid escape sequence: \\k", "a backreference"),
    ("invalid escape sequence: \\g", "a backreference"),
    ("invalid perl operator: (?P", "a backreference"),  # (?P=name); (?P<name>...) is fine
    ("invalid perl operator: (?=", "a lookahead"),
    ("invalid perl operator: (?!", "a lookahead"),
    ("invalid perl operator: (?<=", "a lookbehind"),
    ("invalid perl operator: (?<!", "a lookbehind"),
    ("invalid perl operator: (?>", "an atomic group"),
    ("invalid perl operator: (?(", "a conditional group"),
)
_BACKREFERENCE = re.compile(r"invalid escape sequence: \\[1-9]")
_POSSESSIVE = re.compile(r"bad repetition operator: (?:[*+?]|\{[0-9,]+\})\+")  # a++, a*+, a?+, a{1,2}+


@functools.lru_cache(maxsize=32)
def _compiled_regex(source: str) -> Any:
    return re2.compile(source, _OPTIONS)


def _regex(path: str, source: str) -> Any:
    """`source` compiled by RE2, or a 400 that says why not (a feature RE2 lacks, a syntax error, too big)."""
    where = _clip(path)
    if not source:
        raise Invalid(f"{where}: like(//) needs a regular expression between the slashes")
    if len(source) > MAX_REGEX:
        raise Invalid(f"{where}: the regular expression is longer than {MAX_REGEX} characters")
    try:
        return _compiled_regex(source)
    except re2.error as bad:
        reason = bad.args[0].decode(errors="replace") if bad.args and isinstance(bad.args[0], bytes) else str(bad)
    used = "a backreference" if _BACKREFERENCE.match(reason) else None
    used = used or ("a possessive quantifier" if _POSSESSIVE.match(reason) else None)
    used = used or next((name for start, name in _UNSUPPORTED if reason.startswith(start)), None)
    if used:
        raise Invalid(
            f"{where}: the regular expression uses {used}, which RE2 does not support (regular expressions run on "
            "RE2, whose time grows only with the text); rewrite the pattern without it"
        )
    if reason.startswith("pattern too large"):
        raise Invalid(f"{where}: the regular expression is too large once compiled (use fewer or smaller repeats)")
    raise Invalid(f"{where}: the regular expression does not compile: {_clip(reason)}")


# Paths -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    """Where a path leads: what it compares (`kind`), the schema names to walk, the leaf field."""

    kind: str  # id | label | value | group | rel (id or label, by value) | rel.id | rel.label
    names: tuple[str, ...]  # schema names, walked in the record's data
    spec: TableField | None
    multi: bool  # some step holds a list: ANY value meets the filter
    shown: str  # the path as messages name it (spelled from the schema)


def _resolve(schema: Schema, path: str) -> _Target:
    """The path's target, through groups (multi-valued ones too) and into a relationship's id or label."""
    if path in ("id", "label"):
        return _Target(path, (path,), None, False, path)
    parts = path.split(".")
    spec: TableField | None = None
    names: list[str] = []
    multi = False
    for i, part in enumerate(parts):
        if spec is not None and spec.type == "relationship":
            if part in ("id", "label") and i == len(parts) - 1:
                return _Target(f"rel.{part}", tuple(names), spec, multi, ".".join([*names, part]))
            break
        if spec is not None and spec.type != "group":
            break
        found = next((f for f in (spec.fields if spec else schema.fields) if f.name == part), None)
        if found is None:
            break
        spec = found
        names.append(found.name)
        multi = multi or found.multi
    else:
        assert spec is not None
        kind = {"group": "group", "relationship": "rel"}.get(spec.type, "value")
        return _Target(kind, tuple(names), spec, multi, ".".join(names))
    raise Invalid(f'"{_clip(path)}" is not a field of {schema.name}')


def _allowed(target: _Target) -> frozenset[str]:
    kind = target.kind
    if kind == "id":
        return frozenset({"eq"})
    if kind == "label":
        return frozenset({"eq", "ne", "like"})
    if kind in ("rel", "rel.label"):
        return frozenset({"eq", "ne", "like", "empty", "notEmpty"})
    if kind == "rel.id":
        return frozenset({"eq", "ne", "empty", "notEmpty"})
    if kind == "group":
        return frozenset({"empty", "notEmpty"})
    assert target.spec is not None
    if target.spec.type == "boolean":
        return frozenset({"eq", "ne", "empty", "notEmpty"})
    if target.spec.type in _TEXTUAL:
        return frozenset(_SPELLED)
    return frozenset(_SPELLED) - {"like"}


def _refuse(target: _Target, op: str) -> Invalid:
    shown, name = target.shown, _SPELLED.get(op, op)
    if target.kind == "id":
        return Invalid("id takes record ids, one or more separated by commas (id=a,b), and no operator")
    if target.kind == "label":
        return Invalid(f"label takes a value (label=a,b), notEquals() or like(), not {name}()")
    if target.kind == "group":
        child = target.spec.fields[0].name if target.spec and target.spec.fields else "..."
        return Invalid(
            f"{shown} is a group of fields: filter by one of them ({shown}.{child}) or use empty()/notEmpty()"
        )
    if op == "like" and target.kind == "rel.id":
        return Invalid(f"like() looks for text; {shown} is a record id (use {target.names[-1]}.label for the label)")
    if op == "like":
        return Invalid(
            f"like() looks for text, and {shown} is {_a(target.spec.type if target.spec else 'other')} field"
        )
    kind = "relationship" if target.kind.startswith("rel") else target.spec.type if target.spec else ""
    return Invalid(f"{shown} is {_a(kind)} field: it has no order for {name}()")


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _typed(target: _Target, raw: str) -> Any:
    """One raw value as the path's field stores it; 400 when the field cannot hold it."""
    if target.kind == "id":
        if not _ID.fullmatch(raw):
            raise Invalid(f'id: "{_clip(raw)}" is not a record id (24 hexadecimal digits)')
        return raw
    if target.kind != "value":
        return raw  # labels and related ids are compared as text
    spec = target.spec
    assert spec is not None
    if not raw.strip() and spec.type != "text":
        raise Invalid(f"{target.shown}: a blank value; use empty() to find records without a value")
    try:
        return scalar(spec, raw, target.shown)
    except BadValue as bad:
        reason = str(bad)
        reason = "it " + reason[len(target.shown) + 1 :] if reason.startswith(target.shown + " ") else reason
        raise Invalid(f'Invalid value "{_clip(raw)}" for {target.shown}: {reason}') from None


@dataclass(frozen=True)
class _Checked:
    target: _Target
    typed: tuple[Any, ...]


def _check(schema: Schema, item: Filter) -> _Checked:
    """A filter checked against the schema: its target, operator, value count and typed values."""
    target = _resolve(schema, item.path)
    if item.op not in _SPELLED:
        raise Invalid(f"{target.shown}: unknown operator {_clip(item.op, 20)}")
    if item.op not in _allowed(target):
        raise _refuse(target, item.op)
    count, name = len(item.values), _SPELLED[item.op]
    wanted = {"empty": 0, "notEmpty": 0, "between": 2}.get(item.op, 1)
    if count != wanted and not (item.op in ("eq", "ne") and count > 1):
        takes = {0: "no value", 1: "one value", 2: "two values"}[wanted] + (
            " or more" if item.op in ("eq", "ne") else ""
        )
        raise Invalid(f"{target.shown}: {name} takes {takes}, not {count}")
    if item.op == "like":
        return _Checked(target, ())
    return _Checked(target, tuple(_typed(target, raw) for raw in item.values))


# Binding -----------------------------------------------------------------------
def bind(schema: Schema, query: Query) -> Bound:
    """The query checked against `schema` (every path, operator and value; sort, fields, fetch), split
    into store conditions, record ids and the rest; raises Invalid.

    A top-level filter goes to the store when the store's `matches` means exactly what the language
    does: a single plain field (no group, no list), with equality, a range, empty or notEmpty, or a
    text's `like(/v)` (the store's `ilike`, starts with ignoring case); a relationship only by its id.
    `notEquals` and the other `like` forms never do. So `matches(conditions) and evaluate(rest)` is
    `evaluate(where)` for every record.
    """
    paths: set[str] = set()
    _walk(schema, query.where, paths)
    conditions: list[Condition] = []
    rest: list[Expr] = []
    ids: tuple[str, ...] | None = None
    for item in query.where.items:
        if not isinstance(item, Filter):
            rest.append(item)
            continue
        checked = _check(schema, item)
        if checked.target.kind == "id":
            given = tuple(dict.fromkeys(checked.typed))
            ids = given if ids is None else tuple(i for i in ids if i in given)  # repeated id filters: AND
            continue
        condition = _condition(schema, item, checked)
        if condition is None:
            rest.append(item)
        else:
            conditions.append(condition)
    sort = _sort(schema, query, paths)
    for path in query.fields or []:
        _resolve(schema, path)  # an unknown one is a 400 naming it
    for name in query.fetch:
        spec = next((f for f in schema.fields if f.name == name), None)
        if spec is None or spec.type != "relationship":
            raise Invalid(f'_relationshipsToFetch: "{_clip(name)}" is not a relationship field of {schema.name}')
    remaining: Expr | None = None if not rest else rest[0] if len(rest) == 1 else AllOf(tuple(rest))
    if remaining is not None:
        _compiled(schema, remaining)  # warm the cache: evaluate runs it on every record read
    return Bound(conditions=conditions, rest=remaining, ids=ids, paths=paths, sort=sort)


def _walk(schema: Schema, expr: Expr, paths: set[str]) -> None:
    """Check every filter in the expression; note the top-level fields it reads."""
    if isinstance(expr, Filter):
        checked = _check(schema, expr)
        if checked.target.kind not in ("id", "label"):
            paths.add(checked.target.names[0])
        return
    for item in expr.items:
        _walk(schema, item, paths)


def _condition(schema: Schema, item: Filter, checked: _Checked) -> Condition | None:
    target = checked.target
    if _starts_with(item) and not target.multi and target.kind == "value" and target.spec is not None:
        name = ".".join(target.names)
        if target.spec.type in FOLDABLE and schema.field(name) is target.spec:
            return Condition(name, "ilike", (item.values[0][1:],))  # a folded index's key range
    if target.multi or item.op not in _STORE_OPS or target.spec is None:
        return None
    name = ".".join(target.names)
    if schema.field(name) is not target.spec:
        return None  # not reachable by the store's `value_at`
    if target.kind == "value":
        return Condition(name, cast(Op, item.op), checked.typed)
    # A relationship's Condition compares the related id (`value_at`), so only an equality on ids goes.
    by_id = target.kind == "rel.id" or (target.kind == "rel" and all(_ID.fullmatch(v) for v in checked.typed))
    return Condition(name, "eq", checked.typed) if by_id and item.op == "eq" else None


def _starts_with(item: Filter) -> bool:
    """`like(/v)`: starts with v, ignoring case (the store's `ilike`); not `like(/re/)`, a regular expression."""
    pattern = item.values[0] if item.op == "like" and item.values else ""
    return pattern.startswith("/") and not (len(pattern) >= 2 and pattern.endswith("/")) and len(pattern) > 1


def _sort(schema: Schema, query: Query, paths: set[str]) -> Sort:
    if query.sort_field == "id":
        return Sort(None, query.descending)
    spec = schema.field(query.sort_field)
    if spec is None or spec.multi or spec.type == "group":
        raise Invalid(
            f'_sortField: "{_clip(query.sort_field)}" is not a field of {schema.name} holding one value '
            "(sort by id or by a field that is neither a group nor a list)"
        )
    # Spell the path with the schema's names (the caller's text only served to find them).
    fields, names = schema.fields, []
    for part in query.sort_field.split("."):
        found = next(f for f in fields if f.name == part)
        names.append(found.name)
        fields = found.fields
    paths.add(names[0])
    return Sort(".".join(names), query.descending)


# Evaluating --------------------------------------------------------------------
Check: TypeAlias = Callable[[Mapping[str, Any]], bool]
_CACHE_SIZE = 128
# (id(schema), id(expr)) -> (schema, expr, check): the entry keeps both alive, so their ids stay theirs.
_cache: dict[tuple[int, int], tuple[Schema, Expr, Check]] = {}
_cache_lock = threading.Lock()  # the local stack serves requests on threads


def evaluate(schema: Schema, expr: Expr, record: Mapping[str, Any]) -> bool:
    """Whether `record` (its data plus "id" and "label") meets `expr`; raises Invalid if `expr` does not fit
    the schema (`bind` has checked it before)."""
    return _compiled(schema, expr)(record)


def _compiled(schema: Schema, expr: Expr) -> Check:
    key = (id(schema), id(expr))
    hit = _cache.get(key)
    if hit is not None and hit[0] is schema and hit[1] is expr:
        return hit[2]
    check = _compile(schema, expr)
    with _cache_lock:
        while len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))  # the oldest entry
        _cache[key] = (schema, expr, check)
    return check


def _compile(schema: Schema, expr: Expr) -> Check:
    if isinstance(expr, AllOf):
        checks = [_compile(schema, e) for e in expr.items]
        return lambda record: all(c(record) for c in checks)
    if isinstance(expr, AnyOf):
        checks = [_compile(schema, e) for e in expr.items]
        return lambda record: any(c(record) for c in checks)
    return _compile_filter(schema, expr)


def _compile_filter(schema: Schema, item: Filter) -> Check:
    checked = _check(schema, item)
    target, op = checked.target, item.op

    def present(record: Mapping[str, Any]) -> list[Any]:
        return [v for v in _values(target, record) if not is_empty(v)]

    if op in ("empty", "notEmpty"):
        wanted = op == "notEmpty"
        return lambda record: bool(present(record)) is wanted
    if op == "like":
        found = like_matcher(target.shown, item.values[0])
        if target.kind == "rel":  # a relationship's like looks at its label
            return lambda record: any(found(_label(v)) for v in present(record))
        return lambda record: any(isinstance(v, str) and found(v) for v in present(record))
    if op in ("eq", "ne"):
        equal = _equality(target, checked.typed)
        if op == "eq":
            return lambda record: any(equal(v) for v in present(record))
        return lambda record: not any(equal(v) for v in present(record))  # no value equals any of them
    spec = target.spec
    assert spec is not None
    bounds = [order_key(spec, v) for v in checked.typed]
    test: Callable[[str], bool] = {
        "gt": lambda k: k > bounds[0],
        "ge": lambda k: k >= bounds[0],
        "lt": lambda k: k < bounds[0],
        "le": lambda k: k <= bounds[0],
        "between": lambda k: bounds[0] <= k <= bounds[1],
    }[op]
    return lambda record: any(k is not None and test(k) for k in (_key(spec, v) for v in present(record)))


def _equality(target: _Target, typed: tuple[Any, ...]) -> Callable[[Any], bool]:
    if target.kind == "rel":  # per value: a record id compares the id, any other text the label
        ids = {v for v in typed if _ID.fullmatch(v)}
        labels = {v for v in typed if not _ID.fullmatch(v)}
        return lambda v: _rel_id(v) in ids or _label(v) in labels
    wanted = {canonical(v) for v in typed}
    return lambda v: canonical(v) in wanted


def _values(target: _Target, record: Mapping[str, Any]) -> list[Any]:
    """Every value at the target's path (lists flattened: multi-valued groups and fields)."""
    if target.kind in ("id", "label"):
        return [record.get(target.kind)]
    values: list[Any] = [record]
    for name in target.names:
        found: list[Any] = []
        for holder in values:
            value = holder.get(name) if isinstance(holder, Mapping) else None
            found.extend(value if isinstance(value, list) else [value])
        values = found
    if target.kind == "rel.id":
        return [_rel_id(v) for v in values]
    if target.kind == "rel.label":
        return [_label(v) for v in values]
    return values


def _rel_id(value: Any) -> Any:
    return value.get("id") if isinstance(value, Mapping) else value


def _label(value: Any) -> str:
    label = value.get("label") if isinstance(value, Mapping) else None
    return label if isinstance(label, str) else ""


def _key(spec: TableField, value: Any) -> str | None:
    try:
        return order_key(spec, value)
    except (ArithmeticError, ValueError, TypeError):
        return None  # a stored value its field does not order (never written by the records model)
