"""Decoding what the ingestion endpoints receive.

Seven encodings reach them (observed from the official SDKs and common export/import tools, docs/clients.md): form `data=` with raw JSON, base64 or
url-encoded JSON; `?data=` on GET; a raw JSON array; the same gzip-compressed; a `text/plain`
sendBeacon body holding `data=...`; and NDJSON for /import. One object or an array of them.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any
from urllib.parse import parse_qsl

import orjson

from mixhouse.errors import BadRequest, PayloadTooLarge

MAX_BODY_BYTES = 2 * 1024 * 1024  # Mixpanel's 413 reads "request exceeds max limit of 2097152 bytes"


def too_large(limit: int = MAX_BODY_BYTES) -> PayloadTooLarge:
    return PayloadTooLarge(f"request exceeds max limit of {limit} bytes")


def decompress(body: bytes, content_encoding: str | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body with its Content-Encoding removed, refusing anything that inflates past `limit`."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):  # mixpanel-import sends an empty header
        if len(body) > limit:
            raise too_large(limit)
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BadRequest(f"unsupported Content-Encoding: {encoding}")
    wbits = 47 if encoding != "deflate" else 15  # 47: gzip or zlib header, auto-detected
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise too_large(limit)
        out += inflater.flush()
    except zlib.error as exc:
        raise BadRequest(f"request body is not valid {encoding}: {exc}") from exc
    if not inflater.eof:
        raise BadRequest(f"request body is not valid {encoding}: truncated stream")
    if len(out) > limit:
        raise too_large(limit)
    return out


def looks_like_json(body: bytes) -> bool:
    stripped = body.lstrip()
    return stripped[:1] in (b"[", b"{")


def parse_form(body: bytes) -> dict[str, str]:
    """A url-encoded form, whatever Content-Type said (sendBeacon sends text/plain)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("request body is not valid UTF-8") from exc
    return dict(parse_qsl(text, keep_blank_values=True))


def parse_json_body(body: bytes) -> Any:
    """A JSON document, or NDJSON (one object per line) which becomes a list."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    lines = [line for line in body.splitlines() if line.strip()]
    if len(lines) > 1:
        try:
            return [orjson.loads(line) for line in lines]
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"Invalid JSON Format: {exc}") from exc
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Invalid JSON Format: {exc}") from exc


def decode_data(value: str) -> Any:
    """The `data` parameter: raw JSON first, else base64 (standard or URL-safe) of JSON."""
    stripped = value.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"data, not valid JSON: {exc}") from exc
    # A '+' of base64 sent unescaped in a form arrives as a space.
    compact = stripped.replace(" ", "+").replace("\n", "").replace("\r", "")
    padded = compact + "=" * (-len(compact) % 4)
    for altchars in (None, b"-_"):
        try:
            raw = base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"data, not valid JSON after base64 decoding: {exc}") from exc
    raise BadRequest("data, not valid JSON or base64")


def as_records(payload: Any) -> list[Any]:
    """One object or an array of objects, as a list."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        return [payload]
    raise BadRequest("data must be a JSON object or an array of objects")
