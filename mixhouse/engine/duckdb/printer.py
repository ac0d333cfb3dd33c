"""The DuckDB printer: a checked expression tree to SQL (entry points in expressions.py).

Every node becomes a `Val`: for each kind the node may take, one SQL expression that is that value when
the row's value has that kind and NULL otherwise (a JSON null is the boolean TRUE under `Kind.NULL`).
Undefined is "all NULL", so SQL's NULL propagation does most of the three-valued work: `a - b` is simply
the difference of the two NUMBER parts. Subtrees without a property are folded by the interpreter.

Performance: a property read from JSON costs one parse of the properties document per use, so the common
shapes (`==` / `!=` against a literal, `and`/`or`/`not` operands, `defined`) use a form that reads the
property once, and everything stays plain SQL (no UDFs). User text reaches SQL only through `quote`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from mixhouse.engine.duckdb import lookups
from mixhouse.engine.duckdb.scope import Scope
from mixhouse.expr import ast, dates
from mixhouse.expr.errors import ExpressionError, ExpressionLimitError, ExpressionScopeError
from mixhouse.expr.interpreter import NUMBER_PATTERN, DateTime, Value, evaluate, kind_of
from mixhouse.expr.kinds import DISTINCT_ID_NAMES, TIME_NAMES, Kind
from mixhouse.expr.plan import LOOKUP_UNAVAILABLE, UNAVAILABLE

# Past this, an expression is refused rather than handed to DuckDB (a few KB is typical).
MAX_SQL_LENGTH = 500_000
# A sub-expression longer than this that must be used twice is bound once through a lambda instead of
# being written twice, so nesting cannot double the SQL at every level.
_INLINE_LIMIT = 160
_DT_FORMAT = "%Y-%m-%dT%H:%M:%S"
# A compact JSON list whose elements are all strings without a quote or backslash inside (RE2).
_PLAIN_STRINGS = r'\[("[^"\\]*"(,"[^"\\]*")*)?\]'


def quote(text: str) -> str:
    """The one way user text enters SQL: a standard string literal (DuckDB gives `\\` no meaning)."""
    if "\0" in text:
        # An ExpressionError, so that any caller's text with a NUL is a 400, never a 500.
        raise ExpressionError("a NUL byte cannot appear in a queried string", text, text.index("\0"))
    return "'" + text.replace("'", "''") + "'"


@dataclass
class Val:
    parts: dict[Kind, str] = field(default_factory=dict)
    json: str | None = None  # the JSON extraction when the node is a bare JSON property
    total: bool = False  # the BOOLEAN part is never NULL, so a filter needs no coalesce around it
    cell: str | None = None  # the JSON of a bare lookup-table cell (an object there is a datetime)
    slot: tuple[str, str, str] | None = None  # (string, number, other JSON) columns of a slotted property

    def __contains__(self, kind: Kind) -> bool:
        return kind in self.parts

    def __getitem__(self, kind: Kind) -> str:
        return self.parts[kind]


def _coalesce(parts: list[str], default: str | None = None) -> str | None:
    if default is not None:
        parts = [*parts, default]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def _text(json_sql: str) -> str:
    return f"CAST({json_sql} AS VARCHAR)"


def _unquote(json_sql: str) -> str:
    """The text of a JSON string. DuckDB writes JSON with every `"`, `\\` and control character escaped and
    nothing else, so without a backslash the text is the part between the quotes: cutting it out costs a
    quarter of a JSON parse (`->>`), which is most of what a string key costs past the property read."""
    t = _text(json_sql)
    return f"CASE WHEN contains({t}, '\\') THEN ({json_sql} ->> '$') ELSE substr({t}, 2, length({t}) - 2) END"


def _render_number(x: str) -> str:
    return f"regexp_replace(CAST(({x}) + 0.0 AS VARCHAR), '\\.0$', '')"


class DuckDBPrinter:
    def __init__(self, scope: Scope, text: str = "") -> None:
        self.scope = scope
        self.text = text
        self._lambdas = 0
        # Property reads of the expressions being printed, innermost last: (source SQL, pointer) -> token.
        self._frames: list[dict[tuple[str, str], str]] = []
        self._reads: dict[str, str] = {}  # token -> json_extract SQL

    # -- public --------------------------------------------------------------------------------------
    def filter(self, expr: ast.Expr) -> str:
        return self._done(self.framed(lambda: self.truth(self.value(expr))))

    def number(self, expr: ast.Expr) -> str:
        return self._done(self.framed(lambda: self.value(expr).parts.get(Kind.NUMBER, "CAST(NULL AS DOUBLE)")))

    def segment_key(self, expr: ast.Expr) -> str:
        return self._done(self.framed(lambda: self._keys(self.value(expr))))

    def _keys(self, v: Val) -> str:
        if v.cell is not None:
            # A bare lookup cell: the bare property's CASE, except that an object is a datetime's key.
            j, t, e = v.cell, _text(v.cell), self._name("e")
            fan_out = f"list_distinct(list_transform(json_extract({j}, '$[*]'), lambda {e}: {self._element_key(e)}))"
            return (
                f"CASE WHEN starts_with({t}, '\"') THEN [{_unquote(j)}] "
                f"WHEN starts_with({t}, '[') THEN {fan_out} "
                f"WHEN {j} IS NULL THEN CAST([] AS VARCHAR[]) "
                f"WHEN starts_with({t}, '{{') THEN [{self.render_datetime(v[Kind.DATETIME])}] "
                f"WHEN {t} IN ('true', 'false') THEN [{t}] "
                f"ELSE [{_render_number(f'CAST({t} AS DOUBLE)')}] END"
            )
        if v.slot is not None:
            # The same CASE as for a JSON value below, on the columns: a string or number is one key.
            s, n, o = v.slot
            t = _text(o)
            fan_out = self._fan_out(o, t)
            return (
                f"CASE WHEN {s} IS NOT NULL THEN [{s}] "
                f"WHEN {n} IS NOT NULL THEN [{_render_number(n)}] "
                f"WHEN {o} IS NULL OR starts_with({t}, '{{') THEN CAST([] AS VARCHAR[]) "
                f"WHEN {t} IN ('true', 'false', 'null') THEN [{t}] "
                f"ELSE {fan_out} END"
            )
        if v.json is not None:
            # A bare property: one CASE on the value's first character. A string (the common case) becomes a
            # one-element list straight away; only a list pays for list_transform and list_distinct. Wrapping
            # the whole CASE in coalesce/list_distinct/CAST cost 3x on 10M string values (bench/bench_expr.py).
            j, t = v.json, _text(v.json)
            fan_out = self._fan_out(j, t)
            return (
                f"CASE WHEN starts_with({t}, '\"') THEN [{_unquote(j)}] "
                f"WHEN starts_with({t}, '[') THEN {fan_out} "
                f"WHEN {j} IS NULL OR starts_with({t}, '{{') THEN CAST([] AS VARCHAR[]) "
                f"WHEN {t} IN ('true', 'false', 'null') THEN [{t}] "
                f"ELSE [{_render_number(f'CAST({t} AS DOUBLE)')}] END"  # any other JSON text is a number
            )
        scalar = _coalesce(self._scalar_keys(v))
        if Kind.LIST not in v:
            if scalar is None:
                return "CAST([] AS VARCHAR[])"
            # One key at most: list_distinct and coalesce over a one-element list cost 2x on 10M rows.
            k = self._name("k")
            return f"CAST(list_filter([{scalar}], lambda {k}: {k} IS NOT NULL) AS VARCHAR[])"
        listed = None
        if Kind.LIST in v:
            e = self._name("e")
            listed = f"list_transform(json_extract({v[Kind.LIST]}, '$[*]'), lambda {e}: {self._element_key(e)})"
        if listed and scalar:
            keys = f"coalesce({listed}, [{scalar}])"
        elif listed or scalar:
            keys = listed or f"[{scalar}]"
        else:
            return "CAST([] AS VARCHAR[])"
        # list_distinct drops NULLs (undefined -> no key) and repeats (an event counts once per key).
        return f"CAST(coalesce(list_distinct({keys}), []) AS VARCHAR[])"

    # -- helpers -------------------------------------------------------------------------------------
    def _done(self, sql: str) -> str:
        assert "\0" not in sql, "a property read escaped its frame"
        if len(sql) > MAX_SQL_LENGTH:
            raise ExpressionLimitError("expression is too complex to compile", self.text)
        return sql

    def _name(self, prefix: str) -> str:
        self._lambdas += 1
        return f"mh_{prefix}{self._lambdas}"

    def bind(self, sql: str, body: Callable[[str], str], *, always: bool = False) -> str:
        """`body(sql)`, evaluating `sql` once even when `body` uses it more than once.

        A short `sql` is written out at each use unless `always`: a lambda costs more than cheap arithmetic,
        less than re-reading a JSON value several times.
        """
        if not always and len(sql) <= _INLINE_LIMIT:
            return body(f"({sql})")
        name = self._name("v")
        return f"list_transform([{sql}], lambda {name}: {body(name)})[1]"

    def read(self, source: str, pointer: str) -> str:
        """A token standing for `json_extract(source, pointer)`, shared by every use in the enclosing frames.

        The token holds a NUL, which `quote` refuses, so it cannot occur in SQL made from user text.
        """
        key = (source, pointer)
        for frame in reversed(self._frames):
            if key in frame:
                return frame[key]
        token = f"\0{len(self._reads)}\0"
        self._reads[token] = f"json_extract({source}, {quote(pointer)})"
        self._frames[-1][key] = token
        return token

    def framed(self, build: Callable[[], str]) -> str:
        """`build()`, with each property it reads parsed out of the JSON once per row.

        A property used more than once is let-bound through a one-element lambda; one used once is inlined.
        Frames open at the top and at each `and`/`or` operand, so a property used in one operand is read
        only for the rows that reach it (DuckDB evaluates later operands only where they still matter).
        """
        self._frames.append({})
        try:
            sql = build()
        finally:
            frame = self._frames.pop()
        for token in frame.values():
            extract = self._reads[token]
            uses = sql.count(token)
            if uses == 1:
                sql = sql.replace(token, extract)
            elif uses > 1:
                name = self._name("p")
                sql = f"list_transform([{extract}], lambda {name}: {sql.replace(token, name)})[1]"
        return sql

    def truth(self, v: Val) -> str:
        """SQL that is TRUE exactly when the value is boolean true, never NULL."""
        if v.json is not None:
            return f"coalesce({_text(v.json)} = 'true', FALSE)"
        if Kind.BOOLEAN not in v:
            return "FALSE"
        # Wrapping a whole conjunction in coalesce() would hide its AND from DuckDB's filter splitting.
        return v[Kind.BOOLEAN] if v.total else f"coalesce({v[Kind.BOOLEAN]}, FALSE)"

    # -- values --------------------------------------------------------------------------------------
    def value(self, e: ast.Expr) -> Val:
        if not ast.has_property(e):
            return self.constant(evaluate(e, {}, timezone=self.scope.timezone))
        match e:
            case ast.Property():
                return self.property(e)
            case ast.Lookup():
                return self.lookup(e)
            case ast.Unary(op="-"):
                v = self.value(e.operand)
                return Val({Kind.NUMBER: f"(-({v[Kind.NUMBER]}))"} if Kind.NUMBER in v else {})
            case ast.Unary():
                return self.negation(self.value(e.operand))
            case ast.Logical():
                joiner = " AND " if e.op == "and" else " OR "
                operands = joiner.join(self.framed(partial(self._operand, o)) for o in e.operands)
                return Val({Kind.BOOLEAN: f"({operands})"}, total=True)
            case ast.Binary():
                return self.binary(e)
            case ast.Call():
                return self.call(e.func, [self.value(a) for a in e.args])
        raise AssertionError(f"unexpected node {e!r}")

    def _operand(self, e: ast.Expr) -> str:
        return self.truth(self.value(e))

    def constant(self, v: Value) -> Val:
        k = kind_of(v)
        if k is None:
            return Val()
        if k is Kind.NULL:
            return Val({k: "TRUE"})
        if k is Kind.BOOLEAN:
            return Val({k: "TRUE" if v else "FALSE"}, total=True)
        if k is Kind.NUMBER:
            return Val({k: f"CAST({quote(repr(float(v)))} AS DOUBLE)"})
        if k is Kind.STRING:
            return Val({k: quote(v)})
        if k is Kind.DATETIME:
            assert isinstance(v, DateTime)
            return Val({k: f"CAST({int(v.ms)} AS BIGINT)"})
        # Only list literals fold to a list; lists take part as JSON, like a list property.
        return Val({k: f"CAST({quote(json.dumps(v, ensure_ascii=False, allow_nan=False))} AS JSON)"})

    def property(self, p: ast.Property) -> Val:
        scope = self.scope
        if p.source == "behaviors":
            if scope.behaviors_sql is None:
                raise ExpressionScopeError(UNAVAILABLE["behaviors"], self.text, p.pos)
            return self._json_value(scope.behaviors_sql, p.name)
        if p.name in DISTINCT_ID_NAMES:
            return Val({Kind.STRING: scope.distinct_id_sql})
        if p.source == "event" and scope.time_ms_sql is None:
            raise ExpressionScopeError(UNAVAILABLE["event"], self.text, p.pos)
        if p.source != "user" and p.name in TIME_NAMES and scope.time_ms_sql is not None:
            return Val({Kind.DATETIME: scope.time_ms_sql})
        source = scope.properties_sql
        if p.source != "user" and scope.slots and (slot := scope.slots.get(p.name)) is not None:
            return self._slot_value(slot)
        if p.source == "user":
            if scope.user_properties_sql is None:
                raise ExpressionScopeError(UNAVAILABLE["user"], self.text, p.pos)
            source = scope.user_properties_sql
        return self._json_value(source, p.name)

    def lookup(self, node: ast.Lookup) -> Val:
        """A cell of the joined lookup row (lookups.lookup_joins): JSON like a property, except that an
        object is a datetime and the fast paths for a bare property do not apply."""
        if node.table is None or not self.scope.lookups:
            raise ExpressionScopeError(LOOKUP_UNAVAILABLE, self.text, node.pos)
        if lookups.source_sql(self.scope, node) is None:
            raise ExpressionScopeError(UNAVAILABLE["user"], self.text, node.pos)
        v = self._json_value(f"{lookups.alias(self.scope, node)}.{lookups.ROW}", node.column)
        parts = dict(v.parts)
        del parts[Kind.NULL], parts[Kind.OBJECT]
        j = self.read(
            f"{lookups.alias(self.scope, node)}.{lookups.ROW}", "/" + node.column.replace("~", "~0").replace("/", "~1")
        )
        # A datetime cell is the only object: {"$datetime": "YYYY-MM-DDTHH:MM:SS"} in UTC (csvtable).
        parts[Kind.DATETIME] = (
            f"CASE WHEN starts_with({_text(j)}, '{{') THEN"
            f" epoch_ms(TRY_CAST(json_extract_string({j}, '/$datetime') AS TIMESTAMP)) END"
        )
        return Val(parts, cell=j)

    def _slot_value(self, slot: int) -> Val:
        """A property stored in slot columns (property_columns.py): the parts `_json_value` would give, as
        column reads (`po` holds the JSON of true, false, null, lists and objects)."""
        a = self.scope.slots_alias
        s, n, o = f"{a}.ps{slot}", f"{a}.pn{slot}", f"{a}.po{slot}"
        t = _text(o)
        return Val(
            {
                Kind.NUMBER: n,
                Kind.STRING: s,
                Kind.BOOLEAN: f"CASE {t} WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END",
                Kind.NULL: f"CASE WHEN {t} = 'null' THEN TRUE END",
                Kind.LIST: f"CASE WHEN starts_with({t}, '[') THEN {o} END",
                Kind.OBJECT: f"CASE WHEN starts_with({t}, '{{') THEN {o} END",
            },
            slot=(s, n, o),
        )

    def _json_value(self, source: str, name: str) -> Val:
        """The value under key `name` of the JSON `source`, in every kind it may have."""
        # A JSON pointer needs only `~` and `/` escaped; any other character is literal.
        pointer = "/" + name.replace("~", "~0").replace("/", "~1")
        j = self.read(source, pointer)
        t = _text(j)
        return Val(
            {
                Kind.NUMBER: f"TRY_CAST({t} AS DOUBLE)",  # a JSON string's text starts with '"': no match
                Kind.STRING: f"CASE WHEN starts_with({t}, '\"') THEN ({j} ->> '$') END",
                Kind.BOOLEAN: f"CASE {t} WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END",
                Kind.NULL: f"CASE WHEN {t} = 'null' THEN TRUE END",
                Kind.LIST: f"CASE WHEN starts_with({t}, '[') THEN {j} END",
                Kind.OBJECT: f"CASE WHEN starts_with({t}, '{{') THEN {j} END",
            },
            json=j,
        )

    def negation(self, v: Val) -> Val:
        if v.json is not None:
            # missing -> 'false' -> TRUE; JSON null or any non-boolean -> NULL (undefined)
            return Val({Kind.BOOLEAN: f"CASE coalesce({_text(v.json)}, 'false') WHEN 'false' THEN TRUE "
                                      "WHEN 'true' THEN FALSE END"})  # fmt: skip
        others = [f"({s}) IS NULL" for k, s in v.parts.items() if k is not Kind.BOOLEAN]
        undefined = f"CASE WHEN {' AND '.join(others)} THEN TRUE END" if others else "TRUE"
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
            return Val({Kind.BOOLEAN: same if op == "==" else f"(NOT {same})"}, total=True)
        if op in ast.ORDERING:
            return self.ordering(op, a, b)
        if op == "in":
            return self.member(a, b)
        parts: dict[Kind, str] = {}
        if Kind.NUMBER in a and Kind.NUMBER in b:
            x, y = a[Kind.NUMBER], b[Kind.NUMBER]
            # nullif(y, 0): `/` and `%` by zero are undefined; nullif(.., nan): inf - inf and friends too.
            arithmetic = {
                "+": f"({x}) + ({y})",
                "-": f"({x}) - ({y})",
                "*": f"({x}) * ({y})",
                "/": f"({x}) / nullif({y}, 0)",
                "%": f"({x}) % nullif({y}, 0)",  # DOUBLE % is C fmod (sign of the dividend); fmod() is not
            }[op]
            parts[Kind.NUMBER] = f"nullif({arithmetic}, 'nan'::DOUBLE)"
        if op == "+" and Kind.STRING in a and Kind.STRING in b:
            parts[Kind.STRING] = f"(({a[Kind.STRING]}) || ({b[Kind.STRING]}))"
        return Val(parts)

    def equality(self, a: Val, b: Val) -> str:
        """`==` as SQL that is never NULL."""
        for prop, lit in ((a, b), (b, a)):
            if prop.json is not None and prop.parts and len(lit.parts) == 1 and lit.json is None:
                (kind, sql), = lit.parts.items()  # fmt: skip
                if kind is Kind.STRING:
                    # Both sides in DuckDB's canonical JSON text: one parse, no unescaping.
                    return f"coalesce({_text(prop.json)} = CAST(to_json({sql}) AS VARCHAR), FALSE)"
                if kind is Kind.BOOLEAN:
                    return f"coalesce({_text(prop.json)} = CAST({sql} AS VARCHAR), FALSE)"
        pairs = [
            f"({a[k]}) = ({b[k]})" for k in (Kind.NUMBER, Kind.STRING, Kind.BOOLEAN, Kind.DATETIME) if k in a and k in b
        ]
        if Kind.NULL in a and Kind.NULL in b:
            pairs.append(f"(({a[Kind.NULL]}) AND ({b[Kind.NULL]}))")
        # Lists and objects never compare equal (docs/expressions.md).
        return _coalesce(pairs, "FALSE") or "FALSE"

    def ordering(self, op: str, a: Val, b: Val) -> Val:
        pairs = [f"({a[k]}) {op} ({b[k]})" for k in (Kind.NUMBER, Kind.STRING, Kind.DATETIME) if k in a and k in b]
        # A datetime meets a string: the string is read as a date.
        if Kind.DATETIME in a and Kind.STRING in b:
            pairs.append(f"({a[Kind.DATETIME]}) {op} ({self.parse_datetime(b[Kind.STRING])})")
        if Kind.STRING in a and Kind.DATETIME in b:
            pairs.append(f"({self.parse_datetime(a[Kind.STRING])}) {op} ({b[Kind.DATETIME]})")
        result = _coalesce(pairs)
        return Val({Kind.BOOLEAN: result} if result else {})

    def member(self, a: Val, b: Val) -> Val:
        parts = []
        if Kind.STRING in a and Kind.STRING in b:
            parts.append(f"contains({b[Kind.STRING]}, {a[Kind.STRING]})")
        if Kind.LIST in b:
            items = f"json_extract({b[Kind.LIST]}, '$[*]')"
            if Kind.STRING in a:
                parts.append(f"list_contains({items}, to_json({a[Kind.STRING]}))")
            if Kind.NUMBER in a:
                x = self._name("x")
                numbers = f"list_transform({items}, lambda {x}: TRY_CAST({_text(x)} AS DOUBLE))"
                parts.append(f"list_contains({numbers}, {a[Kind.NUMBER]})")
            if Kind.BOOLEAN in a:
                parts.append(f"list_contains(CAST({items} AS VARCHAR[]), CAST({a[Kind.BOOLEAN]} AS VARCHAR))")
            if Kind.NULL in a:
                parts.append(f"CASE WHEN {a[Kind.NULL]} THEN list_contains(CAST({items} AS VARCHAR[]), 'null') END")
            if Kind.DATETIME in a:
                # No stored list holds a datetime: false, but only when both sides are defined.
                parts.append(
                    f"CASE WHEN ({a[Kind.DATETIME]}) IS NOT NULL AND ({b[Kind.LIST]}) IS NOT NULL THEN FALSE END"
                )
        result = _coalesce(parts)
        return Val({Kind.BOOLEAN: result} if result else {})

    def member_of_literal(self, a: Val, items: ast.List) -> Val:
        parts = []
        for kind, literal_type in ((Kind.STRING, ast.String), (Kind.NUMBER, ast.Number), (Kind.BOOLEAN, ast.Boolean)):
            if kind not in a:
                continue
            values = [self.constant(i.value)[kind] for i in items.items if isinstance(i, literal_type)]
            if values:
                parts.append(f"({a[kind]}) IN ({', '.join(values)})")
            else:
                parts.append(f"CASE WHEN ({a[kind]}) IS NOT NULL THEN FALSE END")
        if Kind.NULL in a:
            parts.append(f"CASE WHEN {a[Kind.NULL]} THEN FALSE END")
        if Kind.DATETIME in a:
            parts.append(f"CASE WHEN ({a[Kind.DATETIME]}) IS NOT NULL THEN FALSE END")
        result = _coalesce(parts)
        return Val({Kind.BOOLEAN: result} if result else {})

    def call(self, fn: str, args: list[Val]) -> Val:
        v = args[0]
        get = v.parts.get
        if fn == "defined":
            if v.json is not None:
                return Val({Kind.BOOLEAN: f"coalesce({_text(v.json)} <> 'null', FALSE)"}, total=True)
            tests = [f"({s}) IS NOT NULL" for k, s in v.parts.items() if k is not Kind.NULL]
            return Val({Kind.BOOLEAN: "(" + " OR ".join(tests) + ")" if tests else "FALSE"}, total=True)
        if fn == "boolean":
            rules: dict[Kind, Callable[[str], str]] = {
                Kind.BOOLEAN: lambda s: s,
                Kind.NUMBER: lambda s: f"({s}) <> 0",
                Kind.STRING: lambda s: f"({s}) NOT IN ('', 'false')",
                Kind.NULL: lambda s: f"CASE WHEN {s} THEN FALSE END",
                Kind.DATETIME: lambda s: f"CASE WHEN ({s}) IS NOT NULL THEN TRUE END",
                Kind.LIST: lambda s: f"{_text(s)} <> '[]'",
                Kind.OBJECT: lambda s: f"{_text(s)} <> '{{}}'",
            }
            truth = _coalesce([rules[k](s) for k, s in v.parts.items()], "FALSE") or "FALSE"
            return Val({Kind.BOOLEAN: truth}, total=True)
        if fn == "number":
            parts = []
            if s := get(Kind.NUMBER):
                parts.append(s)
            if s := get(Kind.STRING):
                pattern = quote(NUMBER_PATTERN)
                parts.append(
                    self.bind(
                        s, lambda x: f"CASE WHEN regexp_full_match({x}, {pattern}) THEN TRY_CAST({x} AS DOUBLE) END"
                    )
                )
            if s := get(Kind.BOOLEAN):
                parts.append(f"CAST(CAST({s} AS INTEGER) AS DOUBLE)")
            if s := get(Kind.DATETIME):
                parts.append(f"CAST({s} AS DOUBLE) / 1000")
            result = _coalesce(parts)
            return Val({Kind.NUMBER: result} if result else {})
        if fn == "string":
            parts = []
            if s := get(Kind.STRING):
                parts.append(s)
            if s := get(Kind.NUMBER):
                parts.append(_render_number(s))
            if s := get(Kind.BOOLEAN):
                parts.append(f"CAST({s} AS VARCHAR)")
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
                        lambda x: f"CASE WHEN {x} BETWEEN {lo} AND {hi} THEN CAST(floor({x}) AS BIGINT) END",
                    )
                )
            result = _coalesce(parts)
            return Val({Kind.DATETIME: result} if result else {})
        if fn in ("floor", "ceil", "round"):
            return Val({Kind.NUMBER: f"{fn}({v[Kind.NUMBER]})"} if Kind.NUMBER in v else {})
        if fn == "has_prefix":
            prefix = args[1]
            if Kind.STRING in v and Kind.STRING in prefix:
                return Val({Kind.BOOLEAN: f"starts_with({v[Kind.STRING]}, {prefix[Kind.STRING]})"})
            return Val()
        raise AssertionError(f"unknown function {fn}")

    # -- dates -------------------------------------------------------------------------------------------
    def parse_datetime(self, s: str) -> str:
        """Epoch ms of an ISO date string (dates.ISO_PATTERN), NULL when it is not one.

        One RE2 match decides the shape; DuckDB's own cast then reads the wall time (it accepts every string
        of that shape, checks the calendar, keeps microseconds and truncates further digits), and the zone
        is cut off first and applied here: `Z`, `±HH:MM`, or none (wall time in the scope's timezone).
        """
        tz = self.scope.timezone
        pattern = quote(dates.ISO_PATTERN)

        def body(x: str) -> str:
            n = f"length({x})"
            # Past the 10 date characters, a sign can only start an offset (the time part holds none).
            offset = f"{n} > 10 AND substr({x}, {n} - 5, 1) IN ('+', '-')"
            minutes = (
                f"(CASE WHEN substr({x}, {n} - 5, 1) = '-' THEN -1 ELSE 1 END) * "
                f"(CAST(substr({x}, {n} - 4, 2) AS BIGINT) * 60 + CAST(substr({x}, {n} - 1, 2) AS BIGINT))"
            )
            wall = f"TRY_CAST({x} AS TIMESTAMP)"
            local = f"epoch_us({wall})" if tz == "UTC" else f"epoch_us(timezone({quote(tz)}, {wall}))"
            us = (
                f"CASE WHEN ends_with({x}, 'Z') THEN epoch_us(TRY_CAST(left({x}, {n} - 1) AS TIMESTAMP)) "
                f"WHEN {offset} THEN epoch_us(TRY_CAST(left({x}, {n} - 6) AS TIMESTAMP)) - {minutes} * 60000000 "
                f"ELSE {local} END"
            )
            # Year 0 is valid for DuckDB (1 BC) but not an ISO date we accept.
            valid = f"regexp_full_match({x}, {pattern}) AND NOT starts_with({x}, '0000')"
            return f"CASE WHEN {valid} THEN {self.bind(us, self._floor_ms, always=True)} END"

        return self.bind(s, body, always=True)

    def _floor_ms(self, us: str) -> str:
        # `//` truncates toward zero; a date before 1970 needs the floor, as the fraction is cut, not rounded.
        ms = f"({us} - (({us} % 1000) + 1000) % 1000) // 1000"
        return f"CASE WHEN {ms} BETWEEN {dates.MIN_MS} AND {dates.MAX_MS} THEN {ms} END"

    def render_datetime(self, ms: str) -> str:
        ts = f"make_timestamp(CAST({ms} AS BIGINT) * 1000)"
        if self.scope.timezone != "UTC":
            ts = f"timezone({quote(self.scope.timezone)}, timezone('UTC', {ts}))"
        return f"strftime({ts}, '{_DT_FORMAT}')"

    # -- segment keys ----------------------------------------------------------------------------------
    def _scalar_keys(self, v: Val) -> list[str]:
        keys = []
        if s := v.parts.get(Kind.STRING):
            keys.append(s)
        if s := v.parts.get(Kind.NUMBER):
            keys.append(_render_number(s))
        if s := v.parts.get(Kind.BOOLEAN):
            keys.append(f"CAST({s} AS VARCHAR)")
        if s := v.parts.get(Kind.NULL):
            keys.append(f"CASE WHEN {s} THEN 'null' END")
        if s := v.parts.get(Kind.DATETIME):
            keys.append(self.render_datetime(s))
        return keys

    def _fan_out(self, j: str, t: str) -> str:
        """The distinct keys of the JSON list `j` (text `t`). A list of plain strings (no quote or backslash
        inside, as compact JSON writes it: `["a","b"]`) is cast to VARCHAR[] straight away, each element its
        own text as `_element_key` would give it; any other list takes the element-by-element path. The
        cast skips the per-element lambda: 1.7x faster on a list `on` (bench/bench_properties.py)."""
        e = self._name("e")
        general = f"list_distinct(list_transform(json_extract({j}, '$[*]'), lambda {e}: {self._element_key(e)}))"
        return (
            f"CASE WHEN regexp_full_match({t}, {quote(_PLAIN_STRINGS)}) THEN list_distinct(CAST({j} AS VARCHAR[])) "
            f"ELSE {general} END"
        )

    def _element_key(self, e: str) -> str:
        t = _text(e)
        return (
            f"CASE WHEN starts_with({t}, '\"') THEN {_unquote(e)} "
            f"WHEN {t} IN ('true', 'false', 'null') THEN {t} "
            f"WHEN starts_with({t}, '[') OR starts_with({t}, '{{') THEN NULL "
            f"ELSE {_render_number(f'TRY_CAST({t} AS DOUBLE)')} END"
        )


__all__ = ["DuckDBPrinter", "Scope", "quote"]
