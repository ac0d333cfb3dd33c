"""Expressions in ClickHouse SQL: the three forms a query needs from an `EventExpr`.

sql = compile_filter(spec.where, Scope.events("e"))        # UInt8, 1 only for boolean true
keys = compile_segment_key(spec.on, Scope.events("e"))    # Array(String) to arrayJoin
"""

from __future__ import annotations

import dataclasses

from mixhouse.engine.clickhouse.printer import ClickHousePrinter
from mixhouse.engine.clickhouse.scope import PROFILE_ALIAS, Scope
from mixhouse.expr import ast
from mixhouse.expr.parser import parse
from mixhouse.expr.plan import EventExpr


def _tree(expr: EventExpr | ast.Expr | str, scope: Scope) -> tuple[ast.Expr, str, Scope]:
    if isinstance(expr, EventExpr):
        if expr.timezone != scope.timezone:
            scope = dataclasses.replace(scope, timezone=expr.timezone)
        return expr.tree, expr.text, scope
    if isinstance(expr, str):
        return parse(expr), expr, scope
    return expr, "", scope


def compile_filter(expr: EventExpr | ast.Expr | str, scope: Scope) -> str:
    tree, text, scope = _tree(expr, scope)
    return ClickHousePrinter(scope, text).filter(ast.filter_form(tree))


def compile_segment_key(expr: EventExpr | ast.Expr | str, scope: Scope) -> str:
    tree, text, scope = _tree(expr, scope)
    return ClickHousePrinter(scope, text).segment_key(tree)


def compile_number(expr: EventExpr | ast.Expr | str, scope: Scope) -> str:
    tree, text, scope = _tree(expr, scope)
    return ClickHousePrinter(scope, text).number(tree)


__all__ = ["PROFILE_ALIAS", "Scope", "compile_filter", "compile_number", "compile_segment_key"]
