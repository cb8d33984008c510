"""Makes moto's work per item cheaper: an attribute value unpacked once, its size summed without copies, a
string key hashed and compared as the string it is, a condition parsed once.

Each item moto writes has its size summed (DynamoDB's 400 KB limit) and each item a Query returns
has it summed again (the 1 MB page); moto's `DynamoType.size` wraps every map value in a new
DynamoType, which copies its nested values again, level after level: a tenth of an in-process
10,000-record job. The same sum is taken here over the values as they are. Every lookup of an item
hashes and compares its keys through `cast_value`, which tests the type five times before it hands
a string back as it is: strings are hashed and compared as strings here, the same answers.

A transaction's condition is parsed three times for each of its writes (moto's request checks, its
transaction, then the write it calls), and the parse is most of what a conditioned write costs. The
parsed condition only reads the item it is given, so the answer for an expression, its names and
values is kept (a few hundred of them) and handed out again, with what the parse found (the names
and values the checks then match against the request). Only the emulator is touched; the product
code and its behaviour on AWS do not change. infra/local/patches.py installs `PATCHES`.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.utilities import bytesize

from infra.local.patches import Patch

_SETS = frozenset({"SS", "NS", "BS"})
_KEPT = 512  # parsed conditions kept: a transaction's writes are parsed within a few hundred others
_parsed: dict[tuple[str | None, str, str], tuple[Any, list[str], list[str]]] = {}
_parsed_lock = threading.Lock()


def _size_of(value: Any) -> int:
    """DynamoDB's size of an attribute value, as moto's `DynamoType.size` counts it, without its copies."""
    if type(value) is not DynamoType:
        value = DynamoType(value)  # moto wraps what it sizes (a raw value a map may hold) the same way
    kind, raw = value.type, value.value
    if kind == "N":
        return len(str(raw))
    if kind in _SETS:
        return sum(len(str(v)) if kind == "NS" else 1 if isinstance(v, bool) else bytesize(v) for v in raw)
    if kind == "L":
        return sum(_size_of(v) for v in raw)
    if kind == "M":
        return sum(bytesize(k) + _size_of(v) for k, v in raw.items())
    if isinstance(raw, bool):
        return 1
    return bytesize(raw)


def _uncopied_size(_size: Callable[[DynamoType], int]) -> Callable[[DynamoType], int]:
    def size(self: DynamoType) -> int:
        return _size_of(self)

    return size


def _plain_init(init: Callable[[DynamoType, Any], None]) -> Callable[[DynamoType, Any], None]:
    """DynamoType.__init__ for a value of one type letter, unpacked once: moto's builds two lists of the
    dict's keys and values and tests the type through two methods, for every value of every item it
    reads or writes. The same attributes; anything but a DynamoType or a one-key dict as moto does."""

    def __init__(self: DynamoType, type_as_dict: Any) -> None:
        if type(type_as_dict) is DynamoType:
            kind, value = type_as_dict.type, type_as_dict.value
        elif type(type_as_dict) is dict and len(type_as_dict) == 1:
            ((kind, value),) = type_as_dict.items()
        else:
            init(self, type_as_dict)
            return
        self.type = kind
        if kind == "L":
            value = [DynamoType(v) for v in value]
        elif kind == "M":
            value = {k: DynamoType(v) for k, v in value.items()}
        self.value = value

    return __init__


def _string_hash(hash_: Callable[[DynamoType], int]) -> Callable[[DynamoType], int]:
    """DynamoType.__hash__, straight from a string's value: moto's goes through `cast_value`'s chain of type
    tests, on every lookup of an item by its keys. The same hash: a string's `cast_value` is its value."""

    def __hash__(self: DynamoType) -> int:
        if self.type == "S":
            return hash(("S", self.value))
        return hash_(self)

    return __hash__


def _string_eq(eq: Callable[[DynamoType, Any], bool]) -> Callable[[DynamoType, Any], bool]:
    """DynamoType.__eq__, straight from two strings' values (as `_string_hash`); anything else as moto's."""

    def __eq__(self: DynamoType, other: Any) -> bool:
        if self.type == "S" and other.type == "S":
            return bool(self.value == other.value)
        return eq(self, other)

    return __eq__


def _parsed_once(parse: Callable[[ConditionExpressionParser], Any]) -> Callable[[ConditionExpressionParser], Any]:
    """ConditionExpressionParser.parse, answered from the kept parses of the same expression, names and values.

    The kept parse is made on copies of the names and values, so nothing a request holds (nor what
    moto does with it later) reaches it. A parse that fails is not kept: it fails again, with moto's
    own error, each time.
    """

    def parse_once(self: ConditionExpressionParser) -> Any:
        expression, names, values = (
            self.condition_expression,
            self.expression_attribute_names,
            self.expression_attribute_values,
        )
        key = (expression, repr(names), repr(values))
        kept = _parsed.get(key)
        if kept is None:
            own = ConditionExpressionParser(expression, copy.deepcopy(names), copy.deepcopy(values))
            kept = (parse(own), own.expr_attr_names_found, own.expr_attr_values_found)
            with _parsed_lock:
                if len(_parsed) >= _KEPT:
                    _parsed.clear()
                _parsed[key] = kept
        op, names_found, values_found = kept
        self.expr_attr_names_found.extend(names_found)  # as moto's parse adds to them
        self.expr_attr_values_found.extend(values_found)
        return op

    return parse_once


# What infra/local/patches.py replaces for this module (its table says why), with the shapes it expects.
PATCHES = (
    Patch(DynamoType, "__init__", "(self, type_as_dict)", _plain_init),
    Patch(DynamoType, "size", "(self)", _uncopied_size),
    Patch(DynamoType, "__hash__", "(self)", _string_hash),
    Patch(DynamoType, "__eq__", "(self, other)", _string_eq),
    Patch(ConditionExpressionParser, "parse", "(self)", _parsed_once),
)
