"""What crosses the engine seam for an expression: a parsed, kind-checked tree and the zone its dates are
read in. No SQL. An engine prints it in its own dialect (mixhouse/engine/<name>/); the domain asks the
tree questions (`reads("user")`, `reads_distinct_id()`) instead of searching compiled text.

    where = EventExpr.parse('properties["plan"] == "Premium"', timezone="Europe/Berlin")
    where.reads("user")            # False: no profile join needed
    key = EventExpr.property("browser")   # a segment key built as a tree: no name needs quoting
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from mixhouse.expr import ast
from mixhouse.expr.errors import ExpressionScopeError
from mixhouse.expr.kinds import DISTINCT_ID_NAMES
from mixhouse.expr.parser import parse

# Why a record cannot give what a source reads (the same words every engine's printer uses).
UNAVAILABLE: dict[ast.Source, str] = {
    "event": "event[...] is only available when filtering events",
    "user": "user[...] is not available in this query",
    "behaviors": "behaviors[...] is not available in this query",
}
LOOKUP_UNAVAILABLE = "lookup table values are not available in this query"


@dataclass(frozen=True)
class EventExpr:
    """A checked expression over one record (an event, or a profile in profile queries).

    tree       the syntax tree (mixhouse.expr.ast), already checked by the parser
    text       the user's own text, so that an engine's error (a limit, a scope) points a caret into it
    timezone   IANA zone in which a date string without an offset is read and datetime keys are rendered
    """

    tree: ast.Expr
    text: str = field(default="", compare=False)
    timezone: str = "UTC"

    @classmethod
    def parse(cls, text: str, *, timezone: str = "UTC", behaviors: bool = False) -> EventExpr:
        """Parse and check `text`; raises ExpressionError (a 400 with a caret) on any problem.
        `behaviors`: `behaviors["name"]` is known too (profile queries that name behaviours)."""
        return cls(parse(text, behaviors=behaviors), text, timezone)

    @classmethod
    def property(cls, name: str, *, source: ast.Source = "properties", timezone: str = "UTC") -> EventExpr:
        """`properties[name]` (or `user[name]`) as a tree, for keys named by a parameter."""
        return cls(ast.Property(source=source, name=name), "", timezone)

    def reads(self, source: ast.Source) -> bool:
        """Whether any part reads `source` (`"user"`: the profile must be joined)."""
        return any(isinstance(n, ast.Property) and n.source == source for n in ast.walk(self.tree))

    def reads_distinct_id(self) -> bool:
        """Whether the value depends on the record's id, so the id it sees must already be resolved."""
        return any(
            isinstance(n, ast.Property) and n.source != "behaviors" and n.name in DISTINCT_ID_NAMES
            for n in ast.walk(self.tree)
        )

    def behaviors(self) -> frozenset[str]:
        """The names of the behaviours read as `behaviors["name"]`."""
        return frozenset(n.name for n in ast.walk(self.tree) if isinstance(n, ast.Property) and n.source == "behaviors")

    def without(self, *sources: ast.Source) -> EventExpr:
        """This expression, if it reads none of `sources` (the records it runs on have no such part);
        otherwise ExpressionScopeError with its caret on the first read, before any engine sees it."""
        found = [n for n in ast.walk(self.tree) if isinstance(n, ast.Property) and n.source in sources]
        if found:
            first = min(found, key=lambda n: n.pos)
            assert isinstance(first, ast.Property)
            raise ExpressionScopeError(UNAVAILABLE[first.source], self.text, first.pos)
        return self

    def lookups(self) -> tuple[ast.Lookup, ...]:
        """The lookup-table reads (`properties["song_id"]["genre"]`), in the order they are written."""
        found = [n for n in ast.walk(self.tree) if isinstance(n, ast.Lookup)]
        return tuple(sorted(found, key=lambda n: n.pos))

    def bind_lookups(self, resolve: Callable[[ast.Lookup], ast.LookupRef | str]) -> EventExpr:
        """This expression with each lookup read bound to the table version `resolve` picks for it (the
        query's project decides: docs/lookup-tables.md). `resolve` answers a message when the read cannot
        be bound (no table mapped to the property, no such column): an ExpressionScopeError with its caret."""
        if not any(isinstance(n, ast.Lookup) for n in ast.walk(self.tree)):
            return self
        for node in self.lookups():
            found = resolve(node)
            if isinstance(found, str):
                raise ExpressionScopeError(found, self.text, node.pos)

        def bind(node: ast.Lookup) -> ast.Lookup:
            ref = resolve(node)
            assert isinstance(ref, ast.LookupRef)
            return dataclasses.replace(node, table=ref)

        return dataclasses.replace(self, tree=ast.replace_lookups(self.tree, bind))

    def filter_tree(self) -> ast.Expr:
        """The tree a filter evaluates (a bare property tests its truth: see ast.filter_form)."""
        return ast.filter_form(self.tree)


def reads_user(*exprs: EventExpr | None) -> bool:
    """Whether any of these expressions reads the user's profile."""
    return any(e is not None and e.reads("user") for e in exprs)


def reads_distinct_id(*exprs: EventExpr | None) -> bool:
    return any(e is not None and e.reads_distinct_id() for e in exprs)
