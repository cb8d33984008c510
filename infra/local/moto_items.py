"""Makes moto's work per item cheaper: an attribute value unpacked once, its size summed without copies, a
string key hashed and compared as the string it is, a condition's syntax parsed once.

Each item moto writes has its size summed (DynamoDB's 400 KB limit) and each item a Query returns
has it summed again (the 1 MB page); moto's `DynamoType.size` wraps every map value in a new
DynamoType, which copies its nested values again, level after level: a tenth of an in-process
10,000-record job. The same sum is taken here over the values as they are. Every lookup of an item
hashes and compares its keys through `cast_value`, which tests the type five times before it hands
a string back as it is: strings are hashed and compared as strings here, the same answers.

A transaction's condition is parsed three times for each of its writes (moto's request checks, its
transaction, then the write it calls), and the parse is most of what a conditioned write costs. Its
syntax tree depends only on the expression and its names, so that tree is kept (a few hundred of
them), and each parse puts its request's values in it and lets moto make the condition from it,
with moto's checks. Only the emulator is touched; the product code and its behaviour on AWS do not
change. infra/local/patches.py installs `PATCHES`.
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
_KEPT = 512  # syntax trees kept: a transaction's writes are parsed within a few hundred others
_trees: dict[tuple[str, str], tuple[Any, tuple[str, ...]]] = {}  # (expression, names) -> (tree, values it reads)
_trees_lock = threading.Lock()


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
    """ConditionExpressionParser.parse, from the kept syntax tree of the same expression and names.

    moto's parse reads the values only where its expression names them (a `:placeholder` becomes a
    leaf holding its value); everything before the tree becomes an Op (lexing, paths, precedence, the
    checks of redundant parentheses) depends on the expression and its names alone. So the tree is
    kept under those (made once, on copies of them), and each parse puts its own request's values in
    its leaves and lets moto make the Op from it (`_make_op_condition`, with its own checks of the
    values' types) and list the names and values it found. The index entries a record owns are
    written on the condition `attribute_not_exists(pk) OR rid = :r`, a different `:r` for each
    record: kept by its values, each of a data job's 40,000 writes parsed it again. A parse that
    fails, or one missing a value it reads, is moto's own, with moto's own error, each time.
    """

    def parse_once(self: ConditionExpressionParser) -> Any:
        expression, names, values = (
            self.condition_expression,
            self.expression_attribute_names,
            self.expression_attribute_values,
        )
        if not expression:
            return parse(self)
        key = (expression, repr(names))
        tree = _trees.get(key)
        if tree is None:
            tree = _tree(ConditionExpressionParser(expression, copy.deepcopy(names), copy.deepcopy(values)))
            with _trees_lock:
                if len(_trees) >= _KEPT:
                    _trees.clear()
                _trees[key] = tree
        node, reads = tree
        if reads and not (isinstance(values, dict) and all(name in values for name in reads)):
            return parse(self)
        node = _bound(node, values)
        self.expr_attr_names_found.extend(self._find_literals(node))  # as moto's parse adds to them
        self.expr_attr_values_found.extend(self._find_expr_attr_values(node))
        return self._make_op_condition(node)

    return parse_once


def _tree(parser: ConditionExpressionParser) -> tuple[Any, tuple[str, ...]]:
    """The syntax tree moto's `parse` makes before its Op, checked as it checks it, and the values it reads."""
    nodes = parser._lex_condition_expression()
    nodes = parser._parse_paths(nodes)
    nodes = parser._apply_functions(nodes)
    nodes = parser._apply_comparator(nodes)
    nodes = parser._apply_in(nodes)
    nodes = parser._apply_between(nodes)
    nodes = parser._apply_parens_and_booleans(nodes)
    node = nodes[0]
    parser._assert_no_redundant_parentheses(node)
    return node, tuple(parser._find_expr_attr_values(node))


def _bound(node: Any, values: Any) -> Any:
    """The tree with each value's leaf holding the request's value (as moto's lookup gives it): the nodes
    above a value new, the others (paths, names, literals: nothing reads a value there) shared."""
    if node.kind == _VALUE:
        return _Node(node.nonterminal, node.kind, node.text, values[node.text], [])
    if not node.children or node.kind in (_PATH, _LITERAL):
        return node
    return _Node(node.nonterminal, node.kind, node.text, node.value, [_bound(child, values) for child in node.children])


_Node = ConditionExpressionParser.Node
_VALUE, _PATH, _LITERAL = (
    ConditionExpressionParser.Kind.EXPRESSION_ATTRIBUTE_VALUE,
    ConditionExpressionParser.Kind.PATH,
    ConditionExpressionParser.Kind.LITERAL,
)


# What infra/local/patches.py replaces for this module (its table says why), with the shapes it expects.
PATCHES = (
    Patch(DynamoType, "__init__", "(self, type_as_dict)", _plain_init),
    Patch(DynamoType, "size", "(self)", _uncopied_size),
    Patch(DynamoType, "__hash__", "(self)", _string_hash),
    Patch(DynamoType, "__eq__", "(self, other)", _string_eq),
    Patch(ConditionExpressionParser, "parse", "(self)", _parsed_once),
)
