"""Mixpanel's segmentation expression language (`where`, `on`, selectors), as a small compiler.

    text --tokens.py--> tokens --parser.py--> ast.py tree --kinds.py check--> printers/<engine>.py --> SQL
                                                      \\--> interpreter.py (reference semantics, in Python)

    tree = parse('properties["plan"] == "Premium" and properties["amount"] > 50')
    sql = compile_filter(tree, Scope.events("e"))         # WHERE fragment, TRUE only for boolean true
    keys = compile_segment_key(parse('properties["tags"]'), Scope.events("e"))  # VARCHAR[] to unnest

Rules and every choice Mixpanel's documentation leaves open: docs/expressions.md.
"""

from __future__ import annotations

from mixhouse.expr.ast import Expr, filter_form
from mixhouse.expr.errors import (
    ExpressionError,
    ExpressionLimitError,
    ExpressionScopeError,
    ExpressionSyntaxError,
    ExpressionTypeError,
)
from mixhouse.expr.interpreter import UNDEFINED, DateTime, evaluate, number_value, passes, segment_keys
from mixhouse.expr.parser import parse
from mixhouse.expr.printers import Scope, printer


def _tree(expr: Expr | str) -> tuple[Expr, str]:
    return (parse(expr), expr) if isinstance(expr, str) else (expr, "")


def compile_filter(expr: Expr | str, scope: Scope, *, dialect: str = "duckdb") -> str:
    """SQL boolean that is TRUE exactly when the expression is boolean true (never NULL)."""
    tree, text = _tree(expr)
    return printer(dialect, scope, text).filter(filter_form(tree))


def compile_segment_key(expr: Expr | str, scope: Scope, *, dialect: str = "duckdb") -> str:
    """SQL `VARCHAR[]` of segment keys: one for a scalar, one per distinct element of a list, none if undefined."""
    tree, text = _tree(expr)
    return printer(dialect, scope, text).segment_key(tree)


def compile_number(expr: Expr | str, scope: Scope, *, dialect: str = "duckdb") -> str:
    """SQL DOUBLE: the value when it is a number, NULL otherwise."""
    tree, text = _tree(expr)
    return printer(dialect, scope, text).number(tree)


__all__ = [
    "UNDEFINED",
    "DateTime",
    "Expr",
    "ExpressionError",
    "ExpressionLimitError",
    "ExpressionScopeError",
    "ExpressionSyntaxError",
    "ExpressionTypeError",
    "Scope",
    "compile_filter",
    "compile_number",
    "compile_segment_key",
    "evaluate",
    "number_value",
    "parse",
    "passes",
    "segment_keys",
]
