"""One error hierarchy for edgeproof.

    EdgeproofError                     base; ``status`` (HTTP) and a public ``message``
    ├── UsageError                     bad CLI arguments or config (exit 2)
    ├── ConfigError                    a config/scenario/strategy file is wrong (exit 2)
    ├── LogFormatError                 a log input cannot be read at all (file-level)
    ├── StrictModeError                --strict and bad lines were found (exit 2)
    ├── RequestError                   a bad image request (4xx with a JSON body)
    │   ├── BadRequest          400    unknown/malformed op, traversal, over max size
    │   ├── NotFound            404    missing source
    │   ├── PayloadTooLarge     413    source over the byte limit
    │   ├── Unprocessable       422    not an image, corrupt, over the pixel limit
    │   └── Forbidden           403    bad or missing signature
    ├── Overloaded              503    load shedding / deadline exceeded (carries retry_after)
    └── StoreError                     a source/derivative store failed (I/O, S3)

Library errors (pyvips, aiohttp, pyarrow, botocore) are translated into these at one boundary
per area, with ``raise ... from err``; messages are public and never leak internals.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "ConfigError",
    "EdgeproofError",
    "Forbidden",
    "LogFormatError",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "RequestError",
    "StoreError",
    "StrictModeError",
    "Unprocessable",
    "UsageError",
]


class EdgeproofError(Exception):
    """Base of every error edgeproof raises on purpose."""

    status: int = 500
    error: str = "internal_error"
    exit_code: int = 1

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_json(self) -> dict[str, str]:
        """The public JSON body: ``{"error": ..., "detail": ...}``."""
        return {"error": self.error, "detail": self.detail or self.message}


class UsageError(EdgeproofError):
    error = "usage"
    exit_code = 2


class ConfigError(EdgeproofError):
    error = "config"
    exit_code = 2


class LogFormatError(EdgeproofError):
    error = "log_format"


class StrictModeError(EdgeproofError):
    error = "bad_lines"
    exit_code = 2


class RequestError(EdgeproofError):
    status = 400
    error = "bad_request"


class BadRequest(RequestError):
    status = 400
    error = "bad_request"


class NotFound(RequestError):
    status = 404
    error = "not_found"


class PayloadTooLarge(RequestError):
    status = 413
    error = "payload_too_large"


class Unprocessable(RequestError):
    status = 422
    error = "unprocessable"


class Forbidden(RequestError):
    status = 403
    error = "forbidden"


class Overloaded(EdgeproofError):
    status = 503
    error = "overloaded"

    def __init__(self, message: str, *, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after


class StoreError(EdgeproofError):
    status = 502
    error = "store"
