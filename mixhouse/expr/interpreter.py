"""Reference interpreter: the expression rules of https://developer.mixpanel.com/reference/segmentation-expressions, written plainly in Python.

It is the specification the compiled SQL is tested against (tests/expr), and a usable evaluator for small
in-memory jobs. Values: `UNDEFINED`, None (JSON null), bool, float, str, `DateTime`, list, dict.

    record = {"time_ms": 1704067200000, "distinct_id": "u1", "properties": {...}}    # an event
    record = {"distinct_id": "u1", "properties": {...}}                              # a profile

A record without "time_ms" is a profile: `properties["$time"]` is then an ordinary property.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final, TypeAlias

from mixhouse.expr import ast, dates
from mixhouse.expr.errors import ExpressionScopeError
from mixhouse.expr.kinds import DISTINCT_ID_NAMES, TIME_NAMES, Kind


class _Undefined:
    """The value of a missing property or a type mismatch. Falsy only in the sense of the rules below."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _Undefined()


@dataclass(frozen=True)
class DateTime:
    ms: int  # UTC epoch milliseconds


Value: TypeAlias = Any  # _Undefined | None | bool | float | str | DateTime | list[Any] | dict[str, Any]

# What number("...") accepts: a plain decimal, nothing else (no spaces, "inf", "0x..", "1_000").
NUMBER_PATTERN = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUMBER = re.compile(NUMBER_PATTERN)


def kind_of(v: Value) -> Kind | None:
    """The kind of a value; None for undefined."""
    if v is UNDEFINED:
        return None
    if v is None:
        return Kind.NULL
    if isinstance(v, bool):
        return Kind.BOOLEAN
    if isinstance(v, int | float):
        return Kind.NUMBER
    if isinstance(v, str):
        return Kind.STRING
    if isinstance(v, DateTime):
        return Kind.DATETIME
    if isinstance(v, list | tuple):
        return Kind.LIST
    if isinstance(v, dict):
        return Kind.OBJECT
    raise TypeError(f"not an expression value: {v!r}")


def from_json(v: Any) -> Value:
    """A stored JSON value as an expression value: every number is a float."""
    if isinstance(v, int) and not isinstance(v, bool):
        try:
            return float(v)
        except OverflowError:
            return math.copysign(math.inf, v)
    return v


def render_number(x: float) -> str:
    # Shortest round-trip form without a trailing ".0" (5 -> "5", 2.5 -> "2.5", 1e20 -> "1e+20");
    # "+ 0.0" turns -0.0 into 0.0. DuckDB's DOUBLE -> VARCHAR is the same shortest form.
    text = repr(x + 0.0)
    return text[:-2] if text.endswith(".0") else text


# A bound lookup table's rows: table version -> row id -> {column: value} (datetimes as DateTime).
LookupRows: TypeAlias = Mapping[ast.LookupRef, Mapping[str, Mapping[str, Any]]]


def evaluate(
    expr: ast.Expr,
    record: Mapping[str, Any],
    *,
    user: Mapping[str, Any] | None = None,
    timezone: str = "UTC",
    lookups: LookupRows | None = None,
) -> Value:
    return _Evaluator(record, user, timezone, lookups).eval(expr)


def passes(
    expr: ast.Expr,
    record: Mapping[str, Any],
    *,
    user: Mapping[str, Any] | None = None,
    timezone: str = "UTC",
    lookups: LookupRows | None = None,
) -> bool:
    """Filter rule: a record passes only when the expression is boolean true (a bare property: truthy)."""
    return evaluate(ast.filter_form(expr), record, user=user, timezone=timezone, lookups=lookups) is True


def segment_keys(
    expr: ast.Expr,
    record: Mapping[str, Any],
    *,
    user: Mapping[str, Any] | None = None,
    timezone: str = "UTC",
    lookups: LookupRows | None = None,
) -> list[str]:
    """Segment keys of an `on` expression for one record: lists fan out, undefined gives none."""
    return keys_of(evaluate(expr, record, user=user, timezone=timezone, lookups=lookups), timezone)


def number_value(
    expr: ast.Expr,
    record: Mapping[str, Any],
    *,
    user: Mapping[str, Any] | None = None,
    timezone: str = "UTC",
    lookups: LookupRows | None = None,
) -> float | None:
    v = evaluate(expr, record, user=user, timezone=timezone, lookups=lookups)
    return float(v) if kind_of(v) is Kind.NUMBER else None


def keys_of(v: Value, timezone: str = "UTC") -> list[str]:
    k = kind_of(v)
    if k is Kind.LIST:
        out: list[str] = []
        for item in v:
            # Nested lists and objects inside a list have no key of their own.
            if kind_of(from_json(item)) not in (Kind.LIST, Kind.OBJECT):
                key = _scalar_key(from_json(item), timezone)
                if key not in out:
                    out.append(key)
        return out
    if k is None or k is Kind.OBJECT:
        return []
    return [_scalar_key(v, timezone)]


def lookup_key(v: Value) -> str | None:
    """The row id a property's value is matched against: a string as is, a number in its key form (`42`,
    `2.5`), `true`/`false`; anything else (a list, null, undefined) matches no row."""
    k = kind_of(v)
    if k is Kind.STRING:
        return str(v)
    if k is Kind.NUMBER:
        return render_number(v)
    if k is Kind.BOOLEAN:
        return "true" if v else "false"
    return None


def _scalar_key(v: Value, timezone: str) -> str:
    k = kind_of(v)
    if k is Kind.STRING:
        return str(v)
    if k is Kind.NUMBER:
        return render_number(v)
    if k is Kind.BOOLEAN:
        return "true" if v else "false"
    if k is Kind.NULL:
        return "null"
    assert isinstance(v, DateTime)
    return dates.render(v.ms, timezone)


def equal(a: Value, b: Value) -> bool:
    """`==`: always a boolean; different kinds are unequal; lists and objects never compare equal."""
    ka, kb = kind_of(a), kind_of(b)
    if ka is None or ka is not kb or ka in (Kind.LIST, Kind.OBJECT):
        return False
    return ka is Kind.NULL or bool(a == b)


def _number(v: Value) -> Value:
    # Arithmetic that lands on NaN (inf - inf, inf * 0) has no sensible answer: undefined.
    return UNDEFINED if math.isnan(v) else v


class _Evaluator:
    def __init__(
        self,
        record: Mapping[str, Any],
        user: Mapping[str, Any] | None,
        timezone: str,
        lookups: LookupRows | None = None,
    ) -> None:
        self.lookups = lookups or {}
        self.record = record
        self.properties: Mapping[str, Any] = record.get("properties") or {}
        self.user = user
        self.tz = timezone

    def eval(self, e: ast.Expr) -> Value:
        match e:
            case ast.Number() | ast.String() | ast.Boolean():
                return e.value
            case ast.List():
                return [item.value for item in e.items]
            case ast.Property():
                return self.property(e)
            case ast.Lookup():
                return self.lookup(e)
            case ast.Unary(op="-"):
                v = self.eval(e.operand)
                return -v if kind_of(v) is Kind.NUMBER else UNDEFINED
            case ast.Unary():
                v = self.eval(e.operand)
                if v is UNDEFINED:
                    return True  # `not undefined` is true: `not defined(x)` relies on it
                return (not v) if isinstance(v, bool) else UNDEFINED
            case ast.Logical(op="and"):
                # Evaluate every operand: SQL does, and a short cut must not hide anything here.
                results = [self.eval(o) is True for o in e.operands]
                return all(results)
            case ast.Logical():
                results = [self.eval(o) is True for o in e.operands]
                return any(results)
            case ast.Binary():
                return self.binary(e.op, self.eval(e.left), self.eval(e.right))
            case ast.Call():
                return self.call(e.func, [self.eval(a) for a in e.args])
        raise AssertionError(f"unknown node {e!r}")

    def property(self, p: ast.Property) -> Value:
        if p.source == "behaviors":  # the record's "behaviors": {name: count} (profile queries)
            counts: Mapping[str, Any] = self.record.get("behaviors") or {}
            return from_json(counts[p.name]) if p.name in counts else UNDEFINED
        if p.name in DISTINCT_ID_NAMES:
            did = self.record.get("distinct_id")
            return UNDEFINED if did is None else str(did)
        if p.source == "user":
            source = self.user
        else:
            if p.name in TIME_NAMES and "time_ms" in self.record:
                return DateTime(int(self.record["time_ms"]))
            source = self.properties
        if source is None or p.name not in source:
            return UNDEFINED
        return from_json(source[p.name])

    def lookup(self, e: ast.Lookup) -> Value:
        """The cell of the row whose id is the property's value as text (lookup_key); a missing row or
        cell is undefined. An unbound node has no table to read: the caller binds it first."""
        if e.table is None or e.table not in self.lookups:
            raise ExpressionScopeError("lookup table values are not available in this query", "", e.pos)
        key = lookup_key(self.property(e.base))
        row = self.lookups[e.table].get(key) if key is not None else None
        if row is None or e.column not in row:
            return UNDEFINED
        return from_json(row[e.column])

    def binary(self, op: str, a: Value, b: Value) -> Value:
        ka, kb = kind_of(a), kind_of(b)
        if op == "==":
            return equal(a, b)
        if op == "!=":
            return not equal(a, b)
        if op == "in":
            return self.contains(a, b)
        if op in ast.ORDERING:
            return self.ordering(op, a, b)
        if op == "+" and ka is kb is Kind.STRING:
            return a + b
        if ka is not Kind.NUMBER or kb is not Kind.NUMBER:
            return UNDEFINED
        if op == "+":
            return _number(a + b)
        if op == "-":
            return _number(a - b)
        if op == "*":
            return _number(a * b)
        if b == 0:
            return UNDEFINED
        if op == "/":
            return _number(a / b)
        try:
            return _number(math.fmod(a, b))  # sign of the dividend, as C does
        except ValueError:  # fmod(inf, y)
            return UNDEFINED

    def ordering(self, op: str, a: Value, b: Value) -> Value:
        ka, kb = kind_of(a), kind_of(b)
        # A datetime meets a string: read the string as a date (our choice: the documentation is silent).
        if ka is Kind.DATETIME and kb is Kind.STRING:
            ms = dates.parse_iso(b, self.tz)
            b, kb = (DateTime(ms), Kind.DATETIME) if ms is not None else (b, kb)
        elif ka is Kind.STRING and kb is Kind.DATETIME:
            ms = dates.parse_iso(a, self.tz)
            a, ka = (DateTime(ms), Kind.DATETIME) if ms is not None else (a, ka)
        if ka is not kb or ka not in (Kind.NUMBER, Kind.STRING, Kind.DATETIME):
            return UNDEFINED
        x, y = (a.ms, b.ms) if ka is Kind.DATETIME else (a, b)
        if op == ">":
            return bool(x > y)
        if op == ">=":
            return bool(x >= y)
        if op == "<":
            return bool(x < y)
        return bool(x <= y)

    def contains(self, a: Value, b: Value) -> Value:
        ka, kb = kind_of(a), kind_of(b)
        if ka is kb is Kind.STRING:
            return a in b
        if kb is Kind.LIST and ka in (Kind.STRING, Kind.NUMBER, Kind.BOOLEAN, Kind.NULL, Kind.DATETIME):
            return any(equal(a, from_json(item)) for item in b)
        return UNDEFINED

    def call(self, fn: str, args: list[Value]) -> Value:
        v = args[0]
        k = kind_of(v)
        if fn == "defined":
            return k is not None and k is not Kind.NULL
        if fn == "boolean":
            if k is Kind.BOOLEAN:
                return v
            if k is Kind.NUMBER:
                return v != 0
            if k is Kind.STRING:
                return v not in ("", "false")
            if k is Kind.LIST or k is Kind.OBJECT:
                return len(v) > 0
            return k is Kind.DATETIME
        if fn == "number":
            if k is Kind.NUMBER:
                return v
            if k is Kind.STRING:
                return float(v) if _NUMBER.fullmatch(v) else UNDEFINED
            if k is Kind.BOOLEAN:
                return 1.0 if v else 0.0
            if k is Kind.DATETIME:
                return v.ms / 1000
            return UNDEFINED
        if fn == "string":
            if k is Kind.STRING or k is Kind.NULL:
                return v
            if k is Kind.NUMBER:
                return render_number(v)
            if k is Kind.BOOLEAN:
                return "true" if v else "false"
            if k is Kind.DATETIME:
                return dates.render(v.ms, self.tz)
            return UNDEFINED
        if fn == "datetime":
            ms: int | None = None
            if k is Kind.DATETIME:
                return v
            if k is Kind.STRING:
                ms = dates.parse_iso(v, self.tz)
            elif k is Kind.NUMBER:
                ms = dates.from_epoch_seconds(v)
            return UNDEFINED if ms is None else DateTime(ms)
        if fn in ("floor", "ceil", "round"):
            if k is not Kind.NUMBER:
                return UNDEFINED
            if not math.isfinite(v) or abs(v) >= 2.0**52:
                return v  # already integral (and beyond Decimal's default precision)
            if fn == "floor":
                return float(math.floor(v))
            if fn == "ceil":
                return float(math.ceil(v))
            # Half away from zero, like C's round(); Decimal(v) is exact, so no double-rounding.
            return float(Decimal(v).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        if fn == "has_prefix":
            prefix = args[1]
            if k is Kind.STRING and kind_of(prefix) is Kind.STRING:
                return bool(v.startswith(prefix))
            return UNDEFINED
        raise AssertionError(f"unknown function {fn}")
