"""Reading a request the way Mixpanel's clients send it: parameters from the query string, a form
body (whatever its Content-Type) or a JSON body, with the body size capped while it streams in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.types import Scope

from mixhouse.domain import payloads
from mixhouse.errors import BadRequest


@dataclass
class Incoming:
    params: dict[str, str]
    json_body: Any = None
    body: bytes = b""
    form: dict[str, str] = field(default_factory=dict)
    # A JSON array body left unparsed (`read_incoming(defer_array=True)`): `body` holds it, `json_body` is None.
    deferred: bool = False

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name, default)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.params.get(name)
        if value is None or value == "":
            return default
        return value.strip().lower() in ("1", "true", "yes")


def reject_nul(params: dict[str, str]) -> None:
    """A NUL byte in a parameter's name or value is refused (400): no Mixpanel parameter can hold one, and
    neither SQL string literals nor most clients' logs can carry it."""
    for name, value in params.items():
        if "\0" in name or "\0" in value:
            shown = name.replace("\0", "\\0")
            raise BadRequest(f"Invalid parameter: {shown} contains a NUL byte")


def reject_nul_in_json(value: Any, where: str = "body") -> None:
    """A NUL byte in any string (key or value) of a JSON body that describes a query or a saved object."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\0" in item:
                raise BadRequest(f"Invalid {where}: a string contains a NUL byte")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


async def read_raw_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise payloads.too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def query_params(scope: Scope) -> dict[str, str]:
    """The query string's parameters, the last of a repeated name winning: what `dict(request.query_params)`
    gives, without building Starlette's multi-dict (and nothing to parse for the common empty string)."""
    raw: bytes = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)) if raw else {}


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of the header `name` (lower case, as servers give names in the scope): what
    `request.headers.get(name)` answers, without building Starlette's `Headers`."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


_MEMO = "mixhouse.incoming"


async def read_incoming(
    request: Request, *, limit: int = payloads.MAX_BODY_BYTES, defer_array: bool = False
) -> Incoming:
    """The request's parameters and body, decoded once per request: a second call (the handler after the
    rate limiter read the body to find the project) answers the first call's result, or raises its error.
    `defer_array`: a JSON array body (which carries no parameters) is left for the caller to parse
    (`Incoming.deferred`; /import may hand it to a worker process, mixhouse/workers)."""
    state = request.scope.setdefault("state", {})
    memo: tuple[int, bool, Incoming | BaseException] | None = state.get(_MEMO)
    if memo is None or memo[0] != limit or memo[1] != defer_array:
        try:
            result: Incoming | BaseException = await _read_incoming(request, limit, defer_array)
        except Exception as exc:
            result = exc
        memo = state[_MEMO] = (limit, defer_array, result)
    if isinstance(memo[2], BaseException):
        raise memo[2]
    return memo[2]


async def _read_incoming(request: Request, limit: int, defer_array: bool = False) -> Incoming:
    scope = request.scope
    params = query_params(scope)
    reject_nul(params)
    if scope["method"] in ("GET", "HEAD", "OPTIONS"):
        return Incoming(params=params)
    raw = await read_raw_body(request, limit)
    body = payloads.decompress(raw, header(scope, b"content-encoding"), limit)
    incoming = Incoming(params=params, body=body)
    if not body.strip():
        return incoming
    if defer_array and body.lstrip()[:1] == b"[":
        incoming.deferred = True
    elif payloads.looks_like_json(body):
        incoming.json_body = payloads.parse_json_body(body)
        if isinstance(incoming.json_body, dict):
            # A JSON body of parameters: nested values become the JSON text a query string would carry.
            for key, value in incoming.json_body.items():
                try:
                    params[key] = value if isinstance(value, str) else orjson.dumps(value).decode()
                except orjson.JSONEncodeError:
                    continue  # nested too deeply to be a parameter; the records are validated on their own
    else:
        incoming.form = payloads.parse_form(body)
        reject_nul(incoming.form)
        params.update(incoming.form)
    return incoming
