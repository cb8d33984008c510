"""Formulas: marginal tiers, and user-written script expressions evaluated without `eval`.

A script is parsed with `ast` and walked by a small interpreter that knows numbers, the names it is
given, arithmetic, comparisons, `and`/`or`/`not`, `x if c else y` and a few functions. Anything else
(attributes, subscripts, lambdas, comprehensions, imports, strings...) is refused when the
calculation runs, with the reason in the errand's logs. Arithmetic is decimal, as money needs.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation
from typing import Any

from backroom.calcengine.models import Tier

MAX_SCRIPT_CHARS = 2000
_MAX_DEPTH = 50


class ScriptError(ValueError):
    """A script that cannot be evaluated: why, in words a calculation's author understands."""


def tiered(measure: Decimal, tiers: list[Tier]) -> Decimal:
    """Each tier's rate on the part of the measure between its threshold and the next one's."""
    bands = sorted(tiers, key=lambda t: t.above)
    total = Decimal(0)
    for i, tier in enumerate(bands):
        low = Decimal(str(tier.above))
        high = Decimal(str(bands[i + 1].above)) if i + 1 < len(bands) else None
        if measure <= low:
            break
        part = (min(measure, high) if high is not None else measure) - low
        total += part * Decimal(str(tier.rate))
    return total


# Rounding keeps every digit a stored number can have (126 before the point) plus the places: the default
# context's 28 digits would make rounding 1E+30 to cents an InvalidOperation.
_ROUNDING = Context(prec=300)


def rounded(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=_ROUNDING)


def _number(value: Any) -> Decimal:
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value))
    raise ScriptError(f"{value!r} is not a number")


def _round(value: Any, places: Any = 0) -> Decimal:
    return rounded(_number(value), int(_number(places)))


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": lambda *a: min(_number(x) for x in a),
    "max": lambda *a: max(_number(x) for x in a),
    "abs": lambda x: abs(_number(x)),
    "round": _round,
}
_BINARY: dict[type[ast.operator], Callable[[Decimal, Decimal], Decimal]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.FloorDiv: operator.floordiv,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def parse(source: str) -> ast.expr:
    """The script's syntax tree; a ScriptError for what is no expression or too long."""
    if len(source) > MAX_SCRIPT_CHARS:
        raise ScriptError(f"the script is longer than {MAX_SCRIPT_CHARS} characters")
    try:
        return ast.parse(source.strip(), mode="eval").body
    except SyntaxError as err:
        raise ScriptError(f"the script is not a valid expression ({err.msg})") from None


def evaluate(source: str, names: Mapping[str, Any]) -> Decimal:
    """The value of a script for the given names (numbers)."""
    try:
        return _number(_eval(parse(source), names, 0))
    except (DivisionByZero, InvalidOperation, ZeroDivisionError):
        raise ScriptError("division by zero") from None
    except RecursionError:
        raise ScriptError("the script is nested too deeply") from None


def _eval(node: ast.AST, names: Mapping[str, Any], depth: int) -> Any:
    """The value of one node: each kind of node a script may use has its own rule (`_RULES`)."""
    if depth > _MAX_DEPTH:
        raise ScriptError("the script is nested too deeply")
    rule = _RULES.get(type(node))
    if rule is None:
        raise _not_allowed(node)
    return rule(node, names, depth + 1)


def _not_allowed(node: ast.AST) -> ScriptError:
    return ScriptError(f"'{ast.unparse(node)}' is not allowed in a script")


def _constant(node: Any, names: Mapping[str, Any], deeper: int) -> Any:
    if isinstance(node.value, bool | int | float):
        return _number(node.value)
    raise ScriptError(f"only numbers are allowed, not {node.value!r}")


def _name(node: Any, names: Mapping[str, Any], deeper: int) -> Any:
    if node.id in names:
        return names[node.id]
    raise ScriptError(f"unknown name '{node.id}' (known: {', '.join(sorted(names))})")


def _binary(node: Any, names: Mapping[str, Any], deeper: int) -> Any:
    apply = _BINARY.get(type(node.op))
    if apply is None:
        raise _not_allowed(node)
    return apply(_number(_eval(node.left, names, deeper)), _number(_eval(node.right, names, deeper)))


def _unary(node: Any, names: Mapping[str, Any], deeper: int) -> Any:
    value = _eval(node.operand, names, deeper)
    if isinstance(node.op, ast.USub):
        return -_number(value)
    if isinstance(node.op, ast.UAdd):
        return _number(value)
    if isinstance(node.op, ast.Not):
        return not value
    raise _not_allowed(node)


def _boolean(node: Any, names: Mapping[str, Any], deeper: int) -> Any:
    values = (_eval(v, names, deeper) for v in node.values)
    return all(values) if isinstance(node.op, ast.And) else any(values)


def _compare(node: Any, names: Mapping[str, Any], deeper: int) -> Any:
    left = _eval(node.left, names, deeper)
    for op, right_node in zip(node.ops, node.comparators, strict=True):
        if type(op) not in _COMPARE:
            raise ScriptError("only ==, !=, <, <=, > and >= compare")
        right = _eval(right_node, names, deeper)
        if not _COMPARE[type(op)](_number(left), _number(right)):
            return False
        left = right
    return True


def _choice(node: Any, names: Mapping[str, Any], deeper: int) -> Any:
    return _eval(node.body if _eval(node.test, names, deeper) else node.orelse, names, deeper)


def _call(node: Any, names: Mapping[str, Any], deeper: int) -> Any:
    if not isinstance(node.func, ast.Name) or node.keywords:
        raise _not_allowed(node)
    function = _FUNCTIONS.get(node.func.id)
    if function is None:
        raise ScriptError(f"unknown function '{node.func.id}' (known: {', '.join(sorted(_FUNCTIONS))})")
    try:
        return function(*(_eval(a, names, deeper) for a in node.args))
    except TypeError:
        raise ScriptError(f"wrong arguments to {node.func.id}()") from None


_RULES: dict[type[ast.AST], Callable[[Any, Mapping[str, Any], int], Any]] = {
    ast.Constant: _constant,
    ast.Name: _name,
    ast.BinOp: _binary,
    ast.UnaryOp: _unary,
    ast.BoolOp: _boolean,
    ast.Compare: _compare,
    ast.IfExp: _choice,
    ast.Call: _call,
}
