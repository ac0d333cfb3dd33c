"""The ClickHouse printer: a checked expression tree to ClickHouse SQL, with the same three-valued
semantics as the embedded engine's printer (mixhouse/engine/duckdb/printer.py) and the reference
interpreter (mixhouse/expr/interpreter.py).

Every node becomes a `Val`: for each kind the node may take, one Nullable SQL expression that is that
value when the row's value has that kind and NULL otherwise (a JSON null is 1 under `Kind.NULL`).
Undefined is "all NULL", so NULL propagation does most of the three-valued work. A property is read as
its raw JSON text (`JSONExtractRaw`, NULL when absent) and told apart by its first character. Booleans
are UInt8. User text reaches SQL only through `quote`; a value used twice is bound once with a one-element
`arrayMap` lambda so that nesting cannot double the SQL at every level.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from mixhouse.engine.clickhouse import lookups
from mixhouse.engine.clickhouse.scope import Scope
from mixhouse.expr import ast, dates
from mixhouse.expr.errors import ExpressionError, ExpressionLimitError, ExpressionScopeError
from mixhouse.expr.interpreter import NUMBER_PATTERN, DateTime, Value, evaluate, kind_of
from mixhouse.expr.kinds import DISTINCT_ID_NAMES, TIME_NAMES, Kind
from mixhouse.expr.plan import LOOKUP_UNAVAILABLE, UNAVAILABLE

MAX_SQL_LENGTH = 500_000
_INLINE_LIMIT = 160
_DAY_MS = 86_400_000


def quote(text: str) -> str:
    """The one way user text enters SQL: a ClickHouse string literal (backslash escapes)."""
    if "\0" in text:
        raise ExpressionError("a NUL byte cannot appear in a queried string", text, text.index("\0"))
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class Val:
    parts: dict[Kind, str] = field(default_factory=dict)
    raw: str | None = None  # the raw JSON text (Nullable(String)) when the node is a bare JSON property
    source: tuple[str, str] | None = None  # (JSON document SQL, key) of a bare JSON property
    literal: str | None = None  # the text of a string constant

    def __contains__(self, kind: Kind) -> bool:
        return kind in self.parts

    def __getitem__(self, kind: Kind) -> str:
        return self.parts[kind]


def _string_only(literal: str) -> bool:
    """Whether `literal` cannot be the JSON text of a value other than a string."""
    return literal[0] not in "-0123456789[{" and literal not in ("true", "false")


def _coalesce(parts: list[str], default: str | None = None) -> str | None:
    if default is not None:
        parts = [*parts, default]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


class ClickHousePrinter:
    def __init__(self, scope: Scope, text: str = "") -> None:
        self.scope = scope
        self.text = text
        self._lambdas = 0

    # -- public --------------------------------------------------------------------------------------
    def filter(self, expr: ast.Expr) -> str:
        return self._done(self.truth(self.value(expr)))

    def number(self, expr: ast.Expr) -> str:
        return self._done(self.value(expr).parts.get(Kind.NUMBER, "CAST(NULL AS Nullable(Float64))"))

    def segment_key(self, expr: ast.Expr) -> str:
        return self._done(self._keys(self.value(expr)))

    # -- helpers -------------------------------------------------------------------------------------
    def _done(self, sql: str) -> str:
        if len(sql) > MAX_SQL_LENGTH:
            raise ExpressionLimitError("expression is too complex to compile", self.text)
        return sql

    def _name(self, prefix: str) -> str:
        self._lambdas += 1
        return f"mh_{prefix}{self._lambdas}"

    def bind(self, sql: str, body: Callable[[str], str], *, always: bool = False) -> str:
        """`body(sql)`, evaluating `sql` once even when `body` uses it more than once."""
        if not always and len(sql) <= _INLINE_LIMIT:
            return body(f"({sql})")
        name = self._name("v")
        return f"arrayMap({name} -> {body(name)}, [{sql}])[1]"

    def truth(self, v: Val) -> str:
        """UInt8 that is 1 exactly when the value is boolean true, never NULL."""
        if v.raw is not None:
            return f"coalesce({v.raw} = 'true', 0)"
        if Kind.BOOLEAN not in v:
            return "0"
        return f"coalesce({v[Kind.BOOLEAN]}, 0)"

    # -- values --------------------------------------------------------------------------------------
    def value(self, e: ast.Expr) -> Val:
        if not ast.has_property(e):
            return self.constant(evaluate(e, {}, timezone=self.scope.timezone))
        match e:
            case ast.Property():
                return self.property(e)
            case ast.Unary(op="-"):
                v = self.value(e.operand)
                return Val({Kind.NUMBER: f"(-({v[Kind.NUMBER]}))"} if Kind.NUMBER in v else {})
            case ast.Unary():
                return self.negation(self.value(e.operand))
            case ast.Logical():
                joiner = " AND " if e.op == "and" else " OR "
                operands = joiner.join(self.truth(self.value(o)) for o in e.operands)
                return Val({Kind.BOOLEAN: f"toUInt8({operands})"})
            case ast.Binary():
                return self.binary(e)
            case ast.Call():
                return self.call(e.func, [self.value(a) for a in e.args])
            case ast.Lookup():
                return self.lookup(e)
        raise AssertionError(f"unexpected node {e!r}")

    def constant(self, v: Value) -> Val:
        k = kind_of(v)
        if k is None:
            return Val()
        if k is Kind.NULL:
            return Val({k: "toUInt8(1)"})
        if k is Kind.BOOLEAN:
            return Val({k: "toUInt8(1)" if v else "toUInt8(0)"})
        if k is Kind.NUMBER:
            return Val({k: f"toFloat64({quote(repr(float(v)))})"})
        if k is Kind.STRING:
            return Val({k: quote(str(v))}, literal=str(v))
        if k is Kind.DATETIME:
            assert isinstance(v, DateTime)
            return Val({k: f"toInt64({int(v.ms)})"})
        # Only list literals fold to a list; lists take part as JSON text, like a list property.
        return Val({k: quote(json.dumps(v, ensure_ascii=False, allow_nan=False, separators=(",", ":")))})

    def property(self, p: ast.Property) -> Val:
        scope = self.scope
        if p.source == "behaviors":
            if scope.behaviors_sql is None:
                raise ExpressionScopeError(UNAVAILABLE["behaviors"], self.text, p.pos)
            return self._json_value(scope.behaviors_sql, p.name)
        if p.name in DISTINCT_ID_NAMES:
            return Val({Kind.STRING: f"toNullable({scope.distinct_id_sql})"})
        if p.source == "event" and scope.time_ms_sql is None:
            raise ExpressionScopeError(UNAVAILABLE["event"], self.text, p.pos)
        if p.source != "user" and p.name in TIME_NAMES and scope.time_ms_sql is not None:
            return Val({Kind.DATETIME: f"toNullable({scope.time_ms_sql})"})
        source = scope.properties_sql
        if p.source == "user":
            if scope.user_properties_sql is None:
                raise ExpressionScopeError(UNAVAILABLE["user"], self.text, p.pos)
            source = scope.user_properties_sql
        return self._json_value(source, p.name)

    def lookup(self, node: ast.Lookup) -> Val:
        """A cell of the row whose id is the base property's value as text (interpreter.lookup_key: a
        string as is, a number in its key form, true/false; anything else matches no row), read from the
        loaded table version with `joinGetOrNull` (lookups.py). JSON like a property, except that a JSON
        null cell is undefined and an object is a datetime, {"$datetime": "YYYY-MM-DDTHH:MM:SS"} in UTC."""
        table = lookups.table_name(node.table) if node.table is not None else None
        if table is None:
            raise ExpressionScopeError(LOOKUP_UNAVAILABLE, self.text, node.pos)
        base = self.value(node.base)
        keys = []
        if s := base.parts.get(Kind.STRING):
            keys.append(s)
        if s := base.parts.get(Kind.NUMBER):
            keys.append(self.render_number(s))
        if s := base.parts.get(Kind.BOOLEAN):
            keys.append(f"if(isNull({s}), NULL, if({s} = 1, 'true', 'false'))")
        key = _coalesce(keys) or "CAST(NULL AS Nullable(String))"
        row = self.bind(key, lambda b: f"if(isNull({b}), NULL, joinGetOrNull({quote(table)}, 'v', assumeNotNull({b})))")
        v = self._json_value(row, node.column)
        parts = dict(v.parts)
        del parts[Kind.NULL], parts[Kind.OBJECT]
        j = f"nullIf(JSONExtractRaw({row}, {quote(node.column)}), '')"
        parts[Kind.DATETIME] = (
            f"if(startsWith({j}, '{{'), toUnixTimestamp64Milli(parseDateTime64BestEffortOrNull("
            f"JSONExtractString(assumeNotNull({j}), '$datetime'), 3, 'UTC')), NULL)"
        )
        return Val(parts)

    def _json_value(self, source: str, name: str) -> Val:
        """The value under key `name` of the JSON `source`, in every kind it may have."""
        t = f"nullIf(JSONExtractRaw({source}, {quote(name)}), '')"
        return Val(
            {
                Kind.NUMBER: f"if(match({t}, '^-?[0-9]'), toFloat64OrNull({t}), NULL)",
                # The string from the raw text already extracted, not a second walk of the whole document.
                Kind.STRING: f"if(startsWith({t}, '\"'), JSONExtractString(assumeNotNull({t})), NULL)",
                Kind.BOOLEAN: f"multiIf({t} = 'true', toUInt8(1), {t} = 'false', toUInt8(0), NULL)",
                Kind.NULL: f"if({t} = 'null', toUInt8(1), NULL)",
                Kind.LIST: f"if(startsWith({t}, '['), {t}, NULL)",
                Kind.OBJECT: f"if(startsWith({t}, '{{'), {t}, NULL)",
            },
            raw=t,
            source=(source, name),
        )

    def negation(self, v: Val) -> Val:
        if v.raw is not None:
            # missing -> TRUE; JSON null or any non-boolean -> NULL (undefined)
            t = f"coalesce({v.raw}, 'false')"
            return Val({Kind.BOOLEAN: f"multiIf({t} = 'false', toUInt8(1), {t} = 'true', toUInt8(0), NULL)"})
        others = [f"isNull({s})" for k, s in v.parts.items() if k is not Kind.BOOLEAN]
        undefined = f"if({' AND '.join(others)}, toUInt8(1), NULL)" if others else "toUInt8(1)"
        if Kind.BOOLEAN not in v:
            return Val({Kind.BOOLEAN: undefined})
        return Val({Kind.BOOLEAN: f"coalesce(NOT ({v[Kind.BOOLEAN]}), {undefined})"})

    def binary(self, e: ast.Binary) -> Val:
        op = e.op
        if op == "in" and isinstance(e.right, ast.List):
            return self.member_of_literal(self.value(e.left), e.right)
        a, b = self.value(e.left), self.value(e.right)
        if op in ("==", "!="):
            same = self.equality(a, b)
            return Val({Kind.BOOLEAN: same if op == "==" else f"toUInt8(NOT {same})"})
        if op in ast.ORDERING:
            return self.ordering(op, a, b)
        if op == "in":
            return self.member(a, b)
        parts: dict[Kind, str] = {}
        if Kind.NUMBER in a and Kind.NUMBER in b:
            x, y = a[Kind.NUMBER], b[Kind.NUMBER]
            arithmetic = {
                "+": f"({x}) + ({y})",
                "-": f"({x}) - ({y})",
                "*": f"({x}) * ({y})",
                "/": f"({x}) / nullIf({y}, 0)",
                "%": f"({x}) % nullIf({y}, 0)",  # Float64 % is C fmod (sign of the dividend)
            }[op]
            parts[Kind.NUMBER] = self.bind(arithmetic, lambda r: f"if(isNaN({r}), NULL, {r})")
        if op == "+" and Kind.STRING in a and Kind.STRING in b:
            parts[Kind.STRING] = f"concat({a[Kind.STRING]}, {b[Kind.STRING]})"
        return Val(parts)

    def equality(self, a: Val, b: Val) -> str:
        """`==` as a UInt8 that is never NULL."""
        for x, y in ((a, b), (b, a)):
            if x.source is not None and y.literal and _string_only(y.literal):
                # A property equals the string exactly when its value is that string: one extraction per row.
                # JSONExtractString is '' for null or no value, and the JSON text of any other kind, which
                # never reads as `literal` (no number, list, object, true or false starts like it).
                return f"toUInt8(JSONExtractString({x.source[0]}, {quote(x.source[1])}) = {quote(y.literal)})"
        pairs = [
            f"({a[k]}) = ({b[k]})" for k in (Kind.NUMBER, Kind.STRING, Kind.BOOLEAN, Kind.DATETIME) if k in a and k in b
        ]
        if Kind.NULL in a and Kind.NULL in b:
            pairs.append(f"(({a[Kind.NULL]}) AND ({b[Kind.NULL]}))")
        # Lists and objects never compare equal (docs/expressions.md).
        return _coalesce(pairs, "toUInt8(0)") or "toUInt8(0)"

    def ordering(self, op: str, a: Val, b: Val) -> Val:
        pairs = [f"({a[k]}) {op} ({b[k]})" for k in (Kind.NUMBER, Kind.STRING, Kind.DATETIME) if k in a and k in b]
        if Kind.DATETIME in a and Kind.STRING in b:
            pairs.append(f"({a[Kind.DATETIME]}) {op} ({self.parse_datetime(b[Kind.STRING])})")
        if Kind.STRING in a and Kind.DATETIME in b:
            pairs.append(f"({self.parse_datetime(a[Kind.STRING])}) {op} ({b[Kind.DATETIME]})")
        result = _coalesce(pairs)
        return Val({Kind.BOOLEAN: result} if result else {})

    def member(self, a: Val, b: Val) -> Val:
        parts = []
        if Kind.STRING in a and Kind.STRING in b:
            parts.append(f"position({b[Kind.STRING]}, {a[Kind.STRING]}) > 0")
        if Kind.LIST in b:
            lst = b[Kind.LIST]
            items = f"JSONExtractArrayRaw(assumeNotNull({lst}))"

            def when(x: str, test: str) -> str:  # NULL when either side lacks the kind
                return f"if(isNull({x}) OR isNull({lst}), NULL, {test})"

            if s := a.parts.get(Kind.STRING):
                x = self._name("x")
                strings = f"arrayMap({x} -> if(startsWith({x}, '\"'), JSONExtractString({x}), NULL), {items})"
                parts.append(when(s, f"has({strings}, assumeNotNull({s}))"))
            if s := a.parts.get(Kind.NUMBER):
                x = self._name("x")
                numbers = f"arrayMap({x} -> if(match({x}, '^-?[0-9]'), toFloat64OrNull({x}), NULL), {items})"
                parts.append(when(s, f"has({numbers}, assumeNotNull({s}))"))
            if s := a.parts.get(Kind.BOOLEAN):
                parts.append(when(s, f"has({items}, if(assumeNotNull({s}) = 1, 'true', 'false'))"))
            if s := a.parts.get(Kind.NULL):
                parts.append(when(s, f"has({items}, 'null')"))
            if s := a.parts.get(Kind.DATETIME):
                parts.append(when(s, "toUInt8(0)"))  # no stored list holds a datetime
        result = _coalesce(parts)
        return Val({Kind.BOOLEAN: result} if result else {})

    def member_of_literal(self, a: Val, items: ast.List) -> Val:
        parts = []
        for kind, literal_type in ((Kind.STRING, ast.String), (Kind.NUMBER, ast.Number), (Kind.BOOLEAN, ast.Boolean)):
            if kind not in a:
                continue
            values = [self.constant(i.value)[kind] for i in items.items if isinstance(i, literal_type)]
            if values:
                parts.append(f"if(isNull({a[kind]}), NULL, has([{', '.join(values)}], assumeNotNull({a[kind]})))")
            else:
                parts.append(f"if(isNull({a[kind]}), NULL, toUInt8(0))")
        if Kind.NULL in a:
            parts.append(f"if({a[Kind.NULL]} = 1, toUInt8(0), NULL)")
        if Kind.DATETIME in a:
            parts.append(f"if(isNull({a[Kind.DATETIME]}), NULL, toUInt8(0))")
        result = _coalesce(parts)
        return Val({Kind.BOOLEAN: result} if result else {})

    def call(self, fn: str, args: list[Val]) -> Val:
        v = args[0]
        get = v.parts.get
        if fn == "defined":
            if v.raw is not None:
                return Val({Kind.BOOLEAN: f"coalesce({v.raw} != 'null', 0)"})
            tests = [f"isNotNull({s})" for k, s in v.parts.items() if k is not Kind.NULL]
            return Val({Kind.BOOLEAN: "toUInt8(" + " OR ".join(tests) + ")" if tests else "toUInt8(0)"})
        if fn == "boolean":
            rules: dict[Kind, Callable[[str], str]] = {
                Kind.BOOLEAN: lambda s: s,
                Kind.NUMBER: lambda s: f"({s}) != 0",
                Kind.STRING: lambda s: f"({s}) NOT IN ('', 'false')",
                Kind.NULL: lambda s: f"if({s} = 1, toUInt8(0), NULL)",
                Kind.DATETIME: lambda s: f"if(isNull({s}), NULL, toUInt8(1))",
                Kind.LIST: lambda s: f"({s}) != '[]'",
                Kind.OBJECT: lambda s: f"({s}) != '{{}}'",
            }
            truth = _coalesce([rules[k](s) for k, s in v.parts.items()], "toUInt8(0)") or "toUInt8(0)"
            return Val({Kind.BOOLEAN: f"toUInt8({truth})"})
        if fn == "number":
            parts = []
            if s := get(Kind.NUMBER):
                parts.append(s)
            if s := get(Kind.STRING):
                pattern = quote(f"^(?:{NUMBER_PATTERN})$")
                parts.append(self.bind(s, lambda x: f"if(match({x}, {pattern}), toFloat64OrNull({x}), NULL)"))
            if s := get(Kind.BOOLEAN):
                parts.append(f"toFloat64({s})")
            if s := get(Kind.DATETIME):
                parts.append(f"toFloat64({s}) / 1000")
            result = _coalesce(parts)
            return Val({Kind.NUMBER: result} if result else {})
        if fn == "string":
            parts = []
            if s := get(Kind.STRING):
                parts.append(s)
            if s := get(Kind.NUMBER):
                parts.append(self.render_number(s))
            if s := get(Kind.BOOLEAN):
                parts.append(f"if(isNull({s}), NULL, if({s} = 1, 'true', 'false'))")
            if s := get(Kind.DATETIME):
                parts.append(self.render_datetime(s))
            out = {Kind.STRING: r} if (r := _coalesce(parts)) else {}
            if s := get(Kind.NULL):
                out[Kind.NULL] = s  # string(null) is null
            return Val(out)
        if fn == "datetime":
            parts = []
            if s := get(Kind.DATETIME):
                parts.append(s)
            if s := get(Kind.STRING):
                parts.append(self.parse_datetime(s))
            if s := get(Kind.NUMBER):
                lo, hi = dates.MIN_MS, dates.MAX_MS
                parts.append(
                    self.bind(
                        f"({s}) * 1000",
                        lambda x: f"if({x} BETWEEN {lo} AND {hi}, toInt64(floor({x})), NULL)",
                    )
                )
            result = _coalesce(parts)
            return Val({Kind.DATETIME: result} if result else {})
        if fn in ("floor", "ceil", "round"):
            if Kind.NUMBER not in v:
                return Val()
            # Python's round() rounds half to even; ClickHouse's roundBankers does the same.
            name = {"floor": "floor", "ceil": "ceil", "round": "roundBankers"}[fn]
            return Val({Kind.NUMBER: f"{name}({v[Kind.NUMBER]})"})
        if fn == "has_prefix":
            prefix = args[1]
            if Kind.STRING in v and Kind.STRING in prefix:
                return Val({Kind.BOOLEAN: f"startsWith({v[Kind.STRING]}, {prefix[Kind.STRING]})"})
            return Val()
        raise AssertionError(f"unknown function {fn}")

    # -- numbers as text -------------------------------------------------------------------------------
    def render_number(self, x: str) -> str:
        """Python's repr of a float without a trailing ".0" (the interpreter's render_number): ClickHouse
        prints the same shortest digits, but switches to exponent form at other magnitudes and writes
        exponents as `e20`/`e-7` where Python writes `e+20`/`e-07`; the digits are re-laid out here. Each
        intermediate is bound once by a one-element lambda: written out, the text (and ClickHouse's time to
        analyse it) grows several times over."""
        s, a, m, ex, ip, fp, d, n = (self._name(p) for p in ("s", "a", "m", "x", "i", "f", "d", "n"))

        def let(names: str, values: str, body: str) -> str:
            return f"arrayMap(({names}) -> {body}, {values})[1]"

        sign = f"if(startsWith({s}, '-'), '-', '')"
        scientific = (
            f"concat({sign}, substring({d}, 1, 1), if(length({d}) > 1, concat('.', substring({d}, 2)), ''), 'e',"
            f" if({n} < 0, '-', '+'), leftPad(toString(abs({n})), 2, '0'))"
        )
        layout = f"if({d} = '' OR ({n} >= -4 AND {n} < 16), {s}, {scientific})"
        lead = f"(length({fp}) - length(trim(LEADING '0' FROM {fp})))"
        digits_and_exponent = let(
            f"{d}, {n}",
            f"[trim(TRAILING '0' FROM trim(LEADING '0' FROM concat({ip}, {fp})))],"
            f" [if({ip} != '0', {ex} + length({ip}) - 1, {ex} - {lead} - 1)]",
            layout,
        )
        parts = f"splitByChar('.', {m})"
        int_frac = let(f"{ip}, {fp}", f"[{parts}[1]], [if(length({parts}) > 1, {parts}[2], '')]", digits_and_exponent)
        pieces = f"splitByChar('e', {a})"
        mant_exp = let(
            f"{m}, {ex}", f"[{pieces}[1]], [if(length({pieces}) > 1, toInt32OrZero({pieces}[2]), 0)]", int_frac
        )
        unsigned = let(a, f"[if(startsWith({s}, '-'), substring({s}, 2), {s})]", mant_exp)
        text = let(s, f"[toString(assumeNotNull({x}) + 0.0)]", unsigned)
        return f"if(isNull({x}), NULL, {text})"

    # -- dates -------------------------------------------------------------------------------------------
    def parse_datetime(self, s: str) -> str:
        """Epoch ms of an ISO date string (dates.ISO_PATTERN), NULL when it is not one: the fields are cut
        out with the same pattern and the day number computed by arithmetic (any year from 1 to 9999)."""
        tz = self.scope.timezone
        pattern = quote(f"^(?:{dates.ISO_PATTERN})$")

        def body(x: str) -> str:
            g = self._name("g")
            y, mo, d = f"toInt64OrZero({g}[1])", f"toInt64OrZero({g}[2])", f"toInt64OrZero({g}[3])"
            hh, mi, ss = f"toInt64OrZero({g}[4])", f"toInt64OrZero({g}[5])", f"toInt64OrZero({g}[6])"
            frac = f"toInt64OrZero(rightPad(substring({g}[7], 1, 3), 3, '0'))"
            off = f"{g}[8]"
            leap = f"(({y} % 4 = 0 AND {y} % 100 != 0) OR {y} % 400 = 0)"
            dim = f"[31, if({leap}, 29, 28), 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][{mo}]"
            valid = f"{y} >= 1 AND {mo} BETWEEN 1 AND 12 AND {d} BETWEEN 1 AND {dim}"
            wall = f"({_days_from_civil(y, mo, d)} * {_DAY_MS} + {hh} * 3600000 + {mi} * 60000 + {ss} * 1000 + {frac})"
            minutes = (
                f"(if(substring({off}, 1, 1) = '-', -1, 1) * "
                f"(toInt64OrZero(substring({off}, 2, 2)) * 60 + toInt64OrZero(substring({off}, 5, 2))))"
            )
            local = "0" if tz == "UTC" else self._zone_offset_ms(wall)
            ms = f"{wall} - multiIf({off} = 'Z', 0, {off} != '', {minutes} * 60000, {local})"
            checked = self.bind(
                ms, lambda v: f"if({v} BETWEEN {dates.MIN_MS} AND {dates.MAX_MS}, {v}, NULL)", always=True
            )
            groups = f"extractGroups({x}, {pattern})"
            return f"if(match({x}, {pattern}), arrayMap({g} -> if({valid}, {checked}, NULL), [{groups}])[1], NULL)"

        return f"if(isNull({s}), NULL, {self.bind(f'assumeNotNull({s})', body, always=True)})"

    def _zone_offset_ms(self, wall_ms: str) -> str:
        """The zone's offset at a wall time: the offset at the wall time read as UTC, corrected once (as
        zoneinfo's fold=0 for all but the skipped and repeated hours). ClickHouse knows zones for
        1900-2299; outside, the nearest year's rules apply."""
        tz = quote(self.scope.timezone)
        w = self._name("w")
        first = f"timeZoneOffset(toDateTime64(intDiv({w}, 1000), 0, {tz}))"
        second = f"timeZoneOffset(toDateTime64(intDiv({w} - {first} * 1000, 1000), 0, {tz}))"
        return f"arrayMap({w} -> toInt64({second}) * 1000, [{wall_ms}])[1]"

    def render_datetime(self, ms: str) -> str:
        """`YYYY-MM-DDTHH:MM:SS` of epoch ms in the scope's zone, for any year from 1 to 9999."""
        t = self._name("t")
        local = t
        if self.scope.timezone != "UTC":
            local = f"({t} + toInt64(timeZoneOffset(toDateTime64(intDiv({t}, 1000), 0, {quote(self.scope.timezone)}))) * 1000)"
        z = self._name("z")
        civil = _civil_from_days(z)
        day = f"intDiv({local}, {_DAY_MS}) - if({local} % {_DAY_MS} < 0, 1, 0)"
        secs = f"intDiv({local} - ({day}) * {_DAY_MS}, 1000)"
        text = (
            f"concat({civil}, 'T', leftPad(toString(intDiv({secs}, 3600)), 2, '0'), ':',"
            f" leftPad(toString(intDiv({secs}, 60) % 60), 2, '0'), ':', leftPad(toString({secs} % 60), 2, '0'))"
        )
        body = f"arrayMap({z} -> {text}, [{day}])[1]"
        return f"if(isNull({ms}), NULL, arrayMap({t} -> {body}, [toInt64(assumeNotNull({ms}))])[1])"

    # -- segment keys ----------------------------------------------------------------------------------
    def _keys(self, v: Val) -> str:
        """Array(String): one key for a scalar, one per distinct element of a list, none if undefined."""
        empty = "CAST([] AS Array(String))"
        if v.raw is not None:
            t = v.raw
            assert v.source is not None
            e = self._name("e")
            fan_out = (
                f"arrayDistinct(arrayMap({e} -> assumeNotNull({e}), arrayFilter({e} -> isNotNull({e}),"
                f" arrayMap({e} -> {self._element_key(e)}, JSONExtractArrayRaw(assumeNotNull({t}))))))"
            )
            number = self.render_number(f"toFloat64OrNull(assumeNotNull({t}))")
            return (
                f"multiIf(isNull({t}) OR startsWith({t}, '{{'), {empty}, "
                f"startsWith({t}, '\"'), [JSONExtractString(assumeNotNull({t}))], "
                f"startsWith({t}, '['), {fan_out}, "
                f"{t} IN ('true', 'false', 'null'), [assumeNotNull({t})], "
                f"[assumeNotNull({number})])"
            )
        scalar = _coalesce(self._scalar_keys(v))
        if Kind.LIST in v:
            # Arrays cannot be Nullable: the list's keys when it is a list, else the scalar's key.
            e = self._name("e")
            lst = v[Kind.LIST]
            fallback = f"[{scalar}]" if scalar else "CAST([] AS Array(Nullable(String)))"
            keys = (
                f"if(isNotNull({lst}), arrayMap({e} -> {self._element_key(e)}, "
                f"JSONExtractArrayRaw(assumeNotNull({lst}))), {fallback})"
            )
        elif scalar:
            keys = f"[{scalar}]"
        else:
            return empty
        k = self._name("k")
        return f"arrayDistinct(arrayMap({k} -> assumeNotNull({k}), arrayFilter({k} -> isNotNull({k}), {keys})))"

    def _scalar_keys(self, v: Val) -> list[str]:
        keys = []
        if s := v.parts.get(Kind.STRING):
            keys.append(s)
        if s := v.parts.get(Kind.NUMBER):
            keys.append(self.render_number(s))
        if s := v.parts.get(Kind.BOOLEAN):
            keys.append(f"if(isNull({s}), NULL, if({s} = 1, 'true', 'false'))")
        if s := v.parts.get(Kind.NULL):
            keys.append(f"if({s} = 1, 'null', NULL)")
        if s := v.parts.get(Kind.DATETIME):
            keys.append(self.render_datetime(s))
        return keys

    def _element_key(self, e: str) -> str:
        """The key of one raw JSON element of a list (NULL for nested lists and objects)."""
        number = self.render_number(f"toFloat64OrNull({e})")
        return (
            f"multiIf(startsWith({e}, '\"'), toNullable(JSONExtractString({e})), "
            f"{e} IN ('true', 'false', 'null'), toNullable({e}), "
            f"startsWith({e}, '[') OR startsWith({e}, '{{'), NULL, {number})"
        )


def _days_from_civil(y: str, m: str, d: str) -> str:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm), for year >= 1."""
    yy = f"({y} - if({m} <= 2, 1, 0))"
    era = f"intDiv({yy}, 400)"
    yoe = f"({yy} - {era} * 400)"
    doy = f"(intDiv(153 * ({m} + if({m} > 2, -3, 9)) + 2, 5) + {d} - 1)"
    doe = f"({yoe} * 365 + intDiv({yoe}, 4) - intDiv({yoe}, 100) + {doy})"
    return f"({era} * 146097 + {doe} - 719468)"


def _civil_from_days(z: str) -> str:
    """`YYYY-MM-DD` of a day number (days since 1970-01-01), for years 1 to 9999."""
    zz = f"({z} + 719468)"
    era = f"intDiv({zz}, 146097)"
    doe = f"({zz} - {era} * 146097)"
    yoe = f"intDiv({doe} - intDiv({doe}, 1460) + intDiv({doe}, 36524) - intDiv({doe}, 146096), 365)"
    doy = f"({doe} - (365 * {yoe} + intDiv({yoe}, 4) - intDiv({yoe}, 100)))"
    mp = f"intDiv(5 * {doy} + 2, 153)"
    day = f"({doy} - intDiv(153 * {mp} + 2, 5) + 1)"
    month = f"if({mp} < 10, {mp} + 3, {mp} - 9)"
    year = f"({yoe} + {era} * 400 + if({month} <= 2, 1, 0))"
    return (
        f"concat(leftPad(toString({year}), 4, '0'), '-', leftPad(toString({month}), 2, '0'), '-',"
        f" leftPad(toString({day}), 2, '0'))"
    )


__all__ = ["ClickHousePrinter", "Scope", "quote"]
