"""The page's static files, named by their content so that a browser keeps them until they change.

`index.html` names each script and style as `/static/<path>?v=<hash>`, the first 16 hex digits of the
file's SHA-256 at server start. A request whose `v` is the file's current hash is answered with
`Cache-Control: public, max-age=31536000, immutable`: a returning visitor loads the page's scripts and
styles from its cache without asking. Any other request for a static file (no `v`, or a stale one) gets
`no-cache`, so that it is revalidated (ETag) and never served stale. The page itself is `no-cache`: it is
small, and it is what names the current hashes. The files are read and compressed once, at the first
request, and served from memory.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

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


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # None when compressing does not pay (small files)
    media_type: str
    etag: str


MIN_GZIP_BYTES = 512


@cache
def assets(root: Path) -> dict[str, Asset]:
    """Every file under `root`, read and compressed once (gzip level 9): a request costs no disk read and no
    compression. The files change only with a new release, so with a server restart."""
    out = {}
    for path, digest in hashes(root).items():
        body = (root / path).read_bytes()
        packed = gzip.compress(body, compresslevel=9, mtime=0) if len(body) >= MIN_GZIP_BYTES else None
        media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if media_type.startswith("text/") or media_type.endswith("javascript"):
            media_type += "; charset=utf-8"
        out[path] = Asset(
            body, packed if packed is not None and len(packed) < len(body) else None, media_type, f'"{digest}"'
        )
    return out


class StaticAssets:
    """Serves the files under `root` (GET and HEAD) from memory, gzip-compressed when the browser accepts
    it, with the cache headers above, an ETag (304 when it matches), and `X-Content-Type-Options: nosniff`.
    Only the files found at start exist: `..` or any other path is a 404."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        path, root_path = str(scope.get("path", "")), str(scope.get("root_path", ""))
        if root_path and path.startswith(root_path):  # Starlette's Mount keeps the full path since 0.33
            path = path[len(root_path) :]
        request = Request(scope)
        asset = assets(self.root).get(path.lstrip("/"))
        if request.method not in ("GET", "HEAD"):
            response: Response = PlainTextResponse("Method Not Allowed", status_code=405)
        elif asset is None:
            response = PlainTextResponse("Not Found", status_code=404)
        else:
            current = asset.etag.strip('"')
            headers = {
                "Cache-Control": IMMUTABLE if request.query_params.get("v") == current else REVALIDATE,
                "ETag": asset.etag,
                "Vary": "Accept-Encoding",
                "X-Content-Type-Options": "nosniff",
            }
            if asset.etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
                response = Response(status_code=304, headers=headers)
            elif asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
                headers["Content-Encoding"] = "gzip"
                response = Response(asset.gzipped, headers=headers, media_type=asset.media_type)
            else:
                response = Response(asset.body, headers=headers, media_type=asset.media_type)
        await response(scope, receive, send)
