"""What crosses the engine seam for an expression: a parsed, kind-checked tree and the zone its dates are
read in. No SQL. An engine prints it in its own dialect (mixhouse/engine/<name>/); the domain asks the
tree questions (`reads("user")`, `reads_distinct_id()`) instead of searching compiled text.

    where = EventExpr.parse('properties["plan"] == "Premium"', timezone="Europe/Berlin")
    where.reads("user")            # False: no profile join needed
    key = EventExpr.property("browser")   # a segment key built as a tree: no name needs quoting
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mixhouse.expr import ast
from mixhouse.expr.kinds import DISTINCT_ID_NAMES
from mixhouse.expr.parser import parse


def _walk(tree: ast.Expr) -> list[ast.Expr]:
    nodes, stack = [], [tree]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(ast.children(node))
    return nodes


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
    def parse(cls, text: str, *, timezone: str = "UTC") -> EventExpr:
        """Parse and check `text`; raises ExpressionError (a 400 with a caret) on any problem."""
        return cls(parse(text), text, timezone)

    @classmethod
    def property(cls, name: str, *, source: ast.Source = "properties", timezone: str = "UTC") -> EventExpr:
        """`properties[name]` (or `user[name]`) as a tree, for keys named by a parameter."""
        return cls(ast.Property(source=source, name=name), "", timezone)

    def reads(self, source: ast.Source) -> bool:
        """Whether any part reads `source` (`"user"`: the profile must be joined)."""
        return any(isinstance(n, ast.Property) and n.source == source for n in _walk(self.tree))

    def reads_distinct_id(self) -> bool:
        """Whether the value depends on the record's id, so the id it sees must already be resolved."""
        return any(isinstance(n, ast.Property) and n.name in DISTINCT_ID_NAMES for n in _walk(self.tree))

    def filter_tree(self) -> ast.Expr:
        """The tree a filter evaluates (a bare property tests its truth: see ast.filter_form)."""
        return ast.filter_form(self.tree)


def reads_user(*exprs: EventExpr | None) -> bool:
    """Whether any of these expressions reads the user's profile."""
    return any(e is not None and e.reads("user") for e in exprs)


def reads_distinct_id(*exprs: EventExpr | None) -> bool:
    return any(e is not None and e.reads_distinct_id() for e in exprs)
