"""Rule conditions: a small, safe subset of Python expressions over named facts.

``"power_source == 'battery' and battery_pct < 30"`` is parsed once with :mod:`ast`, checked
against a whitelist (comparisons, ``and``/``or``/``not``, ``in``, literals, a few pure functions)
and the names a rule may use, then evaluated against one observation's facts. Nothing is ever
passed to ``eval``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from typing import Any

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "all": all, "any": any, "len": len, "min": min, "max": max,
}  # fmt: skip


class ConditionError(ValueError):
    """A condition that does not parse or uses something it may not."""


class Unknown(Exception):
    """A fact the condition needs is missing from this observation (say nothing)."""


@dataclass(frozen=True, slots=True)
class Condition:
    source: str
    names: frozenset[str]
    _tree: ast.expr

    def __call__(self, facts: Mapping[str, Any]) -> bool:
        """True or False; raises :class:`Unknown` when a needed fact is absent or None."""
        return bool(_eval(self._tree, facts))


def compile_condition(source: str, allowed: Set[str]) -> Condition:
    try:
        tree = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as err:
        raise ConditionError(f"{source!r} is not an expression: {err.msg}") from None
    names: set[str] = set()
    for node in ast.walk(tree):
        _check(node, source, allowed, names)
    return Condition(source, frozenset(names), tree)


_ALLOWED_NODES = (
    ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.Compare, ast.Constant,
    ast.Name, ast.Load, ast.Call, ast.Tuple, ast.List, *_COMPARE,
)  # fmt: skip


def _check(node: ast.AST, source: str, allowed: Set[str], names: set[str]) -> None:
    if not isinstance(node, _ALLOWED_NODES):
        raise ConditionError(f"{source!r}: {type(node).__name__} is not allowed in a condition")
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS) or node.keywords:
            raise ConditionError(f"{source!r}: only {', '.join(FUNCTIONS)}(...) may be called")
    elif isinstance(node, ast.Name) and node.id not in FUNCTIONS:
        if node.id not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConditionError(f"{source!r}: unknown name {node.id!r} (known: {known})")
        names.add(node.id)


def _eval(node: ast.expr, facts: Mapping[str, Any]) -> Any:
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            value = facts.get(name)
            if value is None:
                raise Unknown(name)
            return value
        case ast.BoolOp(op=ast.And(), values=values):
            return all(_eval(v, facts) for v in values)
        case ast.BoolOp(op=ast.Or(), values=values):
            return _any_known(values, facts)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not _eval(operand, facts)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_eval(operand, facts)
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            a = _eval(left, facts)
            for op, right in zip(ops, comparators, strict=True):
                b = _eval(right, facts)
                if not _COMPARE[type(op)](a, b):
                    return False
                a = b
            return True
        case ast.Call(func=ast.Name(id=fn), args=args):
            return FUNCTIONS[fn](*(_eval(a, facts) for a in args))
        case ast.Tuple(elts=elts) | ast.List(elts=elts):
            return tuple(_eval(e, facts) for e in elts)
    raise AssertionError(ast.dump(node))


def _any_known(values: list[ast.expr], facts: Mapping[str, Any]) -> bool:
    # ``a or b`` holds when either holds, even if the other cannot be known.
    unknown: Unknown | None = None
    for v in values:
        try:
            if _eval(v, facts):
                return True
        except Unknown as err:
            unknown = err
    if unknown is not None:
        raise unknown
    return False
