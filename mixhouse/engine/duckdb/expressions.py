"""Expressions in DuckDB SQL: where a record's parts are (`Scope`, aliases beside the SQL that defines
them) and the three forms a query needs from an `EventExpr`. Only this engine's modules call these.

    sql = compile_filter(spec.where, Scope.events("e"))          # WHERE fragment, TRUE only for boolean true
    keys = compile_segment_key(spec.on, Scope.events("e"))      # VARCHAR[] to unnest
"""

from __future__ import annotations

import dataclasses

from mixhouse.engine.duckdb.printer import DuckDBPrinter
from mixhouse.engine.duckdb.scope import PROFILE_ALIAS, Scope
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
    """SQL boolean that is TRUE exactly when the expression is boolean true (never NULL). The zone of an
    EventExpr wins over the scope's."""
    tree, text, scope = _tree(expr, scope)
    return DuckDBPrinter(scope, text).filter(ast.filter_form(tree))


def compile_segment_key(expr: EventExpr | ast.Expr | str, scope: Scope) -> str:
    """SQL `VARCHAR[]` of segment keys: one for a scalar, one per distinct element of a list, none if undefined."""
    tree, text, scope = _tree(expr, scope)
    return DuckDBPrinter(scope, text).segment_key(tree)


def compile_number(expr: EventExpr | ast.Expr | str, scope: Scope) -> str:
    """SQL DOUBLE: the value when it is a number, NULL otherwise."""
    tree, text, scope = _tree(expr, scope)
    return DuckDBPrinter(scope, text).number(tree)


__all__ = ["PROFILE_ALIAS", "Scope", "compile_filter", "compile_number", "compile_segment_key"]
