"""Parser: tokens -> typed tree, by precedence climbing.

Precedence, loosest first (https://developer.mixpanel.com/reference/segmentation-expressions; where it is silent, our choice): `or` < `and` < `not` < comparisons and `in` < `+ -` <
`* / %` < unary `-` < calls, accessors, parentheses. Binary operators are left-associative. `not` binds
looser than comparisons so `not "a" in properties["s"]` means `not ("a" in properties["s"])`.
"""

from __future__ import annotations

from typing import cast

from mixhouse.expr import ast
from mixhouse.expr.errors import ExpressionLimitError, ExpressionSyntaxError
from mixhouse.expr.kinds import DISTINCT_ID_NAMES, TIME_NAMES, check
from mixhouse.expr.tokens import T, Token, tokenize

# Deep enough for any real filter, shallow enough that no stage (all recursive) nears Python's stack limit.
MAX_DEPTH = 64

_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "==": 4, "!=": 4, ">": 4, ">=": 4, "<": 4, "<=": 4, "in": 4,
    "+": 5, "-": 5,
    "*": 6, "/": 6, "%": 6,
}  # fmt: skip
_NOT = 3
_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
_SOURCES = frozenset({"properties", "user", "event"})


def parse(text: str, *, behaviors: bool = False) -> ast.Expr:
    """Parse a `where`/`on` expression; raises ExpressionError (a subclass) on any problem.

    `behaviors`: `behaviors["name"]` is known too (a profile query that names behaviours), read as a
    Property of source "behaviors"; otherwise `behaviors` is an unknown identifier like any other."""
    if not isinstance(text, str):
        raise TypeError("expression must be a str")
    tree = _Parser(text, _SOURCES | {"behaviors"} if behaviors else _SOURCES).parse()
    if ast.depth(tree) > MAX_DEPTH:
        raise ExpressionLimitError(f"expression is nested too deeply (the limit is {MAX_DEPTH} levels)", text)
    check(tree, text)
    return tree


class _Parser:
    def __init__(self, text: str, sources: frozenset[str] = _SOURCES) -> None:
        self.text = text
        self.sources = sources
        self.tokens = tokenize(text)
        self.i = 0
        self.nesting = 0

    # -- helpers -------------------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind is not T.EOF:
            self.i += 1
        return tok

    def is_op(self, text: str) -> bool:
        return self.tok.kind in (T.OP, T.IDENT) and self.tok.text == text

    def error(self, message: str, tok: Token | None = None) -> ExpressionSyntaxError:
        return ExpressionSyntaxError(message, self.text, (tok or self.tok).pos)

    def expect(self, kind: T) -> Token:
        if self.tok.kind is not kind:
            raise self.error(f"expected {kind.value}, found {_describe(self.tok)}")
        return self.advance()

    def enter(self) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise ExpressionLimitError(
                f"expression is nested too deeply (the limit is {MAX_DEPTH} levels)", self.text, self.tok.pos
            )

    # -- grammar -------------------------------------------------------------------------------------
    def parse(self) -> ast.Expr:
        if self.tok.kind is T.EOF:
            raise self.error("empty expression")
        tree = self.expr(1)
        end = self.tokens[self.i]
        if end.kind is not T.EOF:
            raise self.error(f"expected an operator or the end of the expression, found {_describe(end)}")
        return tree

    def expr(self, min_prec: int) -> ast.Expr:
        self.enter()
        if self.is_op("not"):
            if min_prec > _NOT:
                raise self.error("'not' must be parenthesized here")
            tok = self.advance()
            left: ast.Expr = ast.Unary(op="not", operand=self.expr(_NOT), pos=tok.pos)
        else:
            left = self.unary()
        while True:
            tok = self.tok
            prec = _PRECEDENCE.get(tok.text) if tok.kind in (T.OP, T.IDENT) else None
            if prec is None or prec < min_prec:
                break
            self.advance()
            right = self.expr(prec + 1)
            if tok.text in ("and", "or"):
                op = cast(ast.BoolOp, tok.text)
                operands = (*left.operands, right) if isinstance(left, ast.Logical) and left.op == op else (left, right)
                left = ast.Logical(op=op, operands=operands, pos=left.pos)
            else:
                left = ast.Binary(op=cast(ast.BinaryOp, tok.text), left=left, right=right, pos=left.pos)
        self.nesting -= 1
        return left

    def unary(self) -> ast.Expr:
        if self.is_op("-"):
            tok = self.advance()
            self.enter()
            operand = self.unary()
            self.nesting -= 1
            if isinstance(operand, ast.Number):
                # Fold so `-1` is a literal (list literals need it); `0 - x` semantics are identical.
                return ast.Number(value=-operand.value, pos=tok.pos)
            return ast.Unary(op="-", operand=operand, pos=tok.pos)
        return self.primary()

    def primary(self) -> ast.Expr:
        tok = self.tok
        if tok.kind is T.NUMBER:
            self.advance()
            return ast.Number(value=cast(float, tok.value), pos=tok.pos)
        if tok.kind is T.STRING:
            self.advance()
            return ast.String(value=cast(str, tok.value), pos=tok.pos)
        if tok.kind is T.LPAREN:
            self.advance()
            inner = self.expr(1)
            self.expect(T.RPAREN)
            return inner
        if tok.kind is T.LBRACKET:
            return self.list_literal()
        if tok.kind is not T.IDENT:
            raise self.error(f"expected an expression, found {_describe(tok)}")
        if tok.text in ("true", "false"):
            self.advance()
            return ast.Boolean(value=tok.text == "true", pos=tok.pos)
        if tok.text in self.sources:
            return self.accessor()
        if self.tokens[self.i + 1].kind is T.LPAREN:
            return self.call()
        if tok.text in _KEYWORDS:
            raise self.error(f"expected an expression, found {_describe(tok)}")
        raise self.error(f'unknown identifier {tok.text!r}; properties are written properties["name"]')

    def accessor(self) -> ast.Property | ast.Lookup:
        src = self.advance()
        if self.tok.kind is not T.LBRACKET:
            raise self.error(f"expected '[' after {src.text!r}, as in {src.text}[\"name\"]")
        self.advance()
        name = self.tok
        if name.kind is not T.STRING:
            raise self.error(f"property name must be a string literal, found {_describe(name)}")
        self.advance()
        self.expect(T.RBRACKET)
        value = cast(str, name.value)
        if src.text == "event" and value not in TIME_NAMES | DISTINCT_ID_NAMES:
            raise self.error(f'unknown event field {value!r}; event[...] knows "$time" and "$distinct_id"', name)
        prop = ast.Property(source=cast(ast.Source, src.text), name=value, pos=src.pos)
        if self.tok.kind is not T.LBRACKET:
            return prop
        # properties["song_id"]["genre"]: a column of the lookup table mapped to the property.
        if prop.source not in ("properties", "user"):
            raise self.error(
                f"only properties[...] and user[...] can be read through a lookup table, not {src.text}[...]"
            )
        self.advance()
        column = self.tok
        if column.kind is not T.STRING:
            raise self.error(f"lookup table column must be a string literal, found {_describe(column)}")
        self.advance()
        self.expect(T.RBRACKET)
        if self.tok.kind is T.LBRACKET:
            raise self.error("a lookup table value has no properties of its own")
        return ast.Lookup(base=prop, column=cast(str, column.value), pos=src.pos)

    def call(self) -> ast.Expr:
        fn = self.advance()
        arity = ast.FUNCTIONS.get(fn.text)
        if arity is None:
            known = ", ".join(sorted(ast.FUNCTIONS))
            raise self.error(f"unknown function {fn.text!r} (known: {known})", fn)
        self.advance()  # (
        self.enter()
        args: list[ast.Expr] = []
        if self.tok.kind is not T.RPAREN:
            args.append(self.expr(1))
            while self.tok.kind is T.COMMA:
                self.advance()
                args.append(self.expr(1))
        self.expect(T.RPAREN)
        self.nesting -= 1
        if len(args) != arity:
            plural = "argument" if arity == 1 else "arguments"
            raise self.error(f"function {fn.text!r} takes {arity} {plural}, got {len(args)}", fn)
        return ast.Call(func=fn.text, args=tuple(args), pos=fn.pos)

    def list_literal(self) -> ast.Expr:
        start = self.advance()
        self.enter()
        items: list[ast.Scalar] = []
        if self.tok.kind is not T.RBRACKET:
            while True:
                item_tok = self.tok
                item = self.expr(1)
                if not isinstance(item, ast.Number | ast.String | ast.Boolean):
                    raise self.error("list elements must be number, string or boolean literals", item_tok)
                items.append(item)
                if self.tok.kind is not T.COMMA:
                    break
                self.advance()
        self.expect(T.RBRACKET)
        self.nesting -= 1
        return ast.List(items=tuple(items), pos=start.pos)


def _describe(tok: Token) -> str:
    if tok.kind in (T.EOF, T.LBRACKET, T.RBRACKET, T.LPAREN, T.RPAREN, T.COMMA):
        return str(tok.kind.value)
    return repr(tok.text)
