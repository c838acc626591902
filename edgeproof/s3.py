"""S3 for every part of edgeproof: one ``s3://`` parser, one client per thread, one error boundary.

Why one module: the log inputs, the report history, the edge's log upload and the origin's stores
each had a boto3 client, an ``s3://`` parser and an error translation of their own, and the copies
had drifted: one bad URL gave three different error classes, the log reader made a new client (a
new connection pool, so a new TCP/TLS connection) for every log object, only the origin had retries
and timeouts, and boto3's ``S3UploadFailedError`` escaped the edge's upload untranslated.

- :func:`parse_s3_url` is the one parser; a bad URL is a :class:`~edgeproof.errors.UsageError` that
  names it (exit 2).
- :func:`client` makes at most one client per (service, endpoint, region, thread, process): S3 by
  default, and every other AWS service edgeproof calls (``client("cloudfront")`` for the function
  deploy) through the same factory, so they share the retries, timeouts and endpoint rules. A boto3 client is
  thread-safe, but making one is not free: 50-80 ms with its own session, measured on the 2-core dev
  machine, plus a new connection pool. Each client gets a ``boto3.session.Session`` of its own,
  because boto3's default session must not be shared between threads while clients are made, and a
  session resolves credentials once (a client made later for another endpoint reads them afresh).
  A forked child makes its own (a connection pool is not fork-safe).
  ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` point every part at an S3-compatible server (moto,
  MinIO), ``AWS_ENDPOINT_URL_<SERVICE>`` (``AWS_ENDPOINT_URL_CLOUDFRONT``) another service; the other
  ``AWS_*`` variables (credentials, profile, region) apply as boto3 reads them.
- Every client has retries (botocore's "standard" mode) and connect/read timeouts, the defaults below;
  ``AWS_MAX_ATTEMPTS`` and ``AWS_RETRY_MODE`` still override the retry defaults.
- Errors: every botocore/boto3 failure raised inside this module becomes a
  :class:`~edgeproof.errors.StoreError` (exit 2) whose message names the ``s3://bucket/key`` and the
  reason in words (no such bucket, no such key, access denied, endpoint unreachable, no credentials),
  with botocore's own text as ``detail`` and ``raise ... from err`` (STYLE.md: library errors
  translated at one boundary, as httpx's ``map_httpcore_exceptions``). A streaming body read later is
  inside the boundary too (:class:`S3Body`). :func:`aws_reason` is the service-neutral half of that
  wording (credentials, region, endpoint, timeouts), used by every other service's boundary too.

boto3 and botocore are imported lazily, inside functions: the kernel is imported by parts (the load
generator, the CLI's parser) that must start without them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, overload

from edgeproof.errors import StoreError, UsageError

__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_ATTEMPTS",
    "MAX_POOL_CONNECTIONS",
    "READ_TIMEOUT",
    "ObjectHead",
    "S3Body",
    "S3Object",
    "S3Url",
    "aws_reason",
    "client",
    "endpoint_url",
    "get_bytes",
    "head_object",
    "is_s3_url",
    "list_objects",
    "open_object",
    "parse_s3_url",
    "put_object",
    "upload_file",
]

#: total attempts per request, the first included (botocore "standard" retry mode, exponential backoff)
MAX_ATTEMPTS = 3
#: seconds to open a connection to the S3 endpoint
CONNECT_TIMEOUT = 5.0
#: seconds to wait for bytes on an open connection (a stalled read raises instead of hanging)
READ_TIMEOUT = 30.0
#: HTTP connections one client keeps; a thread pool sharing a client is bounded by it, not blocked
MAX_POOL_CONNECTIONS = 32

_SCHEME = "s3://"
#: S3 keys are at most 1024 bytes of UTF-8 (Amazon S3 User Guide, "Naming Amazon S3 objects")
_MAX_KEY_BYTES = 1024
#: bucket name characters: today's rules (lower case, digits, '.', '-') plus the legacy us-east-1
#: spelling (upper case, '_'), 3-255 characters (Amazon S3 User Guide, "Bucket naming rules")
_BUCKET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


@dataclass(frozen=True, slots=True)
class S3Url:
    """``s3://bucket/key``: ``key`` is everything after the first ``/`` after the bucket, verbatim
    (a listing prefix keeps its trailing ``/``: ``logs/`` must not match ``logs2/``)."""

    bucket: str
    key: str = ""

    @property
    def prefix(self) -> str:
        """The key as a folder-like prefix: without leading or trailing ``/``."""
        return self.key.strip("/")

    def join(self, name: str) -> str:
        """The key of ``name`` under this URL's prefix (``prefix/name``, or ``name`` at the bucket root)."""
        prefix = self.prefix
        return f"{prefix}/{name}" if prefix else name

    def child(self, name: str) -> S3Url:
        return S3Url(self.bucket, self.join(name))

    def __str__(self) -> str:
        return f"{_SCHEME}{self.bucket}/{self.key}" if self.key else f"{_SCHEME}{self.bucket}"


def is_s3_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is meant as S3 (an ``s3://`` URL, well-formed or not)."""
    return os.fspath(location).startswith(_SCHEME)


def parse_s3_url(url: str | os.PathLike[str]) -> S3Url:
    """``s3://bucket/prefix`` → ``S3Url("bucket", "prefix")``; anything else is a UsageError naming it."""
    text = os.fspath(url)
    if not text.startswith(_SCHEME):
        raise UsageError(f"bad S3 URL {text!r}", detail="expected s3://bucket/prefix")
    bucket, _, key = text[len(_SCHEME):].partition("/")
    if not bucket:
        raise UsageError(f"bad S3 URL {text!r}: no bucket", detail="expected s3://bucket/prefix")
    if not 3 <= len(bucket) <= 255 or not _BUCKET_CHARS.issuperset(bucket):
        raise UsageError(f"bad S3 URL {text!r}: {bucket!r} is not a bucket name",
                         detail="a bucket name is 3-63 characters: lower-case letters, digits, '.' and '-'")
    if len(key.encode("utf-8", "surrogatepass")) > _MAX_KEY_BYTES:
        raise UsageError(f"bad S3 URL {text!r}: the key is over {_MAX_KEY_BYTES} bytes of UTF-8")
    return S3Url(bucket, key)


# -- the client ------------------------------------------------------------------------------------

_local = threading.local()


def endpoint_url(service: str = "s3") -> str | None:
    """The endpoint the environment names for ``service`` (``AWS_ENDPOINT_URL_S3``,
    ``AWS_ENDPOINT_URL_CLOUDFRONT`` …, else ``AWS_ENDPOINT_URL``), or None (AWS itself)."""
    specific = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
    return os.environ.get(specific) or os.environ.get("AWS_ENDPOINT_URL") or None


def _region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def _config() -> Any:
    from botocore.config import Config

    retries: dict[str, Any] = {}
    if not os.environ.get("AWS_MAX_ATTEMPTS"):  # else botocore reads the variable itself
        retries["total_max_attempts"] = MAX_ATTEMPTS
    if not os.environ.get("AWS_RETRY_MODE"):
        retries["mode"] = "standard"
    return Config(retries=retries, connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                  max_pool_connections=MAX_POOL_CONNECTIONS)


def client(service: str = "s3", *, endpoint: str | None = None, region: str | None = None) -> Any:
    """The ``service`` client (S3 by default) of this thread for (``endpoint``, ``region``), made on first use.

    Both default to what the environment says now (:func:`endpoint_url`, ``AWS_REGION`` /
    ``AWS_DEFAULT_REGION``), so a process that is pointed elsewhere gets a client for the new place.
    A global service (CloudFront) needs no region: botocore resolves its one endpoint.
    """
    endpoint = endpoint or endpoint_url(service)
    region = region or _region()
    pid = os.getpid()
    if getattr(_local, "pid", None) != pid:  # first use in this thread, or a forked child
        _local.pid, _local.clients = pid, {}
    clients: dict[tuple[str, str | None, str | None], Any] = _local.clients
    made = clients.get((service, endpoint, region))
    if made is None:
        import boto3

        # a session of its own: a Session resolves credentials once, and is not to be shared by threads
        session = boto3.session.Session()
        try:
            made = session.client(service, endpoint_url=endpoint, region_name=region, config=_config())
        except ValueError as err:  # botocore's word for an endpoint URL it cannot use
            raise UsageError(f"bad {_label(service)} endpoint {endpoint!r}", detail=str(err)) from err
        clients[(service, endpoint, region)] = made
    return made


# -- the error boundary ----------------------------------------------------------------------------

#: error codes that mean "this object does not exist" (HEAD answers carry no body, so only "404")
_MISSING_KEY = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem"})
#: S3 says InvalidAccessKeyId, the other services InvalidClientTokenId / UnrecognizedClientException
_BAD_CREDENTIALS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "InvalidClientTokenId",
                              "UnrecognizedClientException"})
_EXPIRED = frozenset({"ExpiredToken", "TokenRefreshRequired", "RequestExpired"})


def _code(err: Exception) -> str:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _is_missing_key(err: Exception) -> bool:
    return _code(err) in _MISSING_KEY


#: how a service is named in messages
_LABELS = {"s3": "S3", "cloudfront": "CloudFront"}


def _label(service: str) -> str:
    return _LABELS.get(service, service)


def aws_reason(err: Exception, service: str = "s3") -> str:
    """What went wrong in a call to ``service``, in words a user can act on: the part that is the same
    for every AWS service (credentials, region, endpoint, timeouts; an error code otherwise)."""
    from botocore import exceptions as bx

    label = _label(service)
    if isinstance(err, bx.ClientError):
        code = _code(err)
        if code in _BAD_CREDENTIALS:
            return "the AWS credentials were refused"
        if code in _EXPIRED:
            return "the AWS credentials have expired"
        return f"{label} answered {code or 'an error'}"
    if isinstance(err, bx.NoCredentialsError | bx.PartialCredentialsError | bx.CredentialRetrievalError):
        return "no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
    if isinstance(err, bx.NoRegionError):
        return "no AWS region (set AWS_REGION)"
    if isinstance(err, bx.ReadTimeoutError):
        return f"the {label} endpoint did not answer within {READ_TIMEOUT:g} s"
    if isinstance(err, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ConnectionClosedError):
        return f"cannot reach the {label} endpoint {endpoint_url(service) or '(AWS)'}"
    return f"the {label} request failed ({type(err).__name__})"


def _reason(err: Exception, bucket: str) -> str:
    """What went wrong with S3, in words a user can act on."""
    from botocore import exceptions as bx

    if isinstance(err, bx.ClientError):
        code = _code(err)
        if code == "NoSuchBucket":
            return f"no such bucket {bucket!r}"
        if code in _MISSING_KEY:
            return "no such key"
        if code in _DENIED:
            return f"access denied to bucket {bucket!r}"
    return aws_reason(err, "s3")


def _error(err: Exception, action: str, bucket: str, key: str) -> StoreError:
    where = str(S3Url(bucket, key))
    return StoreError(f"cannot {action} {where}: {_reason(err, bucket)}", detail=f"{type(err).__name__}: {err}")


@contextmanager
def _boundary(action: str, bucket: str, key: str = "") -> Iterator[None]:
    """Turn every botocore/boto3 error raised inside into a :class:`StoreError` naming ``s3://bucket/key``."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError, Boto3Error) as err:
        raise _error(err, action, bucket, key) from err


# -- helpers ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3Object:
    """One entry of a listing."""

    key: str
    size: int


@dataclass(frozen=True, slots=True)
class ObjectHead:
    """What a HEAD tells about an object, without its body."""

    key: str
    size: int
    content_type: str | None


class S3Body:
    """An object's body as a read-only byte stream; read errors are StoreErrors too (the boundary
    covers the whole download, not only the request that started it)."""

    def __init__(self, raw: Any, bucket: str, key: str, size: int, content_type: str | None) -> None:
        self._raw = raw
        self.bucket, self.key, self.size, self.content_type = bucket, key, size, content_type

    def read(self, amt: int | None = -1) -> bytes:
        with _boundary("read", self.bucket, self.key):
            data: bytes = self._raw.read(None if amt is None or amt < 0 else amt)
        return data

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> S3Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def list_objects(bucket: str, prefix: str = "") -> Iterator[S3Object]:
    """Every object whose key starts with ``prefix``, in key order, one page (1,000 keys) at a time."""
    with _boundary("list", bucket, prefix):
        for page in client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield S3Object(item["Key"], int(item.get("Size", 0)))


@overload
def open_object(bucket: str, key: str, *, missing_ok: Literal[False] = ...) -> S3Body: ...
@overload
def open_object(bucket: str, key: str, *, missing_ok: bool) -> S3Body | None: ...
def open_object(bucket: str, key: str, *, missing_ok: bool = False) -> S3Body | None:
    """The object's body as a stream (close it); None for a missing key when ``missing_ok``.

    A missing *bucket* is always an error: it is a wrong setting, not an absent object.
    """
    from botocore.exceptions import ClientError

    with _boundary("read", bucket, key):
        try:
            obj = client().get_object(Bucket=bucket, Key=key)
        except ClientError as err:
            if missing_ok and _is_missing_key(err):
                return None
            raise
    return S3Body(obj["Body"], bucket, key, int(obj.get("ContentLength", 0)), obj.get("ContentType"))


@overload
def get_bytes(bucket: str, key: str, *, missing_ok: Literal[False] = ...) -> bytes: ...
@overload
def get_bytes(bucket: str, key: str, *, missing_ok: bool) -> bytes | None: ...
def get_bytes(bucket: str, key: str, *, missing_ok: bool = False) -> bytes | None:
    """The whole object; None for a missing key when ``missing_ok``."""
    body = open_object(bucket, key, missing_ok=missing_ok)
    if body is None:
        return None
    with body:
        return body.read()


def head_object(bucket: str, key: str) -> ObjectHead | None:
    """Size and content type of an object, or None when it does not exist."""
    from botocore.exceptions import ClientError

    with _boundary("stat", bucket, key):
        try:
            obj = client().head_object(Bucket=bucket, Key=key)
        except ClientError as err:
            if _is_missing_key(err):
                return None
            raise
    return ObjectHead(key, int(obj.get("ContentLength", 0)), obj.get("ContentType"))


def put_object(bucket: str, key: str, body: bytes | IO[bytes], *, content_type: str | None = None) -> None:
    """Store ``body`` (bytes, or a seekable binary file, sent as a stream) as one object."""
    extra = {"ContentType": content_type} if content_type else {}
    with _boundary("write", bucket, key):
        client().put_object(Bucket=bucket, Key=key, Body=body, **extra)


def upload_file(path: str | os.PathLike[str], bucket: str, key: str, *, content_type: str | None = None) -> None:
    """Store the file at ``path`` as one object, streamed from disk.

    One PUT (objects up to 5 GB; a log file or a report is far below), so a failure is a plain S3
    error code (boto3's multipart ``upload_file`` wraps it in ``S3UploadFailedError``, which lost the
    code). botocore rewinds the file for a retry.
    """
    try:
        with Path(path).open("rb") as fh:
            put_object(bucket, key, fh, content_type=content_type)
    except OSError as err:
        raise StoreError(f"cannot upload {Path(path).name} to {S3Url(bucket, key)}",
                         detail=err.strerror or type(err).__name__) from err
