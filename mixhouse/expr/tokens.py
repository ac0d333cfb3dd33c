"""Tokenizer: expression text -> a flat list of tokens with their positions."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

from mixhouse.expr.errors import ExpressionLimitError, ExpressionSyntaxError

# Long enough for any hand-written filter (and a few hundred `or`-ed alternatives); short enough that a
# hostile request cannot make us build a huge tree.
MAX_LENGTH = 20_000


class T(enum.Enum):
    NUMBER = "number"
    STRING = "string"
    IDENT = "identifier"
    OP = "operator"
    LBRACKET = "'['"
    RBRACKET = "']'"
    LPAREN = "'('"
    RPAREN = "')'"
    COMMA = "','"
    EOF = "end of expression"


@dataclass(frozen=True)
class Token:
    kind: T
    text: str  # the source text of the token
    pos: int  # 0-based offset into the expression
    value: str | float = ""  # decoded value of NUMBER / STRING tokens


# Two-character operators first, so `>=` is not read as `>` then `=`.
_OPERATORS = ("==", "!=", ">=", "<=", ">", "<", "+", "-", "*", "/", "%")
_PUNCT = {"[": T.LBRACKET, "]": T.RBRACKET, "(": T.LPAREN, ")": T.RPAREN, ",": T.COMMA}
# ASCII only: Python's \d and \w would accept other scripts' digits and letters.
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NUMBER_TAIL = re.compile(r"[0-9A-Za-z_.]")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise ExpressionLimitError(
            f"expression is too long ({len(text)} characters; the limit is {MAX_LENGTH})", text, MAX_LENGTH
        )
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c in "\"'":
            i = _string(text, i, tokens)
        elif c.isascii() and (c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit())):
            i = _number(text, i, tokens)
        elif c in _PUNCT:
            tokens.append(Token(_PUNCT[c], c, i))
            i += 1
        elif m := _IDENT.match(text, i):
            tokens.append(Token(T.IDENT, m.group(), i))
            i = m.end()
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                what = "'='; did you mean '=='?" if c == "=" else f"character {c!r}"
                raise ExpressionSyntaxError(f"unexpected {what}", text, i)
            tokens.append(Token(T.OP, op, i))
            i += len(op)
    tokens.append(Token(T.EOF, "", n))
    return tokens


def _number(text: str, i: int, out: list[Token]) -> int:
    m = _NUMBER.match(text, i)
    assert m is not None  # the caller saw a digit
    end = m.end()
    if end < len(text) and _NUMBER_TAIL.match(text, end):
        # `1.2.3`, `1e`, `12abc`: refuse rather than split into surprising tokens.
        while end < len(text) and _NUMBER_TAIL.match(text, end):
            end += 1
        raise ExpressionSyntaxError(f"bad number literal {text[i:end]!r}", text, i)
    value = float(m.group())
    if not math.isfinite(value):
        raise ExpressionSyntaxError(f"bad number literal {m.group()!r}: out of range", text, i)
    out.append(Token(T.NUMBER, m.group(), i, value))
    return end


def _string(text: str, start: int, out: list[Token]) -> int:
    quote = text[start]
    chars: list[str] = []
    i, n = start + 1, len(text)
    while True:
        if i >= n:
            raise ExpressionSyntaxError("unterminated string literal", text, start)
        c = text[i]
        if c == quote:
            break
        if c == "\\":
            if i + 1 >= n:
                raise ExpressionSyntaxError("unterminated string literal", text, start)
            e = text[i + 1]
            if e in _ESCAPES:
                chars.append(_ESCAPES[e])
                i += 2
                continue
            if e != "u":
                raise ExpressionSyntaxError(f"bad string literal: unknown escape '\\{e}'", text, i)
            code = _hex4(text, i)
            i += 6
            if 0xD800 <= code < 0xDC00:
                # A UTF-16 surrogate pair written as two escapes, as JSON does.
                low = _hex4(text, i) if text.startswith("\\u", i) else -1
                if not 0xDC00 <= low < 0xE000:
                    raise ExpressionSyntaxError("bad string literal: unpaired surrogate", text, i - 6)
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                i += 6
            elif 0xDC00 <= code < 0xE000:
                raise ExpressionSyntaxError("bad string literal: unpaired surrogate", text, i - 6)
            c = chr(code)
        elif 0xD800 <= ord(c) < 0xE000:
            raise ExpressionSyntaxError("bad string literal: unpaired surrogate", text, i)
        else:
            i += 1
        if c == "\0":
            # DuckDB strings cannot hold NUL; refusing it keeps SQL and interpreter in agreement.
            raise ExpressionSyntaxError("bad string literal: NUL character", text, i - 1)
        chars.append(c)
    out.append(Token(T.STRING, text[start : i + 1], start, "".join(chars)))
    return i + 1


def _hex4(text: str, i: int) -> int:
    digits = text[i + 2 : i + 6]
    if len(digits) != 4 or not all(d in "0123456789abcdefABCDEF" for d in digits):
        raise ExpressionSyntaxError("bad string literal: '\\u' needs four hex digits", text, i)
    return int(digits, 16)
