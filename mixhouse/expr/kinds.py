"""Runtime value kinds, and what can be known about them before any row is seen.

A value is one of these kinds, or *undefined* (a missing property, a type mismatch, `/` by zero), which is
the absence of every kind. The static kinds of a node are the kinds it may take on some row; a property
read from JSON may be anything, everything else is narrow. The printers and the `and`/`or` check use them.
"""

from __future__ import annotations

import enum

from mixhouse.expr import ast
from mixhouse.expr.errors import ExpressionTypeError


class Kind(enum.Enum):
    NULL = "null"
    BOOLEAN = "boolean"
    NUMBER = "number"
    STRING = "string"
    DATETIME = "datetime"
    LIST = "list"
    OBJECT = "object"


# What a JSON property value may be.
JSON_KINDS = frozenset({Kind.NULL, Kind.BOOLEAN, Kind.NUMBER, Kind.STRING, Kind.LIST, Kind.OBJECT})
NONE: frozenset[Kind] = frozenset()
B, N, S, D = (frozenset({k}) for k in (Kind.BOOLEAN, Kind.NUMBER, Kind.STRING, Kind.DATETIME))

# What a lookup table's cell may be (docs/lookup-tables.md, typed values); a missing cell is undefined.
LOOKUP_KINDS = frozenset({Kind.BOOLEAN, Kind.NUMBER, Kind.STRING, Kind.DATETIME, Kind.LIST})

# Names that denote an event's columns rather than a key of its properties JSON.
TIME_NAMES = frozenset({"time", "$time"})
DISTINCT_ID_NAMES = frozenset({"distinct_id", "$distinct_id"})


def property_kinds(p: ast.Property) -> frozenset[Kind]:
    if p.source == "behaviors":  # a count, read like any JSON value: no name is special
        return JSON_KINDS
    if p.source != "user" and p.name in TIME_NAMES:
        return D
    if p.name in DISTINCT_ID_NAMES:
        return S
    return JSON_KINDS


def static_kinds(e: ast.Expr) -> frozenset[Kind]:
    """Kinds `e` may evaluate to (undefined is always possible and not listed)."""
    match e:
        case ast.Number():
            return N
        case ast.String():
            return S
        case ast.Boolean():
            return B
        case ast.List():
            return frozenset({Kind.LIST})
        case ast.Property():
            return property_kinds(e)
        case ast.Lookup():
            return LOOKUP_KINDS
        case ast.Unary(op="-"):
            return N if Kind.NUMBER in static_kinds(e.operand) else NONE
        case ast.Unary():
            return B
        case ast.Logical():
            return B
        case ast.Binary(op="+"):
            both = static_kinds(e.left) & static_kinds(e.right)
            return both & frozenset({Kind.NUMBER, Kind.STRING})
        case ast.Binary(op=op) if op in ast.ARITHMETIC:
            both = static_kinds(e.left) & static_kinds(e.right)
            return N if Kind.NUMBER in both else NONE
        case ast.Binary():
            return B
        case ast.Call(func="number" | "floor" | "ceil" | "round"):
            return N
        case ast.Call(func="string"):
            return S | (static_kinds(e.args[0]) & {Kind.NULL})
        case ast.Call(func="datetime"):
            return D
        case ast.Call():
            return B
    raise AssertionError(f"unknown node {e!r}")


def check(e: ast.Expr, text: str) -> None:
    """Reject what is wrong whatever the data: a non-boolean operand of `and`/`or`.

    An operand that may be anything (a bare property) is only known per row; there the non-boolean values
    count as false (docs/expressions.md), since one row cannot fail a whole query.
    """
    stack = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Logical):
            for operand in node.operands:
                kinds = static_kinds(operand)
                # A bare lookup value, like a bare property, is only known per row.
                if kinds not in (JSON_KINDS, LOOKUP_KINDS) and kinds - B:
                    got = " or ".join(sorted(k.value for k in kinds))
                    raise ExpressionTypeError(
                        f"operand of '{node.op}' must be a boolean, but this is a {got}", text, operand.pos
                    )
        stack.extend(ast.children(node))
