"""Reading a request the way Mixpanel's clients send it: parameters from the query string, a form
body (whatever its Content-Type) or a JSON body, with the body size capped while it streams in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request

from mixhouse.domain import payloads


@dataclass
class Incoming:
    params: dict[str, str]
    json_body: Any = None
    body: bytes = b""
    form: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name, default)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.params.get(name)
        if value is None or value == "":
            return default
        return value.strip().lower() in ("1", "true", "yes")


async def read_raw_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise payloads.too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_incoming(request: Request, *, limit: int = payloads.MAX_BODY_BYTES) -> Incoming:
    params = dict(request.query_params)
    if request.method in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return Incoming(params=params)
    raw = await read_raw_body(request, limit)
    body = payloads.decompress(raw, request.headers.get("content-encoding"), limit)
    incoming = Incoming(params=params, body=body)
    if not body.strip():
        return incoming
    if payloads.looks_like_json(body):
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
        params.update(incoming.form)
    return incoming
