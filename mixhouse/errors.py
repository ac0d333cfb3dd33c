"""The errors the domain raises. They know nothing of HTTP bodies: each class carries a status and a
stable machine `code` (class attributes, never set on an instance), and the HTTP layer renders the
message in the envelope of the API family that was called.

    MixhouseError                 500  internal_error
    ├── BadRequest                400  bad_request          malformed or invalid input
    │   ├── MissingParameter      400  missing_parameter    a required parameter is absent
    │   ├── ExpressionError       400  invalid_expression   a bad where/on (mixhouse.expr.errors)
    │   └── ProfileError          400  invalid_profile_update
    ├── Unauthorized              401  unauthorized         no or wrong credentials
    ├── Forbidden                 403  forbidden            valid credentials, not allowed here
    ├── NotFound                  404  not_found            no such route or object
    ├── MethodNotAllowed          405  method_not_allowed   the route exists, not with this method
    ├── PayloadTooLarge           413  payload_too_large    body or batch over Mixpanel's limits
    ├── RateLimited               429  rate_limited         over a limit; carries retry_after seconds
    │   └── ExportsBusy           503  exports_busy         every export slot is taken (retryable)
    ├── NotSupportedByEngine      501  not_supported_by_engine  the configured engine cannot answer this yet
    ├── Unavailable               503  unavailable          cannot take the write now (retryable)
    ├── QueryTimedOut             504  query_timed_out      past the query's deadline
    └── SettingsError             500  invalid_setting      a bad server setting (mixhouse.settings)

docs/errors.md lists every class; tests/test_errors.py checks that list against the code.
"""

from __future__ import annotations

from typing import ClassVar


class MixhouseError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        """The text an answer carries (the message; expression errors add the caret excerpt)."""
        return self.message


class BadRequest(MixhouseError):
    status = 400
    code = "bad_request"


class MissingParameter(BadRequest):
    code = "missing_parameter"

    def __init__(self, name: str) -> None:
        super().__init__(f"Missing required parameter: {name}")
        self.parameter = name


class Unauthorized(MixhouseError):
    status = 401
    code = "unauthorized"


class Forbidden(MixhouseError):
    status = 403
    code = "forbidden"


class NotFound(MixhouseError):
    status = 404
    code = "not_found"


class MethodNotAllowed(MixhouseError):
    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(MixhouseError):
    status = 413
    code = "payload_too_large"


class RateLimited(MixhouseError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotSupportedByEngine(MixhouseError):
    """The configured storage engine does not implement this analysis or operation yet (docs/scale-out.md
    lists what each engine answers); the same request works on the embedded engine."""

    status = 501
    code = "not_supported_by_engine"


class Unavailable(MixhouseError):
    status = 503
    code = "unavailable"


class SettingsError(MixhouseError):
    """A setting (flag, environment variable or config file entry) that cannot be used: the message is
    one line naming where it came from. The server refuses to start."""

    code = "invalid_setting"
