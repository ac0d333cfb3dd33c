"""The page's static files, named by their content so that a browser keeps them until they change.

`index.html` names each script and style as `/static/<path>?v=<hash>`, the first 16 hex digits of the
file's SHA-256 at server start. A request whose `v` is the file's current hash is answered with
`Cache-Control: public, max-age=31536000, immutable`: a returning visitor loads the page's scripts and
styles from its cache without asking. Any other request for a static file (no `v`, or a stale one) gets
`no-cache`, so that it is revalidated (ETag) and never served stale. The page itself is `no-cache`: it is
small, and it is what names the current hashes.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
_REFERENCE = re.compile(r'(?P<attr>(?:href|src)=")/static/(?P<path>[^"?#]+)"')


def content_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@cache
def hashes(root: Path) -> dict[str, str]:
    """Every file under `root` (as a URL path relative to it) and its content hash, read once."""
    return {p.relative_to(root).as_posix(): content_hash(p) for p in sorted(root.rglob("*")) if p.is_file()}


@cache
def versioned_page(root: Path, name: str = "index.html") -> bytes:
    """The page with each `/static/<path>` reference given its file's `?v=<hash>`."""
    known = hashes(root)

    def version(m: re.Match[str]) -> str:
        path = m["path"]
        suffix = f"?v={known[path]}" if path in known else ""
        return f'{m["attr"]}/static/{path}{suffix}"'

    return _REFERENCE.sub(version, (root / name).read_text(encoding="utf-8")).encode()


class CacheByHash:
    """Wraps the static files' app: adds the cache headers above, and `X-Content-Type-Options: nosniff`."""

    def __init__(self, app: ASGIApp, root: Path) -> None:
        self.app = app
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, root_path = str(scope.get("path", "")), str(scope.get("root_path", ""))
        if root_path and path.startswith(root_path):  # Starlette's Mount keeps the full path since 0.33
            path = path[len(root_path) :]
        path = path.lstrip("/")
        asked = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("v", [""])[0]
        current = hashes(self.root).get(path)
        control = IMMUTABLE if current is not None and asked == current else REVALIDATE

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if message.get("status", 200) in (200, 304):
                    headers["Cache-Control"] = control
                headers["X-Content-Type-Options"] = "nosniff"
            await send(message)

        await self.app(scope, receive, send_with_headers)
