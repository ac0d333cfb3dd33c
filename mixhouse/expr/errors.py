"""Errors of the expression language.

    ExpressionError            every problem with a `where`/`on` expression (a 400 for the caller)
     ├── ExpressionSyntaxError    the text does not parse: bad token, bad literal, unknown function, arity
     ├── ExpressionTypeError      parses, but is statically wrong (e.g. `1 and true`)
     ├── ExpressionLimitError     too long, too deeply nested or too large to compile
     └── ExpressionScopeError     refers to something the caller's scope does not have (e.g. `user[...]`)

All carry the message, the 1-based column of the offending place and the expression, so the HTTP layer
can render them without knowing which stage failed. They are BadRequests of the one error tree
(mixhouse.errors, docs/errors.md): `str()` of one is the message with the caret excerpt, which is what
an answer carries. They stay ValueErrors too, for callers that catch those.
"""

from __future__ import annotations

from mixhouse.errors import BadRequest


class ExpressionError(BadRequest, ValueError):
    code = "invalid_expression"

    def __init__(self, message: str, expression: str, position: int = 0) -> None:
        self.expression = expression
        # Columns are 1-based, as a person counts them.
        self.column = max(1, min(position, len(expression)) + 1)
        super().__init__(message)

    def __str__(self) -> str:
        # Keep the excerpt on one line so the caret stays under the right character.
        line = self.expression.replace("\n", " ").replace("\r", " ").replace("\t", " ")
        if len(line) > 200:
            start = max(0, self.column - 100)
            excerpt = ("..." if start else "") + line[start : start + 200]
            caret_at = self.column - 1 - start + (3 if start else 0)
        else:
            excerpt, caret_at = line, self.column - 1
        return f"{self.message} at column {self.column}\n{excerpt}\n{' ' * caret_at}^"


class ExpressionSyntaxError(ExpressionError):
    code = "expression_syntax"


class ExpressionTypeError(ExpressionError):
    code = "expression_type"


class ExpressionLimitError(ExpressionError):
    code = "expression_limit"


class ExpressionScopeError(ExpressionError):
    code = "expression_scope"
