"""The one exception tree of the client.

    MixpanelError                 anything this client raises
    ├── ConfigurationError        the client was set up wrong (no credentials, no project id, bad region)
    ├── TransportError            no HTTP answer: connection refused, dropped, timed out (after retries)
    └── APIError                  an HTTP answer with an error status; carries Mixpanel's error body
        ├── BadRequest            400 (and 413, 422): the request is wrong, never retried
        ├── AuthenticationFailed  401: the credentials are wrong, never retried
        ├── PermissionDenied      403: the credentials lack a role on the project, never retried
        ├── NotFound              404
        ├── RateLimited           429, once retries or the retry budget ran out
        └── ServerError           5xx (502 and 503 only after retries ran out)

`APIError.body` is the parsed JSON error body (or the text when it is not JSON) exactly as the server sent
it, and `APIError.message` its `error` field, so `{"request": ..., "error": ...}` (Query API),
`{"code", "error", "status", "failed_records"}` (`/import`) and `{"status": "error", "error"}` (App API)
all read the same way.
"""

from __future__ import annotations

from typing import Any


class MixpanelError(Exception):
    """Base of every error the client raises."""


class ConfigurationError(MixpanelError):
    """The client cannot make this call as configured."""


class TransportError(MixpanelError):
    """No HTTP response: the connection failed, was dropped or timed out, on every attempt."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class APIError(MixpanelError):
    """An HTTP error status, with the body the server sent."""

    def __init__(self, status: int, body: Any, *, method: str, url: str, attempts: int = 1) -> None:
        self.status = status
        self.body = body
        self.method = method
        self.url = url
        self.attempts = attempts
        super().__init__(f"{status} {self.message}")

    @property
    def message(self) -> str:
        """The server's `error` text (the whole body when it has none)."""
        if isinstance(self.body, dict):
            error = self.body.get("error")
            if error:
                return str(error)
        text = self.body if isinstance(self.body, str) else repr(self.body)
        return text.strip() or "(empty body)"


class BadRequest(APIError):
    """400 (also 413 and 422): the request itself is wrong; retrying cannot help."""


class AuthenticationFailed(APIError):
    """401: wrong or missing credentials."""


class PermissionDenied(APIError):
    """403: the credentials have no (or too small a) role on this project."""


class NotFound(APIError):
    """404: no such endpoint or saved object."""


class RateLimited(APIError):
    """429 after the retries allowed ran out."""


class ServerError(APIError):
    """A 5xx status."""


def api_error(status: int, body: Any, *, method: str, url: str, attempts: int) -> APIError:
    cls: type[APIError]
    if status == 401:
        cls = AuthenticationFailed
    elif status == 403:
        cls = PermissionDenied
    elif status == 404:
        cls = NotFound
    elif status == 429:
        cls = RateLimited
    elif status >= 500:
        cls = ServerError
    elif status >= 400:
        cls = BadRequest
    else:
        cls = APIError
    return cls(status, body, method=method, url=url, attempts=attempts)
