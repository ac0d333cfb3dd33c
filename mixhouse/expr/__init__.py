"""Mixpanel's segmentation expression language (`where`, `on`, selectors), as a small compiler.

    text --tokens.py--> tokens --parser.py--> ast.py tree --kinds.py check--> plan.EventExpr
                                                      \\--> interpreter.py (reference semantics, in Python)

    where = EventExpr.parse('properties["plan"] == "Premium" and properties["amount"] > 50')

An `EventExpr` is what a query spec carries across the engine seam; each engine prints it in its own SQL
(the DuckDB printer: mixhouse/engine/duckdb/printer.py). This package knows no engine.

Rules and every choice Mixpanel's documentation leaves open: docs/expressions.md.
"""

from __future__ import annotations

from mixhouse.expr.ast import Expr
from mixhouse.expr.errors import (
    ExpressionError,
    ExpressionLimitError,
    ExpressionScopeError,
    ExpressionSyntaxError,
    ExpressionTypeError,
)
from mixhouse.expr.interpreter import UNDEFINED, DateTime, evaluate, number_value, passes, segment_keys
from mixhouse.expr.parser import parse
from mixhouse.expr.plan import EventExpr

__all__ = [
    "UNDEFINED",
    "DateTime",
    "EventExpr",
    "Expr",
    "ExpressionError",
    "ExpressionLimitError",
    "ExpressionScopeError",
    "ExpressionSyntaxError",
    "ExpressionTypeError",
    "evaluate",
    "number_value",
    "parse",
    "passes",
    "segment_keys",
]
