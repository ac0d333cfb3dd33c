"""The errors the domain raises. They know nothing of HTTP bodies: each carries a status and a
message, and the HTTP layer renders it in the envelope of the API family that was called.

    MixhouseError
    ├── BadRequest            400  malformed or invalid input
    │   └── MissingParameter  400  a required parameter is absent
    ├── Unauthorized          401  no or wrong credentials
    ├── Forbidden             403  valid credentials, not allowed here
    ├── NotFound              404  no such route or object
    ├── PayloadTooLarge       413  body or batch over Mixpanel's limits
    ├── RateLimited           429  over a limit; carries retry_after seconds
    └── Unavailable           503  the server cannot take the write now (retryable)
"""

from __future__ import annotations


class MixhouseError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(MixhouseError):
    status = 400


class MissingParameter(BadRequest):
    def __init__(self, name: str) -> None:
        super().__init__(f"Missing required parameter: {name}")
        self.parameter = name


class Unauthorized(MixhouseError):
    status = 401


class Forbidden(MixhouseError):
    status = 403


class NotFound(MixhouseError):
    status = 404


class PayloadTooLarge(MixhouseError):
    status = 413


class RateLimited(MixhouseError):
    status = 429

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(MixhouseError):
    status = 503
