"""Write CloudFront standard (legacy, W3C) log lines and real-time log records, exactly as CloudFront does.

Used by the edge emulator (``origin/edge``), the synthetic log generator and the tests. A row is a
mapping keyed by :data:`edgeproof.analytics.schema.LOG_SCHEMA` column names (``cs_uri_stem``,
``x_edge_result_type``, ``time_taken`` in seconds …) plus ``timestamp`` (an aware or naive-UTC
``datetime``, or epoch milliseconds). AWS's rules:

- fields are separated by one tab; a missing or empty value is ``-``;
- strings are URL-encoded (RFC 1738 unsafe bytes: controls, space, bytes ≥ 0x7f and
  ``" # % < > [ \\ ] ^ ` { | } ~``), so a value the client already percent-encoded appears
  double-encoded (``%2C`` → ``%252C``);
- ``date`` and ``time`` are UTC (``2019-12-04`` / ``21:02:31``);
- ``time-taken`` and ``time-to-first-byte`` are seconds with millisecond precision (``0.001``).

``cs_user_agent_raw``, when given, is written verbatim (it is already in logged form).

Real-time log records ("Real-time logs", real-time-logs.html) are the same tab-separated values with
no header, in AWS's canonical field order (:data:`REALTIME_LOG_FIELDS`, the 40 fields a real-time
log configuration can hold, from :data:`edgeproof.analytics.reader_w3c.REALTIME_FIELDS`); their ``timestamp``
field is epoch seconds with milliseconds (``1591111111.123``), written from ``row["timestamp"]``.
Real-time names map to the same columns (``cs-user-agent`` → ``cs_user_agent``, ``cs-accept`` →
``cs_accept``); fields with no column (``c-ip-version``, ``cs-headers`` …) are read from a column of
the same spelling when the caller gives one, else ``-``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
from edgeproof.analytics.reader_w3c import realtime_fields_for_count
from edgeproof.analytics.schema import LEGACY_FIELDS_33, column_name

__all__ = ["REALTIME_LOG_FIELDS", "encode_columns", "encode_line", "encode_value", "w3c_header"]

#: the real-time fields the writers emit: the 40 a real-time log configuration can hold (AWS: "Each
#: log record can contain up to 40 fields"), in AWS's order; headerless files of 40 fields are read
#: back by :func:`edgeproof.analytics.reader.read_logs` without naming them
REALTIME_LOG_FIELDS: tuple[str, ...] = realtime_fields_for_count(40) or ()

_UNSAFE = frozenset(b'"#%<>[\\]^`{|}~ ') | frozenset(range(0x00, 0x20)) | frozenset(range(0x7F, 0x100))
_ENCODE_TABLE = [f"%{b:02X}" if b in _UNSAFE else chr(b) for b in range(256)]
#: byte (as a latin-1 character) → its logged form, for str.translate
_TRANSLATE = {b: f"%{b:02X}" for b in _UNSAFE}
#: a value made only of these characters is logged as it is
_SAFE_TEXT = re.compile("[" + "".join(re.escape(chr(b)) for b in range(0x80) if b not in _UNSAFE) + "]*")
_SECONDS_FIELDS = frozenset({"time-taken", "time-to-first-byte"})
_CACHE_LIMIT = 100_000
#: encoded strings and (date, time) per epoch second, shared by every call (bounded; cleared when full)
_STRINGS: dict[str, str] = {}
_STAMPS: dict[int, tuple[str, str]] = {}


def w3c_header(fields: Sequence[str] = LEGACY_FIELDS_33) -> str:
    """The two header lines CloudFront puts at the top of every standard log file."""
    return "#Version: 1.0\n#Fields: " + " ".join(fields) + "\n"


def encode_value(value: str) -> str:
    """URL-encode one string value the way CloudFront logs it (``''`` → ``-``)."""
    if not value:
        return "-"
    if _SAFE_TEXT.fullmatch(value):
        return value
    return value.encode("utf-8").decode("latin-1").translate(_TRANSLATE)


def _encode_str(value: str) -> str:
    """:func:`encode_value` of a non-empty ``str``, remembered across calls."""
    got = _STRINGS.get(value)
    if got is None:
        got = encode_value(value)
        if len(_STRINGS) >= _CACHE_LIMIT:
            _STRINGS.clear()
        _STRINGS[value] = got
    return got


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        return _timestamp(value.to_pydatetime())
    return datetime.fromtimestamp(float(value) / 1000.0, tz=UTC)


def _number(value: Any, seconds: bool) -> str:
    if seconds:
        return f"{float(value):.3f}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@lru_cache(maxsize=64)
def _plan(fields: tuple[str, ...]) -> tuple[tuple[str, str, bool], ...]:
    """Per field: (field, schema column, logged in seconds), computed once per field list."""
    return tuple((f, column_name(f), f in _SECONDS_FIELDS) for f in fields)


def encode_line(row: Mapping[str, Any], fields: Sequence[str] = LEGACY_FIELDS_33) -> str:
    """One log line (no trailing newline) for ``row``, in the order of ``fields``.

    ``row`` is keyed by schema column names; ``date``/``time`` come from ``row["timestamp"]``
    unless given as strings. Unknown keys are ignored; missing fields are written as ``-``.
    """
    ts = row.get("timestamp")
    when = _timestamp(ts) if ts is not None else None
    out: list[str] = []
    for field, col, seconds in _plan(tuple(fields)):
        if field == "timestamp":  # real-time: epoch seconds, millisecond precision
            out.append(f"{when.timestamp():.3f}" if when else "-")
            continue
        if field == "date" and row.get("date") is None:
            out.append(when.strftime("%Y-%m-%d") if when else "-")
            continue
        if field == "time" and row.get("time") is None:
            out.append(when.strftime("%H:%M:%S") if when else "-")
            continue
        if col == "cs_user_agent" and row.get("cs_user_agent_raw") not in (None, ""):
            out.append(str(row["cs_user_agent_raw"]))
            continue
        value = row.get(col)
        if value is None or value == "":
            out.append("-")
        elif isinstance(value, bool):
            out.append(encode_value(str(value).lower()))
        elif isinstance(value, int | float):
            out.append(_number(value, seconds))
        else:
            out.append(encode_value(str(value)))
    return "\t".join(out)


def _encode_other(v: Any) -> str:
    """Any value that is not a plain ``str``, ``int`` or ``None`` (a non-seconds field)."""
    if v == "":
        return "-"
    if isinstance(v, float) and v != v:  # NaN
        return "-"
    if isinstance(v, bool):
        return encode_value(str(v).lower())
    if isinstance(v, int | float | np.integer | np.floating):
        return _number(v.item() if isinstance(v, np.generic) else v, False)
    return encode_value(str(v))


def _encode_values(values: Sequence[Any]) -> list[str]:
    out: list[str] = []
    append = out.append
    for v in values:
        kind = type(v)
        if kind is str:
            append(_encode_str(v) if v else "-")
        elif kind is int:
            append(str(v))
        elif v is None:
            append("-")
        else:
            append(_encode_other(v))
    return out


def _encode_seconds(values: Sequence[Any]) -> list[str]:
    out: list[str] = []
    append = out.append
    for v in values:
        if v is None or v == "" or (isinstance(v, float) and v != v):
            append("-")
        else:
            append(f"{float(v):.3f}")
    return out


def _stamps(ts: Sequence[Any]) -> list[tuple[str, str]]:
    """(date, time) strings of epoch milliseconds, UTC."""
    out: list[tuple[str, str]] = []
    append = out.append
    for t in ts:
        sec = int(t) // 1000
        got = _STAMPS.get(sec)
        if got is None:
            text = str(np.datetime64(sec, "s"))
            got = (text[:10], text[11:19])
            if len(_STAMPS) >= _CACHE_LIMIT:
                _STAMPS.clear()
            _STAMPS[sec] = got
        append(got)
    return out


def encode_columns(
    columns: Mapping[str, Sequence[Any]], n: int, fields: Sequence[str] = LEGACY_FIELDS_33
) -> Iterator[str]:
    """Many log lines at once from columns (schema names → ``n`` values each); the same rules as
    :func:`encode_line`, faster for bulk writers. ``timestamp`` is epoch milliseconds (ints)."""
    encoded: list[Sequence[str]] = []
    ts = columns.get("timestamp")
    stamps = _stamps(ts) if ts is not None else None
    dash = ["-"] * n
    for field, col, seconds in _plan(tuple(fields)):
        if field == "timestamp":  # real-time: epoch seconds, millisecond precision
            encoded.append(dash if ts is None else [f"{int(t) // 1000}.{int(t) % 1000:03d}" for t in ts])
            continue
        if field in ("date", "time") and stamps is not None and columns.get(field) is None:
            k = 0 if field == "date" else 1
            encoded.append([s[k] for s in stamps])
            continue
        if col == "cs_user_agent" and columns.get("cs_user_agent_raw") is not None:
            encoded.append([v if v else "-" for v in columns["cs_user_agent_raw"]])
            continue
        values = columns.get(col)
        encode: Callable[[Sequence[Any]], list[str]] = _encode_seconds if seconds else _encode_values
        encoded.append(dash if values is None else encode(values))
    for parts in zip(*encoded, strict=True):
        yield "\t".join(parts)
