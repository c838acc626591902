"""The origin's JSON error answers: one builder for the handlers, the URL-limit middleware and the
connection guard, so every refusal has the same body (:meth:`EdgeproofError.to_json`) and headers.

Light on purpose (aiohttp only, no pyvips): :mod:`edgeproof.origin.connections` refuses requests before
any handler runs and must not load the transformer.
"""

from __future__ import annotations

from aiohttp import web

from edgeproof.errors import EdgeproofError, Overloaded

__all__ = ["error_response", "json_error"]


def json_error(err: EdgeproofError, headers: dict[str, str] | None = None) -> web.Response:
    """The error's JSON body and status (500 for a status outside 4xx/5xx) with exactly ``headers``."""
    status = err.status if 400 <= err.status <= 599 else 500
    return web.json_response(err.to_json(), status=status, headers=headers)


def error_response(err: EdgeproofError) -> web.Response:
    """A refusal: :func:`json_error` with ``Cache-Control: no-store`` (CloudFront then does not keep the
    statuses where it honours it, :data:`edgeproof.cloudfront.ERROR_NO_STORE_HONOURED`) and, when
    overloaded, ``Retry-After``."""
    headers = {"Cache-Control": "no-store"}
    if isinstance(err, Overloaded):
        headers["Retry-After"] = str(err.retry_after)
    return json_error(err, headers)
