"""The typed syntax tree. Frozen, so a parsed expression can be cached and shared between requests.

`pos` (0-based offset into the source) is kept for error messages and left out of equality, so two
trees are equal when they mean the same thing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

# "behaviors": a named count of the profile query's `behaviors` parameter (only where parse allows it).
Source: TypeAlias = Literal["properties", "user", "event", "behaviors"]
BinaryOp: TypeAlias = Literal["+", "-", "*", "/", "%", "==", "!=", ">", ">=", "<", "<=", "in"]
UnaryOp: TypeAlias = Literal["-", "not"]
BoolOp: TypeAlias = Literal["and", "or"]

ARITHMETIC: frozenset[str] = frozenset({"-", "*", "/", "%"})
ORDERING: frozenset[str] = frozenset({">", ">=", "<", "<="})

# name -> number of arguments
FUNCTIONS: dict[str, int] = {
    "defined": 1,
    "boolean": 1,
    "number": 1,
    "string": 1,
    "datetime": 1,
    "floor": 1,
    "ceil": 1,
    "round": 1,
    "has_prefix": 2,
}


@dataclass(frozen=True, kw_only=True)
class Expr:
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, kw_only=True)
class Number(Expr):
    value: float


@dataclass(frozen=True, kw_only=True)
class String(Expr):
    value: str


@dataclass(frozen=True, kw_only=True)
class Boolean(Expr):
    value: bool


Scalar: TypeAlias = Number | String | Boolean


@dataclass(frozen=True, kw_only=True)
class List(Expr):
    items: tuple[Scalar, ...]


@dataclass(frozen=True, kw_only=True)
class Property(Expr):
    """`properties["name"]`, `user["name"]`, `event["name"]` or (profile queries) `behaviors["name"]`."""

    source: Source
    name: str


@dataclass(frozen=True)
class LookupRef:
    """One version of a lookup table: a replace makes a new version, so a cached copy is never stale."""

    table_id: str
    version: str


@dataclass(frozen=True, kw_only=True)
class Lookup(Expr):
    """`properties["song_id"]["genre"]`: the `genre` column of the row, in the lookup table mapped to the
    property, whose id is the property's value. `table` is None until the query's project is known and
    the mapping resolved (EventExpr.bind_lookups); only a bound node can be evaluated or printed."""

    base: Property
    column: str
    table: LookupRef | None = None


@dataclass(frozen=True, kw_only=True)
class Unary(Expr):
    op: UnaryOp
    operand: Expr


@dataclass(frozen=True, kw_only=True)
class Binary(Expr):
    op: BinaryOp
    left: Expr
    right: Expr


@dataclass(frozen=True, kw_only=True)
class Logical(Expr):
    """`and` / `or` chains, flattened: `a or b or c` is one node, so long chains do not nest deeply."""

    op: BoolOp
    operands: tuple[Expr, ...]


@dataclass(frozen=True, kw_only=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]


def filter_form(e: Expr) -> Expr:
    """The expression a filter evaluates. A bare property as the whole filter, as clients send it
    (`where=properties["$email"]`: mixpanel-utils, mixpanel-data-export), tests the value's truth
    with `boolean()`; anything else must be boolean true to pass."""
    if isinstance(e, Property | Lookup):
        return Call(func="boolean", args=(e,), pos=e.pos)
    return e


def children(e: Expr) -> tuple[Expr, ...]:
    if isinstance(e, Unary):
        return (e.operand,)
    if isinstance(e, Binary):
        return (e.left, e.right)
    if isinstance(e, Logical):
        return e.operands
    if isinstance(e, Call):
        return e.args
    if isinstance(e, List):
        return e.items
    if isinstance(e, Lookup):
        return (e.base,)
    return ()


def walk(e: Expr) -> list[Expr]:
    """Every node of the tree (without recursion, so any depth the parser lets through is safe)."""
    nodes, stack = [], [e]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(children(node))
    return nodes


def depth(e: Expr) -> int:
    """Nesting depth, computed without recursion (it guards the recursive stages)."""
    best = 0
    stack = [(e, 1)]
    while stack:
        node, d = stack.pop()
        best = max(best, d)
        stack.extend((c, d + 1) for c in children(node))
    return best


def has_property(e: Expr) -> bool:
    """True when the value depends on the record (otherwise it can be folded to a constant)."""
    stack = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, Property):
            return True
        stack.extend(children(node))
    return False


def replace_lookups(e: Expr, bind: Callable[[Lookup], Lookup]) -> Expr:
    """The tree with every Lookup node replaced by `bind(node)` (the rest shared, not copied)."""
    if isinstance(e, Lookup):
        return bind(e)
    if isinstance(e, Unary):
        return dataclasses.replace(e, operand=replace_lookups(e.operand, bind))
    if isinstance(e, Binary):
        return dataclasses.replace(e, left=replace_lookups(e.left, bind), right=replace_lookups(e.right, bind))
    if isinstance(e, Logical):
        return dataclasses.replace(e, operands=tuple(replace_lookups(o, bind) for o in e.operands))
    if isinstance(e, Call):
        return dataclasses.replace(e, args=tuple(replace_lookups(a, bind) for a in e.args))
    return e
