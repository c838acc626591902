"""One error hierarchy for edgeproof, and the one exit-status contract of the ``edgeproof`` command.

Exit statuses (every command, so a cron job or CI step can tell a crash from a missed week):

    EXIT_OK          0   success; the target was met, every gate passed
    EXIT_MISSED      1   the target was missed or a gate failed: only a command's own verdict returns it
    EXIT_USAGE       2   bad usage, bad config or unreadable input (argparse errors are 2 too)
    EXIT_INTERNAL    3   internal error: an unexpected exception, i.e. a bug (``--debug`` shows the traceback)
    EXIT_INCOMPLETE  4   incomplete data: a verdict was reached over data with gaps

No error class maps to 1: an exception means the command could not reach a verdict, and a verdict
of "missed" must never be confused with "could not tell". ``__init_subclass__`` refuses a subclass
whose ``exit_code`` is 0 or 1 or outside the contract.

    EdgeproofError                     base; ``status`` (HTTP), a public ``message``; exit 3
    ├── UsageError                     bad CLI arguments or config (exit 2)
    ├── ConfigError                    a config/scenario/strategy file is wrong (exit 2)
    │   └── ConfigTypeError            a config value of the wrong type (also a TypeError)
    ├── LogFormatError                 a log input cannot be read at all (file-level; exit 2)
    ├── StrictModeError                --strict and bad lines were found (exit 2)
    ├── IncompleteData                 a verdict over data with gaps (exit 4)
    ├── RequestError                   a bad image request (4xx with a JSON body; exit 2)
    │   ├── BadRequest          400    unknown/malformed op, traversal, over max size
    │   ├── NotFound            404    missing source
    │   ├── PayloadTooLarge     413    source over the byte limit
    │   ├── Unprocessable       422    not an image, corrupt, over the pixel limit
    │   ├── Forbidden           403    bad or missing signature
    │   ├── MethodNotAllowed    405    a method other than GET/HEAD
    │   ├── RequestTimeout      408    the request head did not arrive in time
    │   ├── UriTooLong          414    a URL over the limit (never echoed back)
    │   └── HeaderTooLarge      431    a request header line over the limit
    ├── Overloaded              503    load shedding / deadline exceeded (carries retry_after; exit 3)
    ├── AwsError                       an AWS API call failed: refused input, credentials, endpoint (exit 2)
    └── StoreError                     a source/derivative store failed (I/O, S3; exit 2)
        ├── BadPresetItem       502    a presets-table (DynamoDB) item that is no valid preset/policy
        └── PresetsUnavailable  503    the presets table cannot be read (unreachable, throttled, missing)

Library errors (pyvips, aiohttp, pyarrow, botocore) are translated into these at one boundary
per area, with ``raise ... from err``; messages are public and never leak internals.

Every JSON error body edgeproof sends (origin, edge, edge admin API) is ``{"error": CODE, "detail":
TEXT}``, made here and nowhere else: :meth:`EdgeproofError.to_json` / :meth:`EdgeproofError.to_body`
for an error of the tree, :func:`error_json` / :func:`error_body` for an answer the edge makes
that is no exception of ours (an origin failure it reports, a capacity refusal, a drain abort).
"""

from __future__ import annotations

import json

__all__ = [
    "ERROR_EXIT_CODES",
    "EXIT_INCOMPLETE",
    "EXIT_INTERNAL",
    "EXIT_MISSED",
    "EXIT_OK",
    "EXIT_STATUSES",
    "EXIT_USAGE",
    "AwsError",
    "BadPresetItem",
    "BadRequest",
    "ConfigError",
    "ConfigTypeError",
    "EdgeproofError",
    "Forbidden",
    "HeaderTooLarge",
    "IncompleteData",
    "LogFormatError",
    "MethodNotAllowed",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "PresetsUnavailable",
    "RequestError",
    "RequestTimeout",
    "StoreError",
    "StrictModeError",
    "Unprocessable",
    "UriTooLong",
    "UsageError",
    "error_body",
    "error_json",
]


EXIT_OK = 0
EXIT_MISSED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INCOMPLETE = 4

#: status -> its meaning, in the words every ``--help`` epilog and the README table use
EXIT_STATUSES: dict[int, str] = {
    EXIT_OK: "success: the target was met, every gate passed",
    EXIT_MISSED: "the target was missed or a gate failed (the command's verdict)",
    EXIT_USAGE: "bad usage, bad config or unreadable input",
    EXIT_INTERNAL: "internal error; --debug or EDGEPROOF_DEBUG=1 prints the traceback",
    EXIT_INCOMPLETE: "incomplete data: the verdict is over data with gaps",
}

#: the statuses an exception may carry: not 0 (it is no success) and not 1 (it is no verdict)
ERROR_EXIT_CODES: frozenset[int] = frozenset({EXIT_USAGE, EXIT_INTERNAL, EXIT_INCOMPLETE})


def error_json(error: str, detail: str) -> dict[str, str]:
    """The one shape of a JSON error body: ``{"error": CODE, "detail": TEXT}`` (CODE is a stable
    machine word, TEXT a public sentence: no paths, endpoints or tracebacks)."""
    return {"error": error, "detail": detail}


def error_body(error: str, detail: str) -> bytes:
    """:func:`error_json` encoded, for a server that writes its bytes itself (the edge, the origin's
    408 on a raw transport); sent as ``application/json``."""
    return json.dumps(error_json(error, detail)).encode()


class EdgeproofError(Exception):
    """Base of every error edgeproof raises on purpose.

    The base is exit 3 (internal): an error raised on purpose but not classified as usage or input
    is still a failure to reach a verdict, never "target missed".
    """

    status: int = 500
    error: str = "internal_error"
    exit_code: int = EXIT_INTERNAL

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.exit_code not in ERROR_EXIT_CODES:
            raise TypeError(
                f"{cls.__qualname__}.exit_code = {cls.exit_code!r}: an error must exit with one of "
                f"{sorted(ERROR_EXIT_CODES)} (1 is reserved for a command's own 'target missed' verdict)"
            )

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_json(self) -> dict[str, str]:
        """The public JSON body: ``{"error": ..., "detail": ...}`` (:func:`error_json`)."""
        return error_json(self.error, self.detail or self.message)

    def to_body(self) -> bytes:
        """:meth:`to_json` encoded (:func:`error_body`)."""
        return error_body(self.error, self.detail or self.message)


class UsageError(EdgeproofError):
    error = "usage"
    exit_code = EXIT_USAGE


class ConfigError(EdgeproofError):
    error = "config"
    exit_code = EXIT_USAGE


class ConfigTypeError(ConfigError, TypeError):
    """A config value of the wrong type (:mod:`edgeproof.settings`). Also a TypeError, so callers that
    already turn TypeError into their own ConfigError (with the file name in front) keep doing so."""


class LogFormatError(EdgeproofError):
    """A log input cannot be read at all: unreadable input, so exit 2."""

    error = "log_format"
    exit_code = EXIT_USAGE


class StrictModeError(EdgeproofError):
    error = "bad_lines"
    exit_code = EXIT_USAGE


class IncompleteData(EdgeproofError):
    """A verdict was reached over data with gaps (missing hours, unreadable files): exit 4.

    Distinct from 1 so that an alert can say "we could not see the whole week" rather than
    "the week missed its target".
    """

    error = "incomplete_data"
    exit_code = EXIT_INCOMPLETE


class RequestError(EdgeproofError):
    """A bad image request; from a command (``origin sign``, ``strategies apply``) that is bad input: exit 2."""

    status = 400
    error = "bad_request"
    exit_code = EXIT_USAGE


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


class MethodNotAllowed(RequestError):
    status = 405
    error = "method_not_allowed"


class RequestTimeout(RequestError):
    """The request line and headers did not arrive within the header-read timeout."""

    status = 408
    error = "request_timeout"


class UriTooLong(RequestError):
    """A request-target over the URL limit (8,192 bytes, CloudFront's "Maximum length of a URL")."""

    status = 414
    error = "uri_too_long"


class HeaderTooLarge(RequestError):
    status = 431
    error = "request_header_fields_too_large"


class Overloaded(EdgeproofError):
    status = 503
    error = "overloaded"

    def __init__(self, message: str, *, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after


class AwsError(EdgeproofError):
    """An AWS API call (CloudFront's function API, …) failed: the service refused the request, the
    credentials are missing or refused, or the endpoint cannot be reached; exit 2. A gate that the
    call's *answer* fails is a verdict (exit 1), never this error."""

    status = 502
    error = "aws"
    exit_code = EXIT_USAGE


class StoreError(EdgeproofError):
    """A store cannot be opened or read (missing folder, unsupported URL, S3 failure): input, exit 2."""

    status = 502
    error = "store"
    exit_code = EXIT_USAGE


class BadPresetItem(StoreError):
    """An item of the presets table that is no valid preset or policy: the origin answers 502 naming
    the item (a config error in the table, not the client's); ``origin presets list`` exits 2."""

    status = 502
    error = "bad_preset_item"


class PresetsUnavailable(StoreError):
    """The presets table cannot be read (endpoint unreachable, throttled, no such table, access
    denied): 503 from the origin when the presets file has no fallback; exit 2 from a command."""

    status = 503
    error = "presets_unavailable"
